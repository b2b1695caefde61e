/**
 * `npm run bench:netstack` (root): download throughput of a 50 MB file through weft's
 * userspace TCP/IP stack against the kernel's TCP on the same kind of tunnel (#10).
 *
 * Both paths: Debian's wireguard-go in a network namespace with Node's http server
 * serving the file, and a weft Device on real UDP in the root namespace.
 *  - userspace: the Device's Tun is a `Netstack` + `TcpStack`; weft's `httpGet` downloads;
 *  - kernel:    the Device's Tun is a kernel TUN (`runtime.openTun`); `curl` downloads
 *               through it with the root namespace's TCP.
 * Each clean, then with 1% of the packets lost each way on the veth. The parent runs one
 * child per runtime (Node, Deno, Bun), each doing every measurement on its runtime; each
 * download is checked byte-exact (sha256). Medians of `--runs` runs and the
 * userspace/kernel ratio (the goal: at least 0.7) go to bench/results/netstack.json.
 *
 *   npm run bench:netstack [-- --runs=3 --only=node,deno,bun --mb=50]
 *
 * Traffic stays inside the namespaces it creates.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadRuntime } from "../runtimes/index.ts";
import { httpGet } from "../src/netstack/http1.ts";
import { Netstack, TcpStack } from "../src/netstack/index.ts";
import type { Runtime } from "../src/runtime.ts";
import {
  addLoss,
  curlSha256,
  randomFile,
  startFileServer,
  startWgPeer,
  type WgPeer,
} from "../test/helpers/netstack-wg.ts";
import { IS_ROOT } from "../test/helpers/root.ts";
import { argument, gitSource, median, writeResult } from "./harness.ts";

const CHILD_FLAG = "--child";
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const RUNS = Number(argument("runs") ?? 3);
const ONLY = (argument("only") ?? "node,deno,bun").split(",");
const MB = Number(argument("mb") ?? 50);
/** Which paths to measure ("userspace,kernel"); one alone is handy under --cpu-prof. */
const PATHS = (argument("paths") ?? "userspace,kernel").split(",");
/** The TcpStack's receive buffer in KiB (its default when absent), to tell window from CPU limits. */
const RECEIVE_KIB = argument("receive-kib");
const HTTP_PORT = 8080;
const LIMIT_S = 180;

/** What a child measures: MB/s per run, for each path and loss. */
interface ChildResult {
  runtime: string;
  version: string;
  runs: Record<string, number[]>;
  loss: string;
}

// ---- the child: every measurement on one runtime ----------------------------------------

async function userspaceRun(peer: WgPeer, tcp: TcpStack, size: number, sha: string) {
  const start = performance.now();
  const stream = await tcp.dial(peer.wgOverlay, HTTP_PORT, { timeoutMs: 20_000 });
  const timer = setTimeout(() => stream.abort(), LIMIT_S * 1000);
  try {
    const response = await httpGet(stream, { host: peer.wgOverlay, path: "/payload.bin" });
    const hash = createHash("sha256");
    let bytes = 0;
    for await (const chunk of response.body) {
      hash.update(chunk);
      bytes += chunk.length;
    }
    const seconds = (performance.now() - start) / 1000;
    if (bytes !== size || hash.digest("hex") !== sha) {
      throw new Error(`userspace download: ${bytes} bytes, not byte-exact`);
    }
    return size / 1e6 / seconds;
  } finally {
    clearTimeout(timer);
  }
}

async function kernelRun(peer: WgPeer, size: number, sha: string) {
  const url = `http://${peer.wgOverlay}:${HTTP_PORT}/payload.bin`;
  const result = await curlSha256(url, undefined, LIMIT_S);
  if (result.bytes !== size || result.sha256 !== sha) {
    throw new Error(`kernel download: ${result.bytes} bytes, not byte-exact`);
  }
  return size / 1e6 / result.seconds;
}

/** Clean runs, then runs with 1% loss, against a fresh peer; returns how loss was made. */
async function measure(
  runtime: Runtime,
  peer: WgPeer,
  file: string,
  run: () => Promise<number>,
  clean: number[],
  lossy: number[],
): Promise<string> {
  const server = await startFileServer(runtime, peer.host, peer.wgOverlay, HTTP_PORT, file);
  try {
    await run(); // warm-up: handshake, JIT
    for (let i = 0; i < RUNS; i++) clean.push(await run());
    const how = addLoss(peer.host, 1);
    for (let i = 0; i < RUNS; i++) lossy.push(await run());
    return how;
  } finally {
    server.stop();
  }
}

async function child(file: string, sha: string): Promise<void> {
  const runtime = await loadRuntime();
  const size = readFileSync(file).length;
  const runs: Record<string, number[]> = {
    userspace: [],
    userspaceLoss: [],
    kernel: [],
    kernelLoss: [],
  };
  let loss = "";
  if (PATHS.includes("userspace")) loss = await userspaceRuns(runtime, file, size, sha, runs);
  if (PATHS.includes("kernel")) {
    const kernel = await startWgPeer(runtime, "bnk", (address) =>
      runtime.openTun({ name: "wfb%d", mtu: 1420, addresses: [`${address}/24`] }),
    );
    try {
      loss = await measure(
        runtime,
        kernel,
        file,
        () => kernelRun(kernel, size, sha),
        runs.kernel!,
        runs.kernelLoss!,
      );
    } finally {
      await kernel.close();
    }
  }
  const result: ChildResult = { runtime: runtime.name, version: runtime.version, runs, loss };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
}

