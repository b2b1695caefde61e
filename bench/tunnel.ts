/**
 * Tunnel data path on this runtime: two Devices in two processes (this one and a child of
 * the same runtime) joined by loopback UDP on 127.0.0.1, each with an in-memory Tun.
 *
 *   parent (sender)                                   child (receiver), same runtime
 *   BenchTun.inject -> Device -> UDP 127.0.0.1 ---->  UDP -> Device -> BenchTun (count)
 *          ^                                                               | echo mode:
 *          +-------------- Device <- UDP <------------ Device <------------+ swap, inject
 *
 * Per crypto provider (this runtime's native fast path, and noble) it measures:
 * 1. one-way throughput of 1420-byte IPv4/UDP packets at the receiver's Tun, with loss;
 * 2. completed handshakes per second between many initiators and one responder;
 * 3. ping-pong round trips through the tunnel, against the same over plain loopback UDP;
 * 4. the device alone, without sockets (send and receive paths), to split the cost;
 * and compares throughput with bench/results/crypto-<runtime>.json (`npm run bench:crypto`).
 * Writes bench/results/tunnel-<runtime>.json.
 *
 * npm run bench:tunnel    (runs it on Node, Deno and Bun in turn)
 *
 * The parent talks to the child in JSON lines over its stdin and stdout; the child exits
 * when its stdin closes, and the parent kills it on exit, on SIGINT/SIGTERM and on failure.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { loadRuntime } from "../runtimes/index.ts";
import type { Clock } from "../src/clock.ts";
import { type Crypto, fromBase64, nobleCrypto, toBase64 } from "../src/crypto/index.ts";
import type { Endpoint, PacketConn, ReceiveHandler } from "../src/net/packet-conn.ts";
import type { PacketHandler, Tun } from "../src/net/tun.ts";
import type { Runtime } from "../src/runtime.ts";
import { Device } from "../src/tunnel/device.ts";
import { internetChecksum, udpPacket } from "../test/helpers/packets.ts";
import { gitSource, median, opsPerSecond, RESULTS_DIR, writeResult } from "./harness.ts";

const CHILD_FLAG = "--tunnel-bench-child";
const LOOPBACK = "127.0.0.1";
/** WireGuard's default MTU: the inner packets fill it, so no padding is added. */
const PACKET_BYTES = 1420;

/** A PACKET_BYTES-long IPv4/UDP packet from the sender's overlay address to `port` on the receiver's. */
function benchPacket(port: number): Uint8Array {
  return udpPacket(
    SENDER_OVERLAY,
    RECEIVER_OVERLAY,
    40000,
    port,
    new Uint8Array(PACKET_BYTES - 28).fill(0xa5),
  );
}
const SENDER_OVERLAY = "10.9.0.1";
const RECEIVER_OVERLAY = "10.9.0.2";

const THROUGHPUT_WARMUP_MS = 1000;
const THROUGHPUT_RUNS = 5;
const THROUGHPUT_RUN_MS = 2500;
/** After the sender stops, time for what is in flight to arrive before counting. */
const DRAIN_MS = 300;
/** Packets injected between yields to the event loop. */
const INJECT_BATCH = 32;
/** Sends handed to the socket but not yet completed, above which the sender waits. */
const MAX_SENDS_IN_FLIGHT = 256;

const HANDSHAKE_INITIATORS = 256;
const HANDSHAKES_IN_FLIGHT = 32;
const HANDSHAKE_WARMUP_MS = 1000;
const HANDSHAKE_RUNS = 5;
const HANDSHAKE_RUN_MS = 1500;
/**
 * Least time between two initiations of one initiator: the responder consumes one per
 * peer per 20 ms (HANDSHAKE_INITIATION_RATE_MS) and needs a strictly newer TAI64N
 * timestamp, whose resolution is 2^24 ns (16.8 ms).
 */
const INITIATOR_SPACING_MS = 25;
/** A handshake not completed by then counts as lost and frees its slot. */
const HANDSHAKE_LOST_AFTER_MS = 1000;
/** What connect() waits between initiations per peer (REKEY_TIMEOUT), skipped per handshake. */
const REKEY_TIMEOUT_SKIP_MS = 5000;

const PING_WARMUP = 300;
const PINGS = 3000;
const PING_TIMEOUT_MS = 1000;

const DEVICE_PATH_MESSAGES = 20000;
/** Messages sealed, then fed to the receiver, at a time (about 360 KB: they stay in cache). */
const DEVICE_PATH_BATCH = 250;
const DEVICE_PATH_RUNS = 3;

/** The whole run is abandoned (children killed) after this long: something is stuck. */
const WATCHDOG_MS = 5 * 60_000;

type ProviderName = "native" | "noble";

// ---- shared pieces ----------------------------------------------------------------------

/**
 * A Tun whose host side is the benchmark. Unlike `ChannelTun` it keeps nothing: it counts
 * what the device writes (ChannelTun records every packet, which at line rate would fill
 * memory) and hands injected packets to the device without a copy, as a TUN read into a
 * fresh buffer would.
 */
class BenchTun implements Tun {
  readonly name = "bench0";
  readonly mtuBytes = PACKET_BYTES;
  packets = 0;
  bytes = 0;
  firstMs = 0;
  lastMs = 0;
  #handler: PacketHandler | undefined;
  #listener: ((packet: Uint8Array) => void) | undefined;

  write(packet: Uint8Array): void {
    const now = performance.now();
    if (this.packets === 0) this.firstMs = now;
    this.lastMs = now;
    this.packets++;
    this.bytes += packet.length;
    this.#listener?.(packet);
  }

  onPacket(handler: PacketHandler): void {
    this.#handler = handler;
  }

  /** The host sends `packet` into the device. */
  inject(packet: Uint8Array): void {
    this.#handler?.(packet);
  }

  /** Called with each packet the device writes, valid only during the call. */
  onWrite(listener: ((packet: Uint8Array) => void) | undefined): void {
    this.#listener = listener;
  }

  reset(): void {
    this.packets = 0;
    this.bytes = 0;
    this.firstMs = 0;
    this.lastMs = 0;
  }

  close(): Promise<void> {
    this.#handler = undefined;
    return Promise.resolve();
  }
}

