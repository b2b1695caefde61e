/**
 * The path MTU state machine (`src/mesh/path-mtu.ts`) driven by a model path that
 * answers exactly the probes up to its MTU (or loses some), on a made-up clock; and the
 * overhead arithmetic of ceilings and relayed paths.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  createPathMtu,
  DEFAULT_PATH_MTU_SETTINGS,
  directCeilingBytes,
  isProbing,
  PATH_MTU_LADDER,
  type PathMtuState,
  pathMtuBytes,
  probeAnswered,
  probeSent,
  REPROBE_MS,
  relayedPathMtu,
  tickPathMtu,
  underlayOverheadBytes,
} from "../../src/mesh/path-mtu.ts";

const STEP_MS = 250;

/**
 * Runs the machine against a path carrying packets up to `carries()` bytes, answering
 * each probe that fits at once (unless `lose` says otherwise), for `forMs` from `startMs`.
 * Returns the MTUs the machine used, in order, without repeats, and the sizes probed.
 */
function drive(
  state: PathMtuState,
  carries: () => number,
  startMs: number,
  forMs: number,
  lose: (bytes: number) => boolean = () => false,
): { mtus: number[]; probed: number[]; endMs: number } {
  const mtus = [pathMtuBytes(state)];
  const probed: number[] = [];
  let nonce = 0;
  for (let now = startMs; now <= startMs + forMs; now += STEP_MS) {
    for (const bytes of tickPathMtu(state, now)) {
      probed.push(bytes);
      const id = `n${nonce++}`;
      probeSent(state, id, bytes);
      if (bytes <= carries() && !lose(bytes)) {
        assert.ok(probeAnswered(state, id, now), "an answer to our own probe is ours");
      }
    }
    const mtu = pathMtuBytes(state);
    if (mtu !== mtus[mtus.length - 1]) mtus.push(mtu);
  }
  return { mtus, probed, endMs: startMs + forMs };
}

