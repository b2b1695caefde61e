/** Bootstrap consensus: single-decree Paxos over lossy, partitioned, reordered messages. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  decodeIpamMessage,
  encodeIpamMessage,
  type PaxosMessage,
  PaxosNode,
  type SeedSet,
} from "../../src/ipam/index.ts";
import { createRandom, VirtualClock } from "../../src/sim/index.ts";
import { peerKey } from "./harness.ts";

interface InFlight {
  readonly from: number;
  readonly to: number;
  readonly message: PaxosMessage;
}

/** N nodes whose messages go into `pool`, or straight through `deliverVia` when given. */
function cluster(
  n: number,
  clock: VirtualClock,
  random: () => number,
  deliverVia?: (m: InFlight) => void,
) {
  const keys = Array.from({ length: n }, (_, i) => peerKey(i));
  const pool: InFlight[] = [];
  const decisions: (SeedSet | undefined)[] = keys.map(() => undefined);
  const nodes: PaxosNode[] = keys.map(
    (me, i) =>
      new PaxosNode({
        me,
        participants: keys,
        clock,
        random,
        send: (to, message) => {
          // Through the wire format, so the codec carries every message the protocol sends.
          const decoded = decodeIpamMessage(encodeIpamMessage({ kind: "paxos", paxos: message }));
          assert.ok(decoded.ok && decoded.message.kind === "paxos", JSON.stringify(decoded));
          const inFlight = { from: i, to: keys.indexOf(to), message: decoded.message.paxos };
          if (deliverVia) deliverVia(inFlight);
          else pool.push(inFlight);
        },
        onDecide: (value) => {
          assert.equal(decisions[i], undefined, "decides once");
          decisions[i] = value;
        },
      }),
  );
  const deliver = (m: InFlight) => nodes[m.to]!.receive(keys[m.from]!, m.message);
  return { keys, nodes, pool, decisions, deliver };
}

function assertOneValue(decisions: readonly (SeedSet | undefined)[]): void {
  const decided = decisions.filter((d) => d !== undefined).map((d) => JSON.stringify(d));
  assert.ok(new Set(decided).size <= 1, `two different decisions: ${decided.join(" | ")}`);
}

