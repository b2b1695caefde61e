/**
 * IPAM at scale: N peers, each with a real Allocator on a real gossip engine (the IPAM
 * channel exactly as on the mesh, through `attachAllocator`), over a virtual transport
 * with 20 ms links on a ring plus random chords (average degree ~6). The mesh's Devices
 * and routing are left out: their cost at scale is `bench:mesh`'s subject, and at 1,000
 * peers they would dominate the CPU time. Unicasts (donation requests) reach any peer
 * in 40 ms, as a relayed message would.
 *
 * Peer 0 seeds the range; after the ring has spread, every other peer asks for 20
 * addresses at once (the worst case: all donations start from one owner).
 */
import process from "node:process";
import { type Allocator, attachAllocator, parseRange } from "../src/ipam/index.ts";
import { Gossip } from "../src/mesh/gossip.ts";
import type { PeerKey } from "../src/mesh/gossip-state.ts";
import { createRandom, VirtualClock } from "../src/sim/index.ts";
import { peerKeys, randomEdges, ringEdges } from "../test/helpers/mesh-graphs.ts";

const LINK_MS = 20;
const UNICAST_MS = 40;
const CHORD_DEGREE = 4;
const CHECK_EVERY_MS = 250;
const ALLOCATE_TIMEOUT_MS = 600_000;

export interface IpamScaleResult {
  peers: number;
  allocationsPerPeer: number;
  range: string;
  /** Virtual ms from the burst of requests until every one was served (-1: not within the limit). */
  allServedVirtualMs: number;
  /** Virtual ms from the burst until every ring replica is equal. */
  convergedVirtualMs: number;
  ringEntries: number;
  donations: number;
  failedRequests: number;
  /** IPAM channel bytes sent per peer, from the burst until converged (digests excluded). */
  ipamGossipBytesPerPeer: number;
  /** All gossip bytes sent per peer over the same window, digests included. */
  allGossipBytesPerPeer: number;
  cpuSeconds: number;
}

export function measureIpamScale(
  count: number,
  allocationsPerPeer: number,
  seed: number,
  limitMs = 300_000,
): IpamScaleResult {
  const cpuStart = process.cpuUsage();
  const clock = new VirtualClock();
  const random = createRandom(seed);
  const keys = peerKeys(count);
  const index = new Map(keys.map((key, i) => [key, i]));
  const adjacency = keys.map(() => new Set<PeerKey>());
  for (const [a, b] of [...ringEdges(count), ...randomEdges(random, count, CHORD_DEGREE)]) {
    adjacency[a]!.add(keys[b]!);
    adjacency[b]!.add(keys[a]!);
  }
  const text = count * allocationsPerPeer * 2 > 65_536 ? "10.40.0.0/15" : "10.40.0.0/16";
  const parsed = parseRange(text);
  if (!parsed.ok) throw new Error(parsed.error);
  const gossips: Gossip[] = [];
  const allocators: Allocator[] = [];
  const everyone = [...keys];
  for (const [i, key] of keys.entries()) {
    const gossip = new Gossip({
      self: key,
      clock,
      random: () => random.next(),
      transport: {
        neighbours: () => [...adjacency[i]!],
        send: (to, message) => {
          const delay = adjacency[i]!.has(to) ? LINK_MS : UNICAST_MS;
          const target = index.get(to)!;
          const bytes = message.slice();
          clock.setTimer(delay, () => gossips[target]!.receive(key, bytes));
          return true;
        },
      },
    });
    gossips.push(gossip);
    allocators.push(
      attachAllocator(
        {
          key,
          channel: (name, state) => gossip.channel(name, state),
          reachable: () => everyone.filter((k) => k !== key),
        },
        {
          range: parsed.range,
          clock,
          timeoutMs: ALLOCATE_TIMEOUT_MS,
          random: () => random.next(),
          bootstrap: i === 0 ? { kind: "seed" } : { kind: "join" },
        },
      ),
    );
  }
  for (const [i, gossip] of gossips.entries())
    for (const peer of adjacency[i]!) gossip.neighbourUp(peer);
  const runUntil = (done: () => boolean, limit: number) => {
    const start = clock.now();
    while (clock.now() - start <= limit) {
      if (done()) return clock.now() - start;
      clock.advance(CHECK_EVERY_MS);
    }
    return -1;
  };
  const converged = () => {
    const first = allocators[0]!.gossip.digest();
    return allocators.every((a) => equalBytes(a.gossip.digest(), first));
  };
  runUntil(() => allocators.every((a) => a.ring.isSeeded()), 60_000);
  runUntil(converged, 60_000);

  const sentBefore = gossipBytes(gossips);
  const start = clock.now();
  for (const allocator of allocators.slice(1)) {
    for (let n = 0; n < allocationsPerPeer; n++) {
      // Outcomes are read from the allocators' status; a failure is a missing allocation.
      allocator.allocate(`host-${n}`).catch(() => {});
    }
  }
  const wanted = (count - 1) * allocationsPerPeer;
  const waiting = () => allocators.reduce((sum, a) => sum + a.status().waiting, 0);
  const servedMs = runUntil(() => waiting() === 0, limitMs);
  const convergedMs = runUntil(converged, limitMs);
  const sentAfter = gossipBytes(gossips);
  const donations = allocators.reduce((sum, a) => sum + a.status().donationsGiven, 0);
  const allocated = allocators.reduce((sum, a) => sum + a.allocations().size, 0);
  for (const gossip of gossips) gossip.close();
  for (const allocator of allocators) allocator.close();
  const cpu = process.cpuUsage(cpuStart);
  return {
    peers: count,
    allocationsPerPeer,
    range: text,
    allServedVirtualMs: servedMs,
    convergedVirtualMs: convergedMs < 0 || servedMs < 0 ? -1 : clock.now() - start,
    ringEntries: allocators[0]!.ring.entries().length,
    donations,
    failedRequests: wanted - allocated,
    ipamGossipBytesPerPeer: Math.round((sentAfter.ipam - sentBefore.ipam) / count),
    allGossipBytesPerPeer: Math.round((sentAfter.all - sentBefore.all) / count),
    cpuSeconds: Math.round((cpu.user + cpu.system) / 1e4) / 100,
  };
}

function gossipBytes(gossips: readonly Gossip[]): { ipam: number; all: number } {
  let ipam = 0;
  let all = 0;
  for (const gossip of gossips) {
    for (const [channel, kinds] of Object.entries(gossip.stats().sent)) {
      for (const counter of Object.values(kinds)) {
        all += counter?.bytes ?? 0;
        if (channel === "ipam") ipam += counter?.bytes ?? 0;
      }
    }
  }
  return { ipam, all };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
