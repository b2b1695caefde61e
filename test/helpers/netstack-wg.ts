/**
 * A real TCP peer for the userspace stack (#10): Debian's wireguard-go in a network
 * namespace, with the namespace kernel's TCP behind it, and a weft `Device` on real UDP
 * in the root namespace whose Tun the caller chooses (a `Netstack`, or a kernel TUN for
 * comparison). Plus the tools the real-stack test and `bench:netstack` share: an HTTP
 * file server inside the namespace (a plain Node script, whichever runtime runs weft),
 * `curl` with a sha256 of what it got, and packet loss on the veth.
 *
 * Root only. Names are unique (createTestNetwork, startWireguardGo), and `close()`
 * removes the namespace, its processes and the links, also after a failure. Traffic goes
 * only to the namespace this creates.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { UdpConn } from "../../runtimes/udp.ts";
import { toBase64 } from "../../src/crypto/index.ts";
import type { Tun } from "../../src/net/tun.ts";
import type { Runtime } from "../../src/runtime.ts";
import { Device } from "../../src/tunnel/device.ts";
import { createTestNetwork, sh, type TestHost, type TestNetwork } from "./netns.ts";
import { startWireguardGo, type WireguardGo } from "./wireguard-go.ts";

const WG_PORT = 51820;

export interface WgPeer {
  readonly network: TestNetwork;
  readonly host: TestHost;
  readonly wg: WireguardGo;
  readonly device: Device;
  readonly tun: Tun;
  readonly conn: UdpConn;
  /** weft's overlay address (the Tun's), and wireguard-go's in the namespace. */
  readonly weftOverlay: string;
  readonly wgOverlay: string;
  readonly logs: string[];
  /** Removes everything; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Starts wireguard-go in a new namespace and a weft Device on `makeTun(weftOverlay)`,
 * peered with each other (weft's overlay /32 on wireguard-go's side, wireguard-go's /32
 * on weft's).
 */