describe("PaxosNode", () => {
  test("5 acceptors with 20% message loss all reach one decision (50 seeds)", () => {
    for (let seed = 1; seed <= 50; seed++) {
      const clock = new VirtualClock();
      const random = createRandom(seed);
      const c = cluster(
        5,
        clock,
        () => random.next(),
        (m) => {
          if (random.next() < 0.2) return;
          clock.setTimer(1 + random.int(50), () => c.deliver(m));
        },
      );
      for (const node of c.nodes) node.propose();
      for (let t = 0; t < 120 && c.decisions.some((d) => d === undefined); t++) clock.advance(500);
      assert.ok(
        c.decisions.every((d) => d !== undefined),
        `seed ${seed}: ${c.decisions.filter((d) => d).length}/5 decided`,
      );
      assertOneValue(c.decisions);
      assert.ok(c.decisions[0]!.length >= 3, "the seeds are a quorum of promisers");
    }
  });

  test("split 2|3: only the majority side decides; the minority learns it after healing", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const clock = new VirtualClock();
      const random = createRandom(seed);
      let healed = false;
      const side = (i: number) => (i < 2 ? 0 : 1);
      const c = cluster(
        5,
        clock,
        () => random.next(),
        (m) => {
          if (!healed && side(m.from) !== side(m.to)) return;
          clock.setTimer(1 + random.int(20), () => c.deliver(m));
        },
      );
      for (const node of c.nodes) node.propose();
      clock.advance(60_000);
      assert.deepEqual(
        c.decisions.slice(0, 2),
        [undefined, undefined],
        `seed ${seed}: minority decided`,
      );
      assert.ok(
        c.decisions.slice(2).every((d) => d !== undefined),
        `seed ${seed}: majority did not decide`,
      );
      assert.ok(
        c.decisions[2]!.every((key) => c.keys.indexOf(key) >= 2),
        "seeded by majority peers",
      );
      healed = true;
      clock.advance(10_000);
      assert.ok(c.decisions.every((d) => d !== undefined));
      assertOneValue(c.decisions);
    }
  });

  test("never two different decisions under any schedule of delivery, loss, duplication and partitions", () => {
    const op = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          op: fc.constant("deliver" as const),
          index: fc.nat(),
          duplicate: fc.boolean(),
        }),
      },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("drop" as const), index: fc.nat() }) },
      {
        weight: 2,
        arbitrary: fc.record({
          op: fc.constant("advance" as const),
          ms: fc.integer({ min: 0, max: 1_500 }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ op: fc.constant("propose" as const), node: fc.nat(4) }) },
      {
        weight: 1,
        arbitrary: fc.record({ op: fc.constant("partition" as const), mask: fc.nat(31) }),
      },
    );
    let decidedRuns = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(op, { maxLength: 300, size: "max" }),
        (seed, ops) => {
          const clock = new VirtualClock();
          const random = createRandom(seed);
          const c = cluster(5, clock, () => random.next());
          let mask = 0;
          for (const [i, node] of c.nodes.entries()) if (seed % 5 <= i) node.propose();
          const together = (m: InFlight) => ((mask >>> m.from) & 1) === ((mask >>> m.to) & 1);
          for (const step of ops) {
            if (step.op === "deliver" || step.op === "drop") {
              if (c.pool.length === 0) continue;
              const at = step.index % c.pool.length;
              const m = c.pool[at]!;
              if (!(step.op === "deliver" && step.duplicate)) c.pool.splice(at, 1);
              if (step.op === "deliver" && together(m)) c.deliver(m);
            } else if (step.op === "advance") {
              clock.advance(step.ms);
            } else if (step.op === "propose") {
              c.nodes[step.node]!.propose();
            } else {
              mask = step.mask;
            }
            assertOneValue(c.decisions);
          }
          if (c.decisions.some((d) => d !== undefined)) decidedRuns++;
          // Then heal and let messages flow in order: everyone learns the one decision.
          mask = 0;
          for (const node of c.nodes) node.propose();
          for (let round = 0; round < 60 && c.decisions.some((d) => d === undefined); round++) {
            while (c.pool.length > 0) c.deliver(c.pool.shift()!);
            assertOneValue(c.decisions);
            clock.advance(1_000);
          }
          assert.ok(
            c.decisions.every((d) => d !== undefined),
            "all decide once messages flow",
          );
          assertOneValue(c.decisions);
        },
      ),
      { numRuns: 1_500 },
    );
    // Many schedules decide amid the chaos; the rest decide once healed.
    assert.ok(decidedRuns > 0, "some schedules decide before healing");
  });

  test("a quorum of one decides alone; a quorum that is not a majority is refused", () => {
    const clock = new VirtualClock();
    let decided: SeedSet | undefined;
    const me = peerKey(1);
    const node = new PaxosNode({
      me,
      participants: [me],
      clock,
      random: () => 0,
      send: () => {},
      onDecide: (v) => (decided = v),
    });
    node.propose();
    assert.deepEqual(decided, [me]);
    const keys = [peerKey(1), peerKey(2), peerKey(3), peerKey(4)];
    const make = (quorum: number) =>
      new PaxosNode({
        me,
        participants: keys,
        quorum,
        clock,
        random: () => 0,
        send: () => {},
        onDecide: () => {},
      });
    assert.throws(() => make(2), RangeError);
    assert.equal(make(3).quorum, 3);
  });

  test("malformed IPAM messages are refused with a reason", () => {
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array([1]), /shorter than 2/],
      [new Uint8Array([2, 1]), /version 2/],
      [new Uint8Array([1, 9]), /kind 9/],
      [new Uint8Array([1, 1, 0]), /with a body/],
      [new Uint8Array([1, 2, 0xff, 0xff]), /./],
      [new Uint8Array(20_000).fill(1), /exceeds/],
    ];
    const prepare = encodeIpamMessage({
      kind: "paxos",
      paxos: { type: "prepare", ballot: { round: 1, proposer: peerKey(1) } },
    });
    assert.ok(decodeIpamMessage(prepare).ok);
    for (const [bytes, reason] of cases) {
      const decoded = decodeIpamMessage(bytes);
      assert.ok(
        !decoded.ok && reason.test(decoded.error),
        `${bytes.slice(0, 4)}: ${JSON.stringify(decoded)}`,
      );
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        decodeIpamMessage(new Uint8Array([1, 2, ...bytes]));
      }),
      { numRuns: 2_000 },
    );
  });
});
