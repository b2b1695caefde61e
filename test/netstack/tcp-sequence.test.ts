/** Sequence arithmetic mod 2^32 (RFC 9293 §3.4), checked against a BigInt model. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  seqAdd,
  seqDiff,
  seqGe,
  seqGt,
  seqInWindow,
  seqLe,
  seqLt,
  seqMax,
} from "../../src/netstack/tcp-sequence.ts";

const u32 = fc.integer({ min: 0, max: 0xffffffff });

describe("TCP sequence arithmetic", () => {
  test("comparisons wrap around 2^32", () => {
    assert.equal(seqLt(0xffffffff, 0), true);
    assert.equal(seqGt(0, 0xffffffff), true);
    assert.equal(seqAdd(0xffffffff, 2), 1);
    assert.equal(seqDiff(1, 0xffffffff), 2);
    assert.equal(seqMax(0xfffffff0, 5), 5);
    assert.equal(seqInWindow(2, 0xfffffffe, 5), true);
    assert.equal(seqInWindow(3, 0xfffffffe, 5), false);
    assert.equal(seqInWindow(7, 7, 0), false, "an empty window holds nothing");
  });

  test("a + n is after a, and a + n - n is a, for any distance under 2^31", () => {
    fc.assert(
      fc.property(u32, fc.integer({ min: 1, max: 0x7fffffff }), (a, n) => {
        const b = seqAdd(a, n);
        assert.ok(seqLt(a, b) && seqLe(a, b) && seqGt(b, a) && seqGe(b, a), `${a} + ${n}`);
        assert.equal(seqDiff(b, a), n);
        assert.equal(seqAdd(b, -n), a);
        assert.equal(seqMax(a, b), b);
      }),
    );
  });

  test("seqInWindow matches a BigInt model", () => {
    fc.assert(
      fc.property(u32, u32, fc.integer({ min: 0, max: 0x7fffffff }), (x, left, size) => {
        const offset = (BigInt(x) - BigInt(left) + 2n ** 32n) % 2n ** 32n;
        assert.equal(seqInWindow(x, left, size), offset < BigInt(size));
      }),
    );
  });
});
