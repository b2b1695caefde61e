/**
 * The RFC 6479 replay window: the scenarios of wireguard-go's `replay/replay_test.go`
 * (ported there from the kernel's selftest), written anew, and a property test against a
 * set of seen counters.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { REJECT_AFTER_MESSAGES } from "../../src/tunnel/constants.ts";
import {
  createReplayFilter,
  REPLAY_WINDOW_MESSAGES,
  type ReplayFilter,
  resetReplayFilter,
  validateCounter,
} from "../../src/tunnel/replay.ts";

const MAX_COUNTER = 2n ** 64n - 1n;
const WINDOW = BigInt(REPLAY_WINDOW_MESSAGES);

/** validateCounter on a bigint counter, split as a receiver reads it from the message. */
function validate(filter: ReplayFilter, counter: bigint): boolean {
  return validateCounter(filter, Number(counter & 0xffffffffn), Number(counter >> 32n));
}

/** Asserts the filter's verdict on each counter in turn, naming the step that differs. */
function expectVerdicts(filter: ReplayFilter, steps: [bigint, boolean][]): void {
  steps.forEach(([counter, accepted], step) => {
    assert.equal(validate(filter, counter), accepted, `step ${step + 1}: counter ${counter}`);
  });
}

function snapshot(filter: ReplayFilter): string {
  return `${filter.lastLow},${filter.lastHigh},${filter.ring.join(",")}`;
}

