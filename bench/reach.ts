/**
 * `npm run bench:reach`: how NAT traversal does (#9), in one run, to bench/results/reach.json.
 *
 * 1. Simulation: for every pair of classic NAT types (test/helpers/nat-sim.ts: two peers
 *    behind NATs, a public relay, 15 ms ± 3 ms links), the virtual time from both peers
 *    reaching the relay (the first moment they can exchange anything) to a direct path
 *    both ways; median, min and max over `--seeds` seeds, or "relayed" when no seed got
 *    a direct path within 60 s.
 * 2. Real hosts (root only; skipped with a note otherwise): two hosts behind masquerading
 *    router namespaces and a relay (test/helpers/nat-hosts.ts), iperf3 TCP over the
 *    punched path hA -> hB, over hA -> r (direct, through hA's NAT only), and, with the
 *    punch prevented by the routers' missing input firewall, hA -> hB relayed by r.
 *    Median of `--runs` runs of `--seconds` each, as ratios to the direct path.
 *
 *   npm run bench:reach [-- --seeds=10 --runs=3 --seconds=5 --runtime=node]
 *
 * Traffic stays inside the process (simulation) and the namespaces it creates.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { waitFor } from "../test/helpers/host-checks.ts";
import { createNatWorld, type NatHost } from "../test/helpers/nat-hosts.ts";
import { CLASSIC, createNatMeshWorld, punchable } from "../test/helpers/nat-sim.ts";
import { providers } from "../test/helpers/providers.ts";
import { IS_ROOT } from "../test/helpers/root.ts";
import { type HostRuntime, WeftHost } from "../test/helpers/weft-host.ts";
import { argument, gitSource, median, writeResult } from "./harness.ts";

const SEEDS = Number(argument("seeds") ?? 10);
const RUNS = Number(argument("runs") ?? 3);
const SECONDS = Number(argument("seconds") ?? 5);
const RUNTIME = (argument("runtime") ?? "node") as HostRuntime;
const crypto = providers[1]![1];

interface PairResult {
  a: string;
  b: string;
  expected: "direct" | "relayed";
  outcome: "direct" | "relayed" | "mixed";
  directSeeds: number;
  medianMs?: number;
  minMs?: number;
  maxMs?: number;
}

async function simulate(): Promise<PairResult[]> {
  const results: PairResult[] = [];
  for (const a of CLASSIC)
    for (const b of CLASSIC) {
      const times: number[] = [];
      for (let seed = 1; seed <= SEEDS; seed++) {
        const w = createNatMeshWorld(crypto, a, b, seed);
        try {
          if (w.bothAtRelay() < 0) continue;
          const took = w.runUntil(() => w.isDirect(w.a, w.b) && w.isDirect(w.b, w.a), 60_000);
          if (took >= 0) times.push(took);
        } finally {
          await w.close();
        }
      }
      const outcome = times.length === SEEDS ? "direct" : times.length === 0 ? "relayed" : "mixed";
      const result: PairResult = {
        a,
        b,
        expected: punchable(a, b) ? "direct" : "relayed",
        outcome,
        directSeeds: times.length,
        ...(times.length > 0
          ? { medianMs: median(times), minMs: Math.min(...times), maxMs: Math.max(...times) }
          : {}),
      };
      console.log(
        `${a.padEnd(18)} x ${b.padEnd(18)} ${outcome.padEnd(8)} ${result.medianMs === undefined ? "" : `median ${result.medianMs} ms (${result.minMs}-${result.maxMs})`}`,
      );
      results.push(result);
    }
  return results;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function iperf(from: NatHost, to: NatHost, address: string): Promise<number> {
  const server: ChildProcess = spawn(
    "ip",
    ["netns", "exec", to.namespace, "iperf3", "-s", "-1", "-B", address],
    { stdio: "ignore" },
  );
  try {
    await sleep(400);
    const report = JSON.parse(
      from.exec("iperf3", ["-c", address, "-t", `${SECONDS}`, "-J", "--connect-timeout", "5000"]),
    ) as { error?: string; end: { sum_received: { bits_per_second: number } } };
    if (report.error) throw new Error(`iperf3: ${report.error}`);
    return report.end.sum_received.bits_per_second / 1e6;
  } finally {
    server.kill();
  }
}

/** One NAT world with weft on every host; iperf3 over the paths it ends up with. */
async function realHosts(inputFirewall: boolean) {
  const world = createNatWorld("bench", { inputFirewall });
  const r = new WeftHost("r", RUNTIME, world.relay.namespace);
  const hA = new WeftHost("hA", RUNTIME, world.hostA.namespace);
  const hB = new WeftHost("hB", RUNTIME, world.hostB.namespace);
  const hosts = [r, hA, hB];
  try {
    const common = ["--port", "51820", "--log-level", "warn"];
    r.start([...common, "--name", "r"]);
    await waitFor("r up", () => r.status()?.self.address !== undefined, 30_000);
    const invite = (name: string) => r.cli(["invite", "--name", name]).stdout.trim();
    hA.start([...common, "--join", invite("hA")]);
    hB.start([...common, "--join", invite("hB")]);
    await waitFor(
      "hA and hB to reach each other",
      () =>
        hA
          .status()!
          .peers.some((p) => p.nickname === "hB" && p.path !== "unreachable" && p.address) &&
        hB
          .status()!
          .peers.some((p) => p.nickname === "hA" && p.path !== "unreachable" && p.address),
      40_000,
    );
    await sleep(5_000); // let punching finish (or give up for now)
    const path = hA.status()!.peers.find((p) => p.nickname === "hB")!;
    const addressB = hB.status()!.self.address!;
    const addressR = r.status()!.self.address!;
    const toB: number[] = [];
    const toR: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      toB.push(await iperf(world.hostA, world.hostB, addressB));
      toR.push(await iperf(world.hostA, world.relay, addressR));
    }
    return {
      pathAtoB: path.punched ? "punched" : path.path,
      mbitsAtoB: toB,
      medianMbitsAtoB: median(toB),
      mbitsAtoRelay: toR,
      medianMbitsAtoRelay: median(toR),
    };
  } finally {
    for (const host of hosts) await host.down(5_000).catch(() => host.kill());
    world.cleanup();
    for (const host of hosts) rmSync(host.stateDir, { recursive: true, force: true });
  }
}

