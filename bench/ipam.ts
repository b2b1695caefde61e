/**
 * The IPAM benchmark (issue 5). Writes bench/results/ipam.json.
 *
 * - local: allocations per second and per-call latency (p50, p99) on a peer that owns
 *   a /8, without a store, with the in-memory store and with the file store (each
 *   allocation saves the whole state before it resolves, so those grow with the count);
 * - donation: virtual time from an empty peer's first request to its first address, on
 *   the simulated mesh (real Devices, gossip, 50 ms one-way links);
 * - scale: N peers x 20 allocations on real allocators and gossip engines over a virtual
 *   transport (bench/ipam-scale.ts).
 *
 * npm run bench:ipam [-- --sizes=100,300,1000]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createFileStore } from "../runtimes/file-store.ts";
import { detectRuntime } from "../runtimes/index.ts";
import { Allocator, parseRange } from "../src/ipam/index.ts";
import { MemoryStore, VirtualClock } from "../src/sim/index.ts";
import type { Store } from "../src/store.ts";
import { createIpamSim, runUntilSettled } from "../test/ipam/mesh-harness.ts";
import { argument, gitSource, writeResult } from "./harness.ts";
import { type IpamScaleResult, measureIpamScale } from "./ipam-scale.ts";

const SEED = 20261128;
// Every replica merges every change, so the CPU cost grows about with the square of the
// peer count: 1,000 peers take a few CPU minutes.
const DEFAULT_SIZES = [100, 300, 1000];
const DONATION_LINK_MS = 50;
const DONATION_RUNS = 5;

interface LocalResult {
  store: string;
  allocations: number;
  perSecond: number;
  p50Us: number;
  p99Us: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function measureLocal(name: string, count: number, store?: Store): LocalResult {
  const parsed = parseRange("10.0.0.0/8");
  if (!parsed.ok) throw new Error(parsed.error);
  const allocator = new Allocator({
    me: "AQcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwA=",
    range: parsed.range,
    clock: new VirtualClock(),
    bootstrap: { kind: "seed" },
    store,
    link: { reachablePeers: () => [], unicast: () => false, broadcast: () => {} },
  });
  const latencies: number[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const before = performance.now();
    // Served from owned space inside the call; the promise is already settled.
    void allocator.allocate(`container-${i}`);
    latencies.push(performance.now() - before);
  }
  const elapsedMs = performance.now() - start;
  allocator.close();
  latencies.sort((a, b) => a - b);
  const us = (ms: number) => Math.round(ms * 1000 * 10) / 10;
  return {
    store: name,
    allocations: count,
    perSecond: Math.round(count / (elapsedMs / 1000)),
    p50Us: us(percentile(latencies, 0.5)),
    p99Us: us(percentile(latencies, 0.99)),
  };
}

/** Virtual ms from an empty peer's request to its address, per run (fresh sim each). */
async function measureDonation(): Promise<number[]> {
  const times: number[] = [];
  for (let run = 0; run < DONATION_RUNS; run++) {
    const ipam = createIpamSim({
      count: 2,
      seed: SEED + run,
      range: "10.40.0.0/16",
      link: { latencyMs: DONATION_LINK_MS },
    });
    const [, joiner] = ipam.allocators as [Allocator, Allocator];
    // Connected and holding the ring first: we time donation, not joining.
    ipam.sim.runUntil(() => joiner.ring.isSeeded(), 30_000);
    ipam.sim.run(1_000);
    const started = ipam.sim.clock.now();
    const request = joiner.allocate("first");
    // Step 1 ms at a time so the time is exact to the millisecond; a request stops
    // waiting at the moment it is served.
    for (let i = 0; i < 10_000 && joiner.status().waiting > 0; i++) ipam.sim.clock.advance(1);
    const servedAt = joiner.status().waiting === 0 ? ipam.sim.clock.now() : -1;
    const outcome = await runUntilSettled(ipam.sim, request, 1_000);
    times.push(servedAt < 0 || typeof outcome !== "number" ? -1 : servedAt - started);
    await ipam.close();
  }
  return times;
}

const sizes = (argument("sizes") ?? DEFAULT_SIZES.join(",")).split(",").map(Number);
const local: LocalResult[] = [
  measureLocal("none", 100_000),
  measureLocal("memory", 2_000, new MemoryStore()),
];
const directory = mkdtempSync(join(tmpdir(), "weft-bench-ipam-"));
try {
  local.push(measureLocal("file", 300, createFileStore(directory)));
} finally {
  rmSync(directory, { recursive: true, force: true });
}
console.log("store   allocations  per second  p50 us  p99 us");
for (const r of local) {
  console.log(
    `${r.store.padEnd(6)}  ${String(r.allocations).padStart(11)}  ${String(r.perSecond).padStart(10)}  ${String(r.p50Us).padStart(6)}  ${String(r.p99Us).padStart(6)}`,
  );
}
const donation = await measureDonation();
console.log(
  `donation, first address of an empty peer (virtual ms, ${DONATION_LINK_MS} ms links): ${donation.join(", ")}`,
);
const scale: IpamScaleResult[] = [];
console.log(
  "peers  served ms  converged ms  ring entries  donations  failed  ipam B/peer  all B/peer  cpu s",
);
for (const size of sizes) {
  const r = measureIpamScale(size, 20, SEED);
  scale.push(r);
  console.log(
    `${String(r.peers).padStart(5)}  ${String(r.allServedVirtualMs).padStart(9)}  ${String(r.convergedVirtualMs).padStart(12)}  ${String(r.ringEntries).padStart(12)}  ${String(r.donations).padStart(9)}  ${String(r.failedRequests).padStart(6)}  ${String(r.ipamGossipBytesPerPeer).padStart(11)}  ${String(r.allGossipBytesPerPeer).padStart(10)}  ${String(r.cpuSeconds).padStart(5)}`,
  );
}
const path = writeResult("ipam", {
  benchmark: "ipam",
  runtime: detectRuntime(),
  runtimeVersion: process.versions.node,
  date: new Date().toISOString(),
  source: gitSource(),
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model },
  method: {
    local:
      "one seeding Allocator owning 10.0.0.0/8, sequential allocate() calls with distinct handles, latency of each call (served inside the call); 'memory' and 'file' save the whole state (cbor) on every allocation before it resolves, the file store with fsync of file and directory",
    donation: `test/ipam/mesh-harness.ts: 2 peers on the simulated mesh (real Devices and gossip), ${DONATION_LINK_MS} ms one-way links, seed 'seed' owning 10.40.0.0/16, 'join' waiting until it holds the ring, then virtual ms from allocate() to the address, stepping the clock 1 ms; ${DONATION_RUNS} runs with seeds ${SEED}..${SEED + DONATION_RUNS - 1}`,
    scale:
      "bench/ipam-scale.ts: real Allocators and gossip engines (IPAM channel via attachAllocator), virtual transport, 20 ms links on a ring plus random chords (average degree ~6), unicasts 40 ms; peer 0 seeds, every other peer requests 20 addresses at once once the ring has spread; served = no request waits; converged = every ring digest equal; bytes = gossip engine bytes sent from the burst to convergence",
  },
  local,
  donation: { virtualMs: donation, linkMs: DONATION_LINK_MS },
  scale,
  complete: argument("sizes") === undefined,
});
console.log(`wrote ${path}`);