describe("replay filter", () => {
  test("the window reaches 8128 counters behind the highest", () => {
    assert.equal(REPLAY_WINDOW_MESSAGES, 8128);
  });

  test("accepts counters in order once and rejects every repeat", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    for (let c = 0n; c < 20_000n; c++) assert.equal(validate(filter, c), true, `first ${c}`);
    for (let c = 20_000n - WINDOW; c < 20_000n; c++) {
      assert.equal(validate(filter, c), false, `repeat ${c}`);
    }
  });

  test("accepts reordered counters inside the window exactly once", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    expectVerdicts(filter, [
      [0n, true],
      [1n, true],
      [1n, false],
      [9n, true],
      [8n, true],
      [7n, true],
      [7n, false],
      [2n, true],
      [2n, false],
      [9n, false],
      [100n, true],
      [3n, true],
      [0n, false],
    ]);
  });

  test("accepts a counter exactly 8128 behind the highest and rejects one 8129 behind", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    expectVerdicts(filter, [
      [0n, true],
      [WINDOW + 1n, true],
      [WINDOW, true],
      [WINDOW, false],
      [1n, true], // exactly WINDOW behind
      [1n, false],
      [0n, false], // seen, and WINDOW + 1 behind anyway
      [WINDOW + 17n, true],
      [16n, false], // WINDOW + 1 behind, never seen
      [17n, true], // WINDOW behind, never seen
      [WINDOW + 17n, false],
    ]);
  });

  test("a first counter far from zero puts earlier ones out of the window", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    expectVerdicts(filter, [
      [10_000n, true],
      [10_000n - WINDOW, true],
      [10_000n - WINDOW - 1n, false],
      [0n, false],
    ]);
  });

  test("a jump ahead clears the blocks it passes but keeps what is still in the window", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    for (let c = 0n; c < 300n; c++) validate(filter, c);
    const jumped = 299n + 64n * 3n; // three blocks ahead: blocks 0 to 4 stay in the window
    expectVerdicts(filter, [
      [jumped, true],
      [0n, false],
      [150n, false],
      [299n, false],
      [300n, true],
      [jumped - 1n, true],
      [jumped - 1n, false],
    ]);
  });

  test("a jump of more than the ring clears all of it", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    for (let c = 0n; c < 8192n; c++) assert.equal(validate(filter, c), true);
    const far = 4n * (WINDOW + 1n);
    expectVerdicts(filter, [
      [far, true],
      [far - WINDOW, true], // same ring slot as a counter accepted before the jump
      [far - WINDOW - 1n, false],
      [10n, false],
      [far - 1n, true],
      [far, false],
      [far - WINDOW + 1n, true],
    ]);
    // Every slot of the ring is a new counter in the window after the jump.
    for (let c = far - WINDOW + 2n; c < far - 1n; c++) assert.equal(validate(filter, c), true);
  });

  test("jumps of every length up to two rings ahead of a full window", () => {
    for (let jump = 1n; jump <= 2n * 8192n; jump += 131n) {
      const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
      for (let c = 9000n - WINDOW; c <= 9000n; c++) validate(filter, c);
      const top = 9000n + jump;
      assert.equal(validate(filter, top), true);
      for (let c = top - WINDOW; c < top; c++) {
        assert.equal(validate(filter, c), c > 9000n, `jump ${jump}, counter ${c}`);
      }
      assert.equal(validate(filter, top - WINDOW - 1n), false);
      assert.equal(validate(filter, top), false);
    }
  });

  test("counters cross 2^32 and the high half is not ignored", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    const wrap = 2n ** 32n;
    expectVerdicts(filter, [
      [5n, true],
      [wrap + 5n, true], // same low half as 5, far ahead
      [5n, false],
      [6n, false], // 2^32 - 1 behind
      [wrap - 2n, true], // 7 behind, across the high half
      [wrap - 2n, false],
      [wrap + 4n, true],
      [wrap - 1n, true],
      [wrap, true],
      [wrap - 1n, false],
      [wrap + 5n, false],
      [wrap + 5n - WINDOW, true],
      [wrap + 4n - WINDOW, false],
    ]);
  });

  test("rejects counters at or above the limit and accepts those just below", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    expectVerdicts(filter, [
      [0n, true],
      [REJECT_AFTER_MESSAGES, false],
      [REJECT_AFTER_MESSAGES - 1n, true],
      [REJECT_AFTER_MESSAGES, false],
      [REJECT_AFTER_MESSAGES - 1n, false],
      [REJECT_AFTER_MESSAGES - 2n, true],
      [REJECT_AFTER_MESSAGES + 1n, false],
      [REJECT_AFTER_MESSAGES + 2n, false],
      [MAX_COUNTER, false],
      [REJECT_AFTER_MESSAGES - 2n, false],
      [REJECT_AFTER_MESSAGES - 3n, true],
      [0n, false],
    ]);
    const small = createReplayFilter(3n);
    expectVerdicts(small, [
      [3n, false],
      [2n, true],
      [0n, true],
      [4n, false],
    ]);
    assert.equal(validate(createReplayFilter(0n), 0n), false);
    assert.equal(validate(createReplayFilter(MAX_COUNTER), MAX_COUNTER - 1n), true);
  });

  test("a full window in either direction: wireguard-go's bulk cases", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    for (let c = 1n; c <= WINDOW; c++) assert.equal(validate(filter, c), true);
    expectVerdicts(filter, [
      [0n, true],
      [0n, false],
    ]);

    resetReplayFilter(filter);
    for (let c = 2n; c <= WINDOW + 1n; c++) assert.equal(validate(filter, c), true);
    expectVerdicts(filter, [
      [1n, true],
      [0n, false],
    ]);

    resetReplayFilter(filter);
    for (let c = WINDOW + 1n; c > 0n; c--) assert.equal(validate(filter, c), true);

    resetReplayFilter(filter);
    for (let c = WINDOW + 2n; c > 1n; c--) assert.equal(validate(filter, c), true);
    assert.equal(validate(filter, 0n), false);

    resetReplayFilter(filter);
    for (let c = WINDOW; c > 0n; c--) assert.equal(validate(filter, c), true);
    expectVerdicts(filter, [
      [WINDOW + 1n, true],
      [0n, false],
    ]);

    resetReplayFilter(filter);
    for (let c = WINDOW; c > 0n; c--) assert.equal(validate(filter, c), true);
    expectVerdicts(filter, [
      [0n, true],
      [WINDOW + 1n, true],
    ]);
  });

  test("reset forgets every counter but keeps the limit", () => {
    const filter = createReplayFilter(100n);
    for (let c = 0n; c < 100n; c++) validate(filter, c);
    resetReplayFilter(filter);
    assert.deepEqual(snapshot(filter), snapshot(createReplayFilter(100n)));
    expectVerdicts(filter, [
      [0n, true],
      [99n, true],
      [100n, false],
    ]);
  });

  test("a rejected counter leaves the filter unchanged", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    for (const c of [0n, 5n, 70n, 9000n]) validate(filter, c);
    const before = snapshot(filter);
    for (const c of [5n, 9000n, 0n, 1n, REJECT_AFTER_MESSAGES, MAX_COUNTER]) {
      assert.equal(validate(filter, c), false);
      assert.equal(snapshot(filter), before);
    }
  });

  test("throws RangeError or TypeError naming the argument", () => {
    const filter = createReplayFilter(REJECT_AFTER_MESSAGES);
    assert.throws(() => validateCounter(filter, -1, 0), {
      name: "RangeError",
      message: /counterLow/,
    });
    assert.throws(() => validateCounter(filter, 2 ** 32, 0), {
      name: "RangeError",
      message: /counterLow/,
    });
    assert.throws(() => validateCounter(filter, 0.5, 0), {
      name: "RangeError",
      message: /counterLow/,
    });
    assert.throws(() => validateCounter(filter, 0, 2 ** 32), {
      name: "RangeError",
      message: /counterHigh/,
    });
    assert.throws(() => validateCounter(filter, 0, Number.NaN), {
      name: "RangeError",
      message: /counterHigh/,
    });
    assert.throws(() => createReplayFilter(-1n), { name: "RangeError", message: /limit/ });
    assert.throws(() => createReplayFilter(2n ** 64n), { name: "RangeError", message: /limit/ });
    assert.throws(() => createReplayFilter(5 as unknown as bigint), {
      name: "TypeError",
      message: /limit/,
    });
  });
});