export async function startWgPeer(
  runtime: Runtime,
  label: string,
  makeTun: (weftOverlay: string) => Promise<Tun> | Tun,
): Promise<WgPeer> {
  const crypto = runtime.crypto;
  const network = createTestNetwork(label);
  const undo: (() => Promise<void> | void)[] = [() => network.cleanup()];
  const close = async () => {
    for (const step of undo.splice(0).reverse()) {
      try {
        await step();
      } catch {
        // best effort: the namespace goes anyway
      }
    }
  };
  try {
    const host = network.addHost("wg");
    const subnet = host.address.split(".")[2];
    const weftOverlay = `10.214.${subnet}.1`;
    const wgOverlay = `10.214.${subnet}.2`;
    const weftKey = crypto.generatePrivateKey();
    const wgKey = crypto.generatePrivateKey();
    const conn = (await runtime.listenUdp({ address: host.peerAddress, port: 0 })) as UdpConn;
    undo.push(() => conn.close());
    const wg = await startWireguardGo(host, {
      privateKey: toBase64(wgKey),
      listenPort: WG_PORT,
      interfaceAddress: `${wgOverlay}/24`,
      peer: {
        publicKey: toBase64(crypto.publicKey(weftKey)),
        allowedIps: `${weftOverlay}/32`,
        endpoint: `${host.peerAddress}:${conn.localPort}`,
      },
    });
    undo.push(() => wg.stop());
    const tun = await makeTun(weftOverlay);
    undo.push(() => tun.close());
    const logs: string[] = [];
    const device = new Device({
      crypto,
      clock: runtime.clock,
      conn,
      tun,
      privateKey: weftKey,
      log: (level, message) => {
        logs.push(`${level}: ${message}`);
        if (logs.length > 200) logs.shift();
      },
    });
    undo.push(() => device.close());
    device.addPeer({
      publicKey: crypto.publicKey(wgKey),
      allowedIps: [{ address: new Uint8Array(wgOverlay.split(".").map(Number)), prefixLength: 32 }],
      endpoint: { address: host.address, port: WG_PORT },
    });
    return { network, host, wg, device, tun, conn, weftOverlay, wgOverlay, logs, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A file of `bytes` random bytes in a new temporary directory, with its sha256. */
export interface RandomFile {
  readonly path: string;
  readonly bytes: Uint8Array;
  readonly sha256: string;
  remove(): void;
}

export function randomFile(size: number): RandomFile {
  const dir = mkdtempSync(join(tmpdir(), "weft-netstack-"));
  const path = join(dir, "payload.bin");
  const bytes = new Uint8Array(randomBytes(size));
  writeFileSync(path, bytes);
  return {
    path,
    bytes,
    sha256: sha256(bytes),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The Node executable for helper scripts, whichever runtime runs the caller. */
export function nodeExecutable(runtime: Runtime): string {
  return runtime.name === "node" ? process.execPath : "node";
}

export interface FileServer {
  readonly port: number;
  stop(): void;
}

/** Node's http server in `host`'s namespace serving `file` (any path) on `address:port`. */
export async function startFileServer(
  runtime: Runtime,
  host: TestHost,
  address: string,
  port: number,
  file: string,
): Promise<FileServer> {
  const script = `
const http = require("node:http"), fs = require("node:fs");
const file = ${JSON.stringify(file)};
const server = http.createServer((req, res) => {
  const size = fs.statSync(file).size;
  res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": size });
  fs.createReadStream(file, { highWaterMark: 256 * 1024 }).pipe(res);
});
server.listen(${port}, ${JSON.stringify(address)}, () => console.log("ready"));
`;
  const child: ChildProcess = spawn(
    "ip",
    ["netns", "exec", host.namespace, nodeExecutable(runtime), "-e", script],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d;
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d;
  });
  const stop = () => {
    child.kill("SIGKILL");
  };
  const deadline = Date.now() + 10_000;
  while (!output.includes("ready")) {
    if (Date.now() > deadline || child.exitCode !== null) {
      stop();
      throw new Error(`the file server did not start: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { port, stop };
}

export interface CurlResult {
  readonly sha256: string;
  readonly bytes: number;
  readonly seconds: number;
}

/**
 * `curl [curlArgs] URL | sha256sum` (in `namespace`, or in the root namespace when undefined),
 * without blocking the event loop, bounded by `maxSeconds`. Rejects with curl's message
 * when it fails.
 */
export function curlSha256(
  url: string,
  namespace: string | undefined,
  maxSeconds: number,
  curlArgs: readonly string[] = [],
): Promise<CurlResult> {
  const extra = curlArgs.map((arg) => JSON.stringify(arg)).join(" ");
  const pipeline = `set -o pipefail; curl -sS --fail --max-time ${maxSeconds} ${extra} -w '%{size_download}\\n' -o >(sha256sum >&2) ${JSON.stringify(url)}`;
  const command = namespace === undefined ? "bash" : "ip";
  const args =
    namespace === undefined
      ? ["-c", pipeline]
      : ["netns", "exec", namespace, "bash", "-c", pipeline];
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    child.on("close", (code) => {
      const seconds = (performance.now() - start) / 1000;
      const hash = /\b([0-9a-f]{64})\b/.exec(stderr)?.[1];
      if (code !== 0 || hash === undefined) {
        reject(new Error(`curl ${url} failed (exit ${code}): ${stderr.trim()} ${stdout.trim()}`));
        return;
      }
      resolve({ sha256: hash, bytes: Number(stdout.trim()), seconds });
    });
  });
}

/**
 * Random loss of `percent` % of the packets in each direction on `host`'s veth: netem on
 * both ends where the kernel has it, else iptables' statistic match inside the
 * namespace (a kernel without sch_netem, as some containers). Goes with the namespace.
 * Returns how it was done, for the log.
 */
export function addLoss(host: TestHost, percent: number): string {
  const inside = interfaceWith(host.address, host.namespace);
  const outside = interfaceWith(host.peerAddress, undefined);
  try {
    host.exec("tc", ["qdisc", "add", "dev", inside, "root", "netem", "loss", `${percent}%`]);
    sh("tc", ["qdisc", "add", "dev", outside, "root", "netem", "loss", `${percent}%`]);
    return `netem loss ${percent}% on ${inside} and ${outside}`;
  } catch {
    try {
      host.exec("tc", ["qdisc", "del", "dev", inside, "root"]);
    } catch {
      // there was none
    }
  }
  const probability = String(percent / 100);
  for (const [chain, flag] of [
    ["INPUT", "-i"],
    ["OUTPUT", "-o"],
  ] as const) {
    host.exec("iptables", [
      "-A",
      chain,
      flag,
      inside,
      "-m",
      "statistic",
      "--mode",
      "random",
      "--probability",
      probability,
      "-j",
      "DROP",
    ]);
  }
  return `iptables statistic drop ${percent}% each way on ${inside} (no netem in this kernel)`;
}

/** The interface that holds `address`, in `namespace` or the root namespace. */
function interfaceWith(address: string, namespace: string | undefined): string {
  const args = ["-o", "-4", "addr", "show"];
  const output =
    namespace === undefined
      ? sh("ip", args)
      : sh("ip", ["netns", "exec", namespace, "ip", ...args]);
  for (const line of output.split("\n")) {
    const match = /^\d+:\s+(\S+)\s+inet\s+(\S+)\//.exec(line);
    if (match && match[2] === address) return match[1]!.split("@")[0]!;
  }
  throw new Error(`no interface holds ${address}`);
}
