/**
 * TcpConnection behaviours beyond the state table: simultaneous open and close, RST
 * handling and blind-attack resistance (RFC 5961), backpressure, bounded memory under
 * floods, delayed ACKs and SACK blocks, zero-window probing, RTO backoff and give-up,
 * fast retransmit with NewReno recovery, window scaling, and keepalive.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TcpConnection } from "../../src/netstack/tcp-connection.ts";
import { TcpListener } from "../../src/netstack/tcp-listener.ts";
import type { TcpSegment } from "../../src/netstack/tcp-segment.ts";
import { seqAdd } from "../../src/netstack/tcp-sequence.ts";
import { createRandom } from "../../src/sim/random.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";
import {
  concat,
  connectPair,
  drive,
  flagNames,
  OUR_ISS,
  type Pair,
  type PairOptions,
  PEER_ISS,
  segment,
} from "./tcp-peer.ts";

const CLEAN = { delayMs: 10, jitterMs: 0, loss: 0, duplicate: 0 };

/** A pair run until both ends are ESTABLISHED; the server reads nothing unless told to. */
function established(options: Partial<PairOptions> = {}): Pair & { srv: TcpConnection } {
  const pair = connectPair(createRandom(7), { link: CLEAN, ...options });
  pair.clock.advance(1000);
  const srv = pair.server();
  assert.ok(srv !== undefined, "the listener accepted the SYN");
  assert.equal(pair.client.state, "ESTABLISHED");
  assert.equal(srv.state, "ESTABLISHED");
  return { ...pair, srv };
}

function readAll(connection: TcpConnection, into: Uint8Array[]): void {
  connection.setEvents({ onReadable: () => into.push(connection.read()) });
}

