/**
 * Mesh membership as a CRDT on the gossip contract (`../mesh/gossip-state.ts`): a
 * grow-only set of signed admissions and removals (`records.ts`), keyed by record hash,
 * on the gossip channel "members".
 *
 * Validity rules (a function of the set of records held, never of arrival order):
 * - The mesh is defined by its id and its genesis: the founder's self-admission
 *   (admittedBy null), signed with the founder's own signing key. No other record may
 *   have admittedBy null.
 * - An admission is valid when its signature verifies and its signer is the signing key
 *   of a valid admission of its `admittedBy`: a chain of valid admissions leads back to
 *   the genesis. Removals play no part in this chain (see below).
 * - A removal is valid when its signature verifies and its signer is the signing key of
 *   a valid admission of its `removedBy`.
 * - Members are the keys with a valid admission and no valid removal. A removal wins over
 *   every admission of the same key, earlier or later, forever: a removed key never
 *   comes back (a removed device rejoins under a new key).
 * - Removals are not retroactive: records a member signed stay valid after it is removed,
 *   so removing whoever invited half the mesh removes no one else.
 *
 * Why removals do not cut chains: without causal order nobody can tell a record a member
 * signed before its removal from one it signed after, and letting removals invalidate
 * their author's chain is self-referential (C, admitted by B, removes B: if that cut C's
 * chain, C's removal of B would be invalid, so it would not cut it). The price: a removed
 * member's signing key can still admit and remove. That is acceptable only while removal
 * means "leave the mesh", not "this key is compromised"; the fix needs causal order (a
 * removal naming the records of the removed member that it keeps).
 *
 * What a removal does, once a member holds it (`replicate.ts` and the Mesh's `isMember`):
 * that member refuses the key's handshakes before any session exists, closes its
 * sessions, drops relay frames from or to it, and never admits the key again (it must
 * rejoin under a new key). What it does not do: it does not undo what the removed member
 * signed, before or after; and because removals do not cut chains (above), a removed
 * member that kept its Ed25519 signing key can still sign admissions, for instance of a
 * fresh X25519 key of its own, and every replica accepts them. So removal expels a key
 * from a mesh whose members behave; it does not contain a compromised member. Containing
 * one needs removals that revoke the signing key for what is signed after them (causal
 * order, as above), or a new mesh.
 *
 * A member may have several valid admissions (admitted twice): each one's signing key
 * signs for it, and `members()` shows the one with the smallest record hash.
 *
 * Convergence: merge adds records whose signature verifies (checked at once: a bad one is
 * rejected for good) and whose signer is authorised; a verified record whose signer is
 * not (yet) known as a signing key of its author waits in a bounded pending set, re-checked
 * whenever an admission of that author is accepted. So replicas that received the same
 * records, in any order, hold the same valid set, as long as neither bound was hit
 * (`maxRecords`; a pending record evicted is sent again by anti-entropy, since it is not
 * in this replica's summary). Pending records are not part of the state: not in the
 * digest, summary or deltas.
 */
import { blake2s } from "@noble/hashes/blake2.js";
import { decode as cborDecode } from "cborg";
import { concatBytes, equalBytes, toBase64 } from "../crypto/bytes.ts";
import {
  GossipRejected,
  type GossipState,
  type PeerKey,
  type Summary,
} from "../mesh/gossip-state.ts";
import {
  type Admission,
  authorOf,
  canonicalCbor,
  decodeSignedRecord,
  hashKey,
  MESH_ID_BYTES,
  type Removal,
  type Result,
  type SignedRecord,
  STRICT_CBOR,
  verifyRecord,
} from "./records.ts";

/** The gossip channel membership rides on. */
export const MEMBERS_CHANNEL = "members";
export const DEFAULT_MAX_RECORDS = 4096;
export const DEFAULT_MAX_PENDING = 1024;
/** Items in one received delta; more is refused as a whole. */
export const MAX_ITEMS_PER_DELTA = 4096;
const SNAPSHOT_FORMAT = 1;

/** A set of signed records; the full state is a delta too. Order: authors before what they sign. */
export interface MembersDelta {
  readonly records: readonly SignedRecord[];
}

/** A current member as `weft members` would list it. */
export interface MemberInfo {
  readonly key: PeerKey;
  /** Ed25519 public key of the admission shown, as base64. */
  readonly signingKey: string;
  readonly nickname: string;
  /** Null for the founder. */
  readonly admittedBy: PeerKey | null;
  readonly invitation: Uint8Array | null;
  /** The admitting member's wall clock: informational. */
  readonly at: number;
}

