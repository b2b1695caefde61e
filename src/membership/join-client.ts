/**
 * The joiner's side of the join exchange (`join-protocol.ts`): handshakes with every
 * endpoint of the token at once, continues with the first that answers, asks to be
 * admitted, and checks what comes back (its own admission, signed within the token's
 * mesh, whose genesis must verify).
 */
import type { Clock } from "../clock.ts";
import { equalBytes, toBase64, toHex } from "../crypto/bytes.ts";
import type { Crypto } from "../crypto/crypto.ts";
import { type Endpoint, endpointKey, type PacketConn } from "../net/packet-conn.ts";
import {
  consumeResponse,
  createInitiation,
  createLocalIdentity,
  createRemoteIdentity,
  type PendingInitiation,
  type SessionKeys,
} from "../tunnel/handshake.ts";
import {
  decodeReply,
  encodeRequest,
  initMessage,
  type JoinRefusal,
  KIND,
  type KnownPeer,
  openSealed,
  parseMessage,
  type RefusalCode,
  sealedMessage,
} from "./join-protocol.ts";
import { Members } from "./members.ts";
import { decodeSignedRecord, type SignedRecord, verifyRecord } from "./records.ts";
import { type Invite, invitationId, invitationPsk, isIpLiteral } from "./token.ts";

/**
 * Requests sent in one session before the joiner handshakes again: the inviter forgets a
 * session 10 s after it began, so a joiner whose answers keep getting lost needs a new one
 * (the inviter's answer to a joiner it already admitted is the same yes).
 */
const REHANDSHAKE_AFTER_REQUESTS = 5;

export type JoinErrorCode = RefusalCode | "unreachable" | "unknown" | "bad-reply" | "bad-endpoint";

