/**
 * One process holding a kernel TUN device through the Runtime's `openTun`, for
 * `test/root/tun.test.ts` and `tun-bench.ts`: run by them inside a network namespace of
 * their own (`ip netns exec NS <runtime> test/helpers/tun-child.ts '<TunChildConfig>'`),
 * on the runtime under test. It reports on stdout, one JSON object a line: `opened` (or
 * `error`), then what its mode found, then `closed`, and exits by itself: a process that
 * stays up after `closed` means the device left something running. Stdin ending asks the
 * modes that wait ("hold", "respond", "count") to close.
 *
 * Modes:
 * - "echo": writes ICMP echo requests from the peer addresses to the device's own
 *   addresses, checks the kernel's replies read back (addresses, id, sequence, payload,
 *   checksums), and how late timers fire while a read is pending.
 * - "open": opens and closes (or reports the error): for errors and privileges.
 * - "try": opens and closes each of `tries` in turn, reporting each outcome, then `done`.
 * - "hold": opens and waits for stdin to end; "open twice" also tries the name a second time.
 * - "respond": answers ICMP echo requests to `peer4` (for `ping` from the namespace).
 * - "count": counts UDP datagrams to port `port` read from the device.
 * - "write": writes `count` UDP packets from `peer4` to the device's IPv4 address.
 * - "inject": writes each line of stdin, a packet in hex, into the device, reporting
 *   `injected-N` after the Nth, until stdin ends.
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { createInterface } from "node:readline";
import { loadRuntime } from "../../runtimes/index.ts";
import { formatIp, parseIp } from "../../src/net/ip.ts";
import type { Tun, TunOptions } from "../../src/net/tun.ts";
import type { Runtime } from "../../src/runtime.ts";
import {
  icmpEchoReplyTo,
  icmpEchoRequest,
  internetChecksum,
  parseIpv4,
  udpPacket,
} from "./packets.ts";

export interface TunChildConfig {
  readonly mode: "echo" | "open" | "try" | "hold" | "respond" | "count" | "write" | "inject";
  readonly options: TunOptions;
  /** "try": each is opened (and closed) in turn, and the outcome reported; `options` is unused. */
  readonly tries?: readonly TunOptions[];
  /** The far end's addresses on the device's subnets (echo, respond, write). */
  readonly peer4?: string;
  readonly peer6?: string;
  /** "hold": also try to open the same name again in this process. */
  readonly openTwice?: boolean;
  /** "count", "write": the UDP port. */
  readonly port?: number;
  /** "count": read only after the first line on stdin, and report when `count` are in. */
  readonly drain?: boolean;
  /** "write": how many packets, and the size of each IP packet in bytes; "count" with `drain`: how many to expect. */
  readonly count?: number;
  readonly packetBytes?: number;
}

const ECHO_ID = 0x5746;
const ECHO_COUNT = 3;
const ECHO_TIMEOUT_MS = 5000;
/** Timers checked while a read is pending, and how long each waits. */
const TIMER_CHECKS = 5;
const TIMER_MS = 50;
/** "write" yields to the event loop after this many packets, as a device's sender would. */
const WRITE_BATCH = 64;

