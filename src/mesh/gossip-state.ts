/**
 * The contract between the gossip engine (`gossip.ts`) and the replicated states that ride
 * on it: the mesh topology, IPAM's ring, DNS entries, later membership. In the spirit of
 * weaveworks/mesh's Gossiper/GossipData, reshaped for anti-entropy by version summaries
 * (as Scuttlebutt does): replicas first compare a digest, then per-key versions, and send
 * only the entries the other side lacks, so a converged mesh gossips almost nothing.
 *
 * A state is a set of entries, each under a key with a version; an entry changes only at
 * the peer that owns it (topology: the peer itself; DNS: the registering peer; IPAM: the
 * range's owner), and a higher version wins everywhere. That makes `merge` commutative,
 * associative and idempotent, so deltas may arrive in any order, twice, or not at all
 * (anti-entropy repairs loss).
 */

/** A peer's static public key as canonical base64 (as `wg` prints it). */
export type PeerKey = string;

/** Per-key versions of a replica: what anti-entropy compares. */
export type Summary = ReadonlyMap<string, number>;

/** Why a received delta was refused as a whole: counted and logged, never thrown past the engine. */
export class GossipRejected extends Error {
  override readonly name = "GossipRejected";
}

/**
 * One replicated state, of deltas `D`. A delta is any set of entries; the full state is
 * a delta too. Implementations must never throw for input that `decode` accepted, except
 * `GossipRejected` from `merge` for a delta that breaks an invariant (then nothing of it
 * may have been applied).
 */
export interface GossipState<D> {
  /** Equal on two replicas exactly when their states are equal (a hash of the summary will do). */
  digest(): Uint8Array;
  /** Every key this replica holds, with its version. */
  summary(): Summary;
  /**
   * The entries this replica holds that a replica with `theirs` lacks or has older; null
   * when there are none. `deltaFor(new Map())` is the full state.
   */
  deltaFor(theirs: Summary): D | null;
  /**
   * Merges a delta received from `from` (the neighbour it came from, not necessarily its
   * author). Returns the part that changed this replica (to pass on), or null if nothing did.
   */
  merge(delta: D, from: PeerKey): D | null;
  /**
   * Splits a delta into CBOR-encodable items, each at most about `maxItemBytes` when
   * encoded, so the engine can pack them into size-limited messages. Any subset of the
   * items, decoded, must itself be a valid delta, and so must items of several deltas
   * together (the engine batches a burst of changes into one message): the same key may
   * then come twice. Items must be plain data (arrays, string-keyed objects, strings,
   * numbers, booleans, null, Uint8Array): the wire refuses CBOR tags (Dates, Sets, typed
   * arrays other than Uint8Array), and the engine leaves such items out, counted.
   */
  encode(delta: D, maxItemBytes: number): unknown[];
  /** Parses items back into a delta; throws `GossipRejected` for anything malformed. */
  decode(items: readonly unknown[]): D;
}

/** What a state's owner sees of the engine: one named channel. */
export interface GossipChannel<D> {
  readonly name: string;
  /** Sends a local change to every reachable peer now (anti-entropy repairs what is lost). */
  broadcast(update: D): void;
  /** Sends an opaque message to one peer, relayed if it is not a neighbour. False if unreachable. */
  unicast(peer: PeerKey, message: Uint8Array): boolean;
  /** The one handler for unicast messages on this channel. */
  onUnicast(handler: (from: PeerKey, message: Uint8Array) => void): void;
}