/** The naive model: every counter seen, and the highest. */
interface Model {
  seen: Set<bigint>;
  highest: bigint;
  limit: bigint;
}

/** Accepts a counter iff below the limit, never seen, and at most WINDOW behind the highest. */
function modelValidate(model: Model, counter: bigint): boolean {
  if (counter >= model.limit || model.seen.has(counter)) return false;
  if (counter <= model.highest && model.highest - counter > WINDOW) return false;
  model.seen.add(counter);
  if (counter > model.highest) model.highest = counter;
  return true;
}

type Step =
  | { kind: "near"; delta: bigint }
  | { kind: "ahead"; delta: bigint }
  | { kind: "absolute"; counter: bigint }
  | { kind: "limit"; delta: bigint };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .bigInt({ min: -WINDOW - 70n, max: 130n })
      .map((delta) => ({ kind: "near" as const, delta })),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(fc.bigInt({ min: 0n, max: 20_000n }), fc.bigInt({ min: 0n, max: 2n ** 40n }))
      .map((delta) => ({ kind: "ahead" as const, delta })),
  },
  {
    weight: 1,
    arbitrary: fc.bigInt({ min: 0n, max: MAX_COUNTER }).map((counter) => ({
      kind: "absolute" as const,
      counter,
    })),
  },
  {
    weight: 1,
    arbitrary: fc.bigInt({ min: -3n, max: 3n }).map((delta) => ({ kind: "limit" as const, delta })),
  },
);

function clamp(counter: bigint): bigint {
  return counter < 0n ? 0n : counter > MAX_COUNTER ? MAX_COUNTER : counter;
}

function counterOf(model: Model, s: Step): bigint {
  switch (s.kind) {
    case "near":
    case "ahead":
      return clamp(model.highest + s.delta);
    case "absolute":
      return s.counter;
    case "limit":
      return clamp(model.limit + s.delta);
  }
}

describe("replay filter against a set of seen counters", () => {
  test("agrees on every counter and changes only on acceptance", () => {
    const limit = fc.oneof(
      fc.constant(REJECT_AFTER_MESSAGES),
      fc.constant(MAX_COUNTER),
      fc.bigInt({ min: 0n, max: 2n ** 34n }),
    );
    fc.assert(
      fc.property(limit, fc.array(step, { maxLength: 300, size: "max" }), (limit, steps) => {
        const filter = createReplayFilter(limit);
        const model: Model = { seen: new Set(), highest: 0n, limit };
        for (const s of steps) {
          const counter = counterOf(model, s);
          const before = snapshot(filter);
          const accepted = validate(filter, counter);
          assert.equal(accepted, modelValidate(model, counter), `counter ${counter}`);
          if (!accepted)
            assert.equal(snapshot(filter), before, `rejecting ${counter} changed state`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