/** Running totals that the runtimes' UDP adapters offer beside `PacketConn` (optional here). */
interface SocketCounters {
  readonly sent: number;
  readonly sendErrors: number;
  readonly received: number;
}

/** The counters of `conn` when its adapter keeps them. */
function socketCounters(conn: PacketConn): SocketCounters | undefined {
  const counted = conn as PacketConn & { counters?: () => SocketCounters };
  return typeof counted.counters === "function" ? counted.counters() : undefined;
}

/** This runtime's UDP socket on 127.0.0.1 (`runtime.listenUdp`: what weft itself uses). */
function listenLoopback(runtime: Runtime): Promise<PacketConn> {
  return runtime.listenUdp({ address: LOOPBACK });
}

/** A UDP PacketConn that also counts sends handed to it, so the sender can see its backlog. */
class CountingConn implements PacketConn {
  readonly udp: PacketConn;
  attempted = 0;

  constructor(udp: PacketConn) {
    this.udp = udp;
  }

  get localPort(): number {
    return this.udp.localPort;
  }

  send(data: Uint8Array, to: Endpoint): void {
    this.attempted++;
    this.udp.send(data, to);
  }

  onReceive(handler: ReceiveHandler): void {
    this.udp.onReceive(handler);
  }

  /** Sends not yet completed by the socket (0 when the adapter does not count them). */
  inFlight(): number {
    const counters = socketCounters(this.udp);
    return counters ? this.attempted - counters.sent - counters.sendErrors : 0;
  }

  close(): Promise<void> {
    return this.udp.close();
  }
}

function providerCrypto(runtime: Runtime, provider: ProviderName): Crypto {
  return provider === "noble" ? nobleCrypto : runtime.crypto;
}

function ipv4(text: string): Uint8Array {
  return new Uint8Array(text.split(".").map(Number));
}

/** User plus system CPU time of this process in milliseconds, or undefined where unsupported. */
function cpuMs(): number | undefined {
  try {
    const usage = process.cpuUsage();
    return (usage.user + usage.system) / 1000;
  } catch {
    return undefined;
  }
}

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function diffCounts(
  after: Record<string, number>,
  before: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [reason, count] of Object.entries(after)) {
    const delta = count - (before[reason] ?? 0);
    if (delta !== 0) out[reason] = delta;
  }
  return out;
}

/** Drop counts of several devices added up by reason. */
function totalDrops(devices: Device[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const device of devices) {
    for (const [reason, count] of Object.entries(device.drops())) {
      out[reason] = (out[reason] ?? 0) + count;
    }
  }
  return out;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

function round(value: number, digits = 0): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// ---- the child: the receiving / echoing / responding Device -----------------------------

interface OpenRequest {
  op: "open";
  provider: ProviderName;
  /** Echo every packet the device delivers back through the Tun, addresses swapped. */
  echo: boolean;
  /** Responder for the handshake benchmark: never demand cookies. */
  neverUnderLoad: boolean;
  peers: Array<{ publicKey: string; allowedIp?: string; endpoint?: Endpoint }>;
}

type ChildRequest =
  | OpenRequest
  | { op: "reset" }
  | { op: "stats" }
  | { op: "udpEcho" }
  | { op: "close" };

interface ChildStats {
  packets: number;
  bytes: number;
  firstMs: number;
  lastMs: number;
  udpReceived: number | undefined;
  drops: Record<string, number>;
  handshakesCompleted: number;
  cpuMs: number | undefined;
}

async function runChild(): Promise<void> {
  const runtime = await loadRuntime();
  let current: { device: Device; conn: PacketConn; tun: BenchTun } | undefined;
  let echoConn: PacketConn | undefined;

  async function closeAll(): Promise<void> {
    current?.device.close();
    await current?.conn.close();
    await current?.tun.close();
    current = undefined;
    await echoConn?.close();
    echoConn = undefined;
  }

  async function handle(request: ChildRequest): Promise<unknown> {
    switch (request.op) {
      case "open": {
        await closeAll();
        const crypto = providerCrypto(runtime, request.provider);
        const conn = await listenLoopback(runtime);
        const tun = new BenchTun();
        const privateKey = crypto.generatePrivateKey();
        const device = new Device({
          crypto,
          clock: runtime.clock,
          conn,
          tun,
          privateKey,
          underLoadHandshakesPerSecond: request.neverUnderLoad
            ? Number.POSITIVE_INFINITY
            : undefined,
        });
        for (const peer of request.peers) {
          device.addPeer({
            publicKey: fromBase64(peer.publicKey),
            allowedIps: peer.allowedIp ? [{ address: ipv4(peer.allowedIp), prefixLength: 32 }] : [],
            endpoint: peer.endpoint,
          });
        }
        if (request.echo) tun.onWrite((packet) => echo(tun, packet));
        current = { device, conn, tun };
        return { publicKey: toBase64(crypto.publicKey(privateKey)), port: conn.localPort };
      }
      case "reset":
        current?.tun.reset();
        return {};
      case "stats": {
        if (!current) throw new Error("No device is open");
        const { tun, conn, device } = current;
        const stats: ChildStats = {
          packets: tun.packets,
          bytes: tun.bytes,
          firstMs: tun.firstMs,
          lastMs: tun.lastMs,
          udpReceived: socketCounters(conn)?.received,
          drops: device.drops(),
          handshakesCompleted: sum(device.peers().map((p) => p.handshakesCompleted)),
          cpuMs: cpuMs(),
        };
        return stats;
      }
      case "udpEcho": {
        await echoConn?.close();
        const conn = await listenLoopback(runtime);
        conn.onReceive((data, from) => conn.send(data, from));
        echoConn = conn;
        return { port: conn.localPort };
      }
      case "close":
        await closeAll();
        return {};
    }
  }

  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const { id, request } = JSON.parse(line) as { id: number; request: ChildRequest };
    handle(request).then(
      (result) => process.stdout.write(`${JSON.stringify({ id, result })}\n`),
      (error: unknown) =>
        process.stdout.write(
          `${JSON.stringify({ id, error: error instanceof Error ? error.stack : String(error) })}\n`,
        ),
    );
  });
  // The parent is gone (or done): release the sockets and leave.
  lines.on("close", () => {
    closeAll().finally(() => process.exit(0));
  });
  process.stdout.write(`${JSON.stringify({ id: 0, result: { ready: runtime.name } })}\n`);
}

