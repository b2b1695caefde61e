/**
 * The mesh at scale in simulation (test/helpers/mesh-sim.ts: real Devices, gossip and
 * routing on a virtual clock): how long the topology takes to converge after a cold
 * start, a join and a healed partition, what gossip costs in steady state, and memory.
 *
 * The graph: a ring (so it is connected) plus random chords, about `CHORD_DEGREE` per
 * peer, for an average degree of about 7. Both ends of an edge list each other as static
 * peers, and every peer runs with `connectionLimit: 0`, so it connects to its static peers
 * only: no link needs blocking (cutting the n^2 non-edges would cost 10^6 entries at 1,000
 * peers), yet paths between non-neighbours are relayed as on a sparse real network.
 */
import process from "node:process";
import { toHex } from "../src/crypto/index.ts";
import { SimNetwork } from "../src/sim/network.ts";
import { createRandom } from "../src/sim/random.ts";
import { randomEdges } from "../test/helpers/mesh-graphs.ts";
import { createMeshSim, type MeshSim } from "../test/helpers/mesh-sim.ts";
import { providers } from "../test/helpers/providers.ts";

const native = providers[1]![1];
/** Random chords per peer on top of the ring's 2 (the ring shares a few: about 7 in all). */
const CHORD_DEGREE = 5;
/** How often convergence is checked, in virtual time: the resolution of the times. */
const CHECK_EVERY_MS = 250;
const CONVERGE_LIMIT_MS = 120_000;
/** Quiet time measured for the steady-state rates. */
const QUIET_WINDOW_MS = 30_000;
/** How long the halves stay apart: long enough that each side gives up on the other. */
const PARTITION_MS = 60_000;
const GOSSIP_INTERVAL_MS = 5_000;
/** A wide-area link: 20 ms one way, give or take 5 (the sim's default is instant). */
export const LINK = { latencyMs: 20, jitterMs: 5 };

// Underlay bytes: mesh-sim.ts builds its SimNetwork itself, and its counters count
// datagrams, not bytes, so every conn the network hands out counts what it sends here.
// It also works around mesh-sim.ts's `addressOf`, which names peers 255, 511, ...
// "198.18.X.256" (not an address): they live at "198.18.X+1.0", which no peer uses.
const underlay = { datagrams: 0, bytes: 0 };
const listen = SimNetwork.prototype.listen;
SimNetwork.prototype.listen = function (this: SimNetwork, address: string, port?: number) {
  const conn = listen.call(this, validAddress(address), port);
  const send = conn.send;
  conn.send = (data, to) => {
    underlay.datagrams++;
    underlay.bytes += data.length;
    send(data, { address: validAddress(to.address), port: to.port });
  };
  return conn;
};

function validAddress(address: string): string {
  const overflow = /^198\.18\.(\d+)\.256$/.exec(address);
  return overflow ? `198.18.${Number(overflow[1]) + 1}.0` : address;
}

export interface PhaseResult {
  /** Virtual ms until converged, or -1 if not within the limit. */
  virtualMs: number;
  /** Anti-entropy periods that fit in that time. */
  gossipRounds: number;
  cpuMs: number;
  wallMs: number;
}

export interface ScaleResult {
  peers: number;
  edges: number;
  averageDegree: number;
  coldStart: PhaseResult;
  join: PhaseResult;
  partitionHeal: PhaseResult & { crossPathsStillUpBeforeHeal: number };
  steadyState: {
    windowVirtualMs: number;
    gossipBytesPerPeerPerSecond: number;
    gossipMessagesPerPeerPerSecond: number;
    underlayBytesPerPeerPerSecond: number;
    underlayDatagramsPerPeerPerSecond: number;
  };
  memory: { heapBytesPerPeer: number; gcRun: boolean };
  totalCpuSeconds: number;
}

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/** Forces a full GC where the runtime allows it; returns whether it did. */
function collectGarbage(): boolean {
  const g = globalThis as unknown as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  if (g.Bun) g.Bun.gc(true);
  else if (g.gc) g.gc();
  else return false;
  return true;
}

/** Every live peer holds the same topology and has a path to every other live peer. */
function converged(sim: MeshSim): boolean {
  const live = sim.peers.filter((p) => p.alive);
  const digest = toHex(live[0]!.mesh.topology.digest());
  for (const p of live) if (toHex(p.mesh.topology.digest()) !== digest) return false;
  const liveKeys = new Set(live.map((p) => p.key));
  for (const p of live) {
    let reached = 0;
    for (const s of p.mesh.status().peers)
      if (liveKeys.has(s.publicKey) && s.path !== "unreachable") reached++;
    if (reached !== live.length - 1) return false;
  }
  return true;
}

function timePhase(sim: MeshSim): PhaseResult {
  const cpu = cpuMs();
  const wall = performance.now();
  const virtualMs = sim.runUntil(() => converged(sim), CONVERGE_LIMIT_MS, CHECK_EVERY_MS);
  return {
    virtualMs,
    gossipRounds: virtualMs < 0 ? -1 : Math.round((virtualMs / GOSSIP_INTERVAL_MS) * 10) / 10,
    cpuMs: Math.round(cpuMs() - cpu),
    wallMs: Math.round(performance.now() - wall),
  };
}

