/**
 * Interop with stock WireGuard: Debian's wireguard-go in a network namespace, configured
 * by `wg`, against a weft Device on real UDP in the root namespace. weft needs no TUN:
 * it writes crafted IP packets into the tunnel and reads what comes out. Root only; under
 * CI=true it must run.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, test } from "node:test";
import { loadRuntime } from "../../runtimes/index.ts";
import type { UdpConn } from "../../runtimes/udp.ts";
import { toBase64 } from "../../src/crypto/index.ts";
import { ChannelTun } from "../../src/sim/index.ts";
import { Device } from "../../src/tunnel/device.ts";
import type { TimerSettings } from "../../src/tunnel/timers.ts";
import { createTestNetwork, type TestHost, type TestNetwork } from "../helpers/netns.ts";
import { icmpEchoReplyTo, icmpEchoRequest, parseIpv4, udpPacket } from "../helpers/packets.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";
import { startWireguardGo, type WireguardGo } from "../helpers/wireguard-go.ts";

const TOOLS = ["ip", "ping", "wireguard-go", "wg"];
const runtime = await loadRuntime();
const crypto = runtime.crypto;
const WG_PORT = 51820;
/** The traffic helpers inside the namespace are plain Node scripts, whichever runtime runs weft. */
const NODE = runtime.name === "node" ? process.execPath : "node";

interface Setup {
  network: TestNetwork;
  host: TestHost;
  wg: WireguardGo;
  device: Device;
  tun: ChannelTun;
  logs: string[];
  weftOverlay: string;
  wgOverlay: string;
  conn: UdpConn;
  close(): Promise<void>;
}

interface SetupOptions {
  timers?: Partial<TimerSettings>;
  /** What wireguard-go believes weft's public key is (default: the right one). */
  wgSeesWeftKey?: Uint8Array;
  /** What weft believes wireguard-go's public key is (default: the right one). */
  weftSeesWgKey?: Uint8Array;
  weftPsk?: Uint8Array;
  wgPsk?: Uint8Array;
}

async function setUp(options: SetupOptions = {}): Promise<Setup> {
  const network = createTestNetwork("wgi");
  try {
    const host = network.addHost("wg");
    const subnet = host.address.split(".")[2];
    const weftOverlay = `10.214.${subnet}.1`;
    const wgOverlay = `10.214.${subnet}.2`;
    const weftKey = crypto.generatePrivateKey();
    const wgKey = crypto.generatePrivateKey();
    const conn = (await runtime.listenUdp({ address: host.peerAddress, port: 0 })) as UdpConn;
    const wg = await startWireguardGo(host, {
      privateKey: toBase64(wgKey),
      listenPort: WG_PORT,
      interfaceAddress: `${wgOverlay}/24`,
      peer: {
        publicKey: toBase64(options.wgSeesWeftKey ?? crypto.publicKey(weftKey)),
        presharedKey: options.wgPsk ? toBase64(options.wgPsk) : undefined,
        allowedIps: `${weftOverlay}/32`,
        endpoint: `${host.peerAddress}:${conn.localPort}`,
      },
    });
    const tun = new ChannelTun({ mtuBytes: 1420 });
    const logs: string[] = [];
    const device = new Device({
      crypto,
      clock: runtime.clock,
      conn,
      tun,
      privateKey: weftKey,
      timers: options.timers,
      log: (level, message) => logs.push(`${level}: ${message}`),
    });
    device.addPeer({
      publicKey: options.weftSeesWgKey ?? crypto.publicKey(wgKey),
      presharedKey: options.weftPsk,
      allowedIps: [{ address: new Uint8Array(wgOverlay.split(".").map(Number)), prefixLength: 32 }],
      endpoint: { address: host.address, port: WG_PORT },
    });
    return {
      network,
      host,
      wg,
      device,
      tun,
      logs,
      weftOverlay,
      wgOverlay,
      conn,
      async close() {
        device.close();
        await conn.close();
        await tun.close();
        wg.stop();
        network.cleanup();
      },
    };
  } catch (error) {
    network.cleanup();
    throw error;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(
  what: string,
  predicate: () => boolean,
  timeoutMs: number,
  logs: string[] = [],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline)
      assert.fail(`timed out waiting for ${what}\n${logs.slice(-15).join("\n")}`);
    await sleep(10);
  }
}

