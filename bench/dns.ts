/**
 * The DNS benchmark (issue 6): `dnsperf` against weft's server on Node, Deno and Bun and
 * against `dnsmasq`, all serving the same 100 names on 127.0.0.1, in one run with the
 * same client settings; then, in simulation, how long a new name takes to resolve on
 * every peer of a 100-peer mesh (bench/dns-spread.ts). Writes bench/results/dns.json.
 *
 * Needs Debian's `dnsperf` and `dnsmasq` (or `dnsmasq-base`): apt-get install dnsperf dnsmasq-base.
 * dnsmasq runs as a child on a loopback port with its own hosts file and no upstream,
 * never as the system's resolver.
 *
 * npm run bench:dns
 *   --seconds=10           dnsperf run length per server
 *   --rounds=2             rounds over all servers (interleaved; medians reported)
 *   --servers=dnsmasq,node,node-uncached,deno,bun
 *   --cpu-prof             profile weft's server under Node (profile into bench/results/)
 *   --only=perf|spread
 * A narrowed run writes its results too, marked `complete: false`.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { measureSpread, type SpreadResult } from "./dns-spread.ts";
import { argument, gitSource, median, RESULTS_DIR, writeResult } from "./harness.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(ROOT, "node_modules", ".bin");
const SERVER_SCRIPT = join(ROOT, "bench", "dns-server.ts");
const NAMES = 100;
const CLIENTS = 4;
/** dnsperf's default outstanding-query limit, stated so the method says it. */
const MAX_OUTSTANDING = 100;
const LOOPBACK = "127.0.0.1";

/** "node-uncached" is weft on Node with its answer cache off (before/after the cache). */
type ServerName = "dnsmasq" | "node" | "node-uncached" | "deno" | "bun";
type WeftServer = Exclude<ServerName, "dnsmasq">;

interface PerfRun {
  queriesPerSecond: number;
  averageLatencyMs: number;
  queriesSent: number;
  queriesCompleted: number;
  queriesLost: number;
  noerror: number;
}

interface ServerResult {
  server: ServerName;
  runs: PerfRun[];
  medianQueriesPerSecond: number;
  medianAverageLatencyMs: number;
  /** Median qps over dnsmasq's median qps (1 for dnsmasq itself). */
  qpsRatioToDnsmasq?: number;
  latencyRatioToDnsmasq?: number;
}

function version(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
      .split("\n")
      .find((line) => /\d/.test(line))!
      .trim();
  } catch {
    throw new Error(
      `"${command}" is missing: install it with "apt-get install dnsperf dnsmasq-base"`,
    );
  }
}

/** A port for dnsmasq, which needs one up front: random below the ephemeral range, retried if taken. */
function pickPort(): number {
  return 20_000 + Math.floor(Math.random() * 20_000);
}

interface Running {
  port: number;
  stop(): Promise<string>;
}

function waitExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

