/**
 * `npm run bench:tun` (root): TCP through a tunnel between two network namespaces over
 * one veth, side by side in one run: Debian's wireguard-go configured by `wg`, then weft
 * on Node, Deno and Bun (a daemon per namespace, kernel TUNs). `iperf3 -t 10`, median of
 * 3 runs each, reported in Mbit/s and as a ratio to wireguard-go; plus each weft daemon's
 * resident memory idle and under load. Results to bench/results/tun.json.
 *
 *   npm run bench:tun [-- --runs=3 --seconds=10 --only=wireguard-go,node,deno,bun]
 *
 * Traffic stays inside the namespaces it creates.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { createTestNetwork, type TestHost } from "../test/helpers/netns.ts";
import { type HostRuntime, WeftHost } from "../test/helpers/weft-host.ts";
import { startWireguardGo } from "../test/helpers/wireguard-go.ts";
import { argument, gitSource, median, writeResult } from "./harness.ts";

const RUNS = Number(argument("runs") ?? 3);
const SECONDS = Number(argument("seconds") ?? 10);
const ONLY = (argument("only") ?? "wireguard-go,node,deno,bun").split(",");

interface Contender {
  name: string;
  mbits: number[];
  medianMbits: number;
  ratioToWireguardGo?: number;
  rssIdleMiB?: number;
  rssLoadMiB?: number;
  retransmits: number[];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function rssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** One iperf3 run from `client` to `serverAddress` in `server`; Mbit/s and retransmits. */
async function iperf(
  client: TestHost,
  server: TestHost,
  serverAddress: string,
  duringLoad?: () => void,
): Promise<{ mbits: number; retransmits: number }> {
  const daemon: ChildProcess = spawn(
    "ip",
    ["netns", "exec", server.namespace, "iperf3", "-s", "-1", "-B", serverAddress],
    { stdio: "ignore" },
  );
  try {
    await sleep(400);
    const load = duringLoad ? setTimeout(duringLoad, (SECONDS * 1000) / 2) : undefined;
    const output = await runAsync("ip", [
      "netns",
      "exec",
      client.namespace,
      "iperf3",
      "-c",
      serverAddress,
      "-t",
      String(SECONDS),
      "-J",
    ]);
    clearTimeout(load);
    const report = JSON.parse(output) as {
      error?: string;
      end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } };
    };
    if (report.error) throw new Error(`iperf3: ${report.error}`);
    return {
      mbits: report.end.sum_received.bits_per_second / 1e6,
      retransmits: report.end.sum_sent.retransmits ?? 0,
    };
  } finally {
    daemon.kill();
  }
}

async function benchWireguardGo(): Promise<Contender> {
  const network = createTestNetwork("bwg");
  const stops: (() => void)[] = [];
  try {
    const [a, b] = [network.addHost("a"), network.addHost("b")];
    const link = network.linkHosts(a, b);
    const key = () => execFileSync("wg", ["genkey"], { encoding: "utf8" }).trim();
    const pub = (k: string) =>
      execFileSync("wg", ["pubkey"], { input: k, encoding: "utf8" }).trim();
    const [ka, kb] = [key(), key()];
    const wa = await startWireguardGo(a, {
      privateKey: ka,
      listenPort: 51820,
      interfaceAddress: "10.214.9.1/24",
      peer: { publicKey: pub(kb), allowedIps: "10.214.9.2/32", endpoint: `${link.addressB}:51820` },
    });
    stops.push(() => wa.stop());
    const wb = await startWireguardGo(b, {
      privateKey: kb,
      listenPort: 51820,
      interfaceAddress: "10.214.9.2/24",
      peer: { publicKey: pub(ka), allowedIps: "10.214.9.1/32", endpoint: `${link.addressA}:51820` },
    });
    stops.push(() => wb.stop());
    a.exec("ping", ["-c", "2", "-W", "2", "10.214.9.2"]);
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await iperf(a, b, "10.214.9.2"));
    return summary("wireguard-go", runs);
  } finally {
    for (const stop of stops) stop();
    network.cleanup();
  }
}