function gossipSent(sim: MeshSim): { bytes: number; messages: number } {
  let bytes = 0;
  let messages = 0;
  for (const p of sim.peers) {
    if (!p.alive) continue;
    for (const kinds of Object.values(p.mesh.gossip.stats().sent))
      for (const counter of Object.values(kinds)) {
        bytes += counter?.bytes ?? 0;
        messages += counter?.messages ?? 0;
      }
  }
  return { bytes, messages };
}

/** Ring plus random chords, as neighbour lists. */
function buildGraph(count: number, seed: number): Set<number>[] {
  const neighbours = Array.from({ length: count }, () => new Set<number>());
  const link = (a: number, b: number) => {
    if (a === b) return;
    neighbours[a]!.add(b);
    neighbours[b]!.add(a);
  };
  for (let i = 0; i < count; i++) link(i, (i + 1) % count);
  for (const [a, b] of randomEdges(createRandom(seed), count, CHORD_DEGREE)) link(a, b);
  return neighbours;
}

export async function measureScale(
  count: number,
  seed: number,
  progress: (line: string) => void,
): Promise<ScaleResult> {
  const cpuStart = cpuMs();
  collectGarbage();
  const heapBefore = process.memoryUsage().heapUsed;
  // The last peer is the joiner: it starts dead and unknown to the others.
  const joiner = count;
  let joined = false;
  const graph = buildGraph(count + 1, seed);
  const staticPeers = (i: number) =>
    [...graph[i]!].filter((j) => joined || (i !== joiner && j !== joiner));
  const sim = createMeshSim({
    crypto: native,
    seed,
    count: count + 1,
    staticPeers,
    link: LINK,
    // Nothing to advertise: peers connect only to the endpoints they are configured with
    // (and mesh-sim.ts's address for peer 255 would not parse).
    meshOptions: { connectionLimit: 0, advertise: [] },
  });
  await sim.kill(joiner);
  const edges =
    graph.slice(0, count).reduce((sum, set) => sum + set.size - (set.has(joiner) ? 1 : 0), 0) / 2;

  const coldStart = timePhase(sim);
  progress(`${count} peers: cold start converged in ${coldStart.virtualMs} virtual ms`);

  // Steady state: a quiet window after convergence.
  sim.run(5_000);
  const gossipBefore = gossipSent(sim);
  const underlayBefore = { ...underlay };
  sim.run(QUIET_WINDOW_MS);
  const gossipAfter = gossipSent(sim);
  const perPeerSecond = (value: number) =>
    Math.round((value / count / (QUIET_WINDOW_MS / 1000)) * 10) / 10;
  const steadyState = {
    windowVirtualMs: QUIET_WINDOW_MS,
    gossipBytesPerPeerPerSecond: perPeerSecond(gossipAfter.bytes - gossipBefore.bytes),
    gossipMessagesPerPeerPerSecond: perPeerSecond(gossipAfter.messages - gossipBefore.messages),
    underlayBytesPerPeerPerSecond: perPeerSecond(underlay.bytes - underlayBefore.bytes),
    underlayDatagramsPerPeerPerSecond: perPeerSecond(underlay.datagrams - underlayBefore.datagrams),
  };
  const gcRun = collectGarbage();
  const heapBytesPerPeer = Math.round((process.memoryUsage().heapUsed - heapBefore) / count);
  progress(`${count} peers: steady state ${JSON.stringify(steadyState)}`);

  // A join: the new peer and its neighbours are configured with each other.
  joined = true;
  sim.revive(joiner);
  const joinerPeer = sim.peers[joiner]!;
  for (const j of graph[joiner]!)
    sim.peers[j]!.mesh.addPeer({
      publicKey: joinerPeer.publicKey,
      endpoint: { address: joinerPeer.address, port: 51820 },
    });
  const join = timePhase(sim);
  progress(`${count} peers: join converged in ${join.virtualMs} virtual ms`);

  // Partition into halves, wait until each gives the other up, heal.
  const half = Math.floor((count + 1) / 2);
  const left = sim.peers.slice(0, half);
  const right = sim.peers.slice(half);
  sim.network.partition(
    left.map((p) => validAddress(p.address)),
    right.map((p) => validAddress(p.address)),
  );
  sim.run(PARTITION_MS);
  const rightKeys = new Set(right.map((p) => p.key));
  let crossPathsStillUpBeforeHeal = 0;
  for (const p of left)
    for (const s of p.mesh.status().peers)
      if (rightKeys.has(s.publicKey) && s.path !== "unreachable") crossPathsStillUpBeforeHeal++;
  sim.network.heal();
  const partitionHeal = { ...timePhase(sim), crossPathsStillUpBeforeHeal };
  progress(`${count} peers: partition healed, converged in ${partitionHeal.virtualMs} virtual ms`);
  await sim.close();

  return {
    peers: count,
    edges,
    averageDegree: Math.round(((2 * edges) / count) * 10) / 10,
    coldStart,
    join,
    partitionHeal,
    steadyState,
    memory: { heapBytesPerPeer, gcRun },
    totalCpuSeconds: Math.round(cpuMs() - cpuStart) / 1000,
  };
}
