/**
 * Throughput of the kernel TUN adapters, per runtime, in a network namespace of its own
 * (run by hand as root; not part of `npm test`):
 *
 *   node --import tsx test/helpers/tun-bench.ts [--runtimes node,deno,bun] [--seconds 5]
 *
 * - drain: the device's queue is raised and filled with 100,000 such datagrams first, then
 *   the child starts reading: the read path's own rate, with no sender competing for CPU.
 * - read: a UDP sender in the namespace (Node, `node:dgram`, 1400-byte IP packets, as
 *   fast as it can) sends to the device's peer address, which the kernel routes into the
 *   device; `tun-child.ts` counts what it reads. The kernel drops what the reader leaves
 *   queued past the device's 500-packet queue (reported as "kernel dropped").
 * - write: `tun-child.ts` writes 1400-byte UDP packets into the device, yielding to the
 *   event loop every 64, and checks the kernel's receive counter.
 * - ping: `ping -f -l 64` of 1400-byte packets to the peer address; the child answers
 *   each echo request it reads by writing the reply (read and write paths together).
 *
 * Traffic stays in the namespace: only `lo` and the device live there.
 *
 * Internally also the sender: `tun-bench.ts --send ADDRESS PORT SECONDS BYTES`.
 */
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { RuntimeName } from "../../runtimes/detect.ts";
import { createTunNamespace, type TunNamespace } from "./tun-client.ts";

const SELF = fileURLToPath(import.meta.url);
const ROOT = join(SELF, "..", "..", "..");
const NAME = "weft0";
const PEER4 = "198.18.0.2";
const OPTIONS = { name: NAME, mtu: 1420, addresses: ["198.18.0.1/30"] };
const PACKET_BYTES = 1400;
const PORT = 9999;
/** UDP sends the sender keeps in flight. */
const SENDER_IN_FLIGHT = 64;
const PING_COUNT = 50_000;
const WRITE_COUNT = 300_000;
const DRAIN_COUNT = 100_000;

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(name);
  return index > 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

/** Sends datagrams of `bytes` payload to address:port for `seconds` (at most `limit`); prints how many. */
async function send(
  address: string,
  port: number,
  seconds: number,
  bytes: number,
  limit = Number.POSITIVE_INFINITY,
): Promise<void> {
  const socket = createSocket("udp4");
  const data = new Uint8Array(bytes);
  let inFlight = 0;
  let sent = 0;
  const deadline = performance.now() + seconds * 1000;
  let queued = 0;
  while (performance.now() < deadline && queued < limit) {
    for (; inFlight < SENDER_IN_FLIGHT && queued < limit; queued++) {
      inFlight++;
      socket.send(data, port, address, (error) => {
        inFlight--;
        if (!error) sent++;
      });
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  socket.close(() => console.log(JSON.stringify({ sent, seconds })));
}

function run(command: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(output) : reject(new Error(`${command.join(" ")}: code ${code}`)),
    );
  });
}

function linkStats(namespace: TunNamespace): { txPackets: number; txDropped: number } {
  const [link] = JSON.parse(namespace.exec("ip", ["-j", "-s", "link", "show", "dev", NAME])) as {
    stats64: { tx: { packets: number; dropped: number } };
  }[];
  return { txPackets: link!.stats64.tx.packets, txDropped: link!.stats64.tx.dropped };
}

function rate(packets: number, seconds: number): string {
  const pps = packets / seconds;
  return `${Math.round(pps).toLocaleString("en")} packets/s, ${Math.round((pps * PACKET_BYTES * 8) / 1e6)} Mbit/s`;
}

async function benchRead(runtime: RuntimeName, seconds: number): Promise<string> {
  const namespace = createTunNamespace();
  try {
    const child = namespace.start({ mode: "count", options: OPTIONS, port: PORT }, "root", runtime);
    await child.next("opened");
    const before = linkStats(namespace);
    const sender = JSON.parse(
      await run([
        "ip",
        "netns",
        "exec",
        namespace.name,
        process.execPath,
        "--import",
        "tsx",
        SELF,
        "--send",
        PEER4,
        String(PORT),
        String(seconds),
        String(PACKET_BYTES - 28),
      ]),
    ) as { sent: number };
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = linkStats(namespace);
    child.endInput();
    const closed = await child.next("closed");
    const packets = closed.packets as number;
    return [
      `read  ${rate(packets, closed.seconds as number)}`,
      `(${packets} read of ${sender.sent} sent in ${seconds} s, sender ${rate(sender.sent, seconds)};`,
      `kernel queued ${after.txPackets - before.txPackets}, dropped ${after.txDropped - before.txDropped})`,
    ].join(" ");
  } finally {
    namespace.cleanup();
  }
}