const simulation = await simulate();
let hosts: Record<string, unknown> = {
  skipped: "not root: real-host throughput needs network namespaces",
};
if (IS_ROOT) {
  const punched = await realHosts(true);
  console.log(
    `real hosts (${RUNTIME}): hA -> hB ${punched.pathAtoB} ${punched.medianMbitsAtoB.toFixed(0)} Mbit/s, hA -> r direct ${punched.medianMbitsAtoRelay.toFixed(0)} Mbit/s`,
  );
  const relayed = await realHosts(false);
  console.log(
    `real hosts without the routers' input firewall: hA -> hB ${relayed.pathAtoB} ${relayed.medianMbitsAtoB.toFixed(0)} Mbit/s`,
  );
  hosts = {
    runtime: RUNTIME,
    seconds: SECONDS,
    runs: RUNS,
    punched,
    withoutInputFirewall: relayed,
    ratioPunchedToDirect: punched.medianMbitsAtoB / punched.medianMbitsAtoRelay,
    ratioRelayedToPunched: relayed.medianMbitsAtoB / punched.medianMbitsAtoB,
  };
}
const path = writeResult("reach", {
  date: new Date().toISOString(),
  source: gitSource(),
  simulation: { seeds: SEEDS, link: "15 ms ± 3 ms, 1 ms LAN", pairs: simulation },
  realHosts: hosts,
});
console.log(`wrote ${path}`);
