/**
 * Loss recovery beyond three duplicate ACKs, found wanting by the real-stack test (#10):
 * 50 MB from weft to curl over a link losing 1% each way took 24 s with 94 RTOs, each an
 * idle 200 ms on a sub-millisecond path. These drive one TcpConnection by hand:
 *  - SACK loss detection (RFC 6675 IsLost): one ACK whose SACKs cover three segments
 *    above a hole starts fast recovery, when the other duplicates were lost on the way;
 *  - the tail loss probe (RFC 8985 §7): a flight whose tail was lost draws an ACK after
 *    two RTTs instead of the RTO, and its SACK starts recovery;
 *  - after a timeout, data the peer SACKed is not sent again (RFC 6675 §5.1).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TcpConnection } from "../../src/netstack/tcp-connection.ts";
import type { TcpSegment } from "../../src/netstack/tcp-segment.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";
import { driverOptions, OUR_ISS, PEER_ISS, segment } from "./tcp-peer.ts";

const MSS = 1000;
const FIRST = OUR_ISS + 1;

function sender(bytes: number) {
  const clock = new VirtualClock();
  const sent: TcpSegment[] = [];
  const connection = TcpConnection.connect(driverOptions(clock, sent, []));
  connection.receive(
    segment({
      seq: PEER_ISS,
      ack: FIRST,
      window: 60_000,
      options: { mss: MSS, sackPermitted: true },
      flags: { syn: true, ack: true },
    }),
  );
  assert.equal(connection.state, "ESTABLISHED");
  connection.write(new Uint8Array(bytes));
  const ack = (n: number, sack?: [number, number][]) =>
    connection.receive(
      segment({
        seq: PEER_ISS + 1,
        ack: n,
        window: 60_000,
        flags: { ack: true },
        ...(sack === undefined ? {} : { options: { sack } }),
      }),
    );
  const dataSeqs = (from = 0) =>
    sent
      .slice(from)
      .filter((s) => s.payload.length > 0)
      .map((s) => s.seq);
  return { clock, sent, connection, ack, dataSeqs };
}

describe("TcpConnection loss recovery", () => {
  test("one ACK SACKing three segments above a hole starts fast recovery; one SACKing a single segment does not", () => {
    const { connection, ack, sent, dataSeqs } = sender(20 * MSS);
    ack(FIRST + MSS);
    ack(FIRST + 2 * MSS);
    assert.ok(dataSeqs().length >= 6, `segments in flight: ${dataSeqs().length}`);
    const lost = FIRST + 2 * MSS;
    let before = sent.length;
    ack(lost, [[lost + MSS, lost + 2 * MSS]]);
    assert.equal(connection.stats.fastRetransmits, 0, "one segment SACKed: not yet lost");
    assert.ok(!dataSeqs(before).includes(lost), "nothing resent");
    before = sent.length;
    // The next two duplicates were lost; this one SACKs three segments in all.
    ack(lost, [[lost + MSS, lost + 4 * MSS]]);
    assert.equal(connection.stats.fastRetransmits, 1, "fast recovery from the SACKs alone");
    assert.ok(dataSeqs(before).includes(lost), "the hole was resent at once");
    assert.equal(connection.stats.timeouts, 0);
  });

  test("a lost tail is probed after two RTTs, and the probe's SACK starts recovery without an RTO", () => {
    const { clock, connection, ack, sent, dataSeqs } = sender(4 * MSS);
    assert.deepEqual(
      dataSeqs(),
      [FIRST, FIRST + MSS, FIRST + 2 * MSS, FIRST + 3 * MSS],
      "the whole flight went out",
    );
    ack(FIRST + 2 * MSS); // the last two segments are lost: no duplicate ACK will come
    let before = sent.length;
    clock.advance(20); // the RTT was ~0: the probe is due after the 10 ms floor
    assert.equal(connection.stats.lossProbes, 1, "one tail loss probe");
    assert.deepEqual(dataSeqs(before), [FIRST + 3 * MSS], "the probe resends the last segment");
    before = sent.length;
    ack(FIRST + 2 * MSS, [[FIRST + 3 * MSS, FIRST + 4 * MSS]]);
    assert.equal(connection.stats.fastRetransmits, 1, "the probe's SACK shows the hole");
    assert.deepEqual(dataSeqs(before), [FIRST + 2 * MSS], "the hole is resent");
    ack(FIRST + 4 * MSS);
    clock.advance(1_000);
    assert.equal(connection.stats.timeouts, 0, "no retransmission timeout at all");
    assert.equal(connection.writableBytes, 256 * 1024, "everything acknowledged");
  });

  test("after a timeout, segments the peer SACKed are not sent again", () => {
    const { clock, connection, ack, sent, dataSeqs } = sender(6 * MSS);
    ack(FIRST + MSS);
    const flight = dataSeqs();
    assert.ok(flight.length >= 5, `segments in flight: ${flight.length}`);
    const sacked = FIRST + 3 * MSS;
    ack(FIRST + MSS, [[sacked, sacked + MSS]]); // too little for recovery
    const before = sent.length;
    clock.advance(connection.rtoMs + 50);
    assert.equal(connection.stats.timeouts, 1, "the RTO fired");
    // Each ACK of the go-back-N pass lets more out; the SACKed segment must be skipped.
    ack(FIRST + 2 * MSS, [[sacked, sacked + MSS]]);
    ack(sacked, [[sacked, sacked + MSS]]);
    ack(sacked + MSS);
    const resent = dataSeqs(before).filter((seq) => seq < FIRST + 6 * MSS);
    assert.ok(resent.includes(FIRST + MSS), `the hole at SND.UNA is resent: ${resent}`);
    assert.ok(!resent.includes(sacked), `the SACKed segment is not: ${resent}`);
  });
});