export interface RemovedInfo {
  readonly key: PeerKey;
  readonly removedBy: PeerKey;
  readonly at: number;
}

export interface MembersCounters {
  /** Records added to the valid set. */
  readonly accepted: number;
  /** Records already held or pending. */
  readonly duplicates: number;
  /** Bytes that are not a well-formed canonical signed record (including whole deltas refused). */
  readonly malformed: number;
  /** Records whose signature does not verify for this mesh. */
  readonly badSignature: number;
  /** Admissions other than the genesis claiming to be self-admissions (admittedBy null). */
  readonly notGenesis: number;
  /** Valid records refused because the set is full. */
  readonly full: number;
  /** Pending records dropped to make room (oldest first). */
  readonly pendingEvicted: number;
}

export interface MembersOptions {
  /** The mesh id: 16 random bytes chosen by the founder. */
  readonly meshId: Uint8Array;
  /** The founder's self-signed admission, which defines the mesh. */
  readonly genesis: SignedRecord;
  readonly maxRecords?: number;
  readonly maxPending?: number;
}

type MutableCounters = { -readonly [K in keyof MembersCounters]: number };

/** What `receive` did with one record. */
export type ReceiveOutcome = "accepted" | "pending" | "duplicate" | "rejected";

/**
 * One replica of the membership set.
 *
 * @example
 * ```ts
 * const genesis = signRecord(meshId, { kind: "admission", version: 1, member: myX25519,
 *   signingKey: myEd25519Public, nickname: "alpha", admittedBy: null, invitation: null,
 *   at: Date.now() }, myEd25519Secret);
 * const members = new Members({ meshId, genesis });
 * members.isMember(myPeerKey); // true
 * ```
 */