/** Runs a command to completion without blocking the event loop (weft must keep serving). */
function run(
  command: string,
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/** Answers ICMP echo requests that come out of weft's Tun, as a host's kernel would. */
function answerPings(s: Setup): void {
  s.tun.onWrite((packet) => {
    const ip = parseIpv4(packet);
    if (ip?.protocol === 1 && ip.payload[0] === 8) s.tun.inject(icmpEchoReplyTo(packet));
  });
}

/** Deterministic payload of datagram `seq`: the sequence number, then bytes derived from it. */
const DATAGRAM_BYTES = 1024;
const DATAGRAMS = 20 * 1024; // 20 MiB of payload
/**
 * UDP may drop when a receiver falls behind. On a quiet machine Node and Bun (4 MiB socket
 * buffers) lose nothing and Deno (its API cannot enlarge the 208 KiB buffer) a few; with
 * the 2 cores busy elsewhere, 1-3% has been seen on Node and Deno. What this test guards
 * is integrity (no corruption, no duplicates), so it allows 5% loss and no more.
 */
const ALLOWED_LOSS = DATAGRAMS / 20;

const sinkScript = (port: number, expected: number) => `
const dgram = require("node:dgram");
const s = dgram.createSocket("udp4");
const seen = new Set(); let bad = 0, dup = 0, bytes = 0, timer;
const done = () => { console.log(JSON.stringify({ received: seen.size, bad, dup, bytes })); process.exit(0); };
s.on("message", (m) => {
  const seq = m.readUInt32BE(0); let ok = m.length === ${DATAGRAM_BYTES};
  for (let i = 4; ok && i < m.length; i++) if (m[i] !== ((seq * 31 + i) & 255)) ok = false;
  if (!ok) bad++; else if (seen.has(seq)) dup++; else { seen.add(seq); bytes += m.length; }
  clearTimeout(timer); timer = setTimeout(done, 2000);
  if (seen.size === ${expected}) { clearTimeout(timer); done(); }
});
s.bind(${port}, () => { try { s.setRecvBufferSize(4 << 20); } catch {} console.log("ready"); });
setTimeout(done, 60000);
`;

const sourceScript = (target: string, port: number) => `
const dgram = require("node:dgram");
const s = dgram.createSocket("udp4");
let seq = 0;
function batch() {
  for (let k = 0; k < 32 && seq < ${DATAGRAMS}; k++, seq++) {
    const m = Buffer.alloc(${DATAGRAM_BYTES}); m.writeUInt32BE(seq, 0);
    for (let i = 4; i < m.length; i++) m[i] = (seq * 31 + i) & 255;
    s.send(m, ${port}, "${target}");
  }
  if (seq < ${DATAGRAMS}) setTimeout(batch, 3); else setTimeout(() => s.close(), 500);
}
batch();
`;

function datagram(seq: number): Uint8Array {
  const m = new Uint8Array(DATAGRAM_BYTES);
  new DataView(m.buffer).setUint32(0, seq);
  for (let i = 4; i < m.length; i++) m[i] = (seq * 31 + i) & 255;
  return m;
}

/** `ping -c COUNT` from inside the namespace to weft's overlay address. */
function pingFrom(s: Setup, count: number) {
  const args = ["-c", String(count), "-i", "0.2", "-W", "2", s.weftOverlay];
  return run("ip", ["netns", "exec", s.host.namespace, "ping", ...args]);
}

/** A root-only test that must run under CI. */
function interopTest(name: string, body: () => Promise<void>): void {
  test(name, rootOnly(...TOOLS), async () => {
    assertCanRun(...TOOLS);
    await body();
  });
}

/** Runs `body` against a fresh wireguard-go and weft pair, removed afterwards whatever happens. */
async function withSetup(options: SetupOptions, body: (s: Setup) => Promise<void>): Promise<void> {
  const s = await setUp(options);
  try {
    await body(s);
  } finally {
    await s.close();
  }
}

describe(`interop with wireguard-go (${runtime.name})`, () => {
  interopTest(
    "weft initiates: an ICMP echo request to wireguard-go's address gets the kernel's reply",
    () =>
      withSetup({}, async (s) => {
        const request = icmpEchoRequest(
          s.weftOverlay,
          s.wgOverlay,
          0x77,
          1,
          new TextEncoder().encode("weft interop"),
        );
        s.tun.inject(request);
        const reply = await Promise.race([s.tun.nextWritten(), sleep(5000).then(() => undefined)]);
        assert.ok(reply, `no reply\n${s.logs.join("\n")}`);
        const ip = parseIpv4(reply)!;
        assert.equal(ip.source, s.wgOverlay);
        assert.equal(ip.destination, s.weftOverlay);
        assert.equal(ip.protocol, 1);
        assert.equal(ip.payload[0], 0, "ICMP echo reply");
        assert.deepEqual(ip.payload.subarray(8), new TextEncoder().encode("weft interop"));
        assert.ok(s.wg.latestHandshake() > 0);
      }),
  );

  interopTest("wireguard-go initiates: ping from the namespace to weft's address is answered", () =>
    withSetup({}, async (s) => {
      answerPings(s);
      const ping = await pingFrom(s, 3);
      assert.equal(ping.code, 0, `${ping.stdout}${ping.stderr}\n${s.logs.join("\n")}`);
      assert.match(ping.stdout, /3 received/);
      assert.equal(s.device.peers()[0]!.handshakesCompleted, 1);
    }),
  );

  interopTest("20 MiB of UDP each way arrives without corruption or duplication", () =>
    withSetup({}, async (s) => {
      // weft -> wireguard-go: a sink in the namespace checks every datagram.
      const sink = spawn("ip", [
        "netns",
        "exec",
        s.host.namespace,
        NODE,
        "-e",
        sinkScript(9000, DATAGRAMS),
      ]);
      let sinkOut = "";
      sink.stdout.on("data", (d: Buffer) => {
        sinkOut += d;
      });
      await waitFor("the sink", () => sinkOut.includes("ready"), 10_000);
      // Handshake first: packets sent meanwhile wait in a bounded queue (128, as WireGuard).
      s.tun.inject(icmpEchoRequest(s.weftOverlay, s.wgOverlay, 1, 1, new Uint8Array(8)));
      await s.tun.nextWritten();
      for (let seq = 0; seq < DATAGRAMS; seq++) {
        s.tun.inject(udpPacket(s.weftOverlay, s.wgOverlay, 9000, 9000, datagram(seq)));
        // Paced (about 10k packets/s): this checks integrity, bench/ measures speed.
        if (seq % 32 === 31) await sleep(3);
      }
      await new Promise((resolve) => sink.on("close", resolve));
      const result = JSON.parse(sinkOut.split("\n").find((l) => l.startsWith("{"))!);
      assert.equal(result.bad, 0, "corrupted datagrams");
      assert.equal(result.dup, 0, "duplicated datagrams");
      assert.ok(
        result.received >= DATAGRAMS - ALLOWED_LOSS,
        `received ${result.received} of ${DATAGRAMS}; weft drops ${JSON.stringify(s.device.drops())}, udp ${JSON.stringify(s.conn.counters())}`,
      );

      // wireguard-go -> weft: a source in the namespace; weft's Tun checks every datagram.
      const seen = new Set<number>();
      let bad = 0;
      s.tun.onWrite((packet) => {
        const ip = parseIpv4(packet);
        if (ip?.protocol !== 17) return;
        const data = ip.payload.subarray(8);
        const seq = new DataView(data.buffer, data.byteOffset).getUint32(0);
        const expected = datagram(seq);
        if (
          data.length !== expected.length ||
          !data.every((b, i) => b === expected[i]) ||
          seen.has(seq)
        )
          bad++;
        else seen.add(seq);
      });
      const source = await run("ip", [
        "netns",
        "exec",
        s.host.namespace,
        NODE,
        "-e",
        sourceScript(s.weftOverlay, 9001),
      ]);
      assert.equal(source.code, 0, source.stderr);
      await waitFor("the datagrams", () => seen.size >= DATAGRAMS - ALLOWED_LOSS, 10_000, [
        `received ${seen.size}; weft drops ${JSON.stringify(s.device.drops())}, udp ${JSON.stringify(s.conn.counters())}`,
        ...s.logs,
      ]);
      assert.equal(bad, 0, "corrupted or duplicated datagrams");
    }),
  );

  interopTest("forced rekeys every 1.5 s keep traffic flowing without loss", () =>
    withSetup({ timers: { rekeyAfterTimeMs: 1500, rekeyTimeoutMs: 1000 } }, async (s) => {
      const replies = new Set<number>();
      s.tun.onWrite((packet) => {
        const ip = parseIpv4(packet);
        if (ip?.protocol === 1 && ip.payload[0] === 0)
          replies.add((ip.payload[6]! << 8) | ip.payload[7]!);
      });
      const sent = 300;
      for (let seq = 0; seq < sent; seq++) {
        s.tun.inject(icmpEchoRequest(s.weftOverlay, s.wgOverlay, 0x42, seq, new Uint8Array(32)));
        await sleep(25);
      }
      await sleep(500);
      const handshakes = s.device.peers()[0]!.handshakesCompleted;
      assert.ok(handshakes >= 4, `only ${handshakes} handshakes\n${s.logs.join("\n")}`);
      // Packets in flight when a new session starts still decrypt with the previous keypair.
      assert.equal(
        replies.size,
        sent,
        `lost ${sent - replies.size} of ${sent} across ${handshakes} handshakes`,
      );
    }),
  );

  interopTest("a wrong public key is refused by both sides, and weft says why", async () => {
    const stranger = crypto.publicKey(crypto.generatePrivateKey());
    const fastGiveUp = { rekeyTimeoutMs: 200, rekeyAttemptTimeMs: 1000 };
    // weft has the wrong key for wireguard-go: wireguard-go drops our initiations (bad mac1).
    await withSetup({ weftSeesWgKey: stranger, timers: fastGiveUp }, async (a) => {
      a.tun.inject(icmpEchoRequest(a.weftOverlay, a.wgOverlay, 1, 1, new Uint8Array(8)));
      const gaveUp = () => a.logs.some((l) => /did not complete after \d+ attempts/.test(l));
      await waitFor("weft to give up", gaveUp, 10_000, a.logs);
      assert.equal(a.wg.latestHandshake(), 0);
      assert.equal(a.tun.written.length, 0);
    });
    // wireguard-go has the wrong key for weft: weft drops its initiations and says so.
    await withSetup({ wgSeesWeftKey: stranger }, async (b) => {
      const ping = await pingFrom(b, 1);
      assert.notEqual(ping.code, 0);
      assert.ok((b.device.drops().mac1 ?? 0) > 0, JSON.stringify(b.device.drops()));
      assert.ok(
        b.logs.some((l) => /invalid mac1/.test(l)),
        b.logs.join("\n"),
      );
      assert.equal(b.device.peers()[0]!.handshakesCompleted, 0);
    });
  });

  interopTest("a wrong preshared key is refused by both sides, and weft says why", async () => {
    const wgPsk = crypto.randomBytes(32);
    const weftPsk = crypto.randomBytes(32);
    await withSetup({ wgPsk, weftPsk }, async (s) => {
      // weft initiates: wireguard-go answers, but the response cannot authenticate for us.
      s.tun.inject(icmpEchoRequest(s.weftOverlay, s.wgOverlay, 1, 1, new Uint8Array(8)));
      await waitFor(
        "a failed response",
        () => (s.device.drops()["response-failed"] ?? 0) > 0,
        5_000,
        s.logs,
      );
      assert.ok(s.logs.some((l) => /failed to authenticate \(different preshared key\?\)/.test(l)));
      // wireguard-go initiates: we answer, but it cannot use our response; no data flows.
      answerPings(s);
      const ping = await pingFrom(s, 1);
      assert.notEqual(ping.code, 0);
      assert.equal(s.wg.latestHandshake(), 0);
      assert.equal(s.device.peers()[0]!.handshakesCompleted, 0);
      assert.equal(s.tun.written.length, 0);
    });
  });
});
