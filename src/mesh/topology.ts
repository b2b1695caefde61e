/**
 * The replicated topology: one entry per peer, published by that peer alone, saying how
 * to reach it (endpoints) and whom it has a working direct connection with. Gossip
 * replicates it as a `GossipState`; routes are computed from its symmetric edges.
 *
 * Merge rules, per entry (so merge is commutative, associative and idempotent as long as
 * each peer publishes one content per version):
 * - a higher version wins; an equal version with different content means two
 *   incarnations of one peer published the same version: ours is kept and counted
 *   (never flip-flopped), and the owner republishes above it when it sees the other one;
 * - entries about self are never taken from gossip: one at our version or above comes from
 *   an earlier incarnation of us, so we republish our own entry with a higher version;
 * - peers unreachable from self for `forgetAfterMs` are forgotten; their last version is
 *   remembered for a while, and an entry at or below it is taken back only when it makes
 *   the peer reachable (a healed partition): a replica that has not forgotten the peer
 *   yet cannot resurrect it, while a newer version (the peer came back) always counts.
 */

import { blake2s } from "@noble/hashes/blake2.js";
import type { Clock } from "../clock.ts";
import { fromBase64, toBase64 } from "../crypto/bytes.ts";
import { formatIp, IPV4_BYTES, IPV6_BYTES, parseIp } from "../net/ip.ts";
import { type Endpoint, endpointKey } from "../net/packet-conn.ts";
import type { LogLevel } from "../tunnel/device.ts";
import { GossipRejected, type GossipState, type PeerKey, type Summary } from "./gossip-state.ts";
import { computeRoutes } from "./routes.ts";

export const MAX_NICKNAME_BYTES = 64;
export const MAX_ENDPOINTS = 16;
export const MAX_CONNECTIONS = 4096;
export const DEFAULT_FORGET_AFTER_MS = 60_000;
const KEY_BYTES = 32;
const MAX_PORT = 65_535;
// Canonical padded base64 of 32 bytes: the 43rd character carries 4 bits and 2 zero bits.
const PEER_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** What one peer publishes about itself. Entries are frozen; arrays are never shared mutably. */
export interface TopologyEntry {
  readonly peer: PeerKey;
  /** Raised by the peer on every change; monotonic across its restarts. */
  readonly version: number;
  readonly nickname: string;
  /** Where it can be reached, most preferred first; addresses in canonical text (RFC 5952). */
  readonly endpoints: readonly Endpoint[];
  /** Peers it has an established direct connection with: sorted, unique, never itself. */
  readonly connections: readonly PeerKey[];
}

/** Entries by peer; the full state is a delta too. */
export type TopologyDelta = ReadonlyMap<PeerKey, TopologyEntry>;

export interface TopologyOptions {
  readonly self: PeerKey;
  /** Our first version; monotonic across restarts (a wall-clock ms stamp will do). */
  readonly initialVersion: number;
  readonly nickname: string;
  readonly clock: Clock;
  /** How long a peer may stay unreachable before `forgetUnreachable` drops it. */
  readonly forgetAfterMs?: number;
  /** How long a forgotten peer's version is remembered; twice `forgetAfterMs` by default. */
  readonly rememberForgottenMs?: number;
  readonly log?: (level: LogLevel, message: string) => void;
}

/** What `setLocal` may change about our own entry; omitted fields stay as they are. */
export interface LocalChange {
  readonly nickname?: string;
  readonly endpoints?: readonly Endpoint[];
  readonly connections?: readonly PeerKey[];
}

export interface TopologyCounters {
  /** Entries of other peers taken from gossip. */
  readonly mergedEntries: number;
  /** Deltas refused as a whole by `decode` or `merge`. */
  readonly rejectedDeltas: number;
  /** Entries at our version of a peer with different content (ours kept). */
  readonly inconsistencies: number;
  /** Entries about self at or above our version, which made us republish. */
  readonly reincarnations: number;
  /** Forgotten versions offered again while the peer was still unreachable. */
  readonly resurrectionsRefused: number;
  readonly forgottenPeers: number;
}

interface Forgotten {
  readonly version: number;
  readonly untilMs: number;
}

