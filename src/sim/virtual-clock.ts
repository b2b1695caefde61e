/**
 * A Clock in virtual time: nothing happens until a test calls `advance` or
 * `runUntilIdle`, which run due timers in deadline order (ties in the order they were
 * set). Simulations of many peers therefore take no real time and replay exactly.
 */
import type { CancelTimer, Clock } from "../clock.ts";

export interface VirtualClockOptions {
  /**
   * Wall-clock milliseconds since the Unix epoch at virtual time 0. Defaults to a fixed
   * instant (2025-01-01T00:00:00Z), not the real time, so runs are reproducible.
   */
  epochMs?: number;
  /**
   * How many timers may fire at one virtual instant before `advance` throws: a timer
   * that keeps re-arming itself with delay 0 would otherwise hang the test.
   */
  maxTimersPerInstant?: number;
}

const DEFAULT_EPOCH_MS = Date.UTC(2025, 0, 1);
const DEFAULT_MAX_TIMERS_PER_INSTANT = 1_000_000;
/** Rebuild the heap once this many cancelled timers sit in it and they are the majority. */
const COMPACT_MIN_CANCELLED = 1024;

type TimerState = "pending" | "fired" | "cancelled";

interface Timer {
  readonly deadlineMs: number;
  /** Scheduling order, the tie-break between equal deadlines. */
  readonly sequence: number;
  readonly callback: () => void;
  state: TimerState;
}

/**
 * A deterministic Clock for tests and simulations. `now()` starts at 0 and moves only
 * through `advance` and `runUntilIdle`; `wallNow()` is `epochMs` plus virtual time
 * (plus any `adjustWallClock` jumps).
 *
 * The Clock methods are bound, so `const { now } = clock` works as with `systemClock`.
 * A timer callback that throws stops the run: the error propagates out of `advance` with
 * `now()` at that timer's deadline, and later timers stay pending.
 *
 * @example Firing a timer
 * ```ts
 * const clock = new VirtualClock();
 * let fired = false;
 * clock.setTimer(100, () => { fired = true; });
 * clock.advance(99); // fired === false
 * clock.advance(1); // fired === true, clock.now() === 100
 * ```
 */
export class VirtualClock implements Clock {
  #nowMs = 0;
  #wallOffsetMs: number;
  readonly #maxTimersPerInstant: number;
  /** A binary min-heap on (deadlineMs, sequence); cancelled timers leave lazily. */
  #heap: Timer[] = [];
  #sequence = 0;
  #pending = 0;
  #cancelledInHeap = 0;
  #running = false;