/** The host answering: the same packet back with source and destination (address, port) swapped. */
function echo(tun: BenchTun, packet: Uint8Array): void {
  const reply = packet.slice();
  reply.copyWithin(12, 16, 20);
  reply.set(packet.subarray(12, 16), 16);
  const udp = (packet[0]! & 15) * 4;
  reply.copyWithin(udp, udp + 2, udp + 4);
  reply.set(packet.subarray(udp, udp + 2), udp + 2);
  // Both checksums cover the swapped words as a sum, so they stay valid. Answer after the
  // device's receive call returns, as a host's stack would.
  queueMicrotask(() => tun.inject(reply));
}

// ---- the parent: spawning and talking to the child --------------------------------------

class ChildLink {
  readonly #process: ChildProcess;
  readonly #pending = new Map<
    number,
    { resolve(value: unknown): void; reject(error: Error): void }
  >();
  #nextId = 1;
  #exited: string | undefined;

  constructor(runtimeName: string) {
    const script = fileURLToPath(import.meta.url);
    const args =
      runtimeName === "deno"
        ? ["run", "-A", script, CHILD_FLAG]
        : runtimeName === "bun"
          ? [script, CHILD_FLAG]
          : [...process.execArgv, script, CHILD_FLAG];
    this.#process = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
    const kill = () => this.kill();
    process.on("exit", kill);
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      process.on(signal, () => {
        kill();
        process.exit(130);
      });
    }
    this.#pending.set(0, { resolve: () => {}, reject: () => {} });
    createInterface({ input: this.#process.stdout! }).on("line", (line) => {
      let message: { id: number; result?: unknown; error?: string };
      try {
        message = JSON.parse(line);
      } catch {
        console.error(`child: ${line}`);
        return;
      }
      const waiter = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.error !== undefined) waiter?.reject(new Error(`child: ${message.error}`));
      else waiter?.resolve(message.result);
    });
    this.#process.on("error", (error) => {
      this.#exited = `child failed: ${error.message}`;
      for (const waiter of this.#pending.values()) waiter.reject(new Error(this.#exited));
      this.#pending.clear();
    });
    this.#process.on("exit", (code, signal) => {
      this.#exited = `child exited (code ${code}, signal ${signal})`;
      for (const waiter of this.#pending.values()) waiter.reject(new Error(this.#exited));
      this.#pending.clear();
    });
  }

  /** Resolves once the child has loaded its runtime. */
  ready(): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("Child did not start within 30 s")), 30_000);
      this.#pending.set(0, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject,
      });
    });
  }

  request<T>(request: ChildRequest, timeoutMs = 30_000): Promise<T> {
    if (this.#exited) return Promise.reject(new Error(this.#exited));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`Child did not answer "${request.op}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#process.stdin!.write(`${JSON.stringify({ id, request })}\n`);
    });
  }

  kill(): void {
    if (this.#process.exitCode === null && this.#process.signalCode === null) {
      this.#process.kill("SIGKILL");
    }
  }

  /** Closes stdin (the child then exits) and kills it if it has not within a second. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#process.once("exit", () => resolve()));
    this.#process.stdin!.end();
    await Promise.race([exited, sleep(1000)]);
    this.kill();
  }
}

interface Side {
  device: Device;
  conn: CountingConn;
  tun: BenchTun;
}

/** A sender Device here and a receiver (or echo) Device in the child, handshake done. */
async function openPair(
  runtime: Runtime,
  child: ChildLink,
  provider: ProviderName,
  echoMode: boolean,
): Promise<Side> {
  const crypto = providerCrypto(runtime, provider);
  const privateKey = crypto.generatePrivateKey();
  const conn = new CountingConn(await listenLoopback(runtime));
  const remote = await child.request<{ publicKey: string; port: number }>({
    op: "open",
    provider,
    echo: echoMode,
    neverUnderLoad: false,
    peers: [
      {
        publicKey: toBase64(crypto.publicKey(privateKey)),
        allowedIp: SENDER_OVERLAY,
        endpoint: { address: LOOPBACK, port: conn.localPort },
      },
    ],
  });
  const tun = new BenchTun();
  const device = new Device({ crypto, clock: runtime.clock, conn, tun, privateKey });
  const remoteKey = fromBase64(remote.publicKey);
  device.addPeer({
    publicKey: remoteKey,
    allowedIps: [{ address: ipv4(RECEIVER_OVERLAY), prefixLength: 32 }],
    endpoint: { address: LOOPBACK, port: remote.port },
  });
  device.connect(remoteKey);
  const start = performance.now();
  while (device.peers()[0]!.handshakesCompleted === 0) {
    if (performance.now() - start > 5000) throw new Error("Handshake did not complete in 5 s");
    await sleep(5);
  }
  await sleep(20); // the confirming keepalive makes the keypair current on the receiver
  return { device, conn, tun };
}

async function closeSide(side: Side, child: ChildLink): Promise<void> {
  side.device.close();
  await side.conn.close();
  await child.request({ op: "close" });
}

// ---- 1. one-way throughput ----------------------------------------------------------------

interface ThroughputRun {
  seconds: number;
  injected: number;
  delivered: number;
  mbps: number;
  packetsPerSecond: number;
  lossPercent: number;
  /** Sent by the sender's socket but never received by the receiver's: loopback drops. */
  udpLost: number | undefined;
  senderDrops: Record<string, number>;
  receiverDrops: Record<string, number>;
  senderSendErrors: number | undefined;
  /** Host-wide /proc/net/snmp Udp RcvbufErrors during the run, where readable. */
  hostUdpRcvbufErrors: number | undefined;
  /** CPU use of each process over the run, as a fraction of one core. */
  senderCpu: number | undefined;
  receiverCpu: number | undefined;
}

/** Injects `packet` as fast as the sender goes, waiting whenever its socket is backlogged. */
async function blast(side: Side, packet: Uint8Array, ms: number): Promise<number> {
  let injected = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (side.conn.inFlight() <= MAX_SENDS_IN_FLIGHT) {
      for (let i = 0; i < INJECT_BATCH; i++) side.tun.inject(packet);
      injected += INJECT_BATCH;
    }
    await yieldToLoop();
  }
  return injected;
}