async function benchWeft(runtime: HostRuntime): Promise<Contender> {
  const network = createTestNetwork(`bw${runtime.slice(0, 2)}`);
  const hosts: WeftHost[] = [];
  try {
    const [a, b] = [network.addHost("a"), network.addHost("b")];
    const link = network.linkHosts(a, b);
    const ha = new WeftHost("a", runtime, a.namespace);
    const hb = new WeftHost("b", runtime, b.namespace);
    hosts.push(ha, hb);
    const common = ["--port", "51820", "--log-level", "warn"];
    ha.start([...common, "--name", "a"]);
    const deadline = Date.now() + 30_000;
    while (ha.status()?.self.address === undefined) {
      if (Date.now() > deadline) throw new Error(`a did not come up:\n${ha.log()}`);
      await sleep(200);
    }
    const token = ha.cli(["invite", "--name", "b", "--endpoint", `${link.addressA}:51820`]);
    if (token.status !== 0) throw new Error(`invite failed: ${token.stderr}`);
    hb.start([...common, "--join", token.stdout.trim()]);
    let addressB = hb.status()?.self.address;
    while (addressB === undefined || !pings(a, addressB)) {
      if (Date.now() > deadline + 30_000) throw new Error(`b did not come up:\n${hb.log()}`);
      await sleep(300);
      addressB = hb.status()?.self.address;
    }
    await sleep(2_000);
    const idle = Math.max(rssMiB(ha.pid) ?? 0, rssMiB(hb.pid) ?? 0);
    let load = 0;
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      runs.push(
        await iperf(a, b, addressB, () => {
          load = Math.max(load, rssMiB(ha.pid) ?? 0, rssMiB(hb.pid) ?? 0);
        }),
      );
    }
    return { ...summary(`weft-${runtime}`, runs), rssIdleMiB: idle, rssLoadMiB: load };
  } finally {
    for (const host of hosts) await host.down(5_000).catch(() => host.kill());
    network.cleanup();
    for (const host of hosts) rmSync(host.stateDir, { recursive: true, force: true });
  }
}

/** Runs a command without blocking the event loop (so RSS can be sampled meanwhile). */
function runAsync(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    child.once("error", reject);
    child.once("exit", () => resolve(output));
  });
}

function pings(from: TestHost, address: string): boolean {
  try {
    from.exec("ping", ["-c", "1", "-W", "1", address]);
    return true;
  } catch {
    return false;
  }
}

function summary(name: string, runs: { mbits: number; retransmits: number }[]): Contender {
  return {
    name,
    mbits: runs.map((r) => Math.round(r.mbits)),
    medianMbits: Math.round(median(runs.map((r) => r.mbits))),
    retransmits: runs.map((r) => r.retransmits),
  };
}

if (process.getuid?.() !== 0) {
  console.error("bench:tun needs root (network namespaces and TUN devices)");
  process.exit(1);
}
const contenders: Contender[] = [];
const loadBefore = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
if (ONLY.includes("wireguard-go")) contenders.push(await benchWireguardGo());
for (const runtime of ["node", "deno", "bun"] as const) {
  if (ONLY.includes(runtime)) contenders.push(await benchWeft(runtime));
}
const baseline = contenders.find((c) => c.name === "wireguard-go")?.medianMbits;
for (const c of contenders) {
  if (baseline) c.ratioToWireguardGo = Math.round((c.medianMbits / baseline) * 100) / 100;
  console.log(
    `${c.name.padEnd(14)} ${String(c.medianMbits).padStart(6)} Mbit/s (runs ${c.mbits.join(", ")})` +
      (c.ratioToWireguardGo === undefined ? "" : `  x${c.ratioToWireguardGo} of wireguard-go`) +
      (c.rssIdleMiB === undefined
        ? ""
        : `  RSS idle ${c.rssIdleMiB.toFixed(0)} MiB, load ${c.rssLoadMiB?.toFixed(0)} MiB`),
  );
}
const path = writeResult("tun", {
  date: new Date().toISOString(),
  source: gitSource(),
  loadAverageBefore: loadBefore,
  iperfSeconds: SECONDS,
  runs: RUNS,
  contenders,
});
console.log(`results: ${path}`);
process.exit(0);
