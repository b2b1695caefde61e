/**
 * The mesh benchmark (issue 4): scale in simulation (bench/mesh-scale.ts) and relayed
 * against direct throughput over loopback UDP between processes (bench/mesh-loopback.ts).
 * Writes bench/results/mesh.json.
 *
 * npm run bench:mesh
 *   --sizes=10,100      simulation sizes (default 10,100,1000)
 *   --only=scale|loopback
 *   --runtime=deno      runtime of the loopback peer processes (default: this one)
 * A narrowed run writes its results too, marked `complete: false`.
 */
import { cpus, loadavg } from "node:os";
import process from "node:process";
import { loadRuntime } from "../runtimes/index.ts";
import { toBase64 } from "../src/crypto/index.ts";
import type { PeerRuntime } from "../test/helpers/mesh-peer-client.ts";
import { argument, gitSource, writeResult } from "./harness.ts";
import { type LoopbackResult, measureLoopback } from "./mesh-loopback.ts";
import { LINK, measureScale, type ScaleResult } from "./mesh-scale.ts";

const SEED = 20261128;
const DEFAULT_SIZES = [10, 100, 1000];
const GOALS = {
  convergeVirtualMs: 30_000,
  gossipBytesPerPeerPerSecond: 1024,
  relayedOverDirect: 0.5,
};

function printScale(results: ScaleResult[]): void {
  console.log(
    "peers  degree  cold ms  join ms  heal ms  (cpu s: cold/join/heal)  gossip B/s/peer  underlay B/s/peer  heap KB/peer",
  );
  for (const r of results) {
    const cpu = [r.coldStart, r.join, r.partitionHeal]
      .map((p) => (p.cpuMs / 1000).toFixed(1))
      .join("/");
    console.log(
      `${String(r.peers).padStart(5)}  ${String(r.averageDegree).padStart(6)}  ${String(r.coldStart.virtualMs).padStart(7)}  ${String(r.join.virtualMs).padStart(7)}  ${String(r.partitionHeal.virtualMs).padStart(7)}  ${cpu.padStart(24)}  ${String(r.steadyState.gossipBytesPerPeerPerSecond).padStart(15)}  ${String(r.steadyState.underlayBytesPerPeerPerSecond).padStart(17)}  ${String(Math.round(r.memory.heapBytesPerPeer / 1024)).padStart(12)}`,
    );
  }
}

function printLoopback(results: LoopbackResult[]): void {
  console.log("bytes  relayed Mbit/s (loss)  direct Mbit/s (loss)  relayed/direct");
  for (const r of results) {
    console.log(
      `${String(r.bytes).padStart(5)}  ${`${r.relayed.medianMbps} (${r.relayed.medianLoss})`.padStart(21)}  ${`${r.direct.medianMbps} (${r.direct.medianLoss})`.padStart(20)}  ${String(r.relayedOverDirect).padStart(14)}`,
    );
  }
}

async function main(): Promise<void> {
  const runtime = await loadRuntime();
  const only = argument("only");
  const sizes = argument("sizes")?.split(",").map(Number) ?? DEFAULT_SIZES;
  const peerRuntime = (argument("runtime") ?? runtime.name) as PeerRuntime;
  const complete = only === undefined && argument("sizes") === undefined;
  const progress = (line: string) => console.error(line);
  const start = performance.now();
  const loadAverageAtStart = loadavg().map((x) => Math.round(x * 100) / 100);

  const scale: ScaleResult[] = [];
  if (only !== "loopback") {
    for (const count of sizes) scale.push(await measureScale(count, SEED, progress));
    printScale(scale);
  }
  let loopback: LoopbackResult[] = [];
  if (only !== "scale") {
    loopback = await measureLoopback(
      {
        runtime: peerRuntime,
        sizes: [1420, 1280],
        runs: 5,
        datagramsPerRun: 20_000,
        crypto: runtime.crypto,
        toBase64,
      },
      progress,
    );
    printLoopback(loopback);
  }

  const result = {
    benchmark: "mesh",
    runtime: runtime.name,
    runtimeVersion: runtime.version,
    date: new Date().toISOString(),
    source: gitSource(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      loadAverageAtStart,
      loadAverageAtEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    goals: GOALS,
    method: {
      scale: `test/helpers/mesh-sim.ts, seed ${SEED}, native crypto, every link ${LINK.latencyMs} ms +- ${LINK.jitterMs} ms one way; graph: a ring plus ~5 random chords per peer (average degree ~7, almost complete at 10 peers), both ends of every edge configured as static peers, connectionLimit 0 and nothing advertised, so peers connect to their static peers only and every other pair is relayed; converged = every live peer has the same topology digest and a path to every other live peer, checked every 250 virtual ms; cold start = all peers start at once (the joiner not yet); join = one more peer and its neighbours are configured with each other; partition = the peers split in two halves for 60 virtual s, then healed; steady state = 30 virtual s after convergence + 5 s: gossip engine bytes sent (Gossip.stats) and all underlay UDP payload bytes (pings, keepalives, handshakes, gossip) per peer per second; memory = V8 heap used after a forced GC, minus the heap before the sim, over the peers; cpu = this process's user+system time per phase; gossipRounds = virtual time / 5 s anti-entropy period`,
      loopback: `test/helpers/mesh-peer.ts processes on ${peerRuntime}, one per peer, UDP on 127.0.0.1; relayed: A and C configured with B only and advertising 127.0.0.1:9 (nothing listens), so A reaches C only via B (checked from A's status before and after); direct: A' configured with C'; per size 5 runs of 20,000 datagrams each way alternating relayed and direct after a warm-up; the sender sends as fast as its event loop allows (at most 256 socket sends in flight); Mbit/s = datagram payload bytes received by C between its first and last arrival; loss = 1 - received/sent; 1420-byte payloads do not fit one 1408-byte mesh frame and are fragmented (twice when relayed), 1280 bytes fit in one frame relayed or not (a relay frame adds 68 bytes plus the inner message's 32)`,
    },
    scale,
    loopback,
    elapsedSeconds: Math.round((performance.now() - start) / 100) / 10,
  };
  // Written even when narrowed (the 1,000-peer run can take long): `complete` says which.
  console.log(
    `wrote ${writeResult("mesh", { ...result, complete })} in ${result.elapsedSeconds} s`,
  );
}

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
}
process.exit();