/** Fills the device's queue with `count` datagrams first, then times reading them all. */
async function benchDrain(runtime: RuntimeName, count: number): Promise<string> {
  const namespace = createTunNamespace();
  try {
    const child = namespace.start(
      { mode: "count", options: OPTIONS, port: PORT, drain: true, count },
      "root",
      runtime,
    );
    await child.next("opened");
    namespace.exec("ip", ["link", "set", "dev", NAME, "txqueuelen", String(count * 2)]);
    const before = linkStats(namespace);
    await run([
      ...["ip", "netns", "exec", namespace.name, process.execPath, "--import", "tsx", SELF],
      ...["--send", PEER4, String(PORT), "60", String(PACKET_BYTES - 28), String(count)],
    ]);
    const after = linkStats(namespace);
    child.send("go");
    const counted = await child.next("counted", 120_000);
    child.endInput();
    await child.next("closed");
    return `drain ${rate(counted.packets as number, counted.seconds as number)} (${counted.packets} queued first, kernel dropped ${after.txDropped - before.txDropped})`;
  } finally {
    namespace.cleanup();
  }
}

async function benchWrite(runtime: RuntimeName): Promise<string> {
  const namespace = createTunNamespace();
  try {
    const child = namespace.start(
      {
        mode: "write",
        options: OPTIONS,
        peer4: PEER4,
        port: PORT,
        count: WRITE_COUNT,
        packetBytes: PACKET_BYTES,
      },
      "root",
      runtime,
    );
    const closed = await child.next("closed", 120_000);
    const counters = closed.counters as { writeErrors: number };
    return `write ${rate(closed.packets as number, closed.seconds as number)} (${closed.packets} written, kernel received ${closed.kernelReceived}, ${counters.writeErrors} refused)`;
  } finally {
    namespace.cleanup();
  }
}

async function benchPing(runtime: RuntimeName): Promise<string> {
  const namespace = createTunNamespace();
  try {
    const child = namespace.start(
      { mode: "respond", options: OPTIONS, peer4: PEER4 },
      "root",
      runtime,
    );
    await child.next("opened");
    const output = namespace.exec("ping", [
      "-q",
      "-f",
      "-l",
      "64",
      "-c",
      String(PING_COUNT),
      "-s",
      String(PACKET_BYTES - 28),
      "-w",
      "120",
      PEER4,
    ]);
    child.endInput();
    await child.next("closed");
    const match = output.match(/(\d+) received.*time (\d+)ms/);
    if (!match) return `ping: no summary in ${output}`;
    const received = Number(match[1]);
    return `ping ${rate(received, Number(match[2]) / 1000)} each way (${received} of ${PING_COUNT} answered, 64 in flight)`;
  } finally {
    namespace.cleanup();
  }
}

async function main(): Promise<void> {
  if (process.argv.includes("--send")) {
    const [address, port, seconds, bytes, limit] = process.argv.slice(
      process.argv.indexOf("--send") + 1,
    );
    await send(address!, Number(port), Number(seconds), Number(bytes), Number(limit ?? Infinity));
    return;
  }
  const runtimes = argument("--runtimes", "node,deno,bun").split(",") as RuntimeName[];
  const seconds = Number(argument("--seconds", "5"));
  for (const runtime of runtimes) {
    console.log(`${runtime}: ${await benchDrain(runtime, DRAIN_COUNT)}`);
    console.log(`${runtime}: ${await benchRead(runtime, seconds)}`);
    console.log(`${runtime}: ${await benchWrite(runtime)}`);
    console.log(`${runtime}: ${await benchPing(runtime)}`);
  }
}

await main();
