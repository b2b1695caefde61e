/**
 * The inviter's side of the join exchange (`join-protocol.ts`). It answers a joiner that
 * names a known invitation and proves the secret, spends a use of the invitation, has
 * the joiner admitted (by the caller, who signs the record), and hands over what the
 * joiner needs to come up. Everything a stranger can send costs little: an unknown
 * invitation id costs a table lookup (and a rate-limited NOT_FOUND), a known one a
 * handshake, at most a few per second per source address; sessions are few and short.
 */
import type { Clock } from "../clock.ts";
import { equalBytes, toBase64, toHex } from "../crypto/bytes.ts";
import type { Crypto } from "../crypto/crypto.ts";
import { type Endpoint, endpointKey } from "../net/packet-conn.ts";
import {
  consumeInitiation,
  createLocalIdentity,
  createRemoteIdentity,
  createResponse,
  type LocalIdentity,
  type SessionKeys,
} from "../tunnel/handshake.ts";
import type { InvitationBook } from "./invitations.ts";
import {
  decodeRequest,
  encodeReply,
  type JoinRefusal,
  type JoinReply,
  type JoinRequest,
  KIND,
  type KnownPeer,
  notFoundMessage,
  openSealed,
  parseMessage,
  respMessage,
  sealedMessage,
} from "./join-protocol.ts";

export const MAX_SESSIONS = 64;
export const SESSION_TIMEOUT_MS = 10_000;
/** Handshakes per source address per second (a token bucket), and for everyone together. */
const HANDSHAKES_PER_SOURCE = 5;
const HANDSHAKES_TOTAL = 50;
const NOT_FOUND_TOTAL = 20;

export interface AdmitRequest {
  readonly member: Uint8Array;
  readonly signingKey: Uint8Array;
  /** The invitation's nickname if it has one, else the joiner's choice (or null). */
  readonly nickname: string | null;
  readonly invitation: Uint8Array;
}

/** The records the joiner gets: the mesh's genesis, the inviter's admission, its own. */
export interface AdmitResult {
  readonly genesis: Uint8Array;
  readonly inviterAdmission: Uint8Array;
  readonly admission: Uint8Array;
}

export interface JoinResponderOptions {
  readonly crypto: Crypto;
  readonly clock: Clock;
  /** The inviter's X25519 private key (copied). */
  readonly privateKey: Uint8Array;
  readonly meshId: Uint8Array;
  readonly invitations: InvitationBook;
  readonly send: (data: Uint8Array, to: Endpoint) => void;
  /** Signs and adds the joiner's admission; `{ refused }` with a reason if it cannot. */
  readonly admit: (request: AdmitRequest) => AdmitResult | { readonly refused: string };
  readonly settings: () => {
    readonly domain: string;
    readonly range: string;
    readonly nickname: string;
  };
  readonly peers: () => readonly KnownPeer[];
  readonly log?: (level: "debug" | "info" | "warn", message: string) => void;
}

interface Session {
  readonly keys: SessionKeys;
  readonly joiner: Uint8Array;
  readonly invitationId: Uint8Array;
  readonly startedMs: number;
  /** The reply sent, resent as is when the same request comes again. */
  reply?: Uint8Array;
}

interface Bucket {
  tokens: number;
  lastMs: number;
}

export class JoinResponder {
  readonly #options: JoinResponderOptions;
  readonly #local: LocalIdentity;
  /** By our index (the one REQ names). */
  readonly #sessions = new Map<number, Session>();
  /** The response already sent for an initiation (by its bytes), for a joiner's resend. */
  readonly #responses = new Map<string, { index: number; message: Uint8Array }>();
  readonly #buckets = new Map<string, Bucket>();
  readonly #total: Bucket;
  readonly #notFound: Bucket;
  #closed = false;
  /** What was dropped or refused, by reason: for tests and metrics. */
  readonly counters = {
    malformed: 0,
    notFound: 0,
    rateLimited: 0,
    badHandshake: 0,
    badRequest: 0,
    accepted: 0,
    refused: 0,
    expiredSessions: 0,
  };

