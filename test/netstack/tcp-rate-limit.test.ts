/**
 * Stack-wide limits on what blind segments can make a TcpStack send: RSTs for segments
 * no connection owns, and challenge ACKs (RFC 5961 §7) summed over connections, each a
 * randomised number a second (tcp-rate-limit.ts). Virtual time throughout.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseIp } from "../../src/net/ip.ts";
import { PROTOCOL_TCP } from "../../src/netstack/constants.ts";
import { Netstack, TcpStack, type TcpStream } from "../../src/netstack/index.ts";
import { encodeIpv4 } from "../../src/netstack/ipv4.ts";
import { encodeTcp } from "../../src/netstack/tcp-header.ts";
import { PerSecondLimit } from "../../src/netstack/tcp-rate-limit.ts";
import { NO_FLAGS, type TcpFlags } from "../../src/netstack/tcp-segment.ts";
import { createRandom } from "../../src/sim/random.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";

const A = "10.40.0.1";
const B = "10.40.0.2";

function packet(
  sourcePort: number,
  destinationPort: number,
  flags: Partial<TcpFlags>,
  seq = 1000,
  ack = 0,
): Uint8Array {
  const source = parseIp(A)!;
  const destination = parseIp(B)!;
  const tcp = encodeTcp(
    {
      sourcePort,
      destinationPort,
      seq,
      ack,
      flags: { ...NO_FLAGS, ...flags },
      window: 1000,
      urgentPointer: 0,
      options: {},
      payload: new Uint8Array(0),
    },
    source,
    destination,
  );
  return encodeIpv4({ source, destination, protocol: PROTOCOL_TCP }, tcp);
}

async function settle(): Promise<void> {
  for (let i = 0; i < 64; i++) await Promise.resolve();
}

describe("TCP rate limits", () => {
  test("PerSecondLimit allows from half to one and a half times its limit a second", () => {
    for (const draw of [0, 0x8000_0000, 0xffff_ffff]) {
      const limit = new PerSecondLimit(100, () => draw);
      let allowed = 0;
      for (let i = 0; i < 1000; i++) if (limit.take(5)) allowed++;
      assert.ok(allowed >= 50 && allowed < 150, `allowed ${allowed}`);
      assert.equal(limit.refused, 1000 - allowed);
      assert.equal(limit.take(1004), false, "still the same second");
      assert.equal(limit.take(1005), true, "a new second");
    }
    assert.equal(new PerSecondLimit(0, () => 0).take(0), false);
  });

  test("RSTs for segments nobody owns are limited per second", () => {
    const clock = new VirtualClock();
    const random = createRandom(3);
    const stack = new Netstack({ addresses: [B], clock });
    let sent = 0;
    stack.onPacket(() => sent++);
    const tcp = new TcpStack(stack, {
      clock,
      randomUint32: () => random.int(0x1_0000_0000),
      resetsPerSecond: 100,
    });
    tcp.listen(80); // stray ACKs to a listener are answered with RSTs too
    for (let i = 0; i < 5000; i++) {
      stack.write(packet(40_000 + (i % 1000), i % 2 === 0 ? 81 : 80, { ack: true }, i, i));
    }
    const { resetsSent, resetsRateLimited } = tcp.counters();
    assert.ok(resetsSent >= 50 && resetsSent < 150, `sent ${resetsSent}`);
    assert.equal(resetsSent + resetsRateLimited, 5000);
    assert.equal(sent, resetsSent);
    clock.advance(1000);
    stack.write(packet(40_000, 81, { syn: true }));
    assert.equal(tcp.counters().resetsSent, resetsSent + 1, "a new second, a new allowance");
  });

  test("challenge ACKs are limited across connections, not just per connection", async () => {
    const clock = new VirtualClock();
    const random = createRandom(5);
    const stackA = new Netstack({ addresses: [A], clock });
    const stackB = new Netstack({ addresses: [B], clock });
    stackA.onPacket((p) => clock.setTimer(1, () => stackB.write(p)));
    let toA = 0;
    stackB.onPacket((p) => {
      toA++;
      clock.setTimer(1, () => stackA.write(p));
    });
    const options = { clock, randomUint32: () => random.int(0x1_0000_0000) };
    const a = new TcpStack(stackA, options);
    const b = new TcpStack(stackB, { ...options, challengeAcksPerSecond: 8 });
    b.listen(80);
    const streams: TcpStream[] = [];
    for (let i = 0; i < 3; i++) void a.dial(B, 80).then((s) => streams.push(s));
    for (let i = 0; i < 100 && streams.length < 3; i++) {
      clock.advance(5);
      await settle();
    }
    assert.equal(streams.length, 3);
    clock.advance(100); // let delayed ACKs go
    const before = toA;
    // 50 blind SYNs into each connection: each may answer 10 a second on its own.
    for (const stream of streams) {
      for (let i = 0; i < 50; i++) stackB.write(packet(stream.localPort, 80, { syn: true }, i));
    }
    const answered = toA - before;
    const challenged = b
      .connections()
      .reduce((n, c) => n + (c.stats as { challengeAcks: number }).challengeAcks, 0);
    assert.equal(answered, challenged);
    assert.ok(challenged >= 4 && challenged < 12, `challenge ACKs: ${challenged}`);
    assert.ok(b.counters().challengeAcksRateLimited > 0);
    a.close();
    b.close();
  });
});