function udpRcvbufErrors(): number | undefined {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8")
      .split("\n")
      .filter((l) => l.startsWith("Udp:"));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/);
    const index = names.indexOf("RcvbufErrors");
    return index < 0 ? undefined : Number(values[index]);
  } catch {
    return undefined;
  }
}

async function throughputRun(
  side: Side,
  child: ChildLink,
  packet: Uint8Array,
  ms: number,
): Promise<ThroughputRun> {
  await child.request({ op: "reset" });
  const before = await child.request<ChildStats>({ op: "stats" });
  const senderBefore = socketCounters(side.conn.udp);
  const senderDropsBefore = side.device.drops();
  const snmpBefore = udpRcvbufErrors();
  const cpuBefore = cpuMs();
  const start = performance.now();
  const injected = await blast(side, packet, ms);
  const seconds = (performance.now() - start) / 1000;
  const cpuAfter = cpuMs();
  await sleep(DRAIN_MS);
  const after = await child.request<ChildStats>({ op: "stats" });
  const senderAfter = socketCounters(side.conn.udp);
  const snmpAfter = udpRcvbufErrors();
  const delivered = after.packets;
  const windowSeconds = (after.lastMs - after.firstMs) / 1000;
  const packetsPerSecond = delivered > 1 ? (delivered - 1) / windowSeconds : 0;
  const cpu = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : round((b - a) / 1000 / seconds, 2);
  return {
    seconds: round(seconds, 2),
    injected,
    delivered,
    mbps: round((packetsPerSecond * PACKET_BYTES * 8) / 1e6),
    packetsPerSecond: round(packetsPerSecond),
    lossPercent: round((100 * (injected - delivered)) / injected, 2),
    udpLost:
      senderBefore && senderAfter && after.udpReceived !== undefined
        ? senderAfter.sent - senderBefore.sent - (after.udpReceived - (before.udpReceived ?? 0))
        : undefined,
    senderDrops: diffCounts(side.device.drops(), senderDropsBefore),
    receiverDrops: diffCounts(after.drops, before.drops),
    senderSendErrors:
      senderBefore && senderAfter ? senderAfter.sendErrors - senderBefore.sendErrors : undefined,
    hostUdpRcvbufErrors:
      snmpBefore === undefined || snmpAfter === undefined ? undefined : snmpAfter - snmpBefore,
    senderCpu: cpu(cpuBefore, cpuAfter),
    // The receiver keeps working through the drain; its CPU share is over the send time.
    receiverCpu: cpu(before.cpuMs, after.cpuMs),
  };
}

async function measureThroughput(runtime: Runtime, child: ChildLink, provider: ProviderName) {
  const side = await openPair(runtime, child, provider, false);
  try {
    const packet = benchPacket(5201);
    await throughputRun(side, child, packet, THROUGHPUT_WARMUP_MS);
    const runs: ThroughputRun[] = [];
    for (let i = 0; i < THROUGHPUT_RUNS; i++) {
      const run = await throughputRun(side, child, packet, THROUGHPUT_RUN_MS);
      runs.push(run);
      console.error(
        `  ${provider} run ${i + 1}: ${run.mbps} Mbit/s, loss ${run.lossPercent}% (udp ${run.udpLost}), cpu ${run.senderCpu}/${run.receiverCpu}, drops ${JSON.stringify({ ...run.senderDrops, ...run.receiverDrops })}`,
      );
    }
    const medianOf = (pick: (r: ThroughputRun) => number | undefined) => {
      const values = runs.map(pick).filter((v): v is number => v !== undefined);
      return values.length ? median(values) : undefined;
    };
    return {
      provider,
      chacha20poly1305: providerCrypto(runtime, provider).implementations.chacha20poly1305,
      median: {
        mbps: medianOf((r) => r.mbps)!,
        packetsPerSecond: medianOf((r) => r.packetsPerSecond)!,
        lossPercent: medianOf((r) => r.lossPercent)!,
        udpLost: medianOf((r) => r.udpLost),
        senderCpu: medianOf((r) => r.senderCpu),
        receiverCpu: medianOf((r) => r.receiverCpu),
      },
      runs,
    };
  } finally {
    await closeSide(side, child);
  }
}

// ---- 2. handshakes per second -------------------------------------------------------------

/**
 * A Clock that can jump ahead: `Device.connect()` sends at most one initiation per peer
 * per REKEY_TIMEOUT (5 s), a guard against floods rather than a cost, so each initiator
 * skips 5 s before each handshake. Timers still run on real time.
 */
function skippingClock(base: Clock): Clock & { skip(ms: number): void } {
  let offsetMs = 0;
  return {
    now: () => base.now() + offsetMs,
    wallNow: () => base.wallNow(),
    setTimer: (delayMs, callback) => base.setTimer(delayMs, callback),
    skip(ms) {
      offsetMs += ms;
    },
  };
}

interface Initiator {
  device: Device;
  clock: ReturnType<typeof skippingClock>;
  lastStartMs: number;
  /** Start of the handshake in flight, or undefined when idle. */
  startedMs: number | undefined;
}