  constructor(options: JoinResponderOptions) {
    this.#options = options;
    this.#local = createLocalIdentity(options.crypto, options.privateKey.slice());
    const now = options.clock.now();
    this.#total = { tokens: HANDSHAKES_TOTAL, lastMs: now };
    this.#notFound = { tokens: NOT_FOUND_TOTAL, lastMs: now };
  }

  /** How many joins are in progress (sessions past their time are dropped first). */
  get sessionCount(): number {
    this.#expire();
    return this.#sessions.size;
  }

  /** Handles one join datagram. Never throws; what it cannot use it drops. */
  receive(data: Uint8Array, from: Endpoint): void {
    if (this.#closed) return;
    try {
      this.#expire();
      const message = parseMessage(data);
      if (message === undefined) {
        this.counters.malformed++;
        return;
      }
      if (message.kind === "init") this.#onInit(message.invitationId, message.initiation, from);
      else if (message.kind === "req") this.#onRequest(message, from);
      else this.counters.malformed++; // RESP, NOT_FOUND and REPLY go to joiners, not here
    } catch (error) {
      this.counters.malformed++;
      this.#options.log?.(
        "warn",
        `join message from ${endpointKey(from)} failed: ${(error as Error).message}`,
      );
    }
  }

  close(): void {
    this.#closed = true;
    this.#sessions.clear();
    this.#responses.clear();
  }

