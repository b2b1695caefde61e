/**
 * Property: any interleaving of allocate, claim, release, donation, gossip with reordering,
 * duplication, loss (of whole messages and of single gossip items) and partitions, on 2 to
 * 10 replicas, never puts an address on two peers, keeps every ring's invariants after every
 * step, and once messages flow every replica reaches the same complete ring.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { TestMesh } from "./harness.ts";

const HANDLES = 24;

const step = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("allocate" as const),
      peer: fc.nat(9),
      handle: fc.nat(HANDLES - 1),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("release" as const),
      peer: fc.nat(9),
      handle: fc.nat(HANDLES - 1),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("claim" as const),
      peer: fc.nat(9),
      handle: fc.nat(HANDLES - 1),
      offset: fc.nat(63),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("deliver" as const),
      index: fc.nat(),
      duplicate: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("drop" as const), index: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("gossip" as const),
      from: fc.nat(9),
      to: fc.nat(9),
      keep: fc.integer(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("advance" as const),
      ms: fc.integer({ min: 0, max: 4_000 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("partition" as const), mask: fc.nat(1023) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("heal" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("report" as const), peer: fc.nat(9) }) },
);

describe("IPAM on many replicas", () => {
  test("no address on two peers, invariants after every step, convergence once messages flow", () => {
    let cases = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 10 }),
        fc.array(step, { minLength: 1, maxLength: 80, size: "max" }),
        (peerCount, steps) => {
          cases++;
          const mesh = new TestMesh({ peers: peerCount, range: "10.40.0.0/26", timeoutMs: 6_000 });
          const base = mesh.peers[0]!.range.start;
          for (const s of steps) {
            switch (s.op) {
              case "allocate":
                mesh.peers[s.peer % peerCount]!.allocate(`h${s.handle}`).catch(() => {});
                break;
              case "release":
                mesh.peers[s.peer % peerCount]!.release(`h${s.handle}`);
                break;
              case "claim":
                mesh.peers[s.peer % peerCount]!.claim(`h${s.handle}`, base + s.offset).catch(
                  () => {},
                );
                break;
              case "deliver":
                mesh.deliver(s.index, s.duplicate);
                break;
              case "drop":
                mesh.drop(s.index);
                break;
              case "gossip":
                mesh.antiEntropy(s.from % peerCount, s.to % peerCount, s.keep);
                break;
              case "advance":
                mesh.clock.advance(s.ms);
                break;
              case "partition":
                mesh.groups = mesh.keys.map((_, i) => (s.mask >>> i) & 1);
                break;
              case "heal":
                mesh.groups = mesh.keys.map(() => 0);
                break;
              case "report":
                mesh.peers[s.peer % peerCount]!.reportFree();
                break;
            }
            mesh.checkSafety();
          }
          // Heal, let every request finish, record final free counts, run anti-entropy.
          mesh.groups = mesh.keys.map(() => 0);
          mesh.settle();
          mesh.checkSafety();
          for (const peer of mesh.peers) peer.reportFree();
          mesh.converge();
          mesh.checkSafety();
          mesh.checkConverged();
          assert.deepEqual(mesh.rejections, [], "honest peers never refuse each other's gossip");
        },
      ),
      { numRuns: 1_500 },
    );
    assert.equal(cases >= 1_500, true);
  });
});