describe("path MTU probing", () => {
  test("a clean path keeps the ceiling from the start and stops probing after one round", () => {
    const state = createPathMtu("a", 1420, 0);
    const { mtus, probed } = drive(state, () => 1420, 0, 10_000);
    assert.deepEqual(mtus, [1420], "never below the ceiling, not even for a moment");
    assert.ok(!isProbing(state), "the round is over");
    assert.equal(state.convergedMs, 0, "converged with the first answers");
    assert.ok(probed.length <= 1 + PATH_MTU_LADDER.length, `one probe per rung: ${probed}`);
  });

  test("a black hole at 1280 (IPv4 underlay): 1220 after three unanswered probes", () => {
    const state = createPathMtu("a", 1420, 0);
    const { mtus } = drive(state, () => 1220, 0, 10_000);
    // Optimistic while unknown: only rungs proven bad are left behind.
    assert.equal(mtus[0], 1420);
    assert.equal(mtus[mtus.length - 1], 1220);
    assert.ok(
      mtus.every((m, i) => i === 0 || m < mtus[i - 1]!),
      `only downwards: ${mtus}`,
    );
    assert.ok(!isProbing(state), "the round is over");
    const { probeIntervalMs, maxUnanswered } = DEFAULT_PATH_MTU_SETTINGS;
    assert.equal(state.convergedMs, probeIntervalMs * maxUnanswered, "three intervals");
  });

  test("a path between rungs gets the largest rung below it", () => {
    const state = createPathMtu("a", 1420, 0);
    drive(state, () => 1350, 0, 10_000);
    assert.equal(pathMtuBytes(state), 1340);
  });

  test("a path smaller than every rung keeps the smallest", () => {
    const state = createPathMtu("a", 1420, 0);
    drive(state, () => 100, 0, 10_000);
    assert.equal(pathMtuBytes(state), PATH_MTU_LADDER[PATH_MTU_LADDER.length - 1]);
  });

  test("the ceiling is the first rung, and nothing above it is probed", () => {
    const state = createPathMtu("a", 1220, 0);
    const { probed } = drive(state, () => 1500, 0, 5_000);
    assert.equal(Math.max(...probed), 1220);
    assert.equal(pathMtuBytes(state), 1220);
  });

  test("one lost probe does not make a rung bad; three do", () => {
    const state = createPathMtu("a", 1420, 0);
    let lost1420 = 0;
    drive(
      state,
      () => 1420,
      0,
      10_000,
      (bytes) => bytes === 1420 && lost1420++ < 2,
    );
    assert.equal(pathMtuBytes(state), 1420, "the third probe got through");
  });

  test("re-probing finds a path that grew, and only after REPROBE_MS", () => {
    const state = createPathMtu("a", 1420, 0);
    let carries = 1220;
    const first = drive(state, () => carries, 0, 10_000);
    assert.equal(pathMtuBytes(state), 1220);
    carries = 1420;
    const quiet = drive(state, () => carries, first.endMs + STEP_MS, REPROBE_MS - 20_000);
    assert.deepEqual(quiet.probed, [], "no probes between rounds");
    assert.equal(pathMtuBytes(state), 1220, "still the old MTU");
    drive(state, () => carries, quiet.endMs + STEP_MS, 30_000);
    assert.equal(pathMtuBytes(state), 1420, "the re-probe found the bigger path");
  });

  test("a re-probe of a black-holed path never raises the MTU, even for a moment", () => {
    const state = createPathMtu("a", 1420, 0);
    const first = drive(state, () => 1220, 0, 10_000);
    const again = drive(state, () => 1220, first.endMs + STEP_MS, REPROBE_MS + 10_000);
    assert.deepEqual(again.mtus, [1220]);
    assert.ok(again.probed.includes(1420), "the bigger rungs were tried again");
  });

  test("a path that shrank is found at the next re-probe, down to its new size", () => {
    const state = createPathMtu("a", 1420, 0);
    let carries = 1420;
    const first = drive(state, () => carries, 0, 10_000);
    carries = 1200;
    const { mtus } = drive(state, () => carries, first.endMs + STEP_MS, REPROBE_MS + 20_000);
    assert.equal(pathMtuBytes(state), 1200, `went down: ${mtus}`);
    assert.ok(!isProbing(state), "and settled");
  });

  test("answers to nonces it never sent are not its own", () => {
    const state = createPathMtu("a", 1420, 0);
    assert.ok(!probeAnswered(state, "nope", 0), "an unknown nonce is some other ping's");
    assert.equal(pathMtuBytes(state), 1420);
  });

  test("bad ceilings are refused", () => {
    assert.throws(() => createPathMtu("a", 0, 0), RangeError);
    assert.throws(() => createPathMtu("a", 1.5, 0), RangeError);
  });
});

describe("path MTU arithmetic", () => {
  test("WireGuard's overheads: 60 over IPv4, 80 over IPv6", () => {
    assert.equal(underlayOverheadBytes("192.0.2.1"), 60);
    assert.equal(underlayOverheadBytes("2001:db8::1"), 80);
  });

  test("a direct path's ceiling: the Tun MTU, or less when the underlay is smaller", () => {
    assert.equal(directCeilingBytes(1420, "192.0.2.1", undefined), 1420);
    assert.equal(directCeilingBytes(1420, "192.0.2.1", 1500), 1420);
    assert.equal(directCeilingBytes(1420, "192.0.2.1", 1280), 1220);
    assert.equal(directCeilingBytes(1420, "2001:db8::1", 1280), 1200);
    assert.equal(directCeilingBytes(1420, "192.0.2.1", 100), 576, "never below the floor");
  });

  test("a relayed path: the first hop's MTU (at most the largest frame) less 100", () => {
    assert.equal(relayedPathMtu(1220, 1408, 68), 1120);
    assert.equal(relayedPathMtu(1420, 1408, 68), 1308);
  });
});