async function userspaceRuns(
  runtime: Runtime,
  file: string,
  size: number,
  sha: string,
  runs: Record<string, number[]>,
): Promise<string> {
  let tcp: TcpStack | undefined;
  const random = new Uint32Array(1);
  const userspace = await startWgPeer(runtime, "bns", (address) => {
    const netstack = new Netstack({ addresses: [address] });
    tcp = new TcpStack(netstack, {
      clock: runtime.clock,
      randomUint32: () => crypto.getRandomValues(random)[0]!,
      ...(RECEIVE_KIB === undefined ? {} : { receiveBufferBytes: Number(RECEIVE_KIB) * 1024 }),
    });
    return netstack;
  });
  try {
    return await measure(
      runtime,
      userspace,
      file,
      () => userspaceRun(userspace, tcp!, size, sha),
      runs.userspace!,
      runs.userspaceLoss!,
    );
  } finally {
    tcp?.close();
    await userspace.close();
  }
}

// ---- the parent: a child per runtime, then the summary ----------------------------------

function runChild(name: string, file: string, sha: string): Promise<ChildResult> {
  const script = fileURLToPath(import.meta.url);
  const bin = join(ROOT, "node_modules", ".bin");
  const [command, args] =
    name === "deno"
      ? [join(bin, "deno"), ["run", "-A", "--no-check", script]]
      : name === "bun"
        ? [join(bin, "bun"), [script]]
        : [process.execPath, [...process.execArgv, script]];
  return new Promise((resolve, reject) => {
    const proc = spawn(
      command,
      [
        ...args,
        CHILD_FLAG,
        `--file=${file}`,
        `--sha=${sha}`,
        `--paths=${PATHS.join(",")}`,
        `--runs=${RUNS}`,
        ...(RECEIVE_KIB === undefined ? [] : [`--receive-kib=${RECEIVE_KIB}`]),
      ],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let output = "";
    proc.stdout.on("data", (d: Buffer) => {
      output += d;
    });
    const timer = setTimeout(() => proc.kill("SIGKILL"), 15 * 60_000);
    proc.on("close", (code) => {
      clearTimeout(timer);
      const line = output.split("\n").find((l) => l.startsWith("RESULT "));
      if (code !== 0 || line === undefined) {
        reject(new Error(`${name} child failed (exit ${code}): ${output.slice(-2000)}`));
      } else resolve(JSON.parse(line.slice(7)) as ChildResult);
    });
  });
}

async function parent(): Promise<void> {
  if (!IS_ROOT) {
    console.log("bench:netstack needs root (network namespaces, a kernel TUN); nothing measured");
    return;
  }
  // Other work on the machine moves these numbers a lot: record how busy it was.
  const loadBefore = loadavg();
  const payload = randomFile(MB * 1_000_000);
  const results: Record<string, unknown> = {};
  try {
    for (const name of ONLY) {
      console.log(
        `${name}: ${RUNS} runs each of ${MB} MB, userspace then kernel, clean then 1% loss`,
      );
      let r: ChildResult;
      try {
        r = await runChild(name, payload.path, payload.sha256);
      } catch (error) {
        console.log(`${name}: ${(error as Error).message}`);
        results[name] = { error: (error as Error).message };
        continue;
      }
      const m = Object.fromEntries(
        Object.entries(r.runs)
          .filter(([, v]) => v.length > 0)
          .map(([k, v]) => [k, Number(median(v).toFixed(2))]),
      ) as Record<string, number>;
      const ratioOf = (a?: number, b?: number) =>
        a === undefined || b === undefined ? undefined : Number((a / b).toFixed(3));
      const ratio = ratioOf(m.userspace, m.kernel);
      const ratioLoss = ratioOf(m.userspaceLoss, m.kernelLoss);
      results[name] = {
        version: r.version,
        medianMBps: m,
        ratioUserspaceToKernel: ratio,
        ratioUserspaceToKernelLoss: ratioLoss,
        runsMBps: r.runs,
        loss: r.loss,
      };
      console.log(
        `${name}: userspace ${m.userspace} MB/s, kernel ${m.kernel} MB/s, ratio ${ratio}; ` +
          `with 1% loss: userspace ${m.userspaceLoss} MB/s, kernel ${m.kernelLoss} MB/s, ratio ${ratioLoss}`,
      );
    }
  } finally {
    payload.remove();
  }
  const path = writeResult("netstack", {
    benchmark: "netstack",
    description:
      "Download of a random file over HTTP from Node's http server behind wireguard-go in a namespace, to a weft Device in the root namespace: through weft's userspace TCP/IP stack (Netstack + TcpStack + httpGet) vs the kernel's TCP (kernel TUN + curl). MB/s = 10^6 bytes/s; medians; goal: userspace >= 0.7 of kernel.",
    date: new Date().toISOString(),
    source: gitSource(),
    cpus: cpus().length,
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadavg(),
    fileMB: MB,
    runs: RUNS,
    results,
  });
  console.log(`results: ${path}`);
}

if (process.argv.includes(CHILD_FLAG)) {
  await child(argument("file")!, argument("sha")!);
} else {
  await parent();
}