export class Members implements GossipState<MembersDelta> {
  readonly #meshId: Uint8Array;
  readonly #genesis: SignedRecord;
  readonly #maxRecords: number;
  readonly #maxPending: number;
  /** The valid set by hash, in acceptance order (so every author precedes what it signed). */
  readonly #records = new Map<string, SignedRecord>();
  /** Verified records whose signer is not yet known as their author's, oldest first. */
  readonly #pending = new Map<string, SignedRecord>();
  /** Base64 X25519 key -> base64 Ed25519 keys of its valid admissions. */
  readonly #signingKeys = new Map<PeerKey, Set<string>>();
  /** Base64 X25519 key -> its valid admissions. */
  readonly #admissions = new Map<PeerKey, SignedRecord[]>();
  /** Base64 X25519 key -> its valid removals. */
  readonly #removals = new Map<PeerKey, SignedRecord[]>();
  readonly #counters: MutableCounters = {
    accepted: 0,
    duplicates: 0,
    malformed: 0,
    badSignature: 0,
    notGenesis: 0,
    full: 0,
    pendingEvicted: 0,
  };
  #digest: Uint8Array | undefined;

  constructor(options: MembersOptions) {
    const { meshId, genesis } = options;
    if (!(meshId instanceof Uint8Array) || meshId.length !== MESH_ID_BYTES) {
      throw new RangeError(`Expected "meshId" to be ${MESH_ID_BYTES} bytes`);
    }
    const record = genesis.record;
    if (
      record.kind !== "admission" ||
      record.admittedBy !== null ||
      !equalBytes(genesis.signer, record.signingKey) ||
      !verifyRecord(meshId, genesis)
    ) {
      throw new RangeError(
        "Expected the genesis to be a self-admission signed with its own signing key for this mesh",
      );
    }
    this.#meshId = meshId.slice();
    this.#genesis = genesis;
    this.#maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
    this.#maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    this.#accept(genesis);
  }

  /**
   * Restores a replica from `snapshot()` bytes; every record is checked again as if
   * received. Never throws: a result with the reason when the bytes are not a snapshot.
   */
  static restore(
    bytes: Uint8Array,
    options: Omit<MembersOptions, "meshId" | "genesis"> = {},
  ): Result<Members> {
    let value: unknown;
    try {
      value = cborDecode(bytes, STRICT_CBOR);
    } catch (error) {
      return { ok: false, error: `snapshot is not CBOR: ${(error as Error).message}` };
    }
    if (!Array.isArray(value) || value.length !== 4 || value[0] !== SNAPSHOT_FORMAT) {
      return { ok: false, error: "snapshot is not [format 1, meshId, genesis, records]" };
    }
    const [, meshId, genesisBytes, records] = value as unknown[];
    if (!(meshId instanceof Uint8Array) || meshId.length !== MESH_ID_BYTES) {
      return { ok: false, error: "snapshot mesh id is not 16 bytes" };
    }
    const genesis = decodeSignedRecord(genesisBytes);
    if (!genesis.ok) return { ok: false, error: `snapshot genesis: ${genesis.error}` };
    if (!Array.isArray(records)) return { ok: false, error: "snapshot records are not a list" };
    let members: Members;
    try {
      members = new Members({
        ...options,
        meshId: Uint8Array.from(meshId),
        genesis: genesis.value,
      });
    } catch (error) {
      return { ok: false, error: `snapshot genesis: ${(error as Error).message}` };
    }
    for (const record of records) members.receive(record);
    return { ok: true, value: members };
  }

  get meshId(): Uint8Array {
    return this.#meshId.slice();
  }

  get genesis(): SignedRecord {
    return this.#genesis;
  }

  get counters(): MembersCounters {
    return { ...this.#counters };
  }

  /** How many records wait for their signer's admission. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** How many records the valid set holds, genesis included. */
  get size(): number {
    return this.#records.size;
  }

  /** Whether `key` (X25519, as bytes or base64) is admitted and not removed. */
  isMember(key: PeerKey | Uint8Array): boolean {
    const id = typeof key === "string" ? key : toBase64(key);
    return this.#admissions.has(id) && !this.#removals.has(id);
  }

  /** Whether `key` was removed (it can never be a member again). */
  isRemoved(key: PeerKey | Uint8Array): boolean {
    return this.#removals.has(typeof key === "string" ? key : toBase64(key));
  }

  /** The current members, sorted by key. */
  members(): MemberInfo[] {
    const out: MemberInfo[] = [];
    for (const [key, admissions] of this.#admissions) {
      if (this.#removals.has(key)) continue;
      const shown = first(admissions);
      const record = shown.record as Admission;
      out.push({
        key,
        signingKey: toBase64(record.signingKey),
        nickname: record.nickname,
        admittedBy: record.admittedBy === null ? null : toBase64(record.admittedBy),
        invitation: record.invitation?.slice() ?? null,
        at: record.at,
      });
    }
    return out.sort((a, b) => compare(a.key, b.key));
  }

  /** The removed keys, sorted. */
  removed(): RemovedInfo[] {
    const out: RemovedInfo[] = [];
    for (const [key, removals] of this.#removals) {
      const record = first(removals).record as Removal;
      out.push({ key, removedBy: toBase64(record.removedBy), at: record.at });
    }
    return out.sort((a, b) => compare(a.key, b.key));
  }

  /** Every valid record, authors before what they signed. */
  records(): SignedRecord[] {
    return [...this.#records.values()];
  }

  /**
   * Adds one record from anywhere (gossip, a join exchange, a local `signRecord`), as
   * bytes or decoded. Never throws; a rejection is counted.
   */
  receive(record: SignedRecord | Uint8Array | unknown): ReceiveOutcome {
    // A record object is decoded again from its bytes, so its fields cannot disagree with them.
    const decoded = decodeSignedRecord(isSignedRecord(record) ? record.bytes : record);
    if (!decoded.ok) {
      this.#counters.malformed++;
      return "rejected";
    }
    return this.#offer(decoded.value);
  }

  /**
   * A snapshot for the Store (name "members"): the mesh id, the genesis and every valid
   * record, in canonical CBOR. Pending records are left out.
   */
  snapshot(): Uint8Array {
    const records = [...this.#records.values()]
      .filter((r) => r !== this.#genesis)
      .map((r) => r.bytes);
    return canonicalCbor([SNAPSHOT_FORMAT, this.#meshId, this.#genesis.bytes, records]);
  }

  // --- GossipState ---

  digest(): Uint8Array {
    if (this.#digest === undefined) {
      const hashes = [...this.#records.values()].map((r) => r.hash).sort(compareBytes);
      this.#digest = blake2s(concatBytes(this.#meshId, ...hashes));
    }
    return this.#digest;
  }

  summary(): Summary {
    const summary = new Map<string, number>();
    for (const key of this.#records.keys()) summary.set(key, 1);
    return summary;
  }

  deltaFor(theirs: Summary): MembersDelta | null {
    const records = [...this.#records].filter(([key]) => !theirs.has(key)).map(([, r]) => r);
    return records.length === 0 ? null : { records };
  }

  /**
   * Adds a delta's records; returns those newly made valid (in an order authors come
   * first) to pass on, or null. Never throws: bad records are counted and dropped.
   */
  merge(delta: MembersDelta, _from: PeerKey): MembersDelta | null {
    const before = new Set(this.#records.keys());
    for (const record of delta.records) this.#offer(record);
    if (this.#records.size === before.size) return null;
    const records = [...this.#records].filter(([key]) => !before.has(key)).map(([, r]) => r);
    return { records };
  }

  /** One item per record: its canonical bytes (at most `MAX_SIGNED_RECORD_BYTES`). */
  encode(delta: MembersDelta, _maxItemBytes: number): unknown[] {
    return delta.records.map((r) => r.bytes);
  }

  decode(items: readonly unknown[]): MembersDelta {
    if (!Array.isArray(items) || items.length > MAX_ITEMS_PER_DELTA) {
      this.#counters.malformed++;
      throw new GossipRejected(
        `members delta is not a list of at most ${MAX_ITEMS_PER_DELTA} items`,
      );
    }
    const records: SignedRecord[] = [];
    for (const [index, item] of items.entries()) {
      const decoded = decodeSignedRecord(item);
      if (!decoded.ok) {
        this.#counters.malformed++;
        throw new GossipRejected(`members item ${index}: ${decoded.error}`);
      }
      records.push(decoded.value);
    }
    return { records };
  }

  // --- internals ---

  /** Checks one decoded record and adds it, or parks it, or rejects it. */
  #offer(signed: SignedRecord): ReceiveOutcome {
    const key = hashKey(signed);
    if (this.#records.has(key) || this.#pending.has(key)) {
      this.#counters.duplicates++;
      return "duplicate";
    }
    const record = signed.record;
    if (record.kind === "admission" && record.admittedBy === null) {
      // The genesis is held from the start, so any self-admission here is another one.
      this.#counters.notGenesis++;
      return "rejected";
    }
    if (!verifyRecord(this.#meshId, signed)) {
      this.#counters.badSignature++;
      return "rejected";
    }
    if (this.#authorised(signed)) return this.#accept(signed) ? "accepted" : "rejected";
    this.#pending.set(key, signed);
    if (this.#pending.size > this.#maxPending) {
      const oldest = this.#pending.keys().next().value!;
      this.#pending.delete(oldest);
      this.#counters.pendingEvicted++;
      if (oldest === key) return "rejected";
    }
    return "pending";
  }

  #authorised(signed: SignedRecord): boolean {
    const author = authorOf(signed.record);
    if (author === null) return false;
    return this.#signingKeys.get(toBase64(author))?.has(toBase64(signed.signer)) ?? false;
  }

  /** Adds an authorised record, then whatever pending records it authorises, transitively. */
  #accept(first: SignedRecord): boolean {
    const work = [first];
    let acceptedFirst = false;
    while (work.length > 0) {
      const signed = work.pop()!;
      if (this.#records.size >= this.#maxRecords) {
        this.#counters.full++;
        continue;
      }
      this.#records.set(hashKey(signed), signed);
      this.#digest = undefined;
      this.#counters.accepted++;
      if (signed === first) acceptedFirst = true;
      const record = signed.record;
      const member = toBase64(record.member);
      if (record.kind === "removal") {
        push(this.#removals, member, signed);
        continue;
      }
      push(this.#admissions, member, signed);
      const keys = this.#signingKeys.get(member) ?? new Set<string>();
      this.#signingKeys.set(member, keys);
      const signingKey = toBase64(record.signingKey);
      if (keys.has(signingKey)) continue;
      keys.add(signingKey);
      // A new signing key of `member`: its pending records may now be authorised.
      for (const [key, pending] of this.#pending) {
        if (this.#authorised(pending)) {
          this.#pending.delete(key);
          work.push(pending);
        }
      }
    }
    return acceptedFirst;
  }
}

function isSignedRecord(value: unknown): value is SignedRecord {
  return (
    typeof value === "object" &&
    value !== null &&
    "bytes" in value &&
    value.bytes instanceof Uint8Array
  );
}

function push(map: Map<string, SignedRecord[]>, key: string, record: SignedRecord): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [record]);
  else list.push(record);
}

/** The record with the smallest hash: a choice every replica makes alike. */
function first(records: readonly SignedRecord[]): SignedRecord {
  return records.reduce((a, b) => (compareBytes(a.hash, b.hash) <= 0 ? a : b));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
