/** The ring CRDT: owner-only changes, merge rules, refusals of bad gossip, codec, merge laws. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  chooseDonation,
  decodeRingItems,
  encodeRingItems,
  findInvariantViolation,
  findSegment,
  formatRange,
  isComplete,
  largestAlignedBlock,
  MAX_DELTA_ITEMS,
  ownershipSegments,
  parseRange,
  Ring,
  type RingDelta,
  type RingEntry,
  RingRejected,
  RingSeedMismatch,
  sameEntry,
} from "../../src/ipam/index.ts";
import { GossipRejected } from "../../src/mesh/gossip-state.ts";
import { equalBytes, peerKey, range } from "./harness.ts";

const A = peerKey(1);
const B = peerKey(2);
const C = peerKey(3);
const RANGE = range("10.0.0.0/24");
const S = RANGE.start;
const allFree = (start: number, end: number) => end - start;

function seeded(me = A, seeds = [A]): { ring: Ring; delta: RingDelta } {
  const ring = new Ring({ me, range: RANGE });
  return { ring, delta: ring.seed(seeds, allFree) };
}

function refuses(ring: Ring, delta: RingDelta, code: string, from = C): void {
  const before = ring.digest();
  const rejectedBefore = ring.stats().rejected[code as "OVERLAP"] ?? 0;
  assert.throws(
    () => ring.merge(delta, from),
    (error: unknown) => error instanceof GossipRejected && (error as RingRejected).code === code,
  );
  assert.ok(equalBytes(ring.digest(), before), "a refused delta changes nothing");
  assert.equal(ring.stats().rejected[code as "OVERLAP"], rejectedBefore + 1, "and is counted");
}

describe("addresses", () => {
  test("parseRange reads IPv4 prefixes and explains what it refuses", () => {
    assert.deepEqual(parseRange("10.40.0.0/16"), {
      ok: true,
      range: { start: 0x0a280000, end: 0x0a290000 },
    });
    assert.equal(formatRange({ start: 0x0a280000, end: 0x0a290000 }), "10.40.0.0/16");
    assert.equal(formatRange({ start: 0x0a280000, end: 0x0a280003 }), "10.40.0.0-10.40.0.2");
    for (const [text, reason] of [
      ["10.40.0.1/16", /zero host bits/],
      ["fd00::/64", /IPv6 ranges are not supported yet/],
      ["10.0.0.0/31", /\/30 or shorter/],
      ["10.0.0.0", /IPv4 prefix/],
      ["nonsense", /IPv4 prefix/],
    ] as const) {
      const parsed = parseRange(text);
      assert.ok(!parsed.ok && reason.test(parsed.error), `${text}: ${JSON.stringify(parsed)}`);
    }
  });

  test("largestAlignedBlock and chooseDonation give aligned halves", () => {
    assert.deepEqual(largestAlignedBlock(0, 256), { start: 0, end: 256 });
    assert.deepEqual(largestAlignedBlock(1, 255), { start: 128, end: 192 });
    assert.deepEqual(largestAlignedBlock(5, 6), { start: 5, end: 6 });
    assert.equal(largestAlignedBlock(5, 5), undefined);
    assert.deepEqual(chooseDonation([{ start: 0, end: 256 }], [{ start: 0, end: 256 }]), {
      start: 128,
      end: 256,
    });
    // Cut at entry boundaries, and a donor keeps a last lone address.
    assert.deepEqual(chooseDonation([{ start: 0, end: 256 }], [{ start: 0, end: 64 }]), {
      start: 32,
      end: 64,
    });
    assert.equal(chooseDonation([{ start: 9, end: 10 }], [{ start: 0, end: 64 }]), undefined);
    fc.assert(
      fc.property(fc.nat(1000), fc.integer({ min: 2, max: 5000 }), (start, size) => {
        const block = chooseDonation(
          [{ start, end: start + size }],
          [{ start, end: start + size }],
        )!;
        const blockSize = block.end - block.start;
        assert.ok(block.start >= start && block.end <= start + size);
        assert.equal(block.start % blockSize, 0);
        assert.ok(
          blockSize <= size / 2 + 1 && blockSize * 4 > size / 2 - 1,
          `${blockSize} of ${size}`,
        );
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("Ring", () => {
  test("a seeded ring is complete and owned by its seeds in equal parts", () => {
    const { ring } = seeded(A, [C, A, B]);
    assert.ok(isComplete(ring.entries(), RANGE));
    assert.deepEqual(ring.seeds, [A, B, C]);
    assert.deepEqual(
      ring.entries().map((e) => [e.token - S, e.end - S, e.owner]),
      [
        [0, 85, A],
        [85, 170, B],
        [170, 256, C],
      ],
    );
    assert.equal(ring.ownerOf(S + 100), B);
    assert.equal(ring.ownerOf(S + 256), undefined);
  });

  test("grant splits our entry, hands the middle over, and replicas follow", () => {
    const { ring: a, delta } = seeded();
    const b = new Ring({ me: B, range: RANGE });
    b.merge(delta, A);
    const grant = a.grant({ start: S + 128, end: S + 192 }, B, allFree);
    assert.deepEqual(
      grant.entries.map((e) => [e.token - S, e.end - S, e.owner, e.version]),
      [
        [0, 128, A, 2],
        [128, 192, B, 1],
        [192, 256, A, 1],
      ],
    );
    assert.deepEqual(b.merge(grant, C)?.entries.length, 3);
    assert.ok(equalBytes(a.digest(), b.digest()));
    assert.deepEqual(b.rangesOf(B), [{ start: S + 128, end: S + 192 }]);
    assert.equal(b.merge(grant, C), null, "merging again changes nothing");
    assert.throws(() => a.grant({ start: S + 130, end: S + 140 }, C, allFree), RangeError);
  });

  test("a donation seen before the donor's shrunk entry nests inside it, and ownerOf takes the inner one", () => {
    const { ring: a, delta } = seeded();
    const c = new Ring({ me: C, range: RANGE });
    c.merge(delta, A);
    const grant = a.grant({ start: S + 128, end: S + 192 }, B, allFree);
    c.merge({ ...grant, entries: grant.entries.filter((e) => e.owner === B) }, B);
    assert.equal(findInvariantViolation(c.entries(), RANGE, C), undefined);
    assert.equal(c.ownerOf(S + 130), B);
    assert.equal(c.ownerOf(S + 200), A);
    assert.equal(isComplete(c.entries(), RANGE), false);
  });

  test("refuses, without change and counted: same version different content", () => {
    const { ring, delta } = seeded(B, [A]);
    ring.merge(delta, A);
    const forged = { ...delta, entries: [{ ...delta.entries[0]!, free: 3 }] };
    refuses(ring, forged, "SAME_VERSION_DIFFERS");
  });

  test("refuses a newer version of an entry we own (only we change it)", () => {
    const { ring, delta } = seeded(A, [A]);
    const stolen = { ...delta, entries: [{ ...delta.entries[0]!, owner: C, version: 9 }] };
    refuses(ring, stolen, "CHANGES_OUR_ENTRY");
  });

  test("refuses a new token inside a range we own", () => {
    const { ring, delta } = seeded(A, [A]);
    const inside = {
      ...delta,
      entries: [{ token: S + 10, end: S + 20, owner: C, version: 5, free: 10 }],
    };
    refuses(ring, inside, "INSIDE_OUR_RANGE");
  });

  test("refuses an entry whose end grew, entries that cross, another range, other seeds", () => {
    const { ring: a } = seeded(A, [A]);
    const grant = a.grant({ start: S + 128, end: S + 192 }, B, allFree);
    const c = new Ring({ me: C, range: RANGE });
    c.merge(a.deltaFor(new Map())!, A);
    const bEntry = grant.entries.find((e) => e.owner === B)!;
    refuses(c, { ...grant, entries: [{ ...bEntry, end: S + 200, version: 2 }] }, "END_GREW");
    refuses(
      c,
      { ...grant, entries: [{ token: S + 150, end: S + 250, owner: B, version: 1, free: 0 }] },
      "OVERLAP",
    );
    refuses(c, { ...grant, range: range("10.0.1.0/24"), entries: [] }, "OTHER_RANGE");
    assert.throws(
      () => c.merge({ ...grant, seeds: [B] }, B),
      (e: unknown) => {
        assert.ok(e instanceof RingSeedMismatch);
        assert.match(
          e.message,
          new RegExp(
            `seeded by \\[${B.replace(/[+/]/g, "\\$&")}\\]: ours was seeded by \\[${A.replace(/[+/]/g, "\\$&")}\\]`,
          ),
        );
        return true;
      },
    );
  });

  test("deltaFor sends only what the other lacks, and everything to a stranger", () => {
    const { ring: a, delta } = seeded();
    const b = new Ring({ me: B, range: RANGE });
    assert.equal(b.deltaFor(a.summary()), null, "an unseeded ring has nothing to send");
    b.merge(delta, A);
    assert.equal(a.deltaFor(b.summary()), null);
    a.reportFree(() => 7);
    assert.deepEqual(
      a.deltaFor(b.summary())?.entries.map((e) => e.free),
      [7],
    );
    assert.equal(a.deltaFor(new Map())?.entries.length, 1);
  });
});

describe("ring codec", () => {
  test("round-trips through items of bounded size, and any subset of items is a delta", () => {
    const { ring } = seeded(A, [A, B, C]);
    let next = 0;
    for (const start of [16, 40, 100, 180, 220]) {
      const entry = ring
        .entries()
        .find((e) => e.owner === A && e.token <= S + start && S + start < e.end);
      if (entry) ring.grant({ start: S + start, end: S + start + 4 }, next++ % 2 ? B : C, allFree);
    }
    const full = ring.deltaFor(new Map())!;
    const items = encodeRingItems(full, 120);
    assert.ok(items.length > 2, `split into ${items.length} items`);
    assert.deepEqual(decodeRingItems(items), full);
    for (let i = 0; i < items.length; i++) {
      const subset = items.filter((_, j) => j !== i);
      const decoded = decodeRingItems(subset);
      assert.equal(findInvariantViolation(decoded.entries, RANGE), undefined);
    }
  });

  test("one item out of order, or repeating itself, decodes sorted and once", () => {
    const { delta } = seeded();
    const [good] = encodeRingItems(delta, 1000) as [unknown[]];
    const item = (flat: number[], removals?: string[]) => [
      [...good.slice(0, 4), [A, B], flat, ...(removals ? [removals] : [])],
    ];
    const decoded = decodeRingItems(
      item([S + 20, S + 30, 1, 1, 0, S, S + 10, 0, 1, 0, S + 20, S + 30, 1, 1, 0]),
    );
    assert.deepEqual(
      decoded.entries.map((e) => [e.token - S, e.owner]),
      [
        [0, A],
        [20, B],
      ],
    );
    const records = decodeRingItems(item([S, S + 10, 0, 1, 0], [C, B, A, C, A, B])).removals;
    assert.deepEqual(
      records,
      [{ dead: C, heir: A, by: B }],
      "one record per dead peer, the lower heir",
    );
  });

  test("refuses malformed and oversized items, naming the problem", () => {
    const { delta } = seeded();
    const [good] = encodeRingItems(delta, 1000) as [unknown[]];
    const manyEntries = Array.from({ length: 1024 }, () => [S, S + 1, 0, 1, 0]).flat();
    const bad: [unknown[], RegExp][] = [
      [[], /at least one/],
      [[42], /array of 6/],
      [[[9, ...good.slice(1)]], /version 9/],
      [[[1, S, S, ...good.slice(3)]], /invalid range/],
      [[[1, S, RANGE.end, [], ...good.slice(4)]], /1 to 64 seeds/],
      [[[1, S, RANGE.end, ["not a key"], ...good.slice(4)]], /not a peer key/],
      [[[1, S, RANGE.end, [B, A], ...good.slice(4)]], /sorted/],
      [[[...good.slice(0, 5), [S, RANGE.end, 3, 1, 0]]], /no listed owner/],
      [[[...good.slice(0, 5), [S, RANGE.end, 0, 0, 0]]], /invalid version/],
      [[[...good.slice(0, 5), [S, RANGE.end, 0, 1, 999]]], /reports 999 free/],
      [[[...good.slice(0, 5), [S, RANGE.end + 5, 0, 1, 0]]], /outside the ring's range/],
      [[[...good.slice(0, 5), [S, RANGE.end, 0, 1.5, 0]]], /invalid version/],
      [[[...good.slice(0, 5), [S, RANGE.end, 0, 1, 0, S]]], /groups of 5/],
      [[[...good.slice(0, 5), ["x", RANGE.end, 0, 1, 0]]], /non-integer/],
      [[good, [...good.slice(0, 5), [S, RANGE.end, 0, 2, 0]]], /two different entries/],
      [[[...good.slice(0, 5), [S, S + 9, 0, 1, 0, S, S + 9, 0, 2, 0]]], /two different entries/],
      [[[...good.slice(0, 5), [S + 9, S + 20, 0, 1, 0, S, S + 10, 0, 1, 0]]], /crosses/],
      [Array.from({ length: MAX_DELTA_ITEMS + 1 }, () => good), /exceeds 4096/],
      [Array.from({ length: 65 }, () => [...good.slice(0, 5), manyEntries]), /exceeds 65536/],
      [[[...good.slice(0, 5), new Array(5 * 1025).fill(0)]], /exceeds 1024 entries/],
    ];
    for (const [items, reason] of bad) {
      assert.throws(
        () => decodeRingItems(items),
        (error: unknown) => error instanceof RingRejected && reason.test(error.message),
        `expected ${reason}`,
      );
    }
  });

  test("random junk never throws anything but GossipRejected, and a ring's decode counts it", () => {
    const ring = seeded().ring;
    let refused = 0;
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: 5 }), (items) => {
        try {
          ring.decode(items);
        } catch (error) {
          assert.ok(error instanceof GossipRejected, String(error));
          refused++;
        }
      }),
      { numRuns: 2_000 },
    );
    const counted = Object.values(ring.stats().rejected).reduce((sum, n) => sum + (n ?? 0), 0);
    assert.equal(counted, refused);
  });
});

describe("merge laws", () => {
  test("replicas merging any subsets of the owner's deltas in any order, twice, end equal once all arrive", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ start: fc.nat(255), size: fc.integer({ min: 1, max: 64 }), to: fc.nat(2) }),
          {
            maxLength: 30,
            size: "max",
          },
        ),
        fc.array(fc.nat(), { maxLength: 60, size: "max" }),
        (grants, order) => {
          // Three owners trade blocks; every delta any of them made goes into one log.
          const keys = [A, B, C];
          const rings = keys.map((me) => new Ring({ me, range: RANGE }));
          const log: RingDelta[] = [rings[0]!.seed(keys, allFree)];
          for (const ring of rings.slice(1)) ring.merge(log[0]!, A);
          for (const g of grants) {
            const owner = rings.find((r) => r.ownerOf(S + g.start) === r.me)!;
            const host = owner
              .entries()
              .find((e) => e.owner === owner.me && e.token <= S + g.start && S + g.start < e.end)!;
            const end = Math.min(host.end, S + g.start + g.size);
            const to = keys[g.to]!;
            if (to === owner.me) continue;
            const delta = owner.grant({ start: S + g.start, end }, to, allFree);
            log.push(delta);
            // The receiver must learn of its new entry before it can trade it on.
            rings[g.to]!.merge(delta, owner.me);
          }
          const observer = new Ring({ me: peerKey(9), range: RANGE });
          for (const index of order) {
            observer.merge(log[index % log.length]!, A);
            assert.equal(findInvariantViolation(observer.entries(), RANGE, observer.me), undefined);
          }
          for (const delta of [...log].reverse()) observer.merge(delta, A);
          for (const ring of rings) ring.merge(observer.deltaFor(ring.summary()) ?? log[0]!, A);
          for (const ring of rings) assert.ok(equalBytes(ring.digest(), observer.digest()));
          assert.ok(isComplete(observer.entries(), RANGE));
        },
      ),
      { numRuns: 2_000 },
    );
  });
});

/**
 * The merge rules as a whole-ring computation (how every merge once ran): the entries a
 * replica holding `entries` ends with after `delta`, or the code it refuses it with.
 */