async function measureHandshakes(runtime: Runtime, child: ChildLink, provider: ProviderName) {
  const crypto = providerCrypto(runtime, provider);
  const keys = Array.from({ length: HANDSHAKE_INITIATORS }, () => crypto.generatePrivateKey());
  const conns = await Promise.all(keys.map(() => listenLoopback(runtime)));
  const responder = await child.request<{ publicKey: string; port: number }>(
    {
      op: "open",
      provider,
      echo: false,
      neverUnderLoad: true,
      peers: keys.map((k) => ({ publicKey: toBase64(crypto.publicKey(k)) })),
    },
    60_000,
  );
  const responderKey = fromBase64(responder.publicKey);

  let completed = 0;
  let lost = 0;
  const latenciesMs: number[] = [];
  const idle: Initiator[] = [];
  let inFlight = 0;
  let stopped = false;
  let pumpTimer: ReturnType<typeof setTimeout> | undefined;

  const initiators: Initiator[] = keys.map((privateKey, i) => {
    const clock = skippingClock(runtime.clock);
    const device = new Device({
      crypto,
      clock,
      conn: conns[i]!,
      tun: new BenchTun(),
      privateKey,
      onEvent: (event) => {
        if (event.type === "handshake-completed" && initiator.startedMs !== undefined) {
          latenciesMs.push(performance.now() - initiator.startedMs);
          completed++;
          finish(initiator);
        }
      },
    });
    device.addPeer({
      publicKey: responderKey,
      allowedIps: [],
      endpoint: { address: LOOPBACK, port: responder.port },
    });
    const initiator: Initiator = {
      device,
      clock,
      lastStartMs: Number.NEGATIVE_INFINITY,
      startedMs: undefined,
    };
    return initiator;
  });

  function finish(initiator: Initiator): void {
    initiator.startedMs = undefined;
    inFlight--;
    idle.push(initiator);
    queueMicrotask(pump);
  }

  /** Starts handshakes on idle initiators, oldest first, while fewer than the limit are in flight. */
  function pump(): void {
    if (stopped) return;
    const now = performance.now();
    for (const initiator of initiators) {
      if (
        initiator.startedMs !== undefined &&
        now - initiator.startedMs > HANDSHAKE_LOST_AFTER_MS
      ) {
        lost++;
        finish(initiator);
      }
    }
    while (inFlight < HANDSHAKES_IN_FLIGHT && idle.length > 0) {
      const next = idle[0]!;
      const waitMs = next.lastStartMs + INITIATOR_SPACING_MS - now;
      if (waitMs > 0) {
        pumpTimer ??= setTimeout(() => {
          pumpTimer = undefined;
          pump();
        }, waitMs);
        return;
      }
      idle.shift();
      next.lastStartMs = now;
      next.startedMs = now;
      inFlight++;
      next.clock.skip(REKEY_TIMEOUT_SKIP_MS);
      next.device.connect(responderKey);
    }
  }
  // A slow tick catches handshakes that will never complete.
  const watchdog = setInterval(pump, 100);

  try {
    idle.push(...initiators);
    const before = await child.request<ChildStats>({ op: "stats" });
    pump();
    await sleep(HANDSHAKE_WARMUP_MS);
    const runs: Array<{ perSecond: number; completed: number; seconds: number }> = [];
    for (let i = 0; i < HANDSHAKE_RUNS; i++) {
      const startCount = completed;
      const start = performance.now();
      await sleep(HANDSHAKE_RUN_MS);
      const seconds = (performance.now() - start) / 1000;
      const count = completed - startCount;
      runs.push({
        perSecond: round(count / seconds),
        completed: count,
        seconds: round(seconds, 2),
      });
    }
    stopped = true;
    await sleep(200);
    const after = await child.request<ChildStats>({ op: "stats" });
    const initiatorCompleted = sum(initiators.map((x) => x.device.peers()[0]!.handshakesCompleted));
    const sorted = [...latenciesMs].sort((a, b) => a - b);
    return {
      provider,
      x25519: crypto.implementations.x25519,
      medianPerSecond: median(runs.map((r) => r.perSecond)),
      runs,
      initiatorCompleted,
      responderCompleted: after.handshakesCompleted - before.handshakesCompleted,
      lost,
      responderDrops: diffCounts(after.drops, before.drops),
      initiatorDrops: totalDrops(initiators.map((x) => x.device)),
      latencyP50Ms: round(percentile(sorted, 50), 2),
      latencyP99Ms: round(percentile(sorted, 99), 2),
    };
  } finally {
    stopped = true;
    clearInterval(watchdog);
    if (pumpTimer) clearTimeout(pumpTimer);
    for (const x of initiators) x.device.close();
    await Promise.all(conns.map((c) => c.close()));
    await child.request({ op: "close" });
  }
}

// ---- 3. latency -------------------------------------------------------------------------

function summarize(samplesUs: number[]) {
  const sorted = [...samplesUs].sort((a, b) => a - b);
  return {
    p50Us: round(percentile(sorted, 50), 1),
    p99Us: round(percentile(sorted, 99), 1),
    samples: sorted.length,
  };
}

/**
 * Timed round trips, one at a time: `roundTrip(sequence)` sends one tagged with the
 * sequence number and resolves true when its echo is back (false after a timeout), so a
 * late echo of a lost ping is not taken for the next one.
 */
async function pingPong(roundTrip: (sequence: number) => Promise<boolean>) {
  const samplesUs: number[] = [];
  let lost = 0;
  for (let i = 0; i < PING_WARMUP + PINGS; i++) {
    const start = performance.now();
    const ok = await roundTrip(i & 0xffff);
    const us = (performance.now() - start) * 1000;
    if (!ok) lost++;
    else if (i >= PING_WARMUP) samplesUs.push(us);
  }
  return { ...summarize(samplesUs), lost };
}