type MutableCounters = { -readonly [K in keyof TopologyCounters]: number };

/** Our own view of the mesh's topology, replicated by gossip. */
export class Topology implements GossipState<TopologyDelta> {
  readonly #self: PeerKey;
  readonly #clock: Clock;
  readonly #forgetAfterMs: number;
  readonly #rememberForgottenMs: number;
  readonly #log: (level: LogLevel, message: string) => void;
  readonly #entries = new Map<PeerKey, TopologyEntry>();
  readonly #forgotten = new Map<PeerKey, Forgotten>();
  readonly #unreachableSince = new Map<PeerKey, number>();
  readonly #counters: MutableCounters = {
    mergedEntries: 0,
    rejectedDeltas: 0,
    inconsistencies: 0,
    reincarnations: 0,
    resurrectionsRefused: 0,
    forgottenPeers: 0,
  };
  // Items of frozen entries, as the full state is encoded often (callers must not mutate them).
  readonly #items = new WeakMap<TopologyEntry, unknown[]>();
  // Frozen entries already checked by `decode`, so merging them does not check them twice.
  readonly #valid = new WeakSet<TopologyEntry>();
  #generation = 0;
  #cache: { generation: number; digest?: Uint8Array; adjacency?: Map<PeerKey, PeerKey[]> } = {
    generation: -1,
  };

  constructor(options: TopologyOptions) {
    this.#self = options.self;
    this.#clock = options.clock;
    this.#forgetAfterMs = options.forgetAfterMs ?? DEFAULT_FORGET_AFTER_MS;
    this.#rememberForgottenMs = options.rememberForgottenMs ?? 2 * this.#forgetAfterMs;
    this.#log = options.log ?? (() => {});
    if (!PEER_KEY.test(options.self)) {
      throw new TypeError(`Expected "self" to be a base64 key of 32 bytes, got "${options.self}"`);
    }
    if (!isVersion(options.initialVersion)) {
      throw new RangeError(`Expected "initialVersion" to be a non-negative safe integer`);
    }
    const own = { peer: this.#self, version: options.initialVersion, nickname: options.nickname };
    this.#entries.set(this.#self, checkedLocal({ ...own, endpoints: [], connections: [] }));
  }

  /** Increments on every change of the entries; routes and caches key on it. */
  get generation(): number {
    return this.#generation;
  }

  get counters(): TopologyCounters {
    return { ...this.#counters };
  }

  entry(peer: PeerKey): TopologyEntry | undefined {
    return this.#entries.get(peer);
  }

  /** Every peer with an entry, self included, sorted. */
  peers(): PeerKey[] {
    return [...this.#entries.keys()].sort();
  }

  /**
   * Changes our own entry. Returns the delta to broadcast, or null when nothing changed
   * (the version is raised only on a real change). Endpoints are deduplicated keeping the
   * first, connections sorted and deduplicated; anything else invalid throws.
   */
  setLocal(change: LocalChange): TopologyDelta | null {
    const current = this.#entries.get(this.#self)!;
    const next = checkedLocal({
      peer: this.#self,
      version: current.version + 1,
      nickname: change.nickname ?? current.nickname,
      endpoints: change.endpoints ? canonicalEndpoints(change.endpoints) : current.endpoints,
      connections: change.connections
        ? [...new Set(change.connections)].sort()
        : current.connections,
    });
    if (sameContent(current, next)) return null;
    this.#entries.set(this.#self, next);
    this.#changed();
    return new Map([[this.#self, next]]);
  }

  /** Each peer's connections that list it back (a half-open link is no route); cached. */
  adjacency(): ReadonlyMap<PeerKey, readonly PeerKey[]> {
    const cache = this.#freshCache();
    cache.adjacency ??= symmetricAdjacency(this.#entries);
    return cache.adjacency;
  }

  /**
   * Forgets peers that have been unreachable from self for `forgetAfterMs`, counted from
   * the first call that saw them unreachable (so the mesh calls this periodically).
   * Returns the forgotten peers, sorted.
   */
  forgetUnreachable(nowMs: number = this.#clock.now()): PeerKey[] {
    for (const [peer, forgotten] of this.#forgotten) {
      if (nowMs >= forgotten.untilMs) this.#forgotten.delete(peer);
    }
    const reachable = computeRoutes(this.#self, this.adjacency()).reachable();
    for (const peer of this.#unreachableSince.keys()) {
      if (!this.#entries.has(peer) || reachable.has(peer)) this.#unreachableSince.delete(peer);
    }
    const gone: PeerKey[] = [];
    for (const [peer, entry] of this.#entries) {
      if (reachable.has(peer)) continue;
      const since = this.#unreachableSince.get(peer) ?? nowMs;
      if (nowMs - since < this.#forgetAfterMs) {
        this.#unreachableSince.set(peer, since);
        continue;
      }
      this.#entries.delete(peer);
      this.#unreachableSince.delete(peer);
      const untilMs = nowMs + this.#rememberForgottenMs;
      this.#forgotten.set(peer, { version: entry.version, untilMs });
      gone.push(peer);
    }
    if (gone.length > 0) {
      this.#counters.forgottenPeers += gone.length;
      this.#log("info", `Forgot ${gone.length} unreachable peers: "${gone.join('", "')}"`);
      this.#changed();
    }
    return gone.sort();
  }

  /** A hash of the sorted (peer, version) pairs: content at equal versions is not compared. */
  digest(): Uint8Array {
    const cache = this.#freshCache();
    if (cache.digest === undefined) {
      const lines = [...this.#entries.values()].map((entry) => `${entry.peer} ${entry.version}\n`);
      cache.digest = blake2s(new TextEncoder().encode(lines.sort().join("")));
    }
    return cache.digest;
  }

  summary(): Summary {
    const summary = new Map<PeerKey, number>();
    for (const entry of this.#entries.values()) summary.set(entry.peer, entry.version);
    return summary;
  }

  deltaFor(theirs: Summary): TopologyDelta | null {
    const delta = new Map<PeerKey, TopologyEntry>();
    for (const entry of this.#entries.values()) {
      const version = theirs.get(entry.peer);
      if (version === undefined || version < entry.version) delta.set(entry.peer, entry);
    }
    return delta.size > 0 ? delta : null;
  }

  merge(delta: TopologyDelta, from: PeerKey): TopologyDelta | null {
    for (const [peer, entry] of delta) {
      if (this.#valid.has(entry) && peer === entry.peer) continue;
      const problem = peer === entry?.peer ? entryProblem(entry) : "key and entry disagree";
      if (problem !== undefined) this.#reject(`Topology delta from "${from}": ${problem}`);
    }
    const changed = new Map<PeerKey, TopologyEntry>();
    const offeredAgain: TopologyEntry[] = [];
    let newerSelf: TopologyEntry | undefined;
    for (const entry of delta.values()) {
      if (entry.peer === this.#self) {
        if (this.#isOtherIncarnation(entry) && entry.version >= (newerSelf?.version ?? 0)) {
          newerSelf = entry;
        }
        continue;
      }
      const forgotten = this.#forgotten.get(entry.peer);
      if (forgotten !== undefined && entry.version <= forgotten.version) {
        offeredAgain.push(entry);
        continue;
      }
      const current = this.#entries.get(entry.peer);
      if (current === undefined || entry.version > current.version) {
        this.#accept(entry, changed);
      } else if (entry.version === current.version && !sameContent(current, entry)) {
        this.#counters.inconsistencies++;
        this.#log("warn", `Peer "${entry.peer}" version ${entry.version} differs from ours`);
      }
    }
    if (offeredAgain.length > 0) this.#acceptIfReachable(offeredAgain, changed);
    if (newerSelf !== undefined) this.#outbid(newerSelf, from, changed);
    if (changed.size === 0) return null;
    this.#changed();
    return changed;
  }

  /**
   * One item per entry: `[key (32 bytes), version, nickname, [[address bytes, port], ...],
   * connections (32-byte keys, concatenated)]`. An entry is never split (a part would read
   * as a whole entry with fewer connections), so `maxItemBytes` is not honoured for an
   * entry bigger than it: a peer with many connections (32 bytes each, up to 4096, about
   * 131 KB) still gives one item, and the engine must send it alone or drop it.
   */
  encode(delta: TopologyDelta, _maxItemBytes: number): unknown[] {
    const items: unknown[] = [];
    for (const entry of delta.values()) {
      let item = this.#items.get(entry);
      if (item === undefined) {
        item = entryItem(entry);
        // Only entries that cannot change may keep their item (ours are all frozen).
        if (Object.isFrozen(entry)) this.#items.set(entry, item);
      }
      items.push(item);
    }
    return items;
  }

  decode(items: readonly unknown[]): TopologyDelta {
    if (!Array.isArray(items)) this.#reject("Topology items are not an array");
    const delta = new Map<PeerKey, TopologyEntry>();
    for (const item of items) {
      const parsed = parseItem(item);
      if (typeof parsed === "string") this.#reject(`Topology item refused: ${parsed}`);
      this.#valid.add(parsed);
      // The engine may concatenate deltas: duplicates are fine unless they contradict.
      const seen = delta.get(parsed.peer);
      if (seen === undefined || parsed.version > seen.version) {
        delta.set(parsed.peer, parsed);
      } else if (parsed.version === seen.version && !sameContent(seen, parsed)) {
        this.#reject(`Topology items disagree on "${parsed.peer}" version ${parsed.version}`);
      }
    }
    return delta;
  }

  #reject(message: string): never {
    this.#counters.rejectedDeltas++;
    this.#log("warn", message);
    throw new GossipRejected(message);
  }

  #accept(entry: TopologyEntry, changed: Map<PeerKey, TopologyEntry>): void {
    const frozen = frozenEntry(entry);
    this.#entries.set(entry.peer, frozen);
    this.#forgotten.delete(entry.peer);
    changed.set(entry.peer, frozen);
    this.#counters.mergedEntries++;
  }

  /** Takes forgotten versions back only for peers they make reachable (a healed partition). */
  #acceptIfReachable(entries: TopologyEntry[], changed: Map<PeerKey, TopologyEntry>): void {
    const trial = new Map(this.#entries);
    for (const entry of entries) trial.set(entry.peer, entry);
    // Ones that stay unreachable are not on any path, so dropping them cuts off no other.
    const reachable = computeRoutes(this.#self, symmetricAdjacency(trial)).reachable();
    for (const entry of entries) {
      if (reachable.has(entry.peer)) {
        this.#accept(entry, changed);
      } else {
        this.#counters.resurrectionsRefused++;
      }
    }
  }

  /** True for an entry about self that is not the one we publish (an earlier incarnation). */
  #isOtherIncarnation(entry: TopologyEntry): boolean {
    const own = this.#entries.get(this.#self)!;
    return (
      entry.version > own.version || (entry.version === own.version && !sameContent(own, entry))
    );
  }

  #outbid(other: TopologyEntry, from: PeerKey, changed: Map<PeerKey, TopologyEntry>): void {
    if (other.version >= Number.MAX_SAFE_INTEGER) {
      this.#log("warn", `Entry about self from "${from}" has the highest version; not outbid`);
      return;
    }
    const own = this.#entries.get(this.#self)!;
    const republished = Object.freeze({ ...own, version: other.version + 1 });
    this.#entries.set(this.#self, republished);
    changed.set(this.#self, republished);
    this.#counters.reincarnations++;
    this.#log("info", `Saw self at version ${other.version} via "${from}"; republished above it`);
  }

  #changed(): void {
    this.#generation++;
  }

  #freshCache(): { digest?: Uint8Array; adjacency?: Map<PeerKey, PeerKey[]> } {
    if (this.#cache.generation !== this.#generation) this.#cache = { generation: this.#generation };
    return this.#cache;
  }
}

/** Validates and freezes our own entry; local mistakes are programmer errors. */
function checkedLocal(entry: TopologyEntry): TopologyEntry {
  const problem = entryProblem(entry);
  if (problem !== undefined) throw new RangeError(`Invalid local topology entry: ${problem}`);
  return frozenEntry(entry);
}

function frozenEntry(entry: TopologyEntry): TopologyEntry {
  const frozen = [entry, entry.endpoints, entry.connections, ...entry.endpoints];
  if (frozen.every((part) => Object.isFrozen(part))) return entry;
  return Object.freeze({
    peer: entry.peer,
    version: entry.version,
    nickname: entry.nickname,
    endpoints: Object.freeze(
      entry.endpoints.map((e) => Object.freeze({ address: e.address, port: e.port })),
    ),
    connections: Object.freeze([...entry.connections]),
  });
}

/** Addresses rewritten in canonical text, duplicates dropped keeping the first. */
function canonicalEndpoints(endpoints: readonly Endpoint[]): Endpoint[] {
  const seen = new Set<string>();
  const out: Endpoint[] = [];
  for (const endpoint of endpoints) {
    const bytes = parseIp(endpoint.address);
    if (bytes === undefined) throw new RangeError(`Invalid endpoint address "${endpoint.address}"`);
    const canonical = { address: formatIp(bytes), port: endpoint.port };
    const key = endpointKey(canonical);
    if (!seen.has(key)) out.push(canonical);
    seen.add(key);
  }
  return out;
}

/** Why `entry` breaks the format, or undefined when it is valid. Never throws. */
function entryProblem(entry: TopologyEntry): string | undefined {
  if (typeof entry !== "object" || entry === null) return "entry is not an object";
  const { peer, version, nickname, endpoints, connections } = entry;
  if (typeof peer !== "string" || !PEER_KEY.test(peer)) return "peer is not a key";
  if (!isVersion(version)) return `version of "${peer}" is not a non-negative safe integer`;
  const nicknameProblem = nicknameProblemOf(nickname);
  if (nicknameProblem !== undefined) return `nickname of "${peer}" ${nicknameProblem}`;
  if (!Array.isArray(endpoints) || endpoints.length > MAX_ENDPOINTS) {
    return `endpoints of "${peer}" are not a list of at most ${MAX_ENDPOINTS}`;
  }
  const seen = new Set<string>();
  for (const endpoint of endpoints) {
    if (typeof endpoint !== "object" || endpoint === null) return "endpoint is not an object";
    const { address, port } = endpoint;
    const bytes = typeof address === "string" ? parseIp(address) : undefined;
    if (bytes === undefined || formatIp(bytes) !== address) {
      return `endpoint address of "${peer}" is not canonical IP text`;
    }
    if (!isPort(port)) return `endpoint port of "${peer}" is not 1 to ${MAX_PORT}`;
    const key = endpointKey(endpoint);
    if (seen.has(key)) return `endpoints of "${peer}" repeat "${key}"`;
    seen.add(key);
  }
  if (!Array.isArray(connections) || connections.length > MAX_CONNECTIONS) {
    return `connections of "${peer}" are not a list of at most ${MAX_CONNECTIONS}`;
  }
  for (let i = 0; i < connections.length; i++) {
    const other: unknown = connections[i];
    if (typeof other !== "string" || !PEER_KEY.test(other)) return "connection is not a key";
    if (i > 0 && !(connections[i - 1]! < other)) {
      return `connections of "${peer}" are not sorted and unique`;
    }
    if (other === peer) return `"${peer}" lists itself as a connection`;
  }
  return undefined;
}

function nicknameProblemOf(nickname: unknown): string | undefined {
  if (typeof nickname !== "string") return "is not a string";
  if (nickname.length > MAX_NICKNAME_BYTES) return `is over ${MAX_NICKNAME_BYTES} bytes`;
  let bytes = 0;
  for (const character of nickname) {
    const code = character.codePointAt(0)!;
    // Lone surrogates do not survive UTF-8; control characters would garble status output.
    if (code >= 0xd800 && code <= 0xdfff) return "has a lone surrogate";
    if (code < 0x20 || (code >= 0x7f && code < 0xa0)) return "has a control character";
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes > MAX_NICKNAME_BYTES ? `is over ${MAX_NICKNAME_BYTES} bytes` : undefined;
}

function isVersion(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isPort(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= MAX_PORT;
}

/** Each peer's connections that list it back: the only edges routes may use. */
function symmetricAdjacency(entries: ReadonlyMap<PeerKey, TopologyEntry>): Map<PeerKey, PeerKey[]> {
  const adjacency = new Map<PeerKey, PeerKey[]>();
  for (const entry of entries.values()) {
    const mutual = entry.connections.filter((other) => {
      const theirs = entries.get(other)?.connections;
      return theirs !== undefined && includesSorted(theirs, entry.peer);
    });
    adjacency.set(entry.peer, mutual);
  }
  return adjacency;
}

/** Binary search in a sorted key list. */
function includesSorted(sorted: readonly PeerKey[], key: PeerKey): boolean {
  let low = 0;
  let high = sorted.length - 1;
  while (low <= high) {
    const middle = (low + high) >>> 1;
    const probe = sorted[middle]!;
    if (probe === key) return true;
    if (probe < key) low = middle + 1;
    else high = middle - 1;
  }
  return false;
}

function sameContent(a: TopologyEntry, b: TopologyEntry): boolean {
  return (
    a.nickname === b.nickname &&
    a.endpoints.length === b.endpoints.length &&
    a.endpoints.every(
      (e, i) => e.address === b.endpoints[i]!.address && e.port === b.endpoints[i]!.port,
    ) &&
    a.connections.length === b.connections.length &&
    a.connections.every((c, i) => c === b.connections[i])
  );
}

function entryItem(entry: TopologyEntry): unknown[] {
  const connections = new Uint8Array(entry.connections.length * KEY_BYTES);
  entry.connections.forEach((key, i) => {
    connections.set(fromBase64(key), i * KEY_BYTES);
  });
  return [
    fromBase64(entry.peer),
    entry.version,
    entry.nickname,
    entry.endpoints.map((e) => [parseIp(e.address)!, e.port]),
    connections,
  ];
}

/** The entry an item carries, or why it is malformed. Never throws. */
function parseItem(item: unknown): TopologyEntry | string {
  if (!Array.isArray(item) || item.length !== 5) return "not an array of 5 fields";
  const [peerBytes, version, nickname, endpointItems, connectionBytes] = item as unknown[];
  if (!(peerBytes instanceof Uint8Array) || peerBytes.length !== KEY_BYTES) {
    return "peer is not 32 bytes";
  }
  const peer = toBase64(peerBytes);
  if (!isVersion(version)) return `version of "${peer}" is not a non-negative safe integer`;
  const nicknameProblem = nicknameProblemOf(nickname);
  if (nicknameProblem !== undefined) return `nickname of "${peer}" ${nicknameProblem}`;
  if (!Array.isArray(endpointItems) || endpointItems.length > MAX_ENDPOINTS) {
    return `endpoints of "${peer}" are not a list of at most ${MAX_ENDPOINTS}`;
  }
  const endpoints: Endpoint[] = [];
  for (const endpointItem of endpointItems as unknown[]) {
    if (!Array.isArray(endpointItem) || endpointItem.length !== 2) {
      return `endpoint of "${peer}" is not [address, port]`;
    }
    const [address, port] = endpointItem as unknown[];
    if (
      !(address instanceof Uint8Array) ||
      (address.length !== IPV4_BYTES && address.length !== IPV6_BYTES)
    ) {
      return `endpoint address of "${peer}" is not 4 or 16 bytes`;
    }
    if (!isPort(port)) return `endpoint port of "${peer}" is not 1 to ${MAX_PORT}`;
    endpoints.push({ address: formatIp(address), port });
  }
  if (!(connectionBytes instanceof Uint8Array) || connectionBytes.length % KEY_BYTES !== 0) {
    return `connections of "${peer}" are not 32-byte keys`;
  }
  if (connectionBytes.length > MAX_CONNECTIONS * KEY_BYTES) {
    return `connections of "${peer}" are over ${MAX_CONNECTIONS}`;
  }
  const connections: PeerKey[] = [];
  for (let at = 0; at < connectionBytes.length; at += KEY_BYTES) {
    connections.push(toBase64(connectionBytes.subarray(at, at + KEY_BYTES)));
  }
  const entry = { peer, version, nickname: nickname as string, endpoints, connections };
  return entryProblem(entry) ?? frozenEntry(entry);
}
