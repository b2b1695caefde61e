/**
 * Wires a `Members` replica to the mesh: registers it as the gossip channel "members"
 * (anti-entropy repairs what broadcasts miss), signs and broadcasts this peer's own
 * admissions and removals, and turns every change of the member set, local or merged
 * from gossip, into `mesh.revalidateMembers()` (which throws out whoever is no longer a
 * member) and the `onChange` handlers. The Mesh asks `members.isMember` itself, through
 * its `isMember` option, so its answers change the moment a record is merged.
 *
 * ```
 * admit / remove ─sign─► Members ─┬─► revalidateMembers() ─► onChange handlers
 * gossip merge ──────────► Members ┘                         (then broadcast, if local)
 * ```
 *
 * Nothing from gossip can throw out of here: `Members` refuses bad records (counted), and a
 * failing handler is logged, not passed to the gossip engine (which would then not
 * forward what changed).
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { equalBytes, fromBase64, toBase64 } from "../crypto/bytes.ts";
import type { GossipChannel, GossipState, PeerKey } from "../mesh/gossip-state.ts";
import {
  MEMBERS_CHANNEL,
  type Members,
  type MembersDelta,
  type ReceiveOutcome,
} from "./members.ts";
import { hashKey, KEY_BYTES, type SignedRecord, signRecord } from "./records.ts";

/** What replication needs of the mesh: `Mesh` provides it. */
export interface MembershipMesh {
  channel<D>(name: string, state: GossipState<D>): GossipChannel<D>;
  /** Applies a change of the member set (closes non-members' sessions). */
  revalidateMembers(): unknown;
}

export interface MembershipReplicationOptions {
  /** The mesh id: must be the replica's own. */
  readonly meshId: Uint8Array;
  /** This peer's X25519 public key (its WireGuard identity), the author of what it signs. */
  readonly self: Uint8Array;
  /** This peer's Ed25519 secret key; its public key must be that of one of its admissions. */
  readonly signingSecret: Uint8Array;
  /** Wall-clock ms since the epoch, written into records (informational only). */
  readonly now: () => number;
  readonly log?: (level: "debug" | "info" | "warn", message: string) => void;
}

/** What changed in the member set: keys that became members, keys that stopped being ones. */
export interface MembershipChange {
  readonly admitted: PeerKey[];
  readonly removed: PeerKey[];
}

/** An admission this peer signs for a newcomer. */
export interface AdmitRequest {
  /** The newcomer's X25519 public key. */
  readonly member: Uint8Array;
  /** The newcomer's Ed25519 public key, with which it will sign records. */
  readonly signingKey: Uint8Array;
  readonly nickname: string;
  /** The invitation used (e.g. a hash of the token's secret), or null. */
  readonly invitation?: Uint8Array | null;
}

export type MembershipErrorCode =
  /** This peer is not (or no longer) a member, or its signing key is not one of its admissions'. */
  | "NOT_A_MEMBER"
  /** The key was removed: it can never be a member again (rejoin under a new key). */
  | "REMOVED"
  /** A peer cannot remove itself (see `remove`). */
  | "SELF_REMOVAL"
  /** The replica refused the record (full, or malformed); the message says why. */
  | "REFUSED";

