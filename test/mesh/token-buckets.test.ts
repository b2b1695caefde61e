/** Token buckets by key (src/mesh/token-buckets.ts): burst, rate, refill, keys apart, forgetting. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { TokenBuckets } from "../../src/mesh/token-buckets.ts";

test("TokenBuckets gives the burst at once, then the rate", () => {
  const buckets = new TokenBuckets<string>(10, 20);
  let taken = 0;
  for (let i = 0; i < 50; i++) if (buckets.take("a", 0)) taken++;
  assert.equal(taken, 20);
  taken = 0;
  for (let i = 0; i < 50; i++) if (buckets.take("a", 1_000)) taken++;
  assert.equal(taken, 10, "ten tokens a second, not a full bucket after a second");
  taken = 0;
  for (let i = 0; i < 50; i++) if (buckets.take("a", 10_000)) taken++;
  assert.equal(taken, 20, "full again, never more than the burst");
});

test("TokenBuckets keeps keys apart and forgets full buckets", () => {
  const buckets = new TokenBuckets<string>(100, 2);
  assert.equal(buckets.take("a", 0), true);
  assert.equal(buckets.take("a", 0), true);
  assert.equal(buckets.take("a", 0), false);
  assert.equal(buckets.take("b", 0), true);
  assert.equal(buckets.size, 2);
  assert.equal(buckets.take("c", 1_000), true);
  assert.equal(buckets.size, 1, "a and b were full again and forgotten");
});

test("TokenBuckets never lets more through than burst + rate × time", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 1, max: 50 }),
      fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 200 }),
      (perSecond, burst, gaps) => {
        const buckets = new TokenBuckets<number>(perSecond, burst);
        let now = 0;
        let taken = 0;
        for (const gap of gaps) {
          now += gap;
          if (buckets.take(1, now)) taken++;
        }
        assert.ok(taken <= burst + (perSecond * now) / 1000 + 1e-9, `${taken} taken by ${now} ms`);
      },
    ),
  );
  assert.throws(() => new TokenBuckets(0, 1), RangeError);
  assert.throws(() => new TokenBuckets(1, 0.5), RangeError);
});
