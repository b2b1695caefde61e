import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { addressFromBytes, parseAddress } from "../../src/ipam/address.ts";
import { rangesToPrefixes, rangeToPrefixes } from "../../src/ipam/prefixes.ts";
import { formatPrefix } from "../../src/net/ip.ts";

const a = (text: string) => parseAddress(text)!;

describe("ring ranges as prefixes", () => {
  test("an aligned block is one prefix", () => {
    const prefixes = rangeToPrefixes({ start: a("10.40.0.0"), end: a("10.41.0.0") });
    assert.deepEqual(prefixes.map(formatPrefix), ["10.40.0.0/16"]);
  });

  test("an unaligned range is the fewest aligned blocks, in order", () => {
    const prefixes = rangeToPrefixes({ start: a("10.40.0.1"), end: a("10.40.0.7") });
    assert.deepEqual(prefixes.map(formatPrefix), [
      "10.40.0.1/32",
      "10.40.0.2/31",
      "10.40.0.4/31",
      "10.40.0.6/32",
    ]);
  });

  test("the whole IPv4 space is 0.0.0.0/0", () => {
    assert.deepEqual(rangeToPrefixes({ start: 0, end: 2 ** 32 }).map(formatPrefix), ["0.0.0.0/0"]);
  });

  test("touching ranges merge", () => {
    const prefixes = rangesToPrefixes([
      { start: a("10.40.1.0"), end: a("10.40.2.0") },
      { start: a("10.40.0.0"), end: a("10.40.1.0") },
    ]);
    assert.deepEqual(prefixes.map(formatPrefix), ["10.40.0.0/23"]);
  });

  test("prefixes cover exactly the range, without overlap (property)", () => {
    fc.assert(
      fc.property(fc.nat(2 ** 32 - 1), fc.nat(70_000), (start, length) => {
        const end = Math.min(2 ** 32, start + length);
        const prefixes = rangeToPrefixes({ start, end });
        let next = start;
        for (const prefix of prefixes) {
          const first = addressFromBytes(prefix.address);
          const size = 2 ** (32 - prefix.prefixLength);
          assert.equal(first, next, "prefixes are contiguous");
          assert.equal(first % size, 0, "each prefix is aligned");
          next = first + size;
        }
        assert.equal(next, end, "the prefixes end where the range does");
        assert.ok(prefixes.length <= 62, `at most 2 x 31 prefixes, got ${prefixes.length}`);
      }),
      { numRuns: 2000 },
    );
  });
});
