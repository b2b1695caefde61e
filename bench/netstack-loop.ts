/**
 * The userspace TCP/IP stack's throughput on the runtime's real clock (#10): two
 * Netstacks with a TcpStack each, in one process, wired back to back. Packets cross
 * the "wire" in batches on a MessageChannel task (as datagrams from a socket would
 * arrive), never synchronously into the sender. One side listens and sends BYTES to
 * the other, which reads and discards them; MB/s is printed per run and as a median.
 *
 *   node --import tsx bench/netstack-loop.ts [megabytes] [runs]
 *   deno run -A bench/netstack-loop.ts
 *   bun bench/netstack-loop.ts
 *
 * Speed lives here, never in tests.
 */

import { detectRuntime, loadRuntime } from "../runtimes/index.ts";
import { Netstack, TcpStack } from "../src/netstack/index.ts";
import { median } from "./harness.ts";

const MEGABYTES = Number(globalThis.process?.argv?.[2] ?? 50) || 50;
const RUNS = Number(globalThis.process?.argv?.[3] ?? 3) || 3;
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

async function run(): Promise<number> {
  const runtime = await loadRuntime();
  const clock = runtime.clock;
  const random = () => (Math.random() * 0x1_0000_0000) >>> 0;
  const stackA = new Netstack({ addresses: ["10.40.0.1"], clock });
  const stackB = new Netstack({ addresses: ["10.40.0.2"], clock });
  const channels: Channel[] = [];
  stackA.onPacket(wire((p) => stackB.write(p), channels));
  stackB.onPacket(wire((p) => stackA.write(p), channels));
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
  `${detectRuntime()} netstack loop, ${MEGABYTES} MB: median ${m.toFixed(1)} MB/s (${(m * 8).toFixed(0)} Mbit/s) over ${RUNS} runs`,
);
