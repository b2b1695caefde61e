import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encode as encodeCbor } from "cbor-x";
import fc from "fast-check";
import { DEFAULT_MAX_FRAME_BYTES, fragment, Reassembler } from "../../src/mesh/fragments.ts";
import {
  decodeFrame,
  encodeFrame,
  encodeRelay,
  FRAME_TYPE,
  type Frame,
  MESH_PROTOCOL_VERSION,
} from "../../src/mesh/frames.ts";
import { isUnicastCandidate } from "../../src/mesh/peer-state.ts";
import { createRandom } from "../../src/sim/random.ts";

const key = (n: number) => new Uint8Array(32).fill(n);
const bytes = (...b: number[]) => new Uint8Array(b);

const samples: Frame[] = [
  {
    type: "hello",
    hello: {
      version: MESH_PROTOCOL_VERSION,
      nickname: "alpha",
      endpoints: [
        { address: "192.0.2.1", port: 51820 },
        { address: "2001:db8::1", port: 51821 },
      ],
      features: ["relay"],
    },
  },
  { type: "ping", nonce: new Uint8Array(8).fill(7) },
  {
    type: "pong",
    nonce: new Uint8Array(8).fill(7),
    helloSeen: true,
    observed: { address: "198.51.100.4", port: 4000 },
  },
  {
    type: "pong",
    nonce: new Uint8Array(8),
    helloSeen: false,
    observed: { address: "::1", port: 9 },
  },
  { type: "relay", hopLimit: 16, destination: key(1), source: key(2), message: bytes(4, 0, 0, 0) },
  { type: "gossip", message: bytes(1, 2, 3) },
  { type: "datagram", port: 7, data: bytes(9, 9) },
  { type: "datagram", port: 0, data: new Uint8Array(0) },
  { type: "broadcast", hopLimit: 3, source: key(5), port: 80, data: bytes(1) },
  { type: "fragment", id: 0xdeadbeef, index: 1, count: 3, piece: bytes(5, 6) },
  {
    type: "candidates",
    endpoints: [
      { address: "192.168.1.2", port: 51820 },
      { address: "203.0.113.1", port: 1024 },
      { address: "2001:db8::7", port: 65535 },
    ],
  },
  { type: "candidates", endpoints: [] },
];

/** A candidates frame around any CBOR value. */
function candidatesOf(value: unknown): Uint8Array {
  const body = encodeCbor(value);
  return new Uint8Array([FRAME_TYPE.candidates, body.length >> 8, body.length & 0xff, ...body]);
}

describe("hole punching candidates", () => {
  test("only unicast addresses with a port are worth a ping", () => {
    const cases: [string, number, boolean][] = [
      ["192.168.1.2", 51820, true],
      ["203.0.113.9", 1, true],
      ["2001:db8::1", 51820, true],
      ["::1", 51820, true],
      ["0.0.0.0", 51820, false],
      ["0.1.2.3", 51820, false],
      ["224.0.0.1", 51820, false],
      ["239.255.255.250", 1900, false],
      ["255.255.255.255", 51820, false],
      ["::", 51820, false],
      ["ff02::1", 51820, false],
      ["192.168.1.2", 0, false],
      ["not an address", 1, false],
    ];
    for (const [address, port, expected] of cases)
      assert.equal(isUnicastCandidate({ address, port }), expected, `${address}:${port}`);
  });
});

describe("mesh frames", () => {
  test("round-trip every frame type, with padding after them ignored", () => {
    for (const frame of samples) {
      const encoded = encodeFrame(frame);
      assert.ok(encoded[0]! >>> 4 !== 4 && encoded[0]! >>> 4 !== 6, "never looks like IP");
      const padded = new Uint8Array(encoded.length + 13);
      padded.set(encoded);
      assert.deepEqual(decodeFrame(padded), frame);
    }
  });

  test("a relay frame built in one copy equals the generic encoding", () => {
    const frame = samples[4] as Extract<Frame, { type: "relay" }>;
    assert.deepEqual(
      encodeRelay(frame.hopLimit, frame.destination, frame.source, frame.message),
      encodeFrame(frame),
    );
  });

  test("a hello of another protocol version decodes to its version alone", () => {
    const encoded = encodeFrame(samples[0]!);
    encoded[3] = 9; // the version byte, first of the body
    const decoded = decodeFrame(encoded);
    assert.ok("type" in decoded && decoded.type === "hello");
    assert.equal(decoded.hello.version, 9);
  });

  test("reject malformed frames with a reason", () => {
    const cases: [Uint8Array, RegExp][] = [
      [bytes(), /shorter/],
      [bytes(FRAME_TYPE.ping, 0, 20, 1), /declares 20/],
      [bytes(FRAME_TYPE.ping, 0, 1, 1), /ping/],
      [bytes(0x3f, 0, 0), /unknown frame type/],
      [bytes(FRAME_TYPE.relay, 0, 2, 1, 2), /relay/],
      [bytes(FRAME_TYPE.fragment, 0, 7, 0, 0, 0, 1, 3, 2, 0), /fragment 3 of 2/],
      [bytes(FRAME_TYPE.hello, 0, 2, MESH_PROTOCOL_VERSION, 0xff), /hello/],
      [bytes(FRAME_TYPE.candidates, 0, 1, 0xff), /candidates are not CBOR/],
      [candidatesOf([["192.0.2.1", 0]]), /candidate port is out of range/],
      [candidatesOf([["not an address", 1]]), /candidate address is not an IP/],
      [candidatesOf([["192.0.2.1"]]), /candidate is not a pair/],
      [candidatesOf(Array.from({ length: 17 }, (_, i) => ["192.0.2.1", i + 1])), /at most 16/],
    ];
    for (const [input, reason] of cases) {
      const decoded = decodeFrame(input);
      assert.ok("error" in decoded, `accepted ${input}`);
      assert.match(decoded.error, reason);
    }
  });

  test("decoding 100,000 random and mutated inputs never throws", () => {
    const random = createRandom(20261128);
    const valid = samples.map(encodeFrame);
    for (let i = 0; i < 100_000; i++) {
      let input: Uint8Array;
      if (i % 2 === 0) {
        input = random.bytes(random.int(64));
        if (input.length > 0) input[0] = 1 + random.int(10);
      } else {
        input = valid[random.int(valid.length)]!.slice();
        for (let m = 0; m <= random.int(4); m++)
          if (input.length > 0) input[random.int(input.length)] = random.int(256);
        if (random.int(4) === 0) input = input.subarray(0, random.int(input.length + 1));
      }
      const decoded = decodeFrame(input);
      assert.ok("error" in decoded || "type" in decoded);
    }
  });
});