  #onInit(invitationId: Uint8Array, initiation: Uint8Array, from: Endpoint): void {
    const { crypto, clock, invitations } = this.#options;
    const invitation = invitations.lookup(invitationId);
    if (invitation === undefined) {
      this.counters.notFound++;
      if (take(this.#notFound, NOT_FOUND_TOTAL, clock.now())) {
        this.#options.send(
          notFoundMessage(
            new DataView(initiation.buffer, initiation.byteOffset + 4, 4).getUint32(0, true),
          ),
          from,
        );
      }
      return;
    }
    const cacheKey = toHex(initiation);
    const cached = this.#responses.get(cacheKey);
    if (cached && this.#sessions.has(cached.index)) {
      this.#options.send(cached.message, from);
      return;
    }
    const now = clock.now();
    const source = from.address;
    let bucket = this.#buckets.get(source);
    if (!bucket) {
      if (this.#buckets.size > 4096) this.#buckets.clear();
      bucket = { tokens: HANDSHAKES_PER_SOURCE, lastMs: now };
      this.#buckets.set(source, bucket);
    }
    if (!take(bucket, HANDSHAKES_PER_SOURCE, now) || !take(this.#total, HANDSHAKES_TOTAL, now)) {
      this.counters.rateLimited++;
      return;
    }
    const consumed = consumeInitiation(crypto, this.#local, initiation, (key) =>
      crypto.dh(this.#local.privateKey, key),
    );
    if ("refused" in consumed) {
      this.counters.badHandshake++;
      return;
    }
    const remote = createRemoteIdentity(
      crypto,
      this.#local,
      consumed.initiatorPublic,
      invitation.psk,
    );
    let index = 0;
    do index = crypto.randomBytes(4).reduce((n, b) => n * 256 + b, 0);
    while (index === 0 || this.#sessions.has(index));
    const response = createResponse(crypto, remote, consumed, index);
    if (response === null) {
      this.counters.badHandshake++;
      return;
    }
    if (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value!;
      this.#sessions.delete(oldest);
    }
    this.#sessions.set(index, {
      keys: response.keys,
      joiner: consumed.initiatorPublic,
      invitationId: Uint8Array.from(invitationId),
      startedMs: now,
    });
    const message = respMessage(response.message);
    if (this.#responses.size >= MAX_SESSIONS * 2) this.#responses.clear();
    this.#responses.set(cacheKey, { index, message });
    this.#options.send(message, from);
  }

  #onRequest(
    message: { index: number; header: Uint8Array; sealed: Uint8Array },
    from: Endpoint,
  ): void {
    const session = this.#sessions.get(message.index);
    if (!session) {
      this.counters.badRequest++;
      return;
    }
    const { crypto } = this.#options;
    const plain = openSealed(crypto, session.keys.receiveKey, message);
    if (plain === null) {
      this.counters.badRequest++;
      return;
    }
    if (session.reply) {
      this.#options.send(session.reply, from);
      return;
    }
    const request = decodeRequest(plain);
    // Authenticated but unreadable (a joiner of another version): say so rather than stay silent.
    const reply: JoinReply = request.ok
      ? this.#decide(session, request.value)
      : {
          kind: "refuse",
          code: "refused",
          message: `the join request is malformed: ${request.error}`,
        };
    if (reply.kind === "accept") this.counters.accepted++;
    else this.counters.refused++;
    session.reply = sealedMessage(
      crypto,
      KIND.reply,
      session.keys.remoteIndex,
      session.keys.sendKey,
      encodeReply(reply),
    );
    this.#options.send(session.reply, from);
  }

  #decide(session: Session, request: JoinRequest): JoinReply {
    const { invitations, clock, meshId } = this.#options;
    const joiner = toBase64(session.joiner);
    const refuse = (
      code: "expired" | "used" | "revoked" | "wrong-mesh" | "refused",
      message: string,
    ): JoinRefusal => {
      this.#options.log?.("info", `join by ${joiner} refused: ${message}`);
      return { kind: "refuse", code, message };
    };
    if (!equalBytes(request.meshId, meshId)) {
      return {
        ...refuse(
          "wrong-mesh",
          `the invitation is for mesh ${toHex(request.meshId)} but this peer is in mesh ${toHex(meshId)}`,
        ),
        meshId: Uint8Array.from(meshId),
      };
    }
    const now = clock.wallNow();
    const invitation = invitations.lookup(session.invitationId);
    const state = invitations.check(session.invitationId, joiner, now);
    if (state === "unknown" || invitation === undefined)
      return refuse("revoked", "the invitation is gone");
    if (state === "expired") {
      return refuse(
        "expired",
        `the invitation expired at ${new Date(invitation.expiresAt).toISOString()}`,
      );
    }
    if (state === "used") {
      return refuse(
        "used",
        invitation.uses === 1
          ? "the invitation was already used"
          : `the invitation is used up (${invitation.uses} uses)`,
      );
    }
    if (state === "revoked") return refuse("revoked", "the invitation was revoked by its inviter");
    // Spent (and saved) first: a use is never given twice, even if what follows fails.
    try {
      invitations.consume(session.invitationId, joiner, now);
    } catch (error) {
      return refuse("refused", `the inviter could not record the use: ${(error as Error).message}`);
    }
    let admitted: AdmitResult | { readonly refused: string };
    try {
      admitted = this.#options.admit({
        member: session.joiner,
        signingKey: request.signingKey,
        nickname: invitation.nickname ?? request.nickname,
        invitation: session.invitationId,
      });
    } catch (error) {
      admitted = { refused: `the inviter could not admit it: ${(error as Error).message}` };
    }
    if ("refused" in admitted) {
      // Nobody got in with it: the use is given back.
      try {
        invitations.refund(session.invitationId, joiner);
      } catch {
        // the use stays spent: safe, if unkind
      }
      return refuse("refused", admitted.refused);
    }
    const settings = this.#options.settings();
    this.#options.log?.("info", `${joiner} joined with invitation ${toHex(session.invitationId)}`);
    return {
      kind: "accept",
      ...admitted,
      domain: settings.domain,
      range: settings.range,
      inviterNickname: settings.nickname,
      peers: this.#options.peers(),
    };
  }

  #expire(): void {
    const now = this.#options.clock.now();
    for (const [index, session] of this.#sessions) {
      if (now - session.startedMs < SESSION_TIMEOUT_MS) continue;
      this.#sessions.delete(index);
      if (!session.reply) this.counters.expiredSessions++;
    }
  }
}

/** Takes a token from a bucket that refills at `perSecond`, up to `perSecond`. */
function take(bucket: Bucket, perSecond: number, now: number): boolean {
  bucket.tokens = Math.min(perSecond, bucket.tokens + ((now - bucket.lastMs) / 1000) * perSecond);
  bucket.lastMs = now;
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}