function referenceMerge(
  entries: readonly RingEntry[],
  delta: RingDelta,
  me: string,
): { entries: RingEntry[] } | { code: string } {
  const candidate = new Map(entries.map((entry) => [entry.token, entry]));
  for (const theirs of delta.entries) {
    const mine = candidate.get(theirs.token);
    if (mine !== undefined) {
      if (theirs.version < mine.version) continue;
      if (theirs.version === mine.version) {
        if (sameEntry(mine, theirs)) continue;
        return { code: "SAME_VERSION_DIFFERS" };
      }
      if (mine.owner === me) return { code: "CHANGES_OUR_ENTRY" };
      if (theirs.end > mine.end) return { code: "END_GREW" };
    }
    candidate.set(theirs.token, theirs);
  }
  const merged = [...candidate.values()].sort((a, b) => a.token - b.token);
  const violation = findInvariantViolation(merged, RANGE, me);
  if (violation === undefined) return { entries: merged };
  return { code: violation.includes(`the range ${me} owns`) ? "INSIDE_OUR_RANGE" : "OVERLAP" };
}

function refusals(ring: Ring): number {
  return Object.values(ring.stats().rejected).reduce((sum, n) => sum + (n ?? 0), 0);
}

describe("incremental merge", () => {
  // Deltas that a replica meets: the owners' real changes in any order (so entries nest),
  // and forgeries made from what it holds: splits, shrinks, grown ends, stolen entries,
  // entries anywhere, several at once.
  const forgery = fc.record({
    kind: fc.constantFrom("split", "shrink", "grow", "steal", "anywhere", "bad free"),
    pick: fc.nat(),
    at: fc.nat(255),
    size: fc.integer({ min: 1, max: 96 }),
    owner: fc.nat(3),
    version: fc.integer({ min: 0, max: 3 }),
    free: fc.nat(4),
  });
  const step = fc.oneof(
    { weight: 3, arbitrary: fc.record({ log: fc.nat() }) },
    {
      weight: 2,
      arbitrary: fc.record({ forged: fc.array(forgery, { minLength: 1, maxLength: 3 }) }),
    },
  );

  test("decides and ends exactly as the whole-ring check does, and lookups follow", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ start: fc.nat(255), size: fc.integer({ min: 1, max: 64 }), to: fc.nat(2) }),
          { maxLength: 25 },
        ),
        fc.nat(3),
        fc.array(step, { maxLength: 40 }),
        (grants, meIndex, steps) => {
          const keys = [A, B, C, peerKey(4)];
          const owners = keys.slice(0, 3).map((me) => new Ring({ me, range: RANGE }));
          const log: RingDelta[] = [owners[0]!.seed(keys.slice(0, 3), allFree)];
          for (const ring of owners.slice(1)) ring.merge(log[0]!, A);
          for (const g of grants) {
            const owner = owners.find((r) => r.ownerOf(S + g.start) === r.me)!;
            const host = owner
              .rangesOf(owner.me)
              .find((r) => r.start <= S + g.start && S + g.start < r.end)!;
            const to = keys[g.to]!;
            if (to === owner.me) continue;
            const delta = owner.grant(
              { start: S + g.start, end: Math.min(host.end, S + g.start + g.size) },
              to,
              allFree,
            );
            log.push(delta);
            owners[g.to]!.merge(delta, owner.me);
          }
          const me = keys[meIndex]!;
          const ring = new Ring({ me, range: RANGE });
          ring.merge(log[0]!, A);
          for (const s of steps) {
            const held = ring.entries();
            const heldCopy = [...held];
            let delta: RingDelta;
            if ("log" in s) delta = log[s.log % log.length]!;
            else {
              const forged = new Map<number, RingEntry>();
              for (const f of s.forged) {
                const base = held[f.pick % held.length]!;
                const owner = keys[f.owner]!;
                const version = base.version + f.version;
                let entry: RingEntry;
                if (f.kind === "split") {
                  const token = base.token + 1 + (f.at % Math.max(1, base.end - base.token - 1));
                  if (token >= base.end) continue;
                  entry = { token, end: base.end, owner, version: 1 + f.version, free: 0 };
                } else if (f.kind === "shrink") {
                  const end = base.token + 1 + (f.at % (base.end - base.token));
                  entry = {
                    ...base,
                    end,
                    version: version + 1,
                    free: Math.min(base.free, end - base.token),
                  };
                } else if (f.kind === "grow") {
                  entry = {
                    ...base,
                    end: Math.min(RANGE.end, base.end + f.size),
                    version: version + 1,
                  };
                } else if (f.kind === "bad free") {
                  const free = f.free % 2 ? -f.free : base.end - base.token + 1 + f.free;
                  entry = { ...base, owner, version: version + 1, free };
                } else if (f.kind === "steal") {
                  entry = { ...base, owner, version };
                } else {
                  const token = S + f.at;
                  entry = {
                    token,
                    end: Math.min(RANGE.end, token + f.size),
                    owner,
                    version: 1 + f.version,
                    free: f.free,
                  };
                }
                forged.set(entry.token, entry);
              }
              if (forged.size === 0) continue;
              delta = {
                ...log[0]!,
                entries: [...forged.values()].sort((a, b) => a.token - b.token),
              };
            }
            const expected = referenceMerge(held, delta, me);
            const digestBefore = ring.digest();
            const refusedBefore = refusals(ring);
            let outcome: { entries: RingEntry[] } | { code: string };
            try {
              ring.merge(delta, C);
              outcome = { entries: [...ring.entries()] };
            } catch (error) {
              assert.ok(
                error instanceof RingRejected,
                `only refusals are thrown: ${String(error)}`,
              );
              outcome = { code: error.code };
              assert.deepEqual(ring.entries(), heldCopy, "a refused delta changes no entry");
              assert.ok(equalBytes(ring.digest(), digestBefore), "nor the digest");
              assert.equal(refusals(ring), refusedBefore + 1, "and is counted");
            }
            assert.deepEqual(outcome, expected, `merge of ${JSON.stringify(delta.entries)}`);
            assert.deepEqual(held, heldCopy, "a snapshot taken before the merge is unchanged");
            const entries = ring.entries();
            const segments = ownershipSegments(entries);
            for (let address = S - 1; address <= RANGE.end; address++) {
              assert.equal(
                ring.ownerOf(address),
                findSegment(segments, address)?.owner,
                `owner of ${address}`,
              );
            }
            assert.deepEqual(
              ring.rangesOf(me),
              entries.filter((e) => e.owner === me).map((e) => ({ start: e.token, end: e.end })),
              "rangesOf(me) lists our entries",
            );
            const fresh = new Ring({ me: peerKey(9), range: RANGE });
            fresh.merge({ ...log[0]!, entries }, A);
            assert.ok(
              equalBytes(fresh.digest(), ring.digest()),
              "the digest is that of the same entries merged at once",
            );
            assert.deepEqual(
              ring.summary(),
              fresh.summary(),
              "the summary is that of the same entries merged at once",
            );
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