export class JoinError extends Error {
  override readonly name = "JoinError";
  constructor(
    readonly code: JoinErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface JoinAccepted {
  readonly genesis: SignedRecord;
  readonly inviterAdmission: SignedRecord;
  readonly admission: SignedRecord;
  readonly settings: { readonly domain: string; readonly range: string };
  readonly inviterNickname: string;
  readonly peers: readonly {
    publicKey: string;
    nickname: string;
    endpoints: readonly Endpoint[];
  }[];
  /** The endpoint that answered. */
  readonly endpoint: Endpoint;
}

export interface JoinOptions {
  readonly crypto: Crypto;
  readonly clock: Clock;
  /** The socket to join from (the daemon's own port, through `splitJoinTraffic`). */
  readonly conn: PacketConn;
  readonly token: Invite;
  /** The joiner's X25519 private key: the identity it will have in the mesh. */
  readonly privateKey: Uint8Array;
  readonly signingPublicKey: Uint8Array;
  /** The nickname asked for, when the invitation names none. */
  readonly nickname?: string;
  readonly timeoutMs?: number;
  readonly retryMs?: number;
  /** Resolves a name in the token to addresses (the core resolves nothing itself). */
  readonly resolve?: (host: string) => Promise<string[]>;
}

/** Joins the token's mesh; rejects with a JoinError that says what went wrong. */
export async function joinMesh(options: JoinOptions): Promise<JoinAccepted> {
  const { crypto, clock, conn, token } = options;
  if (!(options.privateKey instanceof Uint8Array) || options.privateKey.length !== 32) {
    throw new RangeError('Expected "privateKey" to be 32 bytes');
  }
  if (!(options.signingPublicKey instanceof Uint8Array) || options.signingPublicKey.length !== 32) {
    throw new RangeError('Expected "signingPublicKey" to be 32 bytes');
  }
  const timeoutMs = options.timeoutMs ?? 15_000;
  const retryMs = options.retryMs ?? 1_000;
  const endpoints = await resolveEndpoints(token, options.resolve);
  if (endpoints.length === 0) {
    throw new JoinError("bad-endpoint", "no endpoint of the token could be resolved to an address");
  }
  const local = createLocalIdentity(crypto, options.privateKey);
  const remote = createRemoteIdentity(crypto, local, token.inviterKey, invitationPsk(token.secret));
  const id = invitationId(token.secret);
  const attempts = new Map<
    number,
    { endpoint: Endpoint; pending: PendingInitiation; message: Uint8Array }
  >();
  /** A fresh initiation (and sender index) per endpoint; false for an unusable inviter key. */
  const startHandshakes = (): boolean => {
    attempts.clear();
    for (const endpoint of endpoints) {
      let index = 0;
      do index = crypto.randomBytes(4).reduce((n, b) => n * 256 + b, 0);
      while (index === 0 || attempts.has(index));
      const made = createInitiation(crypto, local, remote, index, clock.wallNow());
      if (made === null) return false;
      attempts.set(index, {
        endpoint,
        pending: made.pending,
        message: initMessage(id, made.message),
      });
    }
    return true;
  };
  if (!startHandshakes()) {
    throw new JoinError("bad-reply", "the token's inviter key is not a usable key");
  }
  const request = encodeRequest({
    meshId: token.meshId,
    signingKey: options.signingPublicKey,
    nickname: options.nickname ?? null,
  });

  return await new Promise<JoinAccepted>((resolve, reject) => {
    const notFound = new Set<string>();
    let session: { keys: SessionKeys; endpoint: Endpoint; request: Uint8Array } | undefined;
    let cancelRetry = () => {};
    const cancelTimeout = clock.setTimer(timeoutMs, () =>
      finish(
        new JoinError(
          notFound.size === endpoints.length ? "unknown" : "unreachable",
          notFound.size === endpoints.length
            ? `no peer at the token's endpoints knows this invitation (${endpoints.map(endpointKey).join(", ")}); the inviter may have been reset`
            : session
              ? `the inviter at ${endpointKey(session.endpoint)} stopped answering`
              : `no answer from any endpoint (tried ${endpoints.map(endpointKey).join(", ")}): the inviter may be down or unreachable`,
        ),
      ),
    );
    const finish = (result: JoinAccepted | JoinError) => {
      cancelTimeout();
      cancelRetry();
      conn.onReceive(() => {});
      if (result instanceof JoinError) reject(result);
      else resolve(result);
    };
    let requestsSent = 0;
    const sendAll = () => {
      // Requests unanswered for longer than the inviter keeps a session: start over.
      if (session && requestsSent >= REHANDSHAKE_AFTER_REQUESTS) {
        session = undefined;
        startHandshakes();
      }
      if (session) {
        conn.send(session.request, session.endpoint);
        requestsSent++;
      } else {
        for (const attempt of attempts.values()) conn.send(attempt.message, attempt.endpoint);
      }
      cancelRetry = clock.setTimer(retryMs, sendAll);
    };
    conn.onReceive((data, from) => {
      try {
        const message = parseMessage(data);
        if (message === undefined) return;
        if (message.kind === "notFound") {
          const attempt = attempts.get(message.index);
          if (attempt && sameEndpoint(attempt.endpoint, from)) notFound.add(endpointKey(from));
          return;
        }
        if (message.kind === "resp" && !session) {
          const receiver = new DataView(
            message.response.buffer,
            message.response.byteOffset + 8,
            4,
          ).getUint32(0, true);
          const attempt = attempts.get(receiver);
          if (!attempt) return;
          const keys = consumeResponse(crypto, local, remote, attempt.pending, message.response);
          if (keys === null) return; // not the inviter, or not for this secret: ignore
          session = {
            keys,
            endpoint: from,
            request: sealedMessage(crypto, KIND.req, keys.remoteIndex, keys.sendKey, request),
          };
          requestsSent = 0;
          cancelRetry();
          sendAll();
          return;
        }
        if (message.kind === "reply" && session && message.index === session.keys.localIndex) {
          const plain = openSealed(crypto, session.keys.receiveKey, message);
          if (plain === null) return;
          const reply = decodeReply(plain);
          if (!reply.ok) {
            finish(new JoinError("bad-reply", `the inviter's answer is malformed: ${reply.error}`));
            return;
          }
          if (reply.value.kind === "refuse") {
            finish(refusalError(reply.value, token, session.endpoint));
            return;
          }
          finish(checkAcceptance(options, reply.value, session.endpoint));
        }
      } catch (error) {
        finish(new JoinError("bad-reply", `the join failed: ${(error as Error).message}`));
      }
    });
    sendAll();
  });
}

function checkAcceptance(
  options: JoinOptions,
  reply: {
    genesis: Uint8Array;
    inviterAdmission: Uint8Array;
    admission: Uint8Array;
    domain: string;
    range: string;
    inviterNickname: string;
    peers: readonly KnownPeer[];
  },
  endpoint: Endpoint,
): JoinAccepted | JoinError {
  const { token, crypto } = options;
  const bad = (why: string) => new JoinError("bad-reply", `the inviter's answer is wrong: ${why}`);
  const genesis = decodeSignedRecord(reply.genesis);
  const inviterAdmission = decodeSignedRecord(reply.inviterAdmission);
  const admission = decodeSignedRecord(reply.admission);
  if (!genesis.ok || !inviterAdmission.ok || !admission.ok) return bad("a record does not parse");
  try {
    new Members({ meshId: token.meshId, genesis: genesis.value });
  } catch {
    return bad(`its genesis is not that of mesh ${toHex(token.meshId)}`);
  }
  const own = crypto.publicKey(options.privateKey);
  const record = admission.value.record;
  if (record.kind !== "admission" || !equalBytes(record.member, own)) {
    return bad("the admission is not for this peer");
  }
  const inviter = inviterAdmission.value.record;
  if (inviter.kind !== "admission" || !equalBytes(inviter.member, token.inviterKey)) {
    return bad("the inviter's admission is not the inviter's");
  }
  // Signed for this mesh (who may sign whom, the members check as for any record; a
  // joiner admitted before by another member gets that admission back).
  if (
    !verifyRecord(token.meshId, admission.value) ||
    !verifyRecord(token.meshId, inviterAdmission.value)
  ) {
    return bad("an admission is not validly signed for this mesh");
  }
  return {
    genesis: genesis.value,
    inviterAdmission: inviterAdmission.value,
    admission: admission.value,
    settings: { domain: reply.domain, range: reply.range },
    inviterNickname: reply.inviterNickname,
    peers: reply.peers.map((p) => ({
      publicKey: toBase64(p.publicKey),
      nickname: p.nickname,
      endpoints: p.endpoints,
    })),
    endpoint,
  };
}

async function resolveEndpoints(
  token: Invite,
  resolve: ((host: string) => Promise<string[]>) | undefined,
): Promise<Endpoint[]> {
  const out: Endpoint[] = [];
  // Each address once (a name may resolve to a listed literal): "unknown" counts answers per endpoint.
  const add = (endpoint: Endpoint) => {
    if (!out.some((e) => sameEndpoint(e, endpoint))) out.push(endpoint);
  };
  for (const { host, port } of token.endpoints) {
    if (isIpLiteral(host)) {
      add({ address: host, port });
      continue;
    }
    if (!resolve) continue;
    const addresses = await resolve(host).catch(() => [] as string[]);
    for (const address of addresses.slice(0, 4)) add({ address, port });
  }
  return out;
}

/** The inviter's refusal, in words that name what the joiner holds and who answered. */
function refusalError(refusal: JoinRefusal, token: Invite, endpoint: Endpoint): JoinError {
  if (refusal.code === "wrong-mesh" && refusal.meshId !== undefined) {
    return new JoinError(
      "wrong-mesh",
      `the invitation is for mesh ${toHex(token.meshId)} but the peer at ${endpointKey(endpoint)} is in mesh ${toHex(refusal.meshId)}`,
    );
  }
  return new JoinError(refusal.code, `${refusal.message} (answer from ${endpointKey(endpoint)})`);
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.address === b.address;
}
