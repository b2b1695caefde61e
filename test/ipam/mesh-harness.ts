/**
 * IPAM on the real simulated mesh (test/helpers/mesh-sim.ts): one Allocator per mesh
 * peer, attached through `attachAllocator`, each with its own MemoryStore so a killed
 * and revived peer restarts from what it saved.
 */
import assert from "node:assert/strict";
import {
  type Address,
  type Allocator,
  attachAllocator,
  type Bootstrap,
  formatAddress,
  IpamError,
  parseRange,
} from "../../src/ipam/index.ts";
import type { PeerKey } from "../../src/mesh/gossip-state.ts";
import type { LinkOptions } from "../../src/sim/index.ts";
import { MemoryStore } from "../../src/sim/index.ts";
import { addressOf, createMeshSim, type MeshSim } from "../helpers/mesh-sim.ts";
import { providers } from "../helpers/providers.ts";

const native = providers[1]![1];

export interface IpamSimOptions {
  readonly count: number;
  readonly seed: number;
  readonly range?: string;
  readonly link?: Partial<LinkOptions>;
  readonly bootstrap?: (index: number, keys: readonly PeerKey[]) => Bootstrap;
  readonly timeoutMs?: number;
}

export interface IpamSim {
  readonly sim: MeshSim;
  readonly allocators: Allocator[];
  readonly stores: MemoryStore[];
  readonly keys: PeerKey[];
  /** Peers killed and not revived: their allocators are closed and left out of checks. */
  readonly dead: Set<number>;
  /** Kills peer `index` (mesh and allocator), then starts it again from its store. */
  restart(index: number): Promise<void>;
  /** Kills peer `index` (mesh and allocator). */
  kill(index: number): Promise<void>;
  /** Starts a killed peer again from its store. */
  revive(index: number): void;
  /** The allocators of live peers. */
  live(): Allocator[];
  /** Cuts the peers of `a` from those of `b` (indices). */
  partition(a: readonly number[], b: readonly number[]): void;
  heal(): void;
  close(): Promise<void>;
}

export function createIpamSim(options: IpamSimOptions): IpamSim {
  const sim = createMeshSim({
    crypto: native,
    seed: options.seed,
    count: options.count,
    link: options.link,
    // Everyone configured with everyone before it: any side of a partition stays connected.
    staticPeers: (i) => Array.from({ length: i }, (_, j) => j),
  });
  const parsed = parseRange(options.range ?? "10.40.0.0/24");
  if (!parsed.ok) throw new Error(parsed.error);
  const keys = sim.peers.map((peer) => peer.key);
  const stores = keys.map(() => new MemoryStore());
  const attach = (index: number) =>
    attachAllocator(sim.peers[index]!.mesh, {
      range: parsed.range,
      clock: sim.clock,
      timeoutMs: options.timeoutMs ?? 10_000,
      random: () => sim.random.next(),
      store: stores[index],
      bootstrap:
        options.bootstrap?.(index, keys) ?? (index === 0 ? { kind: "seed" } : { kind: "join" }),
    });
  const allocators = keys.map((_, index) => attach(index));
  const dead = new Set<number>();
  const kill = async (index: number) => {
    allocators[index]!.close();
    await sim.kill(index);
    dead.add(index);
  };
  const revive = (index: number) => {
    sim.revive(index);
    allocators[index] = attach(index);
    dead.delete(index);
  };
  return {
    sim,
    allocators,
    stores,
    keys,
    dead,
    async restart(index) {
      await kill(index);
      revive(index);
    },
    kill,
    revive,
    live: () => allocators.filter((_, i) => !dead.has(i)),
    partition(a, b) {
      sim.network.partition(a.map(addressOf), b.map(addressOf));
    },
    heal() {
      sim.network.heal();
    },
    async close() {
      for (const allocator of allocators) allocator.close();
      await sim.close();
    },
  };
}

/** The outcome of a promise that is expected to have settled already (no virtual time passes). */
export async function settledNow<T>(promise: Promise<T>): Promise<T | Error | "pending"> {
  const pending = Symbol("pending");
  const result = await Promise.race([
    promise.catch((error: unknown) => error as Error),
    new Promise<typeof pending>((resolve) => setTimeout(() => resolve(pending), 0)),
  ]);
  return result === pending ? "pending" : (result as T | Error);
}

/** Runs the sim until `promise` settles or `limitMs` of virtual time pass. */
export async function runUntilSettled<T>(
  sim: MeshSim,
  promise: Promise<T>,
  limitMs: number,
): Promise<T | Error | "pending"> {
  let outcome: T | Error | "pending" = "pending";
  promise.then(
    (value) => {
      outcome = value;
    },
    (error: unknown) => {
      outcome = error as Error;
    },
  );
  const deadline = sim.clock.now() + limitMs;
  // Settlements run as microtasks: let them run before each step of virtual time.
  await Promise.resolve();
  await Promise.resolve();
  while (outcome === "pending" && sim.clock.now() < deadline) {
    sim.run(100);
    await Promise.resolve();
    await Promise.resolve();
  }
  return outcome;
}

/** Asserts that `outcome` is an address (not an error, not pending) and returns it. */
export function expectAddress(outcome: unknown, what: string): Address {
  if (outcome instanceof Error) assert.fail(`${what} failed: ${outcome.message}`);
  assert.equal(typeof outcome, "number", `${what} should have an address, got ${String(outcome)}`);
  return outcome as Address;
}

/** Asserts `outcome` is an IpamError with `code`. */
export function expectIpamError(outcome: unknown, code: string, what: string): IpamError {
  assert.ok(
    outcome instanceof IpamError,
    `${what} should fail with IpamError, got ${String(outcome)}`,
  );
  assert.equal(outcome.code, code, `${what}: ${outcome.message}`);
  return outcome;
}

/** Every allocation on every peer, checked unique and owned by its holder in every ring. */
export function checkNoDuplicates(ipam: IpamSim): number {
  const holder = new Map<Address, number>();
  for (const [i, allocator] of ipam.allocators.entries()) {
    if (ipam.dead.has(i)) continue;
    for (const [handle, address] of allocator.allocations()) {
      const other = holder.get(address);
      assert.equal(
        other,
        undefined,
        `${formatAddress(address)} is held on peers ${other} and ${i} (handle "${handle}")`,
      );
      holder.set(address, i);
    }
  }
  for (const [address, i] of holder) {
    for (const [j, allocator] of ipam.allocators.entries()) {
      if (ipam.dead.has(j)) continue;
      const owner = allocator.ownerOf(address);
      if (owner !== undefined) {
        assert.equal(
          owner,
          ipam.keys[i],
          `peer ${j} thinks ${formatAddress(address)} is not ${i}'s`,
        );
      }
    }
  }
  return holder.size;
}

/** True when every allocator holds the same seeded ring. */
export function ringsEqual(allocators: readonly Allocator[]): boolean {
  const first = hex(allocators[0]!.gossip.digest());
  return allocators.every((a) => a.ring.isSeeded() && hex(a.gossip.digest()) === first);
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