function report(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when stdin ends (the parent closed it or went away). */
function stdinEnded(): Promise<void> {
  return new Promise((resolve) => createInterface({ input: process.stdin }).on("close", resolve));
}

/** The address part of "10.0.0.1/30". */
function addressOf(prefix: string): string {
  return prefix.slice(0, prefix.indexOf("/"));
}

/** An ICMPv6 echo request (type 128) in an IPv6 packet, checksummed over the pseudo-header. */
function icmp6EchoRequest(
  source: string,
  destination: string,
  id: number,
  sequence: number,
  data: Uint8Array,
): Uint8Array {
  const packet = new Uint8Array(40 + 8 + data.length);
  const view = new DataView(packet.buffer);
  packet[0] = 0x60;
  view.setUint16(4, 8 + data.length);
  packet[6] = 58;
  packet[7] = 64;
  packet.set(parseIp(source)!, 8);
  packet.set(parseIp(destination)!, 24);
  packet[40] = 128;
  view.setUint16(44, id);
  view.setUint16(46, sequence);
  packet.set(data, 48);
  view.setUint16(42, internetChecksum(icmp6ChecksumInput(packet)));
  return packet;
}

/** Pseudo-header (RFC 8200 §8.1) then the ICMPv6 message, for the checksum. */
function icmp6ChecksumInput(packet: Uint8Array): Uint8Array {
  const icmp = packet.subarray(40);
  const input = new Uint8Array(40 + icmp.length);
  input.set(packet.subarray(8, 40), 0);
  new DataView(input.buffer).setUint32(32, icmp.length);
  input[39] = 58;
  input.set(icmp, 40);
  return input;
}

/** What was wrong with `packet` as the reply to echo `sequence`, or "" when it is right. */
function checkReply(
  packet: Uint8Array,
  family: 4 | 6,
  from: string,
  to: string,
  sequence: number,
  data: Uint8Array,
): string {
  let icmp: Uint8Array;
  if (family === 4) {
    const parsed = parseIpv4(packet);
    if (parsed === undefined || parsed.protocol !== 1) return "not ICMP over IPv4";
    if (internetChecksum(packet.subarray(0, (packet[0]! & 15) * 4)) !== 0)
      return "bad IPv4 header checksum";
    if (parsed.source !== from || parsed.destination !== to) {
      return `addresses ${parsed.source} -> ${parsed.destination}`;
    }
    icmp = parsed.payload;
    if (icmp[0] !== 0 || icmp[1] !== 0) return `ICMP type ${icmp[0]} code ${icmp[1]}`;
    if (internetChecksum(icmp) !== 0) return "bad ICMP checksum";
  } else {
    if (packet[0]! >> 4 !== 6 || packet[6] !== 58) return "not ICMPv6";
    const source = formatIp(packet.subarray(8, 24));
    const destination = formatIp(packet.subarray(24, 40));
    if (source !== from || destination !== to) return `addresses ${source} -> ${destination}`;
    icmp = packet.subarray(40, 40 + ((packet[4]! << 8) | packet[5]!));
    if (icmp[0] !== 129 || icmp[1] !== 0) return `ICMPv6 type ${icmp[0]} code ${icmp[1]}`;
    if (internetChecksum(icmp6ChecksumInput(packet)) !== 0) return "bad ICMPv6 checksum";
  }
  const view = new DataView(icmp.buffer, icmp.byteOffset, icmp.byteLength);
  if (view.getUint16(4) !== ECHO_ID) return `id ${view.getUint16(4)}`;
  if (view.getUint16(6) !== sequence) return `sequence ${view.getUint16(6)}`;
  const payload = icmp.subarray(8);
  if (payload.length !== data.length || payload.some((b, i) => b !== data[i]))
    return "payload differs";
  return "";
}

/** The echo mode: see the file header. */
async function echo(tun: Tun, config: TunChildConfig): Promise<void> {
  const addresses = config.options.addresses ?? [];
  const targets: { family: 4 | 6; local: string; peer: string }[] = [];
  const v4 = addresses.find((a) => !a.includes(":"));
  const v6 = addresses.find((a) => a.includes(":"));
  if (v4 && config.peer4) targets.push({ family: 4, local: addressOf(v4), peer: config.peer4 });
  if (v6 && config.peer6) targets.push({ family: 6, local: addressOf(v6), peer: config.peer6 });

  // Packets the kernel sends on its own (IPv6 router solicitations, MLD) are skipped.
  const inbox: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  tun.onPacket((packet) => {
    inbox.push(packet.slice());
    wake?.();
  });

  // A read is now pending: timers must still fire on time.
  let timerLateMs = 0;
  for (let i = 0; i < TIMER_CHECKS; i++) {
    const start = performance.now();
    await sleep(TIMER_MS);
    timerLateMs = Math.max(timerLateMs, performance.now() - start - TIMER_MS);
  }

  const results: { family: number; sequence: number; problem: string }[] = [];
  for (const target of targets) {
    for (let sequence = 1; sequence <= ECHO_COUNT; sequence++) {
      // Payload sizes vary: small, odd-sized and one near the MTU.
      const size =
        sequence === ECHO_COUNT
          ? tun.mtuBytes - (target.family === 4 ? 28 : 48)
          : 7 + 50 * sequence;
      const data = Uint8Array.from({ length: size }, (_, i) => (i * 7 + sequence) & 0xff);
      const request =
        target.family === 4
          ? icmpEchoRequest(target.peer, target.local, ECHO_ID, sequence, data)
          : icmp6EchoRequest(target.peer, target.local, ECHO_ID, sequence, data);
      tun.write(request);
      const deadline = performance.now() + ECHO_TIMEOUT_MS;
      let problem = "no reply";
      while (performance.now() < deadline) {
        const packet = inbox.shift();
        if (packet === undefined) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 100);
          });
          continue;
        }
        const isEcho =
          target.family === 4
            ? packet[0]! >> 4 === 4 && packet[9] === 1
            : packet[0]! >> 4 === 6 &&
              packet[6] === 58 &&
              (packet[40] === 129 || packet[40] === 128);
        if (!isEcho) continue;
        problem = checkReply(packet, target.family, target.local, target.peer, sequence, data);
        break;
      }
      results.push({ family: target.family, sequence, problem });
    }
  }
  report("echo", { results, timerLateMs: Math.round(timerLateMs) });
}

/** Answers ICMP echo requests to `peer4` until stdin ends. */
async function respond(tun: Tun, config: TunChildConfig): Promise<Record<string, unknown>> {
  let answered = 0;
  tun.onPacket((packet) => {
    const parsed = parseIpv4(packet);
    if (parsed?.protocol !== 1 || parsed.destination !== config.peer4 || parsed.payload[0] !== 8)
      return;
    tun.write(icmpEchoReplyTo(packet));
    answered++;
  });
  await stdinEnded();
  return { answered };
}