async function startDnsmasq(hostsFile: string): Promise<Running> {
  for (let attempt = 0; ; attempt++) {
    const port = pickPort();
    const child = spawn(
      "dnsmasq",
      [
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        `--addn-hosts=${hostsFile}`,
        `--port=${port}`,
        `--listen-address=${LOOPBACK}`,
        "--bind-interfaces",
        "--pid-file=",
        "--user=",
        "--log-facility=-",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    // dnsmasq has no ready line on stderr for this setup: give it a moment, then check it lives.
    await new Promise((resolve) => setTimeout(resolve, 500));
    if (child.exitCode === null) {
      return {
        port,
        stop: async () => {
          child.kill("SIGTERM");
          await waitExit(child);
          return output;
        },
      };
    }
    if (attempt >= 5) throw new Error(`dnsmasq did not start: ${output}`);
  }
}

function weftCommand(server: WeftServer, profileDir?: string): string[] {
  switch (server) {
    case "node-uncached":
      return [process.execPath, "--import", "tsx", SERVER_SCRIPT, "--no-cache"];
    case "node":
      return [
        process.execPath,
        ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
        "--import",
        "tsx",
        SERVER_SCRIPT,
      ];
    case "deno":
      return [join(BIN, "deno"), "run", "-A", SERVER_SCRIPT];
    case "bun":
      return [join(BIN, "bun"), SERVER_SCRIPT];
  }
}

async function startWeft(
  runtime: WeftServer,
  hostsFile: string,
  profileDir?: string,
): Promise<Running> {
  const [command, ...args] = weftCommand(runtime, profileDir);
  // The names file goes before any flag the command ends with.
  const script = args.indexOf(SERVER_SCRIPT);
  args.splice(script + 1, 0, hostsFile);
  const child = spawn(command!, args, {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`weft on ${runtime} did not start: ${output}`)),
      60_000,
    );
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
      const ready = /ready (\d+)/.exec(output);
      if (ready) {
        clearTimeout(timer);
        resolve(Number(ready[1]));
      }
    });
    child.once("exit", () => reject(new Error(`weft on ${runtime} exited: ${output}`)));
  });
  return {
    port,
    stop: async () => {
      child.stdin?.end();
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await waitExit(child);
      clearTimeout(killer);
      return output;
    },
  };
}

