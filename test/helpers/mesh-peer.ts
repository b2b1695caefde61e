/**
 * One mesh peer in its own process, on a real UDP socket, driven by its parent over JSON
 * lines: the host of the netns test and of the loopback part of `bench/mesh.ts`.
 *
 *   node --import tsx test/helpers/mesh-peer.ts '<config>'   (or deno run -A, or bun)
 *
 * The config (`MeshPeerConfig`) is the first argument, or else the first line of stdin.
 * Then each stdin line is a command (`MeshPeerCommand`), answered by one stdout line
 * `{"id", "ok": true, ...}` or `{"id", "error"}`; stdout also carries events: `ready` once
 * the socket is bound, and `datagram` for each one received on a port not being counted.
 * The process exits on `close` or when stdin ends. Logs go to stderr.
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { loadRuntime } from "../../runtimes/index.ts";
import { fromBase64, toBase64 } from "../../src/crypto/index.ts";
import { Mesh } from "../../src/mesh/mesh.ts";
import { formatStatus } from "../../src/mesh/status.ts";
import type { Endpoint, PacketConn } from "../../src/net/packet-conn.ts";

export interface MeshPeerConfig {
  /** Base64, as `wg genkey` prints it. */
  readonly privateKey: string;
  readonly nickname: string;
  readonly bind: { readonly address: string; readonly port?: number };
  readonly advertise?: readonly Endpoint[];
  readonly peers?: readonly { readonly publicKey: string; readonly endpoint?: Endpoint }[];
  /** The mesh secret, base64. */
  readonly presharedKey?: string;
  readonly connectionLimit?: number;
  /** Log lines at these levels go to stderr (default: warn only). */
  readonly logLevels?: readonly string[];
}

export type MeshPeerCommand = { readonly id?: number } & (
  | { readonly cmd: "status" }
  | { readonly cmd: "send"; readonly to: string; readonly port: number; readonly data: string }
  | { readonly cmd: "addPeer"; readonly publicKey: string; readonly endpoint?: Endpoint }
  /** Datagrams to `port` are counted from now on instead of printed (for floods). */
  | { readonly cmd: "count"; readonly port: number }
  | { readonly cmd: "counts"; readonly port: number }
  /** Sends `count` datagrams of `bytes` bytes as fast as the event loop and socket allow. */
  | {
      readonly cmd: "flood";
      readonly to: string;
      readonly port: number;
      readonly count: number;
      readonly bytes: number;
    }
  | { readonly cmd: "close" }
);

/** What a counted port received; times are this process's `performance.now()`. */
export interface PortCounts {
  datagrams: number;
  bytes: number;
  firstMs: number;
  lastMs: number;
}

/** Datagrams sent between yields to the event loop, and socket sends allowed in flight. */
const FLOOD_BATCH = 32;
const MAX_SENDS_IN_FLIGHT = 256;

/** A socket that counts what it was handed, so a flood can see the socket's backlog. */
function countingConn(udp: PacketConn): PacketConn & { inFlight(): number } {
  let attempted = 0;
  const counters = () =>
    (udp as { counters?: () => { sent: number; sendErrors: number } }).counters?.();
  return {
    get localPort() {
      return udp.localPort;
    },
    send(data, to) {
      attempted++;
      udp.send(data, to);
    },
    onReceive: (handler) => udp.onReceive(handler),
    close: () => udp.close(),
    inFlight() {
      const c = counters();
      return c ? attempted - c.sent - c.sendErrors : 0;
    },
  };
}

function write(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const configText = process.argv[2] ?? (await lines.next()).value;
  if (typeof configText !== "string") throw new Error("Expected a config as argument or on stdin");
  const config = JSON.parse(configText) as MeshPeerConfig;

  const runtime = await loadRuntime();
  const conn = countingConn(await runtime.listenUdp(config.bind));
  const logLevels = new Set(config.logLevels ?? ["warn"]);
  const mesh = new Mesh({
    crypto: runtime.crypto,
    clock: runtime.clock,
    conn,
    privateKey: fromBase64(config.privateKey),
    nickname: config.nickname,
    advertise: config.advertise,
    presharedKey: config.presharedKey ? fromBase64(config.presharedKey) : undefined,
    connectionLimit: config.connectionLimit,
    log: (level, message) => {
      if (logLevels.has(level)) process.stderr.write(`${config.nickname} ${level}: ${message}\n`);
    },
  });
  for (const peer of config.peers ?? [])
    mesh.addPeer({ publicKey: fromBase64(peer.publicKey), endpoint: peer.endpoint });

  const counted = new Map<number, PortCounts>();
  mesh.onDatagram((from, port, data, info) => {
    const counts = counted.get(port);
    if (!counts) {
      write({ event: "datagram", from, port, data: toBase64(data), broadcast: info.broadcast });
      return;
    }
    const now = performance.now();
    if (counts.datagrams === 0) counts.firstMs = now;
    counts.lastMs = now;
    counts.datagrams++;
    counts.bytes += data.length;
  });

  async function flood(to: string, port: number, count: number, bytes: number) {
    const data = new Uint8Array(bytes).fill(0xa5);
    const start = performance.now();
    let sent = 0;
    let refused = 0;
    while (sent + refused < count) {
      for (let i = 0; i < FLOOD_BATCH && sent + refused < count; i++) {
        if (mesh.sendDatagram(to, port, data)) sent++;
        else refused++;
      }
      // Let the socket drain (and the peer's answers in) before the next batch.
      do await yieldToLoop();
      while (conn.inFlight() > MAX_SENDS_IN_FLIGHT);
    }
    return { sent, refused, ms: performance.now() - start };
  }

  async function handle(command: MeshPeerCommand): Promise<Record<string, unknown>> {
    switch (command.cmd) {
      case "status": {
        const status = mesh.status();
        return { status, table: formatStatus(status) };
      }
      case "send":
        return { sent: mesh.sendDatagram(command.to, command.port, fromBase64(command.data)) };
      case "addPeer":
        mesh.addPeer({ publicKey: fromBase64(command.publicKey), endpoint: command.endpoint });
        return {};
      case "count":
        counted.set(command.port, { datagrams: 0, bytes: 0, firstMs: 0, lastMs: 0 });
        return {};
      case "counts":
        return { counts: counted.get(command.port) };
      case "flood":
        return flood(command.to, command.port, command.count, command.bytes);
      case "close":
        await mesh.close();
        return {};
    }
  }

  write({ event: "ready", publicKey: mesh.key, port: conn.localPort, runtime: runtime.name });
  for (;;) {
    const next = await lines.next();
    if (next.done) break;
    if (next.value.trim() === "") continue;
    let command: MeshPeerCommand;
    try {
      command = JSON.parse(next.value) as MeshPeerCommand;
    } catch {
      write({ error: `not JSON: ${next.value.slice(0, 80)}` });
      continue;
    }
    try {
      write({ id: command.id, ok: true, ...(await handle(command)) });
    } catch (error) {
      write({ id: command.id, error: error instanceof Error ? error.message : String(error) });
    }
    if (command.cmd === "close") break;
  }
  await mesh.close();
  process.exit(0);
}

await main();