/** A membership change this peer cannot make; `code` says which rule stopped it. */
export class MembershipError extends Error {
  override readonly name = "MembershipError";
  constructor(
    readonly code: MembershipErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface MembershipReplication {
  readonly members: Members;
  readonly channel: GossipChannel<MembersDelta>;
  /**
   * Signs an admission of `request.member` by this peer, adds it and broadcasts it.
   * Admitting a current member again adds a second admission (another signing key).
   * Throws `MembershipError`: NOT_A_MEMBER when this peer cannot sign admissions,
   * REMOVED when the key was removed, REFUSED when the replica is full; `RangeError`
   * for malformed fields (a nickname too long or with control characters, a bad key).
   */
  admit(request: AdmitRequest): SignedRecord;
  /**
   * Signs a removal of `member` by this peer, adds it and broadcasts it; every member
   * refuses the key as the record reaches it. Returns the removal already held when the
   * key was removed before. Refuses (SELF_REMOVAL) to remove this peer itself: a removal
   * cannot be undone, and a peer that removed itself is at once cut off from the members
   * that would carry its record; leaving is done by another member's `remove`. Throws
   * `MembershipError` NOT_A_MEMBER when this peer cannot sign removals.
   */
  remove(member: Uint8Array | PeerKey): SignedRecord;
  /**
   * Adds records that arrived outside gossip (a join exchange), broadcasting them when
   * they are new. Never throws; returns what happened to each.
   */
  receive(records: readonly (SignedRecord | Uint8Array)[]): ReceiveOutcome[];
  /** Calls `handler` after every change of the member set (after `revalidateMembers`). */
  onChange(handler: (change: MembershipChange) => void): void;
}

/**
 * Replicates `members` over `mesh`'s gossip on the channel "members".
 *
 * @example
 * ```ts
 * const members = new Members({ meshId, genesis });
 * const mesh = new Mesh({ ...options, isMember: (key) => members.isMember(key) });
 * const membership = replicateMembers(members, mesh, {
 *   meshId, self: mesh.publicKey, signingSecret, now: () => clock.wallNow(),
 * });
 * membership.admit({ member: newcomerKey, signingKey: newcomerSigningKey, nickname: "db1" });
 * membership.remove(lostLaptopKey); // refused by every member within a few gossip periods
 * ```
 */
export function replicateMembers(
  members: Members,
  mesh: MembershipMesh,
  options: MembershipReplicationOptions,
): MembershipReplication {
  const { meshId, self, signingSecret, now } = options;
  if (!equalBytes(meshId, members.meshId)) {
    throw new RangeError(`Expected "meshId" to be the mesh id of "members"`);
  }
  if (!(self instanceof Uint8Array) || self.length !== KEY_BYTES) {
    throw new RangeError(`Expected "self" to be ${KEY_BYTES} bytes`);
  }
  if (!(signingSecret instanceof Uint8Array) || signingSecret.length !== KEY_BYTES) {
    throw new RangeError(`Expected "signingSecret" to be ${KEY_BYTES} bytes`);
  }
  const selfKey = toBase64(self);
  const signingKey = toBase64(ed25519.getPublicKey(signingSecret));
  const log = options.log ?? (() => {});
  const handlers: ((change: MembershipChange) => void)[] = [];
  let current = new Set(members.members().map((m) => m.key));

  /** Compares the member set with the last one seen; acts on a difference. */
  const changed = () => {
    const next = new Set(members.members().map((m) => m.key));
    const admitted = [...next].filter((key) => !current.has(key));
    const removed = [...current].filter((key) => !next.has(key));
    current = next;
    if (admitted.length === 0 && removed.length === 0) return;
    // A removed peer would never hear of it once its sessions close: tell it first,
    // while a session may still carry the record.
    for (const key of removed) {
      if (key === selfKey) continue;
      for (const record of members.records()) {
        if (record.record.kind !== "removal" || toBase64(record.record.member) !== key) continue;
        try {
          unicast(key, record.bytes);
        } catch (error) {
          log("debug", `could not tell ${key} of its removal: ${describe(error)}`);
        }
      }
    }
    try {
      mesh.revalidateMembers();
    } catch (error) {
      log("warn", `revalidating members failed: ${describe(error)}`);
    }
    const change = { admitted, removed };
    for (const handler of handlers) {
      try {
        handler({ admitted: [...change.admitted], removed: [...change.removed] });
      } catch (error) {
        log("warn", `a membership change handler failed: ${describe(error)}`);
      }
    }
  };

  // The engine talks to this wrapper, so merges from gossip are noticed.
  const state: GossipState<MembersDelta> = {
    digest: () => members.digest(),
    summary: () => members.summary(),
    deltaFor: (theirs) => members.deltaFor(theirs),
    encode: (delta, max) => members.encode(delta, max),
    decode: (items) => members.decode(items),
    merge: (delta, from) => {
      const merged = members.merge(delta, from);
      if (merged !== null) changed();
      return merged;
    },
  };
  const channel = mesh.channel(MEMBERS_CHANNEL, state);
  const unicast = (key: string, bytes: Uint8Array) => channel.unicast(key, bytes);
  // A record sent to us alone: our own removal, told before the sessions close.
  channel.onUnicast((_from, message) => {
    try {
      add([message]);
    } catch (error) {
      log("debug", `a record sent to this peer was refused: ${describe(error)}`);
    }
  });

  /** Checks that this peer can sign for the mesh now. */
  const requireSigner = (what: string) => {
    const mine = members.members().find((m) => m.key === selfKey);
    if (mine === undefined) {
      throw new MembershipError("NOT_A_MEMBER", `This peer is not a member: it cannot ${what}`);
    }
    // Any of our admissions authorises the key, not only the one `members()` shows.
    const authorised = members
      .records()
      .some(
        (r) =>
          r.record.kind === "admission" &&
          toBase64(r.record.member) === selfKey &&
          toBase64(r.record.signingKey) === signingKey,
      );
    if (!authorised) {
      throw new MembershipError(
        "NOT_A_MEMBER",
        `This peer's signing key is not in any of its admissions: it cannot ${what}`,
      );
    }
  };

  /**
   * Adds records, then acts on what became part of the state (records that waited for
   * an author's admission included): revalidation, handlers, one broadcast.
   */
  const add = (records: readonly (SignedRecord | Uint8Array)[]): ReceiveOutcome[] => {
    const before = members.summary();
    const outcomes = records.map((record) => members.receive(record));
    const fresh = members.records().filter((r) => !before.has(hashKey(r)));
    if (fresh.length > 0) {
      changed();
      channel.broadcast({ records: fresh });
    }
    return outcomes;
  };

  /** Adds a record signed here. */
  const addOwn = (signed: SignedRecord): SignedRecord => {
    const [outcome] = add([signed]);
    if (outcome !== "accepted" && outcome !== "duplicate") {
      throw new MembershipError(
        "REFUSED",
        `The membership replica did not take the record (${outcome}): it may be full`,
      );
    }
    return signed;
  };

  return {
    members,
    channel,
    admit(request) {
      if (members.isRemoved(request.member)) {
        throw new MembershipError(
          "REMOVED",
          `Key "${toBase64(request.member)}" was removed: it cannot be admitted again`,
        );
      }
      requireSigner("admit");
      return addOwn(
        signRecord(
          meshId,
          {
            kind: "admission",
            version: 1,
            member: request.member,
            signingKey: request.signingKey,
            nickname: request.nickname,
            admittedBy: self,
            invitation: request.invitation ?? null,
            at: Math.max(0, Math.floor(now())),
          },
          signingSecret,
        ),
      );
    },
    remove(member) {
      const key = typeof member === "string" ? member : toBase64(member);
      const bytes = typeof member === "string" ? fromBase64(member) : member;
      if (key === selfKey) {
        throw new MembershipError(
          "SELF_REMOVAL",
          "A peer cannot remove itself: ask another member to remove it",
        );
      }
      const held = members
        .records()
        .find((r) => r.record.kind === "removal" && toBase64(r.record.member) === key);
      if (held !== undefined) return held;
      requireSigner("remove");
      return addOwn(
        signRecord(
          meshId,
          {
            kind: "removal",
            version: 1,
            member: bytes,
            removedBy: self,
            at: Math.max(0, Math.floor(now())),
          },
          signingSecret,
        ),
      );
    },
    receive: (records) => add(records),
    onChange(handler) {
      handlers.push(handler);
    },
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