function dnsperf(port: number, queryFile: string, seconds: number): PerfRun {
  const output = execFileSync(
    "dnsperf",
    [
      ...["-s", LOOPBACK, "-p", String(port), "-d", queryFile],
      ...["-c", String(CLIENTS), "-q", String(MAX_OUTSTANDING), "-l", String(seconds)],
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  const number = (pattern: RegExp) => {
    const match = pattern.exec(output);
    if (!match) throw new Error(`Unexpected dnsperf output: ${output}`);
    return Number(match[1]);
  };
  return {
    queriesPerSecond: Math.round(number(/Queries per second:\s+([\d.]+)/)),
    averageLatencyMs: Math.round(number(/Average Latency \(s\):\s+([\d.]+)/) * 1e6) / 1000,
    queriesSent: number(/Queries sent:\s+(\d+)/),
    queriesCompleted: number(/Queries completed:\s+(\d+)/),
    queriesLost: number(/Queries lost:\s+(\d+)/),
    noerror: number(/NOERROR (\d+)/),
  };
}

async function measurePerf(
  servers: ServerName[],
  rounds: number,
  seconds: number,
  profile: boolean,
  progress: (line: string) => void,
): Promise<ServerResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "weft-bench-dns-"));
  try {
    const hostsFile = join(dir, "hosts");
    const queryFile = join(dir, "queries");
    const names = Array.from({ length: NAMES }, (_, i) => `name${i}.weft.internal`);
    writeFileSync(
      hostsFile,
      names.map((name, i) => `10.40.${i >> 8}.${(i & 255) + 1} ${name}\n`).join(""),
    );
    writeFileSync(queryFile, names.map((name) => `${name} A\n`).join(""));
    const runs = new Map<ServerName, PerfRun[]>(servers.map((s) => [s, []]));
    for (let round = 0; round < rounds; round++) {
      for (const server of servers) {
        const running =
          server === "dnsmasq"
            ? await startDnsmasq(hostsFile)
            : await startWeft(
                server,
                hostsFile,
                profile && server === "node" ? RESULTS_DIR : undefined,
              );
        try {
          dnsperf(running.port, queryFile, 1); // warm-up: the JIT, dnsmasq's cache
          const run = dnsperf(running.port, queryFile, seconds);
          if (run.noerror < run.queriesCompleted) {
            throw new Error(
              `${server} answered ${run.noerror} of ${run.queriesCompleted} with NOERROR`,
            );
          }
          runs.get(server)!.push(run);
          progress(
            `round ${round + 1} ${server}: ${run.queriesPerSecond} qps, ${run.averageLatencyMs} ms, lost ${run.queriesLost}`,
          );
        } finally {
          await running.stop();
        }
      }
    }
    const results: ServerResult[] = servers.map((server) => ({
      server,
      runs: runs.get(server)!,
      medianQueriesPerSecond: Math.round(median(runs.get(server)!.map((r) => r.queriesPerSecond))),
      medianAverageLatencyMs:
        Math.round(median(runs.get(server)!.map((r) => r.averageLatencyMs)) * 1000) / 1000,
    }));
    const base = results.find((r) => r.server === "dnsmasq");
    if (base) {
      for (const r of results) {
        r.qpsRatioToDnsmasq = round2(r.medianQueriesPerSecond / base.medianQueriesPerSecond);
        r.latencyRatioToDnsmasq = round2(r.medianAverageLatencyMs / base.medianAverageLatencyMs);
      }
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function printPerf(results: ServerResult[]): void {
  console.log(
    "server         qps (median)  avg latency ms  qps weft/dnsmasq  latency weft/dnsmasq",
  );
  for (const r of results) {
    console.log(
      `${r.server.padEnd(13)}  ${String(r.medianQueriesPerSecond).padStart(12)}  ${String(r.medianAverageLatencyMs).padStart(14)}  ${String(r.qpsRatioToDnsmasq ?? "-").padStart(16)}  ${String(r.latencyRatioToDnsmasq ?? "-").padStart(20)}`,
    );
  }
}

async function main(): Promise<void> {
  const only = argument("only");
  const seconds = Number(argument("seconds") ?? 10);
  const rounds = Number(argument("rounds") ?? 2);
  const servers = (argument("servers")?.split(",") ?? [
    "dnsmasq",
    "node",
    "node-uncached",
    "deno",
    "bun",
  ]) as ServerName[];
  const profile = process.argv.includes("--cpu-prof");
  const complete =
    only === undefined && argument("servers") === undefined && argument("seconds") === undefined;
  const progress = (line: string) => console.error(line);
  const start = performance.now();
  const loadAverageAtStart = loadavg().map(round2);

  let perf: ServerResult[] = [];
  const tools: Record<string, string> = {};
  if (only !== "spread") {
    tools.dnsperf = version("dnsperf", ["-h"]).replace(/^.*?Version\s*/s, "");
    tools.dnsmasq = version("dnsmasq", ["--version"]);
    perf = await measurePerf(servers, rounds, seconds, profile, progress);
    printPerf(perf);
  }
  let spread: SpreadResult | undefined;
  if (only !== "perf") {
    spread = measureSpread(progress);
    console.log(
      `new name on all ${spread.peers} peers: median ${spread.medianVirtualMs} ms, max ${spread.maxVirtualMs} ms (virtual)`,
    );
  }

  const result = {
    benchmark: "dns",
    date: new Date().toISOString(),
    source: gitSource(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      loadAverageAtStart,
      loadAverageAtEnd: loadavg().map(round2),
    },
    tools,
    goal: "weft's qps matches dnsmasq's (about 100,000 qps with dnsperf -c 4 on this machine kind)",
    method: {
      perf: `${NAMES} names (nameN.weft.internal, one A record each) served by dnsmasq (--no-resolv --no-hosts --addn-hosts, a child on a loopback port, cache on) and by bench/dns-server.ts (one DnsEntries, DnsServer over this runtime's UDP on 127.0.0.1, no forwarder) on Node, Deno and Bun; dnsperf -c ${CLIENTS} -q ${MAX_OUTSTANDING} -l ${seconds} over UDP cycling through the ${NAMES} A queries, after a 1 s warm-up per server start; ${rounds} rounds with the servers in turn; medians over rounds; every answer checked NOERROR; dnsperf, the server and the other engineer's work share the machine's ${cpus().length} cores`,
      spread: spread?.method,
    },
    perf,
    spread,
    elapsedSeconds: Math.round((performance.now() - start) / 100) / 10,
  };
  console.log(`wrote ${writeResult("dns", { ...result, complete })} in ${result.elapsedSeconds} s`);
}

try {
  await main();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
}
process.exit();