function waitFor(register: (done: () => void) => void): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
    register(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function plainUdpLatency(runtime: Runtime, child: ChildLink) {
  const { port } = await child.request<{ port: number }>({ op: "udpEcho" });
  const conn = await listenLoopback(runtime);
  const data = new Uint8Array(PACKET_BYTES).fill(0xa5);
  const to = { address: LOOPBACK, port };
  try {
    return await pingPong((sequence) =>
      waitFor((done) => {
        data[0] = sequence >> 8;
        data[1] = sequence & 0xff;
        conn.onReceive((echoed) => {
          if (((echoed[0]! << 8) | echoed[1]!) === sequence) done();
        });
        conn.send(data, to);
      }),
    );
  } finally {
    await conn.close();
    await child.request({ op: "close" });
  }
}

async function tunnelLatency(runtime: Runtime, child: ChildLink, provider: ProviderName) {
  const side = await openPair(runtime, child, provider, true);
  const packet = benchPacket(7);
  try {
    return await pingPong((sequence) =>
      waitFor((done) => {
        setIpv4Identification(packet, sequence);
        side.tun.onWrite((echoed) => {
          if (((echoed[4]! << 8) | echoed[5]!) === sequence) done();
        });
        side.tun.inject(packet);
      }),
    );
  } finally {
    await closeSide(side, child);
  }
}

/** Sets the identification field of an IPv4 packet and its header checksum again. */
function setIpv4Identification(packet: Uint8Array, id: number): void {
  packet[4] = id >> 8;
  packet[5] = id & 0xff;
  packet[10] = 0;
  packet[11] = 0;
  const checksum = internetChecksum(packet.subarray(0, 20));
  packet[10] = checksum >> 8;
  packet[11] = checksum & 0xff;
}

// ---- 4. the device alone, without sockets -------------------------------------------------

/** Two PacketConns joined in this process; delivery is deferred so devices are not re-entered. */
function directConnPair(): [DirectConn, DirectConn] {
  const a = new DirectConn(1);
  const b = new DirectConn(2);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

class DirectConn implements PacketConn {
  readonly localPort: number;
  peer: DirectConn | undefined;
  handler: ReceiveHandler | undefined;
  /** When set, sends go here instead of to the peer. */
  capture: ((data: Uint8Array) => void) | undefined;

  constructor(port: number) {
    this.localPort = port;
  }

  send(data: Uint8Array): void {
    if (this.capture) {
      this.capture(data);
      return;
    }
    const copy = data.slice();
    const from = { address: LOOPBACK, port: this.localPort };
    queueMicrotask(() => this.peer?.handler?.(copy, from));
  }

  onReceive(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Packets per second through the sender's path (Tun -> AllowedIPs -> seal -> conn.send,
 * the send a no-op) and the receiver's (conn handler -> open -> replay -> AllowedIPs ->
 * Tun.write, the write a counter), each on one core with no I/O.
 */
async function measureDevicePath(runtime: Runtime, provider: ProviderName) {
  const crypto = providerCrypto(runtime, provider);
  const [connA, connB] = directConnPair();
  const keyA = crypto.generatePrivateKey();
  const keyB = crypto.generatePrivateKey();
  const tunA = new BenchTun();
  const tunB = new BenchTun();
  const a = new Device({ crypto, clock: runtime.clock, conn: connA, tun: tunA, privateKey: keyA });
  const b = new Device({ crypto, clock: runtime.clock, conn: connB, tun: tunB, privateKey: keyB });
  a.addPeer({
    publicKey: crypto.publicKey(keyB),
    allowedIps: [{ address: ipv4(RECEIVER_OVERLAY), prefixLength: 32 }],
    endpoint: { address: LOOPBACK, port: 2 },
  });
  b.addPeer({
    publicKey: crypto.publicKey(keyA),
    allowedIps: [{ address: ipv4(SENDER_OVERLAY), prefixLength: 32 }],
    endpoint: { address: LOOPBACK, port: 1 },
  });
  a.connect(crypto.publicKey(keyB));
  await sleep(50);
  if (b.peers()[0]!.handshakesCompleted === 0) throw new Error("In-process handshake failed");
  const packet = benchPacket(5201);

  connA.capture = () => {};
  const sendPerSecond = opsPerSecond(() => tunA.inject(packet));

  // Messages are sealed in small batches and fed at once, so they are in cache as a
  // datagram just copied from the kernel would be; only the feeding is timed.
  const receiveRates: number[] = [];
  const from = { address: LOOPBACK, port: 1 };
  const batch: Uint8Array[] = [];
  connA.capture = (data) => batch.push(data.slice());
  for (let run = 0; run <= DEVICE_PATH_RUNS; run++) {
    tunB.reset();
    let seconds = 0;
    for (let fed = 0; fed < DEVICE_PATH_MESSAGES; fed += DEVICE_PATH_BATCH) {
      batch.length = 0;
      for (let i = 0; i < DEVICE_PATH_BATCH; i++) tunA.inject(packet);
      const start = performance.now();
      for (const message of batch) connB.handler!(message, from);
      seconds += (performance.now() - start) / 1000;
    }
    if (tunB.packets !== DEVICE_PATH_MESSAGES) throw new Error("In-process receive lost packets");
    if (run > 0) receiveRates.push(DEVICE_PATH_MESSAGES / seconds); // run 0 warms up
  }
  a.close();
  b.close();
  const receivePerSecond = median(receiveRates);
  const mbps = (pps: number) => round((pps * PACKET_BYTES * 8) / 1e6);
  return {
    provider,
    sendPacketsPerSecond: round(sendPerSecond),
    sendMbps: mbps(sendPerSecond),
    receivePacketsPerSecond: round(receivePerSecond),
    receiveMbps: mbps(receivePerSecond),
  };
}

// ---- 5. the crypto limit ------------------------------------------------------------------

interface CryptoRow {
  bytes: number;
  sealMbps: number;
  openMbps: number;
}

function cryptoLimits(runtimeName: string): Map<string, CryptoRow> | undefined {
  try {
    const file = JSON.parse(
      readFileSync(join(RESULTS_DIR, `crypto-${runtimeName}.json`), "utf8"),
    ) as { results: Array<{ provider: string; chacha20poly1305: CryptoRow[] }> };
    const out = new Map<string, CryptoRow>();
    for (const r of file.results) {
      const row = r.chacha20poly1305.find((x) => x.bytes === PACKET_BYTES);
      if (row) out.set(r.provider, row);
    }
    return out;
  } catch {
    return undefined;
  }
}

// ---- main ---------------------------------------------------------------------------------

const PHASES = ["throughput", "handshakes", "latency", "device"] as const;
type Phase = (typeof PHASES)[number];

/** `--only=throughput,latency` and `--providers=native` narrow a run (for profiling). */
function option<T extends string>(name: string, all: readonly T[]): T[] {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (!arg) return [...all];
  const picked = arg.slice(name.length + 3).split(",");
  for (const p of picked) {
    if (!all.includes(p as T))
      throw new RangeError(`Expected --${name} from ${all.join(", ")}, got "${p}"`);
  }
  return picked as T[];
}

async function runParent(): Promise<void> {
  const phases = option<Phase>("only", PHASES);
  const providers = option<ProviderName>("providers", ["native", "noble"]);
  const complete = phases.length === PHASES.length && providers.length === 2;
  const runtime = await loadRuntime();
  const loadAverageAtStart = loadavg().map((x) => round(x, 2));
  if (loadAverageAtStart[0]! > 0.5) {
    console.error(
      `note: load average ${loadAverageAtStart[0]} before starting; other processes compete for the ${cpus().length} cores and the numbers will be lower and noisier`,
    );
  }
  const child = new ChildLink(runtime.name);
  const benchStart = performance.now();
  let phase = "starting the child";
  const watchdog = setTimeout(() => {
    console.error(`tunnel bench stuck for ${WATCHDOG_MS / 1000} s while ${phase}: giving up`);
    process.exit(1); // the exit handler kills the child
  }, WATCHDOG_MS);
  try {
    await child.ready();
    const throughput: Awaited<ReturnType<typeof measureThroughput>>[] = [];
    const handshakes: Awaited<ReturnType<typeof measureHandshakes>>[] = [];
    const tunnel: Array<Awaited<ReturnType<typeof tunnelLatency>> & LatencyDelta> = [];
    let plainUdp: Awaited<ReturnType<typeof plainUdpLatency>> | undefined;
    const devicePath: Awaited<ReturnType<typeof measureDevicePath>>[] = [];
    for (const provider of phases.includes("throughput") ? providers : []) {
      phase = `measuring throughput with ${provider}`;
      throughput.push(await measureThroughput(runtime, child, provider));
      console.error(`throughput ${provider}: ${throughput.at(-1)!.median.mbps} Mbit/s`);
    }
    for (const provider of phases.includes("handshakes") ? providers : []) {
      phase = `measuring handshakes with ${provider}`;
      handshakes.push(await measureHandshakes(runtime, child, provider));
      console.error(`handshakes ${provider}: ${handshakes.at(-1)!.medianPerSecond}/s`);
    }
    if (phases.includes("latency")) {
      phase = "measuring latency";
      plainUdp = await plainUdpLatency(runtime, child);
      for (const provider of providers) {
        const t = await tunnelLatency(runtime, child, provider);
        tunnel.push({
          provider,
          ...t,
          addedP50Us: round(t.p50Us - plainUdp.p50Us, 1),
          addedP99Us: round(t.p99Us - plainUdp.p99Us, 1),
        });
      }
    }
    for (const provider of phases.includes("device") ? providers : []) {
      phase = `measuring the device alone with ${provider}`;
      devicePath.push(await measureDevicePath(runtime, provider));
    }
    const versusCrypto = compareWithCrypto(runtime.name, throughput, devicePath);

    const result = {
      benchmark: "tunnel",
      runtime: runtime.name,
      runtimeVersion: runtime.version,
      date: new Date().toISOString(),
      source: gitSource(),
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model,
        loadAverageAtStart,
        loadAverageAtEnd: loadavg().map((x) => round(x, 2)),
      },
      method: describeMethod(runtime.name),
      throughput,
      handshakes,
      latency: { plainUdp, tunnel },
      devicePath,
      versusCrypto,
      elapsedSeconds: round((performance.now() - benchStart) / 1000, 1),
    };
    printTables(result);
    if (complete) {
      const path = writeResult(`tunnel-${runtime.name}`, result);
      console.log(`wrote ${path} in ${result.elapsedSeconds} s`);
    } else {
      console.log(
        `partial run (--only or --providers): ${result.elapsedSeconds} s, nothing written`,
      );
    }
  } finally {
    phase = "stopping the child";
    await child.stop();
    clearTimeout(watchdog);
  }
}

/** The commit measured, and whether the work tree had changes (others work in it too). */

interface LatencyDelta {
  provider: ProviderName;
  addedP50Us: number;
  addedP99Us: number;
}

interface VersusCrypto {
  provider: ProviderName;
  aeadSealMbps?: number;
  aeadOpenMbps?: number;
  tunnelFractionOfSeal?: number;
  tunnelFractionOfOpen?: number;
  /** Goal: the tunnel loses at most 40% to everything that is not the AEAD. */
  goalMet?: boolean;
  deviceSendFractionOfSeal?: number;
  deviceReceiveFractionOfOpen?: number;
}

function compareWithCrypto(
  runtimeName: string,
  throughput: Awaited<ReturnType<typeof measureThroughput>>[],
  devicePath: Awaited<ReturnType<typeof measureDevicePath>>[],
): VersusCrypto[] | string {
  const limits = cryptoLimits(runtimeName);
  if (!limits) return `no bench/results/crypto-${runtimeName}.json: run npm run bench:crypto`;
  const providers = new Set([...throughput, ...devicePath].map((x) => x.provider));
  return [...providers].map((provider) => {
    const row = limits.get(provider);
    const out: VersusCrypto = { provider };
    if (!row) return out;
    out.aeadSealMbps = row.sealMbps;
    out.aeadOpenMbps = row.openMbps;
    const t = throughput.find((x) => x.provider === provider);
    if (t) {
      out.tunnelFractionOfSeal = round(t.median.mbps / row.sealMbps, 3);
      out.tunnelFractionOfOpen = round(t.median.mbps / row.openMbps, 3);
      out.goalMet = t.median.mbps >= 0.6 * Math.min(row.sealMbps, row.openMbps);
    }
    const d = devicePath.find((x) => x.provider === provider);
    if (d) {
      out.deviceSendFractionOfSeal = round(d.sendMbps / row.sealMbps, 3);
      out.deviceReceiveFractionOfOpen = round(d.receiveMbps / row.openMbps, 3);
    }
    return out;
  });
}

function describeMethod(runtimeName: string): Record<string, string> {
  return {
    setup:
      "two Devices in two processes of this runtime (the bench and a child it spawns), joined by UDP on 127.0.0.1 through this runtime's adapter (runtime.listenUdp), each with an in-memory Tun that counts (no copies kept); keys and ports exchanged as JSON lines over the child's stdin/stdout; each process runs the device on one thread, so each side has about one core (helper threads, e.g. GC, can push CPU above 1.0)",
    throughput: `sender injects one pre-built ${PACKET_BYTES}-byte IPv4/UDP packet repeatedly, in batches of ${INJECT_BATCH}, yielding to the event loop (setImmediate) after each batch and waiting while more than ${MAX_SENDS_IN_FLIGHT} socket sends are incomplete; receiver counts packets written to its Tun; rate = (packets - 1) / (last - first arrival) in the receiver; ${THROUGHPUT_RUNS} runs of ${THROUGHPUT_RUN_MS} ms after a ${THROUGHPUT_WARMUP_MS} ms warm-up, median; loss = 1 - delivered / injected; udpLost = sent by the sender's socket - received by the receiver's socket (loopback UDP drops when the receiver's socket buffer fills because the receiver is slower than the sender; hostUdpRcvbufErrors is the kernel's count, host-wide); CPU = user + system time of each process over the run as a fraction of one core`,
    handshakes: `${HANDSHAKE_INITIATORS} initiator Devices in the bench (one socket each) against one responder Device in the child that has them all as peers and never goes under load (no cookie round trips); at most ${HANDSHAKES_IN_FLIGHT} handshakes in flight, each started by connect() on the longest-idle initiator at least ${INITIATOR_SPACING_MS} ms after its previous one (the responder consumes one initiation per peer per 20 ms and needs a strictly newer TAI64N timestamp); connect() sends at most one initiation per peer per REKEY_TIMEOUT, so each initiator's clock skips ${REKEY_TIMEOUT_SKIP_MS} ms before each connect() (timers still run on real time); a handshake counts when the initiator has consumed the response (it then sends the confirming keepalive, which the responder counts too: initiatorCompleted and responderCompleted agree); rate over ${HANDSHAKE_RUNS} windows of ${HANDSHAKE_RUN_MS} ms after ${HANDSHAKE_WARMUP_MS} ms warm-up, median; each side is one core, so the rate is the slower side's (the initiator side does the same DH count as the responder)`,
    latency: `${PINGS} ping-pongs one at a time after ${PING_WARMUP} warm-up: a ${PACKET_BYTES}-byte packet into the sender's Tun, echoed by the child's Tun (addresses and ports swapped) back through the tunnel until it comes out of the sender's Tun; against ${PACKET_BYTES}-byte datagrams echoed over plain loopback UDP through the same UDP adapter (runtime.listenUdp); added = tunnel - plain, per percentile`,
    devicePath: `one process, no sockets, session already up: send = Tun.inject -> AllowedIPs -> pad -> seal -> conn.send (a no-op), harness opsPerSecond; receive = ${DEVICE_PATH_MESSAGES} sealed messages, in batches of ${DEVICE_PATH_BATCH} sealed just before (so in cache), fed to the receiving Device's conn handler -> open -> replay window -> AllowedIPs -> Tun.write (a counter), median of ${DEVICE_PATH_RUNS} after one warm-up`,
    versusCrypto: `tunnel Mbit/s over AEAD seal and open Mbit/s at ${PACKET_BYTES} B for the same provider from bench/results/crypto-${runtimeName}.json (same runtime, run separately); goal: tunnel >= 0.6 x min(seal, open)`,
  };
}

function printTables(r: {
  runtime: string;
  runtimeVersion: string;
  throughput: Awaited<ReturnType<typeof measureThroughput>>[];
  handshakes: Awaited<ReturnType<typeof measureHandshakes>>[];
  latency: {
    plainUdp: { p50Us: number; p99Us: number } | undefined;
    tunnel: Array<{ provider: string; p50Us: number; p99Us: number } & LatencyDelta>;
  };
  devicePath: Awaited<ReturnType<typeof measureDevicePath>>[];
  versusCrypto: VersusCrypto[] | string;
}): void {
  const pad = (v: unknown, n: number) => String(v ?? "-").padStart(n);
  const vs = (provider: string) =>
    typeof r.versusCrypto === "string"
      ? undefined
      : r.versusCrypto.find((v) => v.provider === provider);
  console.log(
    `\ntunnel on ${r.runtime} ${r.runtimeVersion}, ${PACKET_BYTES}-byte packets, loopback UDP`,
  );
  if (r.throughput.length > 0) {
    console.log(
      "throughput  chacha        Mbit/s  packets/s  loss %  udp lost  cpu snd/rcv  x seal  x open  goal",
    );
    for (const t of r.throughput) {
      const v = vs(t.provider);
      const cpu = `${t.median.senderCpu ?? "-"}/${t.median.receiverCpu ?? "-"}`;
      console.log(
        `${t.provider.padEnd(11)} ${t.chacha20poly1305.padEnd(12)} ${pad(t.median.mbps, 7)} ${pad(t.median.packetsPerSecond, 10)} ${pad(t.median.lossPercent, 7)} ${pad(t.median.udpLost, 9)} ${pad(cpu, 12)} ${pad(v?.tunnelFractionOfSeal, 7)} ${pad(v?.tunnelFractionOfOpen, 7)} ${pad(v?.goalMet === undefined ? undefined : v.goalMet ? "met" : "missed", 6)}`,
      );
    }
  }
  if (r.handshakes.length > 0) {
    console.log("handshakes  x25519        per second  latency p50/p99 ms  lost");
    for (const h of r.handshakes) {
      console.log(
        `${h.provider.padEnd(11)} ${h.x25519.padEnd(12)} ${pad(h.medianPerSecond, 11)} ${pad(`${h.latencyP50Ms}/${h.latencyP99Ms}`, 19)} ${pad(h.lost, 5)}`,
      );
    }
  }
  if (r.latency.plainUdp) {
    console.log("round trip  p50 us   p99 us   added p50   added p99");
    const p = r.latency.plainUdp;
    console.log(`${"plain UDP".padEnd(11)} ${pad(p.p50Us, 6)} ${pad(p.p99Us, 8)}`);
    for (const l of r.latency.tunnel) {
      console.log(
        `${l.provider.padEnd(11)} ${pad(l.p50Us, 6)} ${pad(l.p99Us, 8)} ${pad(l.addedP50Us, 11)} ${pad(l.addedP99Us, 11)}`,
      );
    }
  }
  if (r.devicePath.length > 0) {
    console.log("no sockets  send Mbit/s  x seal  receive Mbit/s  x open");
    for (const d of r.devicePath) {
      const v = vs(d.provider);
      console.log(
        `${d.provider.padEnd(11)} ${pad(d.sendMbps, 11)} ${pad(v?.deviceSendFractionOfSeal, 7)} ${pad(d.receiveMbps, 15)} ${pad(v?.deviceReceiveFractionOfOpen, 7)}`,
      );
    }
  }
  if (typeof r.versusCrypto === "string") console.log(r.versusCrypto);
}

if (process.argv.includes(CHILD_FLAG)) await runChild();
else {
  try {
    await runParent();
  } catch (error) {
    console.error(error);
    process.exitCode = 1;
  }
  // Sockets and timers of failed runs may still be open: leave now (the child is gone).
  process.exit();
}
