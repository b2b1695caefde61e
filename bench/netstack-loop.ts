/**
 * The userspace TCP/IP stack's throughput on the runtime's real clock (#10): two
 * Netstacks with a TcpStack each, in one process, wired back to back. Packets cross
 * the "wire" in batches on a MessageChannel task (as datagrams from a socket would
 * arrive), never synchronously into the sender. One side listens and sends BYTES to
 * the other, which reads and discards them; MB/s is printed per run and as a median.
 *
 *   node --import tsx bench/netstack-loop.ts [megabytes] [runs] [--tunnel]
 *   deno run -A bench/netstack-loop.ts
 *   bun bench/netstack-loop.ts
 *
 * With --tunnel the wire is two weft Devices (WireGuard, this runtime's native crypto)
 * over real loopback UDP sockets, each Netstack being its Device's Tun: the stack's cost
 * plus the tunnel's, both ends on this one process's core.
 *
 * Speed lives here, never in tests.
 */

import { detectRuntime, loadRuntime } from "../runtimes/index.ts";
import { Netstack, TcpStack } from "../src/netstack/index.ts";
import type { Runtime } from "../src/runtime.ts";
import { Device } from "../src/tunnel/device.ts";
import { median } from "./harness.ts";

const ARGS = (globalThis.process?.argv ?? []).slice(2);
const TUNNEL = ARGS.includes("--tunnel");
const NUMBERS = ARGS.filter((a) => !a.startsWith("--"));
const MEGABYTES = Number(NUMBERS[0] ?? 50) || 50;
const RUNS = Number(NUMBERS[1] ?? 3) || 3;
const BYTES = MEGABYTES * 1_000_000;
const CHUNK = 64 * 1024;

/** The MessageChannel all three runtimes have (the DOM types are not in our tsconfig). */
interface Port {
  onmessage: ((event: unknown) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}
interface Channel {
  readonly port1: Port;
  readonly port2: Port;
}
const MessageChannel = (globalThis as unknown as { MessageChannel: new () => Channel })
  .MessageChannel;

/** A one-way wire: packets queue and are delivered in one task per batch. */
function wire(
  deliver: (packet: Uint8Array) => void,
  channels: Channel[],
): (packet: Uint8Array) => void {
  const queue: Uint8Array[] = [];
  const channel = new MessageChannel();
  channels.push(channel);
  let scheduled = false;
  channel.port1.onmessage = () => {
    scheduled = false;
    const batch = queue.splice(0);
    for (const packet of batch) deliver(packet);
  };
  return (packet) => {
    queue.push(packet);
    if (!scheduled) {
      scheduled = true;
      channel.port2.postMessage(0);
    }
  };
}

/** Two Devices over loopback UDP with `a` and `b` as their Tuns, handshake done. */
async function tunnel(runtime: Runtime, a: Netstack, b: Netstack): Promise<Device[]> {
  const crypto = runtime.crypto;
  const connA = await runtime.listenUdp({ port: 0, address: "127.0.0.1" });
  const connB = await runtime.listenUdp({ port: 0, address: "127.0.0.1" });
  const keyA = crypto.generatePrivateKey();
  const keyB = crypto.generatePrivateKey();
  const clock = runtime.clock;
  const deviceA = new Device({ crypto, clock, conn: connA, tun: a, privateKey: keyA });
  const deviceB = new Device({ crypto, clock, conn: connB, tun: b, privateKey: keyB });
  deviceA.addPeer({
    publicKey: crypto.publicKey(keyB),
    allowedIps: [{ address: Uint8Array.of(10, 40, 0, 2), prefixLength: 32 }],
    endpoint: { address: "127.0.0.1", port: connB.localPort },
  });
  deviceB.addPeer({
    publicKey: crypto.publicKey(keyA),
    allowedIps: [{ address: Uint8Array.of(10, 40, 0, 1), prefixLength: 32 }],
    endpoint: { address: "127.0.0.1", port: connA.localPort },
  });
  deviceA.connect(crypto.publicKey(keyB));
  for (let i = 0; i < 100 && deviceB.peers()[0]!.handshakesCompleted === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (deviceB.peers()[0]!.handshakesCompleted === 0) throw new Error("no handshake");
  return [deviceA, deviceB];
}

async function run(): Promise<number> {
  const runtime = await loadRuntime();
  const clock = runtime.clock;
  const random = () => (Math.random() * 0x1_0000_0000) >>> 0;
  const stackA = new Netstack({ addresses: ["10.40.0.1"], clock });
  const stackB = new Netstack({ addresses: ["10.40.0.2"], clock });
  const channels: Channel[] = [];
  const devices: Device[] = [];
  if (TUNNEL) {
    devices.push(...(await tunnel(runtime, stackA, stackB)));
  } else {
    stackA.onPacket(wire((p) => stackB.write(p), channels));
    stackB.onPacket(wire((p) => stackA.write(p), channels));
  }
  const tcpA = new TcpStack(stackA, { clock, randomUint32: random });
  const tcpB = new TcpStack(stackB, { clock, randomUint32: random });
  const server = tcpB.listen(80);
  const chunk = new Uint8Array(CHUNK).fill(0x61);
  const serving = (async () => {
    const stream = await server.accept();
    const writer = stream.writable.getWriter();
    for (let sent = 0; sent < BYTES; sent += CHUNK) {
      await writer.write(sent + CHUNK <= BYTES ? chunk : chunk.subarray(0, BYTES - sent));
    }
    await writer.close();
  })();
  const start = performance.now();
  const stream = await tcpA.dial("10.40.0.2", 80);
  let received = 0;
  for await (const piece of stream.readable) received += piece.length;
  const seconds = (performance.now() - start) / 1000;
  await serving;
  if (received !== BYTES) throw new Error(`received ${received} of ${BYTES} bytes`);
  server.close();
  tcpA.close();
  tcpB.close();
  await stackA.close();
  await stackB.close();
  for (const device of devices) await device.close();
  for (const channel of channels) {
    channel.port1.close();
    channel.port2.close();
  }
  return BYTES / 1e6 / seconds;
}

const rates: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const rate = await run();
  rates.push(rate);
  console.log(`run ${i + 1}: ${rate.toFixed(1)} MB/s (${((rate * 8) | 0).toString()} Mbit/s)`);
}
const m = median(rates);
console.log(
  `${detectRuntime()} netstack loop${TUNNEL ? " through a loopback WireGuard tunnel" : ""}, ${MEGABYTES} MB: median ${m.toFixed(1)} MB/s (${(m * 8).toFixed(0)} Mbit/s) over ${RUNS} runs`,
);
