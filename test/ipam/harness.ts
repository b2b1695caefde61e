/**
 * A hand-driven mesh for IPAM tests: allocators whose broadcasts and unicasts wait in a
 * pool until the test delivers, duplicates or drops them, with partitions, and
 * anti-entropy between any two replicas, so a property test controls every interleaving.
 */
import assert from "node:assert/strict";
import {
  type AddressRange,
  Allocator,
  type Bootstrap,
  encodeRingItems,
  findInvariantViolation,
  isComplete,
  parseRange,
  type RingDelta,
} from "../../src/ipam/index.ts";
import { GossipRejected, type PeerKey } from "../../src/mesh/gossip-state.ts";
import { VirtualClock } from "../../src/sim/index.ts";

/** A canonical-looking WireGuard public key for peer `i` (sorted by `i` for i < 64). */
export function peerKey(i: number): PeerKey {
  const bytes = new Uint8Array(32).fill(7);
  bytes[0] = i;
  bytes[31] = 0;
  return btoa(String.fromCharCode(...bytes));
}

export function range(text: string): AddressRange {
  const parsed = parseRange(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.range;
}

export type Message =
  | {
      readonly from: number;
      readonly to: number;
      readonly kind: "gossip";
      readonly items: unknown[];
    }
  | {
      readonly from: number;
      readonly to: number;
      readonly kind: "unicast";
      readonly bytes: Uint8Array;
    };

export interface MeshOptions {
  readonly peers: number;
  readonly range?: string;
  readonly bootstrap?: (i: number, keys: readonly PeerKey[]) => Bootstrap;
  readonly timeoutMs?: number;
  /** Gossip items are cut this small so that losing some of a delta's items is exercised. */
  readonly maxItemBytes?: number;
  readonly random?: () => number;
}

export class TestMesh {
  readonly clock = new VirtualClock();
  readonly keys: PeerKey[];
  readonly peers: Allocator[] = [];
  readonly pool: Message[] = [];
  /** Partition group of each peer; peers talk only within a group. */
  groups: number[];
  readonly rejections: string[] = [];
  readonly maxItemBytes: number;

  constructor(options: MeshOptions) {
    const ringRange = range(options.range ?? "10.40.0.0/26");
    this.maxItemBytes = options.maxItemBytes ?? 160;
    this.keys = Array.from({ length: options.peers }, (_, i) => peerKey(i));
    this.groups = this.keys.map(() => 0);
    for (const [i, me] of this.keys.entries()) {
      this.peers.push(
        new Allocator({
          me,
          range: ringRange,
          clock: this.clock,
          timeoutMs: options.timeoutMs ?? 10_000,
          random: options.random ?? (() => 0.5),
          bootstrap:
            options.bootstrap?.(i, this.keys) ?? (i === 0 ? { kind: "seed" } : { kind: "join" }),
          link: {
            reachablePeers: () => this.keys.filter((_, j) => j !== i && this.reachable(i, j)),
            unicast: (to, bytes) => {
              const j = this.keys.indexOf(to);
              if (j < 0 || !this.reachable(i, j)) return false;
              this.pool.push({ from: i, to: j, kind: "unicast", bytes });
              return true;
            },
            broadcast: (delta) => this.#broadcast(i, delta),
          },
        }),
      );
    }
  }

  reachable(i: number, j: number): boolean {
    return this.groups[i] === this.groups[j];
  }

  #broadcast(from: number, delta: RingDelta): void {
    const items = encodeRingItems(delta, this.maxItemBytes);
    for (let to = 0; to < this.keys.length; to++) {
      if (to !== from && this.reachable(from, to)) {
        this.pool.push({ from, to, kind: "gossip", items: structuredClone(items) });
      }
    }
  }

  /** Delivers pool message `index` (modulo the pool), keeping a copy when `duplicate`. */
  deliver(index: number, duplicate = false): void {
    if (this.pool.length === 0) return;
    const at = index % this.pool.length;
    const message = this.pool[at]!;
    if (!duplicate) this.pool.splice(at, 1);
    // A partition cut after sending loses what was in flight.
    if (!this.reachable(message.from, message.to)) return;
    if (message.kind === "unicast") {
      this.peers[message.to]!.onUnicast(this.keys[message.from]!, message.bytes);
    } else {
      this.mergeItems(message.from, message.to, message.items);
    }
  }

  drop(index: number): void {
    if (this.pool.length > 0) this.pool.splice(index % this.pool.length, 1);
  }

  /** Anti-entropy from `a` to `b`, delivering the items whose bit is set in `keep` (all by default). */
  antiEntropy(a: number, b: number, keep = -1): void {
    if (a === b || !this.reachable(a, b)) return;
    const delta = this.peers[a]!.gossip.deltaFor(this.peers[b]!.gossip.summary());
    if (delta === null) return;
    const items = this.peers[a]!.gossip.encode(delta, this.maxItemBytes);
    const kept = items.filter((_, i) => i >= 30 || (keep >>> i) & 1);
    if (kept.length > 0) this.mergeItems(a, b, structuredClone(kept));
  }

  mergeItems(from: number, to: number, items: unknown[]): void {
    const gossip = this.peers[to]!.gossip;
    try {
      gossip.merge(gossip.decode(items), this.keys[from]!);
    } catch (error) {
      if (!(error instanceof GossipRejected)) throw error;
      this.rejections.push(`${from}->${to}: ${error.message}`);
    }
  }

  /** Delivers everything and lets time pass until no request waits and nothing is in flight. */
  settle(maxRounds = 200): void {
    for (let round = 0; round < maxRounds; round++) {
      while (this.pool.length > 0) this.deliver(0);
      const waiting = this.peers.some((p) => p.status().waiting > 0);
      if (!waiting && this.clock.pendingTimers() === 0) return;
      this.clock.advance(500);
    }
  }

  /** Full anti-entropy until every replica has the same digest; returns the rounds it took. */
  converge(maxRounds = 20): number {
    for (let round = 1; round <= maxRounds; round++) {
      for (let a = 0; a < this.peers.length; a++) {
        for (let b = 0; b < this.peers.length; b++) this.antiEntropy(a, b);
      }
      if (this.digestsEqual()) return round;
    }
    assert.fail("replicas did not converge");
  }

  digestsEqual(): boolean {
    const first = this.peers[0]!.gossip.digest();
    return this.peers.every((p) => equalBytes(p.gossip.digest(), first));
  }

  /**
   * The safety properties, after any step: each ring satisfies its invariants; each peer's
   * addresses lie in ranges it owns by its own ring; no two peers believe they own the
   * same address; no address is allocated on two peers. Peers in `exclude` (dead ones)
   * are left out.
   */
  checkSafety(exclude: ReadonlySet<number> = new Set()): void {
    const owned: { peer: number; start: number; end: number }[] = [];
    const allocated = new Map<number, number>();
    for (const [i, peer] of this.peers.entries()) {
      if (exclude.has(i)) continue;
      const entries = peer.ring.entries();
      const violation = findInvariantViolation(entries, peer.range, peer.me);
      assert.equal(violation, undefined, `peer ${i}: ${violation}`);
      const mine = peer.ring.rangesOf(peer.me);
      for (const r of mine) owned.push({ peer: i, ...r });
      for (const [handle, address] of peer.allocations()) {
        assert.ok(
          mine.some((r) => address >= r.start && address < r.end),
          `peer ${i} holds ${address} for ${handle} outside its own ranges`,
        );
        const other = allocated.get(address);
        assert.equal(other, undefined, `address ${address} allocated on peers ${other} and ${i}`);
        allocated.set(address, i);
      }
    }
    owned.sort((x, y) => x.start - y.start);
    for (let k = 1; k < owned.length; k++) {
      const previous = owned[k - 1]!;
      const current = owned[k]!;
      assert.ok(
        previous.end <= current.start,
        `peers ${previous.peer} and ${current.peer} both believe they own ${current.start}`,
      );
    }
  }

  /** Once converged: complete rings and free counts that match each owner's space. */
  checkConverged(): void {
    for (const [i, peer] of this.peers.entries()) {
      assert.ok(isComplete(peer.ring.entries(), peer.range), `peer ${i}'s ring is not complete`);
      for (const entry of peer.ring.entries()) {
        const owner = this.peers[this.keys.indexOf(entry.owner)]!;
        assert.equal(
          entry.free,
          owner.freeIn(entry.token, entry.end),
          `free count at ${entry.token}`,
        );
      }
    }
  }
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
