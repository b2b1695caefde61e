/** The virtual Clock: timers fire in deadline order, only when a test moves time. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Clock } from "../../src/clock.ts";
import { VirtualClock } from "../../src/sim/index.ts";

describe("VirtualClock", () => {
  test("starts at 0 with wall time at the fixed default epoch", () => {
    const clock = new VirtualClock();
    assert.equal(clock.now(), 0);
    assert.equal(clock.wallNow(), Date.UTC(2025, 0, 1));
    assert.equal(clock.pendingTimers(), 0);
    assert.equal(clock.nextDeadline(), undefined);
  });

  test("wallNow() is the epoch plus virtual time, and jumps only when told", () => {
    const clock = new VirtualClock({ epochMs: 1_000_000 });
    clock.advance(250);
    assert.equal(clock.now(), 250);
    assert.equal(clock.wallNow(), 1_000_250);
    clock.adjustWallClock(-5000);
    assert.equal(clock.wallNow(), 995_250);
    assert.equal(clock.now(), 250);
  });

  test("satisfies Clock with bound methods, so they can be passed around", () => {
    const clock: Clock = new VirtualClock();
    const { now, setTimer } = clock;
    let fired = false;
    setTimer(5, () => {
      fired = true;
    });
    (clock as VirtualClock).advance(5);
    assert.equal(fired, true);
    assert.equal(now(), 5);
  });

  test("advance fires nothing early and each timer exactly at its deadline", () => {
    const clock = new VirtualClock();
    const seen: number[] = [];
    clock.setTimer(100, () => seen.push(clock.now()));
    assert.equal(clock.advance(99), 0);
    assert.deepEqual(seen, []);
    assert.equal(clock.advance(1), 1);
    assert.deepEqual(seen, [100]);
    assert.equal(clock.now(), 100);
  });

  test("fires in deadline order, ties in the order they were set", () => {
    const clock = new VirtualClock();
    const order: string[] = [];
    clock.setTimer(30, () => order.push("c"));
    clock.setTimer(10, () => order.push("a1"));
    clock.setTimer(20, () => order.push("b"));
    clock.setTimer(10, () => order.push("a2"));
    clock.setTimer(0, () => order.push("zero"));
    assert.equal(clock.advance(1000), 5);
    assert.deepEqual(order, ["zero", "a1", "a2", "b", "c"]);
    assert.equal(clock.now(), 1000);
  });

  test("runs timers that callbacks set inside the window, and leaves later ones", () => {
    const clock = new VirtualClock();
    const seen: Array<[string, number]> = [];
    clock.setTimer(10, () => {
      seen.push(["first", clock.now()]);
      clock.setTimer(0, () => seen.push(["same instant", clock.now()]));
      clock.setTimer(15, () => seen.push(["inside", clock.now()]));
      clock.setTimer(100, () => seen.push(["outside", clock.now()]));
    });
    clock.setTimer(10, () => seen.push(["tie set earlier", clock.now()]));
    clock.advance(50);
    assert.deepEqual(seen, [
      ["first", 10],
      ["tie set earlier", 10],
      ["same instant", 10],
      ["inside", 25],
    ]);
    assert.equal(clock.now(), 50);
    assert.equal(clock.pendingTimers(), 1);
    assert.equal(clock.nextDeadline(), 110);
  });

  test("cancel prevents firing; cancelling twice or after firing does nothing", () => {
    const clock = new VirtualClock();
    let fired = 0;
    const cancel = clock.setTimer(10, () => fired++);
    const other = clock.setTimer(20, () => fired++);
    assert.equal(clock.pendingTimers(), 2);
    cancel();
    cancel();
    assert.equal(clock.pendingTimers(), 1);
    assert.equal(clock.nextDeadline(), 20);
    clock.advance(30);
    assert.equal(fired, 1);
    other();
    assert.equal(clock.pendingTimers(), 0);
  });

  test("a callback can cancel a timer due at the same instant", () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    let cancelB = () => {};
    clock.setTimer(5, () => {
      fired.push("a");
      cancelB();
    });
    cancelB = clock.setTimer(5, () => fired.push("b"));
    clock.advance(5);
    assert.deepEqual(fired, ["a"]);
    assert.equal(clock.pendingTimers(), 0);
  });

  test("runUntilIdle stops at the last deadline when idle", () => {
    const clock = new VirtualClock();
    let hops = 0;
    const hop = () => {
      if (++hops < 5) clock.setTimer(7, hop);
    };
    clock.setTimer(7, hop);
    assert.equal(clock.runUntilIdle(10_000), 5);
    assert.equal(clock.now(), 35);
    assert.equal(clock.pendingTimers(), 0);
    assert.equal(clock.runUntilIdle(10_000), 0);
    assert.equal(clock.now(), 35);
  });

  test("runUntilIdle stops at the limit when a periodic timer keeps it busy", () => {
    const clock = new VirtualClock();
    let ticks = 0;
    const tick = () => {
      ticks++;
      clock.setTimer(10, tick);
    };
    clock.setTimer(10, tick);
    clock.runUntilIdle(95);
    assert.equal(ticks, 9);
    assert.equal(clock.now(), 95);
    assert.equal(clock.pendingTimers(), 1);
  });

  test("a negative delay counts as 0, as setTimeout's does", () => {
    const clock = new VirtualClock();
    clock.advance(10);
    let at = -1;
    clock.setTimer(-50, () => {
      at = clock.now();
    });
    clock.advance(0);
    assert.equal(at, 10);
  });

  test("a throwing callback stops the run at its deadline and leaves later timers", () => {
    const clock = new VirtualClock();
    let later = false;
    clock.setTimer(10, () => {
      throw new Error("boom");
    });
    clock.setTimer(20, () => {
      later = true;
    });
    assert.throws(() => clock.advance(100), /boom/);
    assert.equal(clock.now(), 10);
    assert.equal(clock.pendingTimers(), 1);
    clock.advance(90);
    assert.equal(later, true);
    assert.equal(clock.now(), 100);
  });

  test("refuses to advance from inside a callback", () => {
    const clock = new VirtualClock();
    let error: unknown;
    clock.setTimer(1, () => {
      try {
        clock.advance(1);
      } catch (e) {
        error = e;
      }
    });
    clock.advance(1);
    assert.ok(error instanceof Error);
    assert.match(error.message, /inside one of its timer callbacks/);
  });

  test("throws instead of hanging on a timer that re-arms itself with delay 0", () => {
    const clock = new VirtualClock({ maxTimersPerInstant: 1000 });
    const loop = () => {
      clock.setTimer(0, loop);
    };
    clock.setTimer(0, loop);
    assert.throws(() => clock.advance(1), /More than 1000 timers fired at virtual time 0 ms/);
  });

  test("refuses non-finite and negative arguments", () => {
    const clock = new VirtualClock();
    assert.throws(() => clock.setTimer(Number.NaN, () => {}), RangeError);
    assert.throws(() => clock.setTimer(Number.POSITIVE_INFINITY, () => {}), RangeError);
    assert.throws(() => clock.setTimer(1, "nope" as unknown as () => void), TypeError);
    assert.throws(() => clock.advance(-1), RangeError);
    assert.throws(() => clock.advance(Number.NaN), RangeError);
    assert.throws(() => clock.runUntilIdle(-1), RangeError);
    assert.throws(() => new VirtualClock({ epochMs: Number.NaN }), RangeError);
  });

  test("stays correct when many re-armed timers are cancelled (heap compaction)", () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    let cancel = () => {};
    for (let i = 0; i < 5000; i++) {
      cancel();
      cancel = clock.setTimer(1000 + i, () => fired.push(i));
    }
    clock.setTimer(10, () => fired.push(-1));
    assert.equal(clock.pendingTimers(), 2);
    clock.advance(10_000);
    assert.deepEqual(fired, [-1, 4999]);
  });

  test("fires exactly what a sorted list would, in its order (model check)", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), delayMs: fc.integer({ min: 0, max: 50 }) }),
      fc.record({ kind: fc.constant("cancel" as const), index: fc.nat() }),
      fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 30 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const clock = new VirtualClock();
        const cancels: Array<() => void> = [];
        const model: Array<{ id: number; deadline: number; live: boolean }> = [];
        const fired: number[] = [];
        const expected: number[] = [];
        let now = 0;
        for (const o of ops) {
          if (o.kind === "set") {
            const id = model.length;
            model.push({ id, deadline: now + o.delayMs, live: true });
            cancels.push(clock.setTimer(o.delayMs, () => fired.push(id)));
          } else if (o.kind === "cancel" && model.length > 0) {
            const i = o.index % model.length;
            cancels[i]!();
            model[i]!.live = false;
          } else if (o.kind === "advance") {
            now += o.ms;
            const due = model
              .filter((t) => t.live && t.deadline <= now)
              .sort((a, b) => a.deadline - b.deadline || a.id - b.id);
            for (const t of due) {
              t.live = false;
              expected.push(t.id);
            }
            clock.advance(o.ms);
          }
          assert.equal(clock.pendingTimers(), model.filter((t) => t.live).length);
        }
        assert.deepEqual(fired, expected);
        assert.equal(clock.now(), now);
      }),
      { numRuns: 300 },
    );
  });
});
