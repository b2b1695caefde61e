/**
 * SYN cookies (RFC 4987 §3.6) on a TcpStack: under a flood of 10,000 spoofed SYNs the
 * listener's half-open table and the connection table stay bounded, and a legitimate
 * client still connects (through a cookie) and transfers data both ways. The cookie
 * itself: bound to the tuple and the peer's ISN, good for one to two periods, carrying
 * the MSS.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseIp } from "../../src/net/ip.ts";
import { PROTOCOL_TCP } from "../../src/netstack/constants.ts";
import { Netstack, TcpStack, type TcpStream } from "../../src/netstack/index.ts";
import { encodeIpv4 } from "../../src/netstack/ipv4.ts";
import { encodeTcp } from "../../src/netstack/tcp-header.ts";
import { NO_FLAGS } from "../../src/netstack/tcp-segment.ts";
import {
  SYN_COOKIE_MSS_TABLE,
  SYN_COOKIE_PERIOD_MS,
  SynCookies,
} from "../../src/netstack/tcp-syn-cookie.ts";
import { createRandom } from "../../src/sim/random.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";

const A = "10.40.0.1";
const B = "10.40.0.2";

async function settle(): Promise<void> {
  for (let i = 0; i < 64; i++) await Promise.resolve();
}

async function runUntil(clock: VirtualClock, done: () => boolean, limitMs: number, what: string) {
  const end = clock.now() + limitMs;
  await settle();
  while (!done()) {
    if (clock.now() >= end) assert.fail(`${what}: not done within ${limitMs} virtual ms`);
    clock.advance(2);
    await settle();
  }
}

function spoofedSyn(random: ReturnType<typeof createRandom>): Uint8Array {
  const source = Uint8Array.of(10, 99, random.int(256), 1 + random.int(254));
  const destination = parseIp(B)!;
  const tcp = encodeTcp(
    {
      sourcePort: 1024 + random.int(60_000),
      destinationPort: 80,
      seq: random.int(0x1_0000_0000),
      ack: 0,
      flags: { ...NO_FLAGS, syn: true },
      window: 65_535,
      urgentPointer: 0,
      options: { mss: 1380, windowScale: 7, sackPermitted: true },
      payload: new Uint8Array(0),
    },
    source,
    destination,
  );
  return encodeIpv4({ source, destination, protocol: PROTOCOL_TCP }, tcp);
}

describe("SYN cookies", () => {
  test("under 10,000 spoofed SYNs, memory stays bounded and a real client connects", async () => {
    const clock = new VirtualClock();
    const random = createRandom(7);
    const stackA = new Netstack({ addresses: [A], clock });
    const stackB = new Netstack({ addresses: [B], clock });
    stackA.onPacket((p) => clock.setTimer(1, () => stackB.write(p)));
    // B's answers to spoofed sources go nowhere; only A's address is wired.
    let toNowhere = 0;
    stackB.onPacket((p) => {
      if (p[16] === 10 && p[17] === 40 && p[18] === 0 && p[19] === 1) {
        clock.setTimer(1, () => stackA.write(p));
      } else {
        toNowhere++;
      }
    });
    const options = { clock, randomUint32: () => random.int(0x1_0000_0000) };
    const a = new TcpStack(stackA, options);
    const b = new TcpStack(stackB, options);
    const server = b.listen(80);
    for (let i = 0; i < 10_000; i++) {
      stackB.write(spoofedSyn(random));
      assert.ok(b.connectionCount <= 128, `connections: ${b.connectionCount}`);
    }
    assert.equal(b.connectionCount, 128, "the half-open bound holds");
    assert.equal(toNowhere, 10_000, "every SYN got a SYN+ACK (state or cookie)");

    let accepted: TcpStream | undefined;
    void server.accept().then((s) => {
      accepted = s;
    });
    let dialed: TcpStream | undefined;
    let failed: unknown;
    a.dial(B, 80).then(
      (s) => {
        dialed = s;
      },
      (e) => {
        failed = e;
      },
    );
    await runUntil(clock, () => accepted !== undefined || failed !== undefined, 1_000, "accept");
    assert.equal(failed, undefined);
    assert.ok(dialed !== undefined && accepted !== undefined);
    assert.ok(b.connectionCount <= 129);
    assert.equal(b.counters().synCookiesSent, 10_000 - 128 + 1);
    assert.equal(b.counters().synCookiesAccepted, 1, "the client came in through a cookie");

    // Both ways, more than one 64 KiB window (a cookie connection has no window scaling).
    const data = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 13) & 0xff);
    const send = async (stream: TcpStream) => {
      const writer = stream.writable.getWriter();
      await writer.write(data);
      await writer.close();
    };
    const receive = async (stream: TcpStream) => {
      let n = 0;
      let ok = true;
      for await (const chunk of stream.readable) {
        for (const byte of chunk) ok &&= byte === ((n++ * 13) & 0xff);
      }
      return ok ? n : -1;
    };
    let got = [0, 0];
    void Promise.all([receive(accepted), receive(dialed), send(dialed), send(accepted)]).then(
      ([x, y]) => {
        got = [x, y];
      },
    );
    await runUntil(clock, () => got[0] !== 0 && got[1] !== 0, 60_000, "transfer");
    assert.deepEqual(got, [200_000, 200_000]);
    a.close();
    b.close();
  });

  test("a cookie is bound to its tuple and ISN, expires, and carries the MSS", () => {
    let n = 0;
    const cookies = new SynCookies(() => 0x9e3779b9 * ++n);
    const tuple = {
      remote: Uint8Array.of(10, 0, 0, 1),
      remotePort: 40_000,
      local: Uint8Array.of(10, 0, 0, 2),
      localPort: 80,
    };
    const now = 5 * SYN_COOKIE_PERIOD_MS + 10;
    const cookie = cookies.make(tuple, 1234, 1380, now);
    assert.equal(cookies.check(tuple, 1234, cookie, now), 1380);
    assert.equal(cookies.check(tuple, 1234, cookie, now + SYN_COOKIE_PERIOD_MS), 1380);
    assert.equal(cookies.check(tuple, 1234, cookie, now + 2 * SYN_COOKIE_PERIOD_MS), undefined);
    assert.equal(cookies.check(tuple, 1235, cookie, now), undefined);
    assert.equal(cookies.check({ ...tuple, remotePort: 40_001 }, 1234, cookie, now), undefined);
    assert.equal(
      cookies.check({ ...tuple, remote: Uint8Array.of(10, 0, 0, 3) }, 1234, cookie, now),
      undefined,
    );
    assert.equal(cookies.check(tuple, 1234, (cookie ^ 1) >>> 0, now), undefined);
    // The largest table MSS not above the peer's.
    assert.equal(cookies.check(tuple, 1, cookies.make(tuple, 1, 1300, now), now), 1240);
    assert.equal(cookies.check(tuple, 1, cookies.make(tuple, 1, 100, now), now), 536);
    assert.equal(
      cookies.check(tuple, 1, cookies.make(tuple, 1, 9000, now), now),
      SYN_COOKIE_MSS_TABLE.at(-1),
    );
  });
});
