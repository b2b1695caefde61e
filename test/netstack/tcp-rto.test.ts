/** The RFC 6298 RTO estimator, the reassembly queue and the SACK scoreboard, on their own. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { ReassemblyQueue } from "../../src/netstack/tcp-reassembly.ts";
import { addRttSample, backOff, createRtoEstimator } from "../../src/netstack/tcp-rto.ts";
import { SackScoreboard } from "../../src/netstack/tcp-sack-scoreboard.ts";
import { seqAdd } from "../../src/netstack/tcp-sequence.ts";
import { concat } from "./tcp-peer.ts";

describe("RTO estimator (RFC 6298)", () => {
  test("starts at 1 s, takes the first sample as SRTT with RTTVAR half of it", () => {
    const e = createRtoEstimator();
    assert.equal(e.rtoMs, 1000);
    addRttSample(e, 100);
    assert.equal(e.srttMs, 100);
    assert.equal(e.rttvarMs, 50);
    assert.equal(e.rtoMs, 300, "100 + 4 * 50");
  });

  test("smooths later samples with alpha 1/8 and beta 1/4", () => {
    const e = createRtoEstimator();
    addRttSample(e, 100);
    addRttSample(e, 200);
    assert.equal(e.rttvarMs, 0.75 * 50 + 0.25 * 100);
    assert.equal(e.srttMs, 0.875 * 100 + 0.125 * 200);
    assert.equal(e.rtoMs, e.srttMs + 4 * e.rttvarMs);
  });

  test("clamps to [200 ms, 60 s] and backs off by doubling up to 60 s", () => {
    const e = createRtoEstimator();
    addRttSample(e, 1);
    assert.equal(e.rtoMs, 200);
    backOff(e);
    assert.equal(e.rtoMs, 400);
    for (let i = 0; i < 20; i++) backOff(e);
    assert.equal(e.rtoMs, 60_000);
    addRttSample(e, 1);
    assert.equal(e.rtoMs, 200, "a new sample ends the backoff");
    const slow = createRtoEstimator();
    addRttSample(slow, 100_000);
    assert.equal(slow.rtoMs, 60_000);
  });
});

describe("ReassemblyQueue", () => {
  test("pieces inserted in any order, overlapping and duplicated, come out as the original bytes", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 1, max: 3000 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 60 }),
        (rcvNxt, size, cuts) => {
          const data = Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff);
          const q = new ReassemblyQueue(1000);
          // Random ranges strictly after rcvNxt (offset >= 1), then the missing head.
          for (const [a, b] of cuts) {
            const start = 1 + (a % size);
            const end = Math.min(size, start + 1 + (b % 400));
            if (start >= end) continue;
            q.insert(seqAdd(rcvNxt, start), data.subarray(start, end), rcvNxt);
            assert.ok(q.bytes <= size, "never holds more than the distinct bytes");
          }
          // One piece over the whole range fills every gap around what is held; take it all.
          q.insert(seqAdd(rcvNxt, 1), data.subarray(1), rcvNxt);
          const taken = concat(q.take(seqAdd(rcvNxt, 1)));
          assert.deepEqual(taken, data.subarray(1));
          assert.equal(q.bytes, 0);
          assert.equal(q.pieces, 0);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("refuses new pieces past its limit, and SACK blocks list the latest first", () => {
    const q = new ReassemblyQueue(3);
    const one = new Uint8Array(1);
    assert.equal(q.insert(10, one, 0), true);
    assert.equal(q.insert(20, one, 0), true);
    assert.equal(q.insert(11, one, 0), true);
    assert.equal(q.insert(30, one, 0), false, "a fourth piece is refused");
    assert.equal(q.insert(20, one, 0), true, "a duplicate adds no piece");
    assert.deepEqual(q.sackBlocks(4), [
      [20, 21],
      [10, 12],
    ]);
    assert.deepEqual(q.sackBlocks(1), [[20, 21]]);
  });
});

describe("SackScoreboard", () => {
  test("merges blocks, ignores stale and unsent ones, and finds holes below SACKed data", () => {
    const b = new SackScoreboard(8);
    b.update(
      [
        [200, 300],
        [400, 500],
        [290, 350],
        [50, 90], // below SND.UNA: stale
        [600, 2000], // past SND.MAX: never sent
      ],
      100,
      1000,
    );
    assert.deepEqual(b.ranges, [
      [200, 350],
      [400, 500],
    ]);
    assert.deepEqual(b.nextHole(100), [100, 200]);
    assert.deepEqual(b.nextHole(250), [350, 400]);
    assert.equal(b.nextHole(450), undefined, "nothing SACKed above: no hole");
    b.advance(380);
    assert.deepEqual(b.ranges, [[400, 500]]);
    b.clear();
    assert.deepEqual(b.ranges, []);
  });

  test("stays within its range bound", () => {
    const b = new SackScoreboard(4);
    for (let i = 0; i < 50; i++) b.update([[1000 + i * 10, 1005 + i * 10]], 0, 5000);
    assert.equal(b.ranges.length, 4);
  });
});