  constructor(options: VirtualClockOptions = {}) {
    this.#wallOffsetMs = options.epochMs ?? DEFAULT_EPOCH_MS;
    this.#maxTimersPerInstant = options.maxTimersPerInstant ?? DEFAULT_MAX_TIMERS_PER_INSTANT;
    assertFinite(this.#wallOffsetMs, "epochMs");
  }

  /** Virtual milliseconds since the clock was made. */
  readonly now = (): number => this.#nowMs;

  /** `epochMs` plus virtual time, plus any `adjustWallClock` jumps. */
  readonly wallNow = (): number => this.#wallOffsetMs + this.#nowMs;

  /** Schedules `callback` at `now() + delayMs` (negative delays count as 0, as `setTimeout`'s do). */
  readonly setTimer = (delayMs: number, callback: () => void): CancelTimer => {
    assertFinite(delayMs, "delayMs");
    if (typeof callback !== "function") {
      throw new TypeError(`Expected "callback" to be a function, got ${typeof callback}`);
    }
    const timer: Timer = {
      deadlineMs: this.#nowMs + Math.max(0, delayMs),
      sequence: this.#sequence++,
      callback,
      state: "pending",
    };
    this.#push(timer);
    this.#pending++;
    return () => this.#cancel(timer);
  };

  /**
   * Moves time forward by `ms`, running every timer due by then in deadline order,
   * including timers that callbacks set within the window. Returns how many fired.
   * Ends with `now()` exactly `ms` later.
   */
  advance(ms: number): number {
    assertNonNegative(ms, "ms");
    return this.#run(this.#nowMs + ms, false);
  }

  /**
   * Runs timers in order until none is pending, but never past `now() + limitMs`.
   * When it goes idle, `now()` stays at the last timer's deadline; when the limit stops
   * it (periodic timers never go idle), `now()` ends at the limit, as `advance` would.
   * Returns how many timers fired; check `pendingTimers()` to tell the cases apart.
   */
  runUntilIdle(limitMs: number): number {
    assertNonNegative(limitMs, "limitMs");
    return this.#run(this.#nowMs + limitMs, true);
  }

  /** How many timers are set and neither fired nor cancelled. */
  pendingTimers(): number {
    return this.#pending;
  }

  /** The virtual time the next pending timer fires at, or `undefined` when none is. */
  nextDeadline(): number | undefined {
    return this.#peek()?.deadlineMs;
  }

  /**
   * Jumps the wall clock by `deltaMs` (either way) without touching monotonic time or
   * timers, as NTP or a user can: for tests of code that must survive wall-clock jumps.
   */
  adjustWallClock(deltaMs: number): void {
    assertFinite(deltaMs, "deltaMs");
    this.#wallOffsetMs += deltaMs;
  }

  #run(untilMs: number, stopWhenIdle: boolean): number {
    if (this.#running) {
      throw new Error("Cannot advance a VirtualClock from inside one of its timer callbacks");
    }
    this.#running = true;
    let fired = 0;
    let instantMs = Number.NaN;
    let firedAtInstant = 0;
    try {
      for (;;) {
        const timer = this.#peek();
        if (timer === undefined || timer.deadlineMs > untilMs) break;
        this.#pop();
        if (timer.deadlineMs !== instantMs) {
          instantMs = timer.deadlineMs;
          firedAtInstant = 0;
        }
        if (++firedAtInstant > this.#maxTimersPerInstant) {
          throw new Error(
            `More than ${this.#maxTimersPerInstant} timers fired at virtual time ${instantMs} ms: a timer loop?`,
          );
        }
        this.#nowMs = timer.deadlineMs;
        timer.state = "fired";
        this.#pending--;
        fired++;
        timer.callback();
      }
      if (!(stopWhenIdle && this.#pending === 0)) this.#nowMs = untilMs;
    } finally {
      this.#running = false;
    }
    return fired;
  }

  #cancel(timer: Timer): void {
    if (timer.state !== "pending") return;
    timer.state = "cancelled";
    this.#pending--;
    this.#cancelledInHeap++;
    // Protocol timers are re-armed on every packet; without this the heap fills with corpses.
    if (
      this.#cancelledInHeap >= COMPACT_MIN_CANCELLED &&
      this.#cancelledInHeap * 2 > this.#heap.length
    ) {
      this.#heap = this.#heap.filter((t) => t.state === "pending");
      this.#cancelledInHeap = 0;
      for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#siftDown(i);
    }
  }

  /** The earliest pending timer, dropping cancelled ones from the top on the way. */
  #peek(): Timer | undefined {
    while (this.#heap.length > 0 && this.#heap[0]!.state === "cancelled") {
      this.#pop();
      this.#cancelledInHeap--;
    }
    return this.#heap[0];
  }

  #push(timer: Timer): void {
    const heap = this.#heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    this.#siftDown(0);
  }

  #siftDown(start: number): void {
    const heap = this.#heap;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && earlier(heap[left]!, heap[smallest]!)) smallest = left;
      if (right < heap.length && earlier(heap[right]!, heap[smallest]!)) smallest = right;
      if (smallest === i) return;
      [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
      i = smallest;
    }
  }
}

function earlier(a: Timer, b: Timer): boolean {
  return a.deadlineMs < b.deadlineMs || (a.deadlineMs === b.deadlineMs && a.sequence < b.sequence);
}

function assertFinite(value: number, title: string): void {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new RangeError(`Expected "${title}" to be a finite number, got ${value}`);
  }
}

function assertNonNegative(value: number, title: string): void {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`Expected "${title}" to be a finite number of 0 or more, got ${value}`);
  }
}