describe("TcpConnection", () => {
  test("simultaneous open: two SYNs cross and both reach ESTABLISHED", () => {
    const clock = new VirtualClock();
    const ends: { a?: TcpConnection; b?: TcpConnection } = {};
    const options = (iss: number, local: number, remote: number, to: "a" | "b") => ({
      clock,
      send: (s: TcpSegment) => clock.setTimer(5, () => ends[to]?.receive(s)),
      randomUint32: () => iss,
      localPort: local,
      remotePort: remote,
    });
    ends.a = TcpConnection.connect(options(100, 1, 2, "b"));
    ends.b = TcpConnection.connect(options(900, 2, 1, "a"));
    clock.advance(3);
    assert.equal(ends.a.state, "SYN-SENT");
    clock.advance(2);
    assert.equal(ends.a.state, "SYN-RECEIVED", "each side saw the other's bare SYN");
    assert.equal(ends.b.state, "SYN-RECEIVED");
    clock.advance(10);
    assert.equal(ends.a.state, "ESTABLISHED");
    assert.equal(ends.b.state, "ESTABLISHED");
    const got: Uint8Array[] = [];
    readAll(ends.b, got);
    ends.a.write(new Uint8Array([1, 2, 3]));
    clock.advance(50);
    assert.deepEqual(concat(got), new Uint8Array([1, 2, 3]));
  });

  test("simultaneous close: both FINs cross, both pass CLOSING and TIME-WAIT to CLOSED", () => {
    const pair = established();
    const states = { client: [] as string[], server: [] as string[] };
    pair.client.setEvents({ onClosed: (r) => states.client.push(r) });
    pair.srv.setEvents({ onClosed: (r) => states.server.push(r) });
    pair.client.close();
    pair.srv.close();
    assert.equal(pair.client.state, "FIN-WAIT-1");
    assert.equal(pair.srv.state, "FIN-WAIT-1");
    pair.clock.advance(10);
    assert.equal(pair.client.state, "CLOSING");
    assert.equal(pair.srv.state, "CLOSING");
    pair.clock.advance(10);
    assert.equal(pair.client.state, "TIME-WAIT");
    assert.equal(pair.srv.state, "TIME-WAIT");
    pair.clock.advance(2000);
    assert.deepEqual(states, { client: ["closed"], server: ["closed"] });
  });

  test("onRelease reaches the owner even after the application replaced its events", () => {
    const released: string[] = [];
    const pair = established({ client: { onRelease: (r) => released.push(r) } });
    pair.client.setEvents({});
    pair.client.abort();
    assert.deepEqual(released, ["aborted"]);
  });

  test("abort resets the peer, which reports the reset and closes", () => {
    const pair = established();
    const events: string[] = [];
    pair.srv.setEvents({
      onReset: () => events.push("reset"),
      onClosed: (r) => events.push(`closed:${r}`),
    });
    pair.client.write(new Uint8Array(1000));
    pair.client.abort();
    assert.equal(pair.client.state, "CLOSED");
    pair.clock.advance(100);
    assert.equal(pair.srv.state, "CLOSED");
    assert.deepEqual(events, ["reset", "closed:reset"]);
  });

  test("blind RSTs, SYNs and data with guessed numbers do not break a connection (RFC 5961)", () => {
    const d = drive("ESTABLISHED");
    const random = createRandom(11);
    for (let i = 0; i < 6000; i++) {
      // A third anywhere in sequence space, the rest inside the window but not at RCV.NXT.
      const seq =
        i % 3 === 0 ? random.int(0x1_0000_0000) : seqAdd(PEER_ISS + 2, random.int(200_000));
      const kind = i % 2;
      d.connection.receive(
        segment({
          seq,
          ack: random.int(0x1_0000_0000),
          flags: kind === 0 ? { rst: true } : { syn: true },
        }),
      );
    }
    for (let i = 0; i < 1000; i++) {
      d.connection.receive(
        segment({
          seq: random.int(0x1_0000_0000),
          ack: OUR_ISS - 1_000_000 - random.int(1_000_000),
          flags: { ack: true },
          payload: new Uint8Array(100),
        }),
      );
    }
    assert.equal(d.connection.state, "ESTABLISHED");
    assert.equal(d.connection.readableBytes, 0, "no injected byte was accepted");
    assert.ok(d.connection.stats.resetsIgnored >= 3000, "every wrong RST was counted as ignored");
    assert.equal(
      d.connection.stats.challengeAcks,
      10,
      "challenge ACKs are rate limited to 10 a second",
    );
    d.clock.advance(1000);
    d.connection.receive(segment({ seq: PEER_ISS + 1, flags: { syn: true } }));
    assert.equal(d.connection.stats.challengeAcks, 11, "the limit refills after a second");
    d.connection.receive(segment({ seq: PEER_ISS + 1, flags: { rst: true } }));
    assert.equal(d.connection.state, "CLOSED", "the exact RST still resets");
  });

  test("backpressure: write returns 0 when the send buffer is full and takes more after ACKs", () => {
    const pair = established({ client: { sendBufferBytes: 10_000 } });
    let writable = 0;
    pair.client.setEvents({ onWritable: () => writable++ });
    const got: Uint8Array[] = [];
    readAll(pair.srv, got);
    assert.equal(pair.client.write(new Uint8Array(15_000).fill(1)), 10_000);
    assert.equal(pair.client.write(new Uint8Array(5)), 0, "the buffer is full");
    assert.equal(pair.client.writableBytes, 0);
    pair.clock.advance(200);
    assert.ok(writable > 0, "onWritable fired");
    assert.equal(pair.client.writableBytes, 10_000, "all acknowledged, all free");
    assert.equal(pair.client.write(new Uint8Array(5000).fill(2)), 5000);
    pair.clock.advance(200);
    assert.equal(concat(got).length, 15_000);
  });

  test("a receiver that stops reading closes the window; probes keep going; reading resumes it", () => {
    const pair = established({ server: { receiveBufferBytes: 8192 } });
    const data = createRandom(3).bytes(50_000);
    let written = pair.client.write(data);
    pair.clock.advance(5000);
    assert.equal(pair.srv.readableBytes, 8192, "the receiver's buffer filled");
    assert.ok(pair.client.stats.windowProbes > 0, "the sender probed the zero window");
    assert.equal(pair.client.stats.timeouts, 0, "probing is not a timeout");
    assert.equal(pair.client.state, "ESTABLISHED");
    const got: Uint8Array[] = [pair.srv.read()];
    readAll(pair.srv, got);
    pair.client.setEvents({
      onWritable: () => {
        written += pair.client.write(data.subarray(written));
      },
    });
    pair.clock.advance(30_000);
    assert.deepEqual(concat(got), data);
  });

  test("a zero-window peer that stops answering probes is given up on", () => {
    let gone = false;
    const pair = established({
      server: { receiveBufferBytes: 4096 },
      drop: (_, toServer) => gone && toServer,
    });
    const reasons: string[] = [];
    pair.client.setEvents({ onClosed: (r) => reasons.push(r) });
    pair.client.write(new Uint8Array(20_000));
    pair.clock.advance(5000);
    assert.ok(pair.client.stats.windowProbes > 0, "probing the zero window");
    pair.clock.advance(600_000);
    assert.equal(pair.client.state, "ESTABLISHED", "an answering peer may hold its window shut");
    gone = true;
    pair.clock.advance(3_600_000);
    assert.equal(pair.client.state, "CLOSED");
    assert.deepEqual(reasons, ["timeout"]);
  });

  test("an application that aborts inside onReadable leaves the connection quietly CLOSED", () => {
    const d = drive("ESTABLISHED");
    d.connection.setEvents({ onReadable: () => d.connection.abort() });
    d.connection.receive(
      segment({
        seq: PEER_ISS + 1,
        ack: OUR_ISS + 1,
        flags: { ack: true, fin: true },
        payload: new Uint8Array(10),
      }),
    );
    assert.equal(d.connection.state, "CLOSED");
    assert.deepEqual(d.sent.map(flagNames), ["RST"]);
    d.clock.advance(10_000);
    assert.deepEqual(d.sent.map(flagNames), ["RST"], "no timer sends after CLOSED");
  });

  test("delayed ACK: one segment waits 40 ms, a second is acknowledged at the end of its batch", () => {
    const d = drive("ESTABLISHED");
    const data = (seq: number, n: number) =>
      d.connection.receive(
        segment({
          seq: PEER_ISS + 1 + seq,
          ack: OUR_ISS + 1,
          flags: { ack: true },
          payload: new Uint8Array(n),
        }),
      );
    data(0, 500);
    assert.equal(d.sent.length, 0, "the first segment's ACK is delayed");
    d.clock.advance(39);
    assert.equal(d.sent.length, 0);
    d.clock.advance(1);
    assert.deepEqual(d.sent.map(flagNames), ["ACK"]);
    assert.equal(d.sent[0]!.ack, PEER_ISS + 501);
    d.sent.length = 0;
    data(500, 500);
    data(1000, 500);
    data(1500, 500);
    assert.equal(d.sent.length, 0, "not within the batch being delivered");
    d.clock.advance(0);
    assert.deepEqual(
      d.sent.map(flagNames),
      ["ACK"],
      "a batch with a second segment is acknowledged once, as soon as it is delivered",
    );
    assert.equal(d.sent[0]!.ack, PEER_ISS + 2001);
  });

  test("out-of-order data is acknowledged at the end of its batch with SACK blocks, and delivered when the gap fills", () => {
    const d = drive("ESTABLISHED");
    // drive's peer SYN carried no SACK-permitted; negotiate it with a fresh SYN+ACK path.
    const clock = new VirtualClock();
    const sent: TcpSegment[] = [];
    const c = TcpConnection.connect({
      clock,
      send: (s) => sent.push(s),
      randomUint32: () => OUR_ISS,
      localPort: 1,
      remotePort: 2,
    });
    c.receive(
      segment({
        seq: PEER_ISS,
        ack: OUR_ISS + 1,
        flags: { syn: true, ack: true },
        options: { sackPermitted: true },
      }),
    );
    sent.length = 0;
    const data = (offset: number, bytes: number[]) =>
      c.receive(
        segment({
          seq: PEER_ISS + 1 + offset,
          ack: OUR_ISS + 1,
          flags: { ack: true },
          payload: new Uint8Array(bytes),
        }),
      );
    data(4, [5, 6]);
    clock.advance(0);
    data(8, [9]);
    clock.advance(0);
    assert.deepEqual(
      sent.map(flagNames),
      ["ACK", "ACK"],
      "each batch with out-of-order data is ACKed as soon as it is delivered",
    );
    const base = PEER_ISS + 1;
    assert.deepEqual(sent[1]!.options.sack, [
      [base + 8, base + 9],
      [base + 4, base + 6],
    ]);
    assert.equal(c.readableBytes, 0);
    data(0, [1, 2, 3, 4]);
    assert.equal(c.readableBytes, 6);
    data(6, [7, 8]);
    clock.advance(0);
    assert.deepEqual(c.read(), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    assert.equal(sent.at(-1)!.ack, base + 9);
    assert.equal(sent.at(-1)!.options.sack, undefined, "no SACK once nothing is held");
    assert.equal(d.connection.state, "ESTABLISHED");
  });

  test("a flood of out-of-window and tiny out-of-order segments keeps every queue bounded", () => {
    const d = drive("ESTABLISHED", { receiveBufferBytes: 16_384 });
    const random = createRandom(5);
    for (let i = 0; i < 20_000; i++) {
      // Half mostly past the 16 KiB window, half tiny pieces inside it.
      const tiny = i % 2 === 1;
      const offset = 1 + random.int(tiny ? 16_000 : 200_000);
      d.connection.receive(
        segment({
          seq: seqAdd(PEER_ISS + 1, offset),
          ack: OUR_ISS + 1,
          flags: { ack: true },
          payload: new Uint8Array(tiny ? 1 : 1 + random.int(3000)),
        }),
      );
    }
    assert.ok(
      d.connection.reassemblyBytes <= 16_384,
      `reassembly ${d.connection.reassemblyBytes} within the window`,
    );
    assert.ok(d.connection.stats.outOfWindow > 5000, "out-of-window segments counted");
    assert.ok(d.connection.stats.reassemblyDrops > 0, "the piece limit was hit and counted");
    assert.equal(d.connection.readableBytes, 0);
    assert.equal(d.connection.state, "ESTABLISHED");
  });

  test("a SYN flood holds at most maxHalfOpen connections, which time out and free their slots", () => {
    const clock = new VirtualClock();
    let connections = 0;
    const listener = new TcpListener({
      maxHalfOpen: 16,
      synCookies: false,
      onConnection: () => connections++,
    });
    const open: TcpConnection[] = [];
    let released = 0;
    for (let i = 0; i < 1000; i++) {
      const c = listener.receive(
        segment({ seq: i * 7919, sourcePort: 1024 + i, flags: { syn: true } }),
        {
          clock,
          send: () => {},
          randomUint32: () => i,
          localPort: 80,
          remotePort: 1024 + i,
          onRelease: () => {
            released++;
          },
        },
      );
      if (c !== undefined) open.push(c);
    }
    assert.equal(open.length, 16);
    assert.equal(listener.halfOpen, 16);
    assert.equal(listener.stats.synsDropped, 984);
    clock.advance(600_000);
    assert.ok(
      open.every((c) => c.state === "CLOSED"),
      "unanswered SYN+ACKs give up",
    );
    assert.equal(listener.halfOpen, 0, "their slots are free again");
    assert.equal(released, 16, "the owner heard of each release");
    assert.equal(connections, 0);
  });

  test("RTO doubles per timeout, never below 200 ms nor above 60 s, and the connection gives up", () => {
    const pair = established({ drop: (s, toServer) => toServer && s.payload.length > 0 });
    const reasons: string[] = [];
    pair.client.setEvents({ onClosed: (r) => reasons.push(r) });
    assert.ok(pair.client.rtoMs >= 200, `RTO ${pair.client.rtoMs} is at least the minimum`);
    const first = pair.client.rtoMs;
    pair.client.write(new Uint8Array(100));
    pair.clock.advance(first);
    assert.equal(pair.client.stats.timeouts, 1);
    assert.equal(pair.client.congestionWindow, pair.client.sendMss, "cwnd falls to one segment");
    assert.equal(pair.client.rtoMs, first * 2);
    pair.clock.advance(first * 2);
    assert.equal(pair.client.stats.timeouts, 2);
    assert.equal(pair.client.rtoMs, first * 4);
    pair.clock.advance(30 * 60_000);
    assert.ok(pair.client.rtoMs <= 60_000, "capped at 60 s");
    assert.equal(pair.client.state, "CLOSED");
    assert.deepEqual(reasons, ["timeout"]);
    assert.equal(
      pair.client.stats.timeouts,
      16,
      "15 retransmissions, then the 16th timeout gives up",
    );
  });

  test("Karn: an ACK of retransmitted data gives no RTT sample, so the backed-off RTO stays", () => {
    let dropped = false;
    const pair = established({
      drop: (s, toServer) => {
        if (!toServer || s.payload.length === 0 || dropped) return false;
        dropped = true;
        return true;
      },
    });
    const first = pair.client.rtoMs;
    pair.client.write(new Uint8Array(100));
    pair.clock.advance(first + 100);
    assert.equal(pair.client.stats.timeouts, 1);
    assert.equal(pair.client.writableBytes, 256 * 1024, "the retransmission was acknowledged");
    assert.equal(pair.client.rtoMs, first * 2, "no sample from the retransmitted segment");
    pair.client.write(new Uint8Array(100));
    pair.clock.advance(100);
    assert.ok(pair.client.rtoMs < first * 2, "a fresh segment's sample ends the backoff");
  });

  test("slow start begins at the RFC 5681 initial window and grows by the bytes acknowledged", () => {
    const pair = established();
    const mss = pair.client.sendMss;
    assert.equal(pair.client.congestionWindow, Math.min(4 * mss, Math.max(2 * mss, 4380)));
    readAll(pair.srv, []);
    pair.client.write(new Uint8Array(50_000));
    pair.clock.advance(1000);
    assert.ok(
      pair.client.congestionWindow >= 50_000 / 2,
      `cwnd grew to ${pair.client.congestionWindow}`,
    );
  });

  test("one lost segment in a bulk transfer is fast-retransmitted without a timeout", () => {
    let count = 0;
    const pair = established({
      drop: (s, toServer) => toServer && s.payload.length > 0 && ++count === 8,
    });
    const got: Uint8Array[] = [];
    readAll(pair.srv, got);
    const data = createRandom(9).bytes(100_000);
    assert.equal(pair.client.write(data), data.length);
    pair.clock.advance(5000);
    assert.ok(count > 8, "the eighth data segment was dropped");
    assert.deepEqual(concat(got), data);
    assert.equal(pair.client.stats.fastRetransmits, 1);
    assert.equal(pair.client.stats.retransmissions, 1);
    assert.equal(pair.client.stats.timeouts, 0);
  });

  test("NewReno: two losses in one window recover by a partial ACK, without a timeout", () => {
    let count = 0;
    const pair = established({
      drop: (s, toServer) => toServer && s.payload.length > 0 && (++count === 12 || count === 15),
    });
    const got: Uint8Array[] = [];
    readAll(pair.srv, got);
    const data = createRandom(10).bytes(200_000);
    assert.equal(pair.client.write(data), data.length);
    pair.clock.advance(10_000);
    assert.deepEqual(concat(got), data);
    assert.equal(pair.client.stats.fastRetransmits, 1, "one recovery episode");
    assert.equal(pair.client.stats.retransmissions, 2, "the second hole resent on the partial ACK");
    assert.equal(pair.client.stats.timeouts, 0);
  });

  test("a 3 s blackout mid-transfer: the stream resumes, completes byte-exact, and cwnd regrows", () => {
    let blackout = false;
    const pair = established({ drop: () => blackout });
    const got: Uint8Array[] = [];
    readAll(pair.srv, got);
    const data = createRandom(13).bytes(2_000_000);
    let written = pair.client.write(data);
    pair.client.setEvents({
      onWritable: () => {
        written += pair.client.write(data.subarray(written));
      },
    });
    while (concat(got).length < 100_000) pair.clock.advance(5);
    const before = concat(got).length;
    assert.ok(before < data.length, "the transfer is under way");
    blackout = true;
    pair.clock.advance(3000);
    assert.equal(pair.client.congestionWindow, pair.client.sendMss, "timeouts collapsed cwnd");
    blackout = false;
    pair.clock.advance(60_000);
    assert.deepEqual(concat(got), data);
    assert.ok(
      pair.client.congestionWindow > 10 * pair.client.sendMss,
      `cwnd regrew to ${pair.client.congestionWindow}`,
    );
    assert.equal(pair.client.state, "ESTABLISHED");
  });

  test("bad options throw RangeError naming the option", () => {
    const base = {
      clock: new VirtualClock(),
      send: () => {},
      randomUint32: () => 1,
      localPort: 1,
      remotePort: 2,
    };
    assert.throws(() => TcpConnection.connect({ ...base, sendBufferBytes: 0 }), /sendBufferBytes/);
    assert.throws(
      () => TcpConnection.connect({ ...base, receiveBufferBytes: 2 ** 31 }),
      /receiveBufferBytes/,
    );
    assert.throws(() => TcpConnection.connect({ ...base, localPort: 1.5 }), /localPort/);
  });

  test("SACK repairs five losses in one window within one recovery; NewReno alone is slower", () => {
    const run = (sack: boolean) => {
      let count = 0;
      const lost = new Set([14, 17, 20, 23, 26]);
      const sentBefore = new Set<number>();
      // Five first transmissions within one window (the third slow-start round, segments 13
      // to 28); retransmissions get through. The link spaces segments 0.1 ms apart, as its
      // rate would: a receiver acknowledges each batch that arrives together once.
      const firstTime = (seq: number) => !sentBefore.has(seq) && sentBefore.add(seq) !== undefined;
      const pair = established({
        link: { delayMs: 25, jitterMs: 0, loss: 0, duplicate: 0, spacingMs: 0.1 },
        client: { sack },
        server: { sack },
        drop: (s, toServer) =>
          toServer && s.payload.length > 0 && firstTime(s.seq) && lost.has(++count),
      });
      const got: Uint8Array[] = [];
      // When every hole is repaired: the reader has the bytes of the 32nd data segment.
      let repairedAt = 0;
      pair.srv.setEvents({
        onReadable: () => {
          got.push(pair.srv.read());
          const enough = 32 * pair.client.sendMss;
          if (repairedAt === 0 && concat(got).length >= enough) repairedAt = pair.clock.now();
        },
      });
      const data = createRandom(14).bytes(200_000);
      const start = pair.clock.now();
      pair.client.write(data);
      pair.clock.advance(20_000);
      assert.deepEqual(concat(got), data);
      return { ms: repairedAt - start, stats: pair.client.stats };
    };
    const withSack = run(true);
    const without = run(false);
    assert.equal(withSack.stats.timeouts, 0);
    assert.equal(withSack.stats.fastRetransmits, 1);
    assert.equal(withSack.stats.retransmissions, 5, "each hole resent once");
    assert.equal(without.stats.retransmissions, 5);
    // NewReno resends one hole per round trip (50 ms); SACK resends them all in one.
    assert.ok(
      withSack.ms + 3 * 50 <= without.ms,
      `holes repaired after ${withSack.ms} ms with SACK, ${without.ms} ms without`,
    );
  });

  test("window scaling lets more than 64 KiB be in flight", () => {
    let maxInFlight = 0;
    let highest = 0;
    let acked = 0;
    const pair = established({
      link: { delayMs: 50, jitterMs: 0, loss: 0, duplicate: 0 },
      drop: (s, toServer) => {
        if (toServer && s.payload.length > 0) {
          highest = Math.max(highest, s.seq + s.payload.length);
        } else if (!toServer) {
          acked = Math.max(acked, s.ack);
        }
        if (acked > 0) maxInFlight = Math.max(maxInFlight, highest - acked);
        return false;
      },
    });
    const got: Uint8Array[] = [];
    readAll(pair.srv, got);
    const data = createRandom(12).bytes(1_000_000);
    let written = pair.client.write(data);
    pair.client.setEvents({
      onWritable: () => {
        written += pair.client.write(data.subarray(written));
      },
    });
    pair.clock.advance(20_000);
    assert.deepEqual(concat(got), data);
    assert.ok(maxInFlight > 65_535, `in flight peaked at ${maxInFlight}`);
  });

  test("keepalive probes an idle connection and drops it when the peer is gone", () => {
    const keepalive = { idleMs: 10_000, intervalMs: 1000, probes: 3 };
    let peerGone = false;
    const pair = established({
      client: { keepalive },
      drop: (_, toServer) => peerGone && toServer,
    });
    const reasons: string[] = [];
    pair.client.setEvents({ onClosed: (r) => reasons.push(r) });
    const sentBefore = pair.client.stats.segmentsSent;
    pair.clock.advance(60_000);
    assert.equal(pair.client.state, "ESTABLISHED", "an answering peer keeps it open");
    assert.ok(pair.client.stats.segmentsSent - sentBefore >= 5, "probes were sent while idle");
    peerGone = true;
    pair.clock.advance(10_000 + 3 * 1000 + 1000);
    assert.equal(pair.client.state, "CLOSED");
    assert.deepEqual(reasons, ["timeout"]);
  });

  test("keepalive is off by default", () => {
    const pair = established();
    const sentBefore = pair.client.stats.segmentsSent;
    pair.clock.advance(3_600_000);
    assert.equal(pair.client.stats.segmentsSent, sentBefore);
  });

  test("write after close accepts nothing; close and abort are idempotent", () => {
    const pair = established();
    pair.client.close();
    assert.equal(pair.client.write(new Uint8Array(10)), 0);
    pair.client.close();
    pair.client.abort();
    pair.client.abort();
    assert.equal(pair.client.state, "CLOSED");
  });
});