describe("fragments", () => {
  test("a frame larger than the limit is split and reassembled in any order, once", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 300, max: 1500 }),
        fc.integer(),
        (size, max, seed) => {
          const random = createRandom(seed);
          const frame = encodeFrame({ type: "gossip", message: random.bytes(size) });
          const pieces = fragment(frame, 42, max);
          if (frame.length <= max) {
            assert.deepEqual(pieces, [frame]);
            return;
          }
          for (const piece of pieces) assert.ok(piece.length <= max);
          const order = pieces.map((_, i) => i).sort(() => random.next() - 0.5);
          const reassembler = new Reassembler();
          let whole: ReturnType<Reassembler["add"]>;
          for (const [n, i] of order.entries()) {
            const decoded = decodeFrame(pieces[i]!);
            assert.ok("type" in decoded && decoded.type === "fragment");
            whole = reassembler.add(decoded.id, decoded.index, decoded.count, decoded.piece, 0);
            if (n < order.length - 1) assert.equal(whole, undefined);
            // A duplicate piece changes nothing.
            if (n === 0)
              assert.equal(
                reassembler.add(decoded.id, decoded.index, decoded.count, decoded.piece, 0),
                undefined,
              );
          }
          assert.deepEqual(whole, decodeFrame(frame));
          assert.equal(reassembler.pending, 0);
        },
      ),
      { numRuns: 200 },
    );
  });

  test("ten large frames whose pieces interleave all complete (a full sync of a big mesh)", () => {
    const random = createRandom(3);
    const frames = [...Array(10).keys()].map(() =>
      encodeFrame({ type: "gossip", message: random.bytes(30_000) }),
    );
    const split = frames.map((f, id) => fragment(f, id, 1408));
    const reassembler = new Reassembler();
    const done: unknown[] = [];
    for (let i = 0; i < Math.max(...split.map((p) => p.length)); i++)
      for (const pieces of split) {
        const piece = pieces[i];
        if (!piece) continue;
        const d = decodeFrame(piece);
        assert.ok("type" in d && d.type === "fragment", "a fragment");
        const whole = reassembler.add(d.id, d.index, d.count, d.piece, 0);
        if (whole) done.push(whole);
      }
    assert.deepEqual(done, frames.map(decodeFrame));
  });

  test("reassembly is bounded in frames, bytes and time", () => {
    const reassembler = new Reassembler(1_000);
    for (let id = 0; id < 100; id++) reassembler.add(id, 0, 3, new Uint8Array(10), 0);
    assert.equal(reassembler.pending, 64);
    reassembler.add(99, 0, 2, new Uint8Array(10), 2_000);
    assert.equal(reassembler.pending, 1, "stale frames expire");
    const big = new Uint8Array(40_000);
    assert.equal(reassembler.add(7, 0, 3, big, 2_000), undefined);
    const over = reassembler.add(7, 1, 3, big, 2_000);
    assert.ok(over && "error" in over && /64 KiB/.test(over.error));
    const mismatch = reassembler.add(99, 1, 5, new Uint8Array(1), 2_000);
    assert.ok(mismatch && "error" in mismatch);
  });

  test("the default piece size fits a 1500-byte underlay over IPv6", () => {
    // 40 IPv6 + 8 UDP + 16 transport header + 16 tag, plaintext padded to 16.
    assert.ok(40 + 8 + 32 + Math.ceil(DEFAULT_MAX_FRAME_BYTES / 16) * 16 <= 1500);
  });
});
