/**
 * The TCP state machine as a table (RFC 9293 §3.3.2, §3.10; RFC 5961): for each state
 * and event, the state that follows and the segments sent. The test plays the peer with
 * ISS 5000 against our connection with ISS 1000.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TcpConnection } from "../../src/netstack/tcp-connection.ts";
import { TcpListener } from "../../src/netstack/tcp-listener.ts";
import type { TcpSegment } from "../../src/netstack/tcp-segment.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";
import {
  type Driven,
  type DrivenState,
  drive,
  driverOptions,
  flagNames,
  MSL_MS,
  OUR_ISS,
  PEER_ISS,
  segment,
} from "./tcp-peer.ts";

interface Row {
  readonly from: DrivenState;
  readonly event: string;
  readonly act: (d: Driven) => void;
  readonly to: string;
  /** Flags of each segment sent in response, in order. */
  readonly sends: readonly string[];
  readonly check?: (sent: readonly TcpSegment[], d: Driven) => void;
}

const peer = (d: Driven, parts: Parameters<typeof segment>[0]) =>
  d.connection.receive(segment(parts));
const inSeq = { seq: PEER_ISS + 1, ack: OUR_ISS + 1, flags: { ack: true } };

const ROWS: readonly Row[] = [
  {
    from: "SYN-SENT",
    event: "SYN+ACK",
    act: (d) => peer(d, { seq: PEER_ISS, ack: OUR_ISS + 1, flags: { syn: true, ack: true } }),
    to: "ESTABLISHED",
    sends: ["ACK"],
    check: (sent) => assert.equal(sent[0]!.ack, PEER_ISS + 1, "the ACK covers the peer's SYN"),
  },
  {
    from: "SYN-SENT",
    event: "SYN (simultaneous open)",
    act: (d) => peer(d, { seq: PEER_ISS, flags: { syn: true } }),
    to: "SYN-RECEIVED",
    sends: ["SYN+ACK"],
    check: (sent) => assert.equal(sent[0]!.seq, OUR_ISS, "the SYN+ACK repeats our ISS"),
  },
  {
    from: "SYN-SENT",
    event: "RST+ACK acknowledging the SYN",
    act: (d) => peer(d, { seq: 0, ack: OUR_ISS + 1, flags: { rst: true, ack: true } }),
    to: "CLOSED",
    sends: [],
    check: (_, d) => assert.deepEqual(d.closedReasons, ["refused"]),
  },
  {
    from: "SYN-SENT",
    event: "RST without ACK",
    act: (d) => peer(d, { seq: 0, flags: { rst: true } }),
    to: "SYN-SENT",
    sends: [],
  },
  {
    from: "SYN-SENT",
    event: "ACK of something never sent",
    act: (d) => peer(d, { seq: PEER_ISS, ack: OUR_ISS + 77, flags: { ack: true } }),
    to: "SYN-SENT",
    sends: ["RST"],
    check: (sent) => assert.equal(sent[0]!.seq, OUR_ISS + 77, "RST seq is the bad ACK"),
  },
  {
    from: "SYN-SENT",
    event: "close",
    act: (d) => d.connection.close(),
    to: "CLOSED",
    sends: [],
  },
  {
    from: "SYN-SENT",
    event: "RTO (1 s initially)",
    act: (d) => d.clock.advance(1000),
    to: "SYN-SENT",
    sends: ["SYN"],
  },
  {
    from: "SYN-RECEIVED",
    event: "ACK of our SYN",
    act: (d) => peer(d, inSeq),
    to: "ESTABLISHED",
    sends: [],
  },
  {
    from: "SYN-RECEIVED",
    event: "ACK of a wrong number",
    act: (d) => peer(d, { seq: PEER_ISS + 1, ack: OUR_ISS + 9, flags: { ack: true } }),
    to: "SYN-RECEIVED",
    sends: ["RST"],
  },
  {
    from: "SYN-RECEIVED",
    event: "retransmitted SYN",
    act: (d) => peer(d, { seq: PEER_ISS, flags: { syn: true } }),
    to: "SYN-RECEIVED",
    sends: ["SYN+ACK"],
  },
  {
    from: "SYN-RECEIVED",
    event: "RST at RCV.NXT",
    act: (d) => peer(d, { seq: PEER_ISS + 1, flags: { rst: true } }),
    to: "CLOSED",
    sends: [],
  },
  {
    from: "SYN-RECEIVED",
    event: "close, then ACK of our SYN",
    act: (d) => {
      d.connection.close();
      peer(d, inSeq);
    },
    to: "FIN-WAIT-1",
    sends: ["FIN+ACK"],
  },
  {
    from: "ESTABLISHED",
    event: "close",
    act: (d) => d.connection.close(),
    to: "FIN-WAIT-1",
    sends: ["FIN+ACK"],
  },
  {
    from: "ESTABLISHED",
    event: "FIN",
    act: (d) => peer(d, { ...inSeq, flags: { ack: true, fin: true } }),
    to: "CLOSE-WAIT",
    sends: ["ACK"],
    check: (sent) => assert.equal(sent[0]!.ack, PEER_ISS + 2, "the ACK covers the FIN"),
  },
  {
    from: "ESTABLISHED",
    event: "RST at exactly RCV.NXT",
    act: (d) => peer(d, { seq: PEER_ISS + 1, flags: { rst: true } }),
    to: "CLOSED",
    sends: [],
    check: (_, d) => assert.deepEqual(d.closedReasons, ["reset"]),
  },
  {
    from: "ESTABLISHED",
    event: "RST in window, not at RCV.NXT (RFC 5961 §3.2)",
    act: (d) => peer(d, { seq: PEER_ISS + 100, flags: { rst: true } }),
    to: "ESTABLISHED",
    sends: ["ACK"],
    check: (_, d) => assert.equal(d.connection.stats.challengeAcks, 1),
  },
  {
    from: "ESTABLISHED",
    event: "RST outside the window",
    act: (d) => peer(d, { seq: PEER_ISS - 100_000, flags: { rst: true } }),
    to: "ESTABLISHED",
    sends: [],
  },
  {
    from: "ESTABLISHED",
    event: "SYN (RFC 5961 §4)",
    act: (d) => peer(d, { seq: PEER_ISS + 1, flags: { syn: true } }),
    to: "ESTABLISHED",
    sends: ["ACK"],
  },
  {
    from: "ESTABLISHED",
    event: "ACK beyond SND.NXT",
    act: (d) => peer(d, { seq: PEER_ISS + 1, ack: OUR_ISS + 500, flags: { ack: true } }),
    to: "ESTABLISHED",
    sends: ["ACK"],
  },
  {
    from: "ESTABLISHED",
    event: "ACK far below SND.UNA (RFC 5961 §5)",
    act: (d) => peer(d, { seq: PEER_ISS + 1, ack: OUR_ISS - 1_000_000, flags: { ack: true } }),
    to: "ESTABLISHED",
    sends: ["ACK"],
  },
  {
    from: "ESTABLISHED",
    event: "data outside the window",
    act: (d) => peer(d, { ...inSeq, seq: PEER_ISS + 10_000_000, payload: new Uint8Array(10) }),
    to: "ESTABLISHED",
    sends: ["ACK"],
    check: (_, d) => assert.equal(d.connection.stats.outOfWindow, 1),
  },
  {
    from: "ESTABLISHED",
    event: "segment without ACK",
    act: (d) => peer(d, { seq: PEER_ISS + 1, payload: new Uint8Array(5) }),
    to: "ESTABLISHED",
    sends: [],
  },
  {
    from: "ESTABLISHED",
    event: "abort",
    act: (d) => d.connection.abort(),
    to: "CLOSED",
    sends: ["RST"],
  },
  {
    from: "FIN-WAIT-1",
    event: "ACK of FIN",
    act: (d) => peer(d, { seq: PEER_ISS + 1, ack: OUR_ISS + 2, flags: { ack: true } }),
    to: "FIN-WAIT-2",
    sends: [],
  },
  {
    from: "FIN-WAIT-1",
    event: "FIN (simultaneous close)",
    act: (d) => peer(d, { ...inSeq, flags: { ack: true, fin: true } }),
    to: "CLOSING",
    sends: ["ACK"],
  },
  {
    from: "FIN-WAIT-1",
    event: "FIN with ACK of our FIN",
    act: (d) => peer(d, { seq: PEER_ISS + 1, ack: OUR_ISS + 2, flags: { ack: true, fin: true } }),
    to: "TIME-WAIT",
    sends: ["ACK"],
  },
  {
    from: "FIN-WAIT-1",
    event: "RTO",
    act: (d) => d.clock.advance(d.connection.rtoMs),
    to: "FIN-WAIT-1",
    sends: ["FIN+ACK"],
  },
  {
    from: "FIN-WAIT-1",
    event: "abort",
    act: (d) => d.connection.abort(),
    to: "CLOSED",
    sends: ["RST"],
  },
  {
    from: "FIN-WAIT-2",
    event: "FIN",
    act: (d) => peer(d, { seq: PEER_ISS + 1, ack: OUR_ISS + 2, flags: { ack: true, fin: true } }),
    to: "TIME-WAIT",
    sends: ["ACK"],
  },
  {
    from: "CLOSE-WAIT",
    event: "close",
    act: (d) => d.connection.close(),
    to: "LAST-ACK",
    sends: ["FIN+ACK"],
  },
  {
    from: "CLOSE-WAIT",
    event: "RST at RCV.NXT",
    act: (d) => peer(d, { seq: PEER_ISS + 2, flags: { rst: true } }),
    to: "CLOSED",
    sends: [],
  },
  {
    from: "CLOSING",
    event: "ACK of FIN",
    act: (d) => peer(d, { seq: PEER_ISS + 2, ack: OUR_ISS + 2, flags: { ack: true } }),
    to: "TIME-WAIT",
    sends: [],
  },
  {
    from: "LAST-ACK",
    event: "ACK of FIN",
    act: (d) => peer(d, { seq: PEER_ISS + 2, ack: OUR_ISS + 2, flags: { ack: true } }),
    to: "CLOSED",
    sends: [],
    check: (_, d) => assert.deepEqual(d.closedReasons, ["closed"]),
  },
  {
    from: "LAST-ACK",
    event: "RTO",
    act: (d) => d.clock.advance(d.connection.rtoMs),
    to: "LAST-ACK",
    sends: ["FIN+ACK"],
  },
  {
    from: "TIME-WAIT",
    event: "retransmitted FIN",
    act: (d) => peer(d, { seq: PEER_ISS + 1, ack: OUR_ISS + 2, flags: { ack: true, fin: true } }),
    to: "TIME-WAIT",
    sends: ["ACK"],
  },
  {
    from: "TIME-WAIT",
    event: "RST at RCV.NXT (RFC 1337: ignored)",
    act: (d) => peer(d, { seq: PEER_ISS + 2, flags: { rst: true } }),
    to: "TIME-WAIT",
    sends: [],
    check: (_, d) => assert.equal(d.connection.stats.resetsIgnored, 1),
  },
  {
    from: "TIME-WAIT",
    event: "2 MSL",
    act: (d) => d.clock.advance(2 * MSL_MS),
    to: "CLOSED",
    sends: [],
    check: (_, d) => assert.deepEqual(d.closedReasons, ["closed"]),
  },
  {
    from: "TIME-WAIT",
    event: "SYN (RFC 5961 §4)",
    act: (d) => peer(d, { seq: PEER_ISS + 2, flags: { syn: true } }),
    to: "TIME-WAIT",
    sends: ["ACK"],
  },
];

