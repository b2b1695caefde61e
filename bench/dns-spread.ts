/**
 * How long a new DNS name takes to resolve on every peer of a 100-peer simulated mesh
 * (test/helpers/mesh-sim.ts: real Devices, gossip and routing on a virtual clock), for
 * bench/dns.ts. Each peer has a `DnsEntries` on the "dns" channel; once the mesh is up,
 * names are registered one at a time on random peers and the clock runs until every
 * replica's `lookup` has the name.
 */
import { DnsEntries } from "../src/dns/entries.ts";
import { type DnsReplication, replicateDns } from "../src/dns/replicate.ts";
import { createRandom } from "../src/sim/random.ts";
import { createMeshSim } from "../test/helpers/mesh-sim.ts";
import { providers } from "../test/helpers/providers.ts";
import { median } from "./harness.ts";

const native = providers[1]![1];
const SEED = 20261206;
const PEERS = 100;
const NAMES = 20;
/** A wide-area link, as bench:mesh uses, and some loss so anti-entropy has work. */
const LINK = { latencyMs: 20, jitterMs: 5, lossRate: 0.01 };
/** Direct connections each peer seeks beyond its static peer (64 by default: see below). */
const CONNECTION_LIMIT = 8;
const STEP_MS = 10;
const GOSSIP_INTERVAL_MS = 5_000;

export interface SpreadResult {
  peers: number;
  names: number;
  meshUpVirtualMs: number;
  /** Per name, virtual ms from `add` on one peer until every peer's lookup has it (-1: not within 60 s). */
  virtualMs: number[];
  medianVirtualMs: number;
  maxVirtualMs: number;
  medianGossipPeriods: number;
  wallSeconds: number;
  method: string;
}

export function measureSpread(progress: (line: string) => void): SpreadResult {
  const wall = performance.now();
  const sim = createMeshSim({
    crypto: native,
    seed: SEED,
    count: PEERS,
    link: LINK,
    meshOptions: { connectionLimit: CONNECTION_LIMIT },
  });
  const replicas: { entries: DnsEntries; dns: DnsReplication }[] = sim.peers.map((peer) => {
    const entries = new DnsEntries({ self: peer.key, clock: sim.clock });
    return { entries, dns: replicateDns(entries, peer.mesh) };
  });
  const meshUpVirtualMs = sim.runUntil(
    () => sim.peers.every((p) => p.mesh.reachable().length >= PEERS - 1),
    300_000,
    500,
  );
  if (meshUpVirtualMs < 0) throw new Error(`The ${PEERS}-peer mesh did not come up`);
  progress(`spread: ${PEERS}-peer mesh up after ${meshUpVirtualMs} virtual ms`);
  sim.run(30_000); // past the start's handshakes and first anti-entropy rounds
  const random = createRandom(SEED + 1);
  const virtualMs: number[] = [];
  for (let i = 0; i < NAMES; i++) {
    const origin = random.int(PEERS);
    const name = `new${i}.weft.internal`;
    replicas[origin]!.dns.add(name, `10.40.9.${i + 1}`);
    const took = sim.runUntil(
      () => replicas.every((r) => r.entries.lookup(name).length === 1),
      60_000,
      STEP_MS,
    );
    virtualMs.push(took);
    progress(`spread: ${name} from p${origin} on all peers after ${took} virtual ms`);
    sim.run(1_000);
  }
  void sim.close();
  const done = virtualMs.filter((ms) => ms >= 0);
  const medianVirtualMs = done.length === NAMES ? median(virtualMs) : -1;
  return {
    peers: PEERS,
    names: NAMES,
    meshUpVirtualMs,
    virtualMs,
    medianVirtualMs,
    maxVirtualMs: done.length === NAMES ? Math.max(...virtualMs) : -1,
    medianGossipPeriods: Math.round((medianVirtualMs / GOSSIP_INTERVAL_MS) * 100) / 100,
    wallSeconds: Math.round((performance.now() - wall) / 100) / 10,
    method: `test/helpers/mesh-sim.ts, seed ${SEED}, ${PEERS} peers all configured with peer 0, connectionLimit ${CONNECTION_LIMIT} (the default 64 makes every pair handshake, which costs the simulation's wall time, not the DNS), links ${LINK.latencyMs} ms +- ${LINK.jitterMs} ms one way with ${LINK.lossRate * 100}% loss; after the mesh is up (every peer reaches every other) and 30 more virtual s, ${NAMES} names are added one at a time on random peers through replicateDns; time = virtual ms until every replica's lookup has the name, checked every ${STEP_MS} virtual ms; anti-entropy every ${GOSSIP_INTERVAL_MS / 1000} s repairs broadcasts lost to the 1% loss`,
  };
}