/**
 * Counts UDP datagrams to `port` read from the device until stdin ends. With `drain`, it
 * starts reading only at the first line on stdin (the parent has filled the device's
 * queue by then), and reports `counted` once `count` datagrams are in: the read path's
 * own speed, with no sender competing for the CPU.
 */
async function count(tun: Tun, config: TunChildConfig): Promise<Record<string, unknown>> {
  const input = createInterface({ input: process.stdin });
  const ended = new Promise((resolve) => input.on("close", resolve));
  if (config.drain) await new Promise((resolve) => input.once("line", resolve));
  let packets = 0;
  let bytes = 0;
  let firstMs = 0;
  let lastMs = 0;
  const startMs = performance.now();
  const port = config.port ?? 0;
  tun.onPacket((packet) => {
    // IPv4 with a 20-byte header, UDP, to the counted port.
    if (packet[0] !== 0x45 || packet[9] !== 17 || ((packet[22]! << 8) | packet[23]!) !== port) {
      return;
    }
    const now = performance.now();
    if (packets === 0) firstMs = now;
    lastMs = now;
    packets++;
    bytes += packet.length;
    if (config.drain && packets === config.count) {
      report("counted", { packets, seconds: (now - startMs) / 1000 });
    }
  });
  await ended;
  return { packets, bytes, seconds: (lastMs - firstMs) / 1000 };
}

/** Writes `count` UDP packets into the device as fast as the event loop allows. */
async function write(tun: Tun, config: TunChildConfig): Promise<Record<string, unknown>> {
  const local = addressOf((config.options.addresses ?? []).find((a) => !a.includes(":"))!);
  const total = config.count ?? 1000;
  const data = new Uint8Array((config.packetBytes ?? 1400) - 28);
  const packet = udpPacket(config.peer4!, local, 40000, config.port ?? 9, data);
  tun.onPacket(() => {}); // the kernel's ICMP port unreachable answers (rate-limited)
  const before = rxPackets(tun.name);
  const start = performance.now();
  for (let sent = 0; sent < total; ) {
    const end = Math.min(total, sent + WRITE_BATCH);
    for (; sent < end; sent++) tun.write(packet);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    packets: total,
    bytes: total * packet.length,
    seconds,
    kernelReceived: rxPackets(tun.name) - before,
  };
}

/** Writes each hex line of stdin into the device, until stdin ends. */
async function inject(tun: Tun): Promise<void> {
  tun.onPacket(() => {});
  let injected = 0;
  await new Promise<void>((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.on("line", (line) => {
      const hex = line.trim();
      if (hex === "") return;
      tun.write(Uint8Array.from(hex.match(/../g) ?? [], (byte) => Number.parseInt(byte, 16)));
      report(`injected-${++injected}`);
    });
    lines.on("close", resolve);
  });
}

/** Packets the kernel took in from the device (its receive counter). */
function rxPackets(name: string): number {
  // `ip netns exec` mounts a sysfs that shows this namespace's devices.
  return Number(readFileSync(`/sys/class/net/${name}/statistics/rx_packets`, "utf8").trim());
}

/** What opening with `options` gave: the name, or the error's class, code and message. */
async function attempt(runtime: Runtime, options: TunOptions): Promise<Record<string, unknown>> {
  try {
    const tun = await runtime.openTun(options);
    await tun.close();
    return { opened: true, name: tun.name, mtuBytes: tun.mtuBytes };
  } catch (error) {
    const { name, message, code } = error as Error & { code?: string };
    return { opened: false, error: name, code, message };
  }
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? "{}") as TunChildConfig;
  const runtime = await loadRuntime();
  if (config.mode === "try") {
    for (const options of config.tries ?? []) {
      report("tried", { options, ...(await attempt(runtime, options)) });
    }
    report("done");
    return;
  }
  let tun: Tun;
  try {
    tun = await runtime.openTun(config.options);
  } catch (error) {
    const { name, message, code } = error as Error & { code?: string };
    report("error", { runtime: runtime.name, error: name, code, message });
    return;
  }
  report("opened", { runtime: runtime.name, name: tun.name, mtuBytes: tun.mtuBytes });
  let result: Record<string, unknown> = {};
  if (config.mode === "echo") await echo(tun, config);
  else if (config.mode === "hold") {
    if (config.openTwice) report("second", await attempt(runtime, config.options));
    await stdinEnded();
  } else if (config.mode === "respond") result = await respond(tun, config);
  else if (config.mode === "count") result = await count(tun, config);
  else if (config.mode === "write") result = await write(tun, config);
  else if (config.mode === "inject") await inject(tun);
  const start = performance.now();
  await tun.close();
  await tun.close(); // idempotent
  tun.write(new Uint8Array(20)); // dropped after close
  const counters = (tun as Tun & { counters?: () => unknown }).counters?.();
  report("closed", { ...result, closeMs: Math.round(performance.now() - start), counters });
}

await main();