describe("TcpConnection state table", () => {
  for (const row of ROWS) {
    test(`${row.from} + ${row.event} -> ${row.to}, sends [${row.sends.join(", ")}]`, () => {
      const d = drive(row.from);
      row.act(d);
      assert.equal(d.connection.state, row.to);
      assert.deepEqual(d.sent.map(flagNames), row.sends);
      row.check?.(d.sent, d);
    });
  }

  test("CLOSED + connect -> SYN-SENT, sends SYN with MSS, window scale and SACK-permitted", () => {
    const clock = new VirtualClock();
    const sent: TcpSegment[] = [];
    const c = TcpConnection.connect(driverOptions(clock, sent, [], { pathMtuBytes: 1420 }));
    assert.equal(c.state, "SYN-SENT");
    assert.deepEqual(sent.map(flagNames), ["SYN"]);
    assert.equal(sent[0]!.seq, OUR_ISS);
    assert.equal(sent[0]!.options.mss, 1380);
    assert.equal(sent[0]!.options.windowScale, 3, "256 KiB needs a shift of 3");
    assert.equal(sent[0]!.options.sackPermitted, true);
  });

  test("LISTEN + SYN -> SYN-RECEIVED sends SYN+ACK; + ACK sends RST; + RST nothing", () => {
    const clock = new VirtualClock();
    const sent: TcpSegment[] = [];
    const listener = new TcpListener({ onConnection: () => {} });
    const options = driverOptions(clock, sent, []);
    assert.equal(listener.state, "LISTEN");
    const c = listener.receive(
      segment({ seq: PEER_ISS, flags: { syn: true }, options: { mss: 1000, windowScale: 2 } }),
      options,
    );
    assert.equal(c?.state, "SYN-RECEIVED");
    assert.deepEqual(sent.map(flagNames), ["SYN+ACK"]);
    assert.equal(sent[0]!.ack, PEER_ISS + 1);
    assert.equal(sent[0]!.options.windowScale, 3, "scale answered because the SYN offered it");
    assert.equal(c?.sendMss, 1000);
    sent.length = 0;
    assert.equal(
      listener.receive(segment({ seq: 1, ack: 77, flags: { ack: true } }), options),
      undefined,
    );
    assert.deepEqual(sent.map(flagNames), ["RST"]);
    assert.equal(sent[0]!.seq, 77);
    sent.length = 0;
    assert.equal(listener.receive(segment({ seq: 1, flags: { rst: true } }), options), undefined);
    assert.deepEqual(sent, []);
  });

  test("TIME-WAIT lets a SYN past RCV.NXT start a new incarnation, not an old or lower one", () => {
    const d = drive("TIME-WAIT");
    const syn = (seq: number) => segment({ seq, flags: { syn: true } });
    assert.equal(d.connection.acceptsNewSyn(syn(PEER_ISS + 100_000)), true);
    assert.equal(d.connection.acceptsNewSyn(syn(PEER_ISS)), false);
    assert.equal(
      d.connection.acceptsNewSyn(segment({ seq: PEER_ISS + 9, flags: { syn: true, ack: true } })),
      false,
    );
    assert.equal(drive("ESTABLISHED").connection.acceptsNewSyn(syn(PEER_ISS + 100_000)), false);
    d.connection.abort();
    assert.equal(d.connection.state, "CLOSED");
    assert.deepEqual(d.sent, [], "no RST from TIME-WAIT");
  });

  test("a SYN without options gives the default MSS of 536 and no window scaling", () => {
    const clock = new VirtualClock();
    const sent: TcpSegment[] = [];
    const c = TcpConnection.accept(
      segment({ seq: PEER_ISS, flags: { syn: true } }),
      driverOptions(clock, sent, []),
    );
    assert.equal(c?.sendMss, 536);
    assert.equal(
      sent[0]!.options.windowScale,
      undefined,
      "no scale option when the peer sent none",
    );
    assert.equal(sent[0]!.options.sackPermitted, undefined);
  });
});
