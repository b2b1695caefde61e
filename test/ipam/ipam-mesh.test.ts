/**
 * IPAM on the simulated mesh: real Devices, gossip and relaying on a virtual clock, with
 * partitions and loss. Each test names its seed when it fails; rerun with WEFT_SEED=<seed>.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatAddress } from "../../src/ipam/index.ts";
import {
  checkNoDuplicates,
  createIpamSim,
  expectAddress,
  expectIpamError,
  ringsEqual,
  runUntilSettled,
  settledNow,
} from "./mesh-harness.ts";

const SEED = Number(globalThis.process?.env?.WEFT_SEED ?? 20261128);

async function withSeed(name: string, body: (seed: number) => Promise<void>): Promise<void> {
  try {
    await body(SEED);
  } catch (error) {
    throw new Error(`${name} failed with seed ${SEED} (rerun with WEFT_SEED=${SEED})`, {
      cause: error,
    });
  }
}

describe("IPAM on the simulated mesh", () => {
  test("partition {A} | {B,C}: every side allocates from its own space; after healing no duplicates, rings equal", () =>
    withSeed("partition", async (seed) => {
      const ipam = createIpamSim({ count: 3, seed });
      const { sim, allocators } = ipam;
      const [a, b, c] = allocators as [
        (typeof allocators)[0],
        (typeof allocators)[0],
        (typeof allocators)[0],
      ];
      // B and C get space by donation while the mesh is whole.
      expectAddress(await runUntilSettled(sim, b.allocate("b-0"), 20_000), "B's first");
      expectAddress(await runUntilSettled(sim, c.allocate("c-0"), 20_000), "C's first");
      assert.ok(
        sim.runUntil(() => ringsEqual(allocators), 20_000) >= 0,
        "rings agree before the cut",
      );

      ipam.partition([0], [1, 2]);
      sim.run(10_000);
      assert.deepEqual(sim.peers[0]!.mesh.reachable(), [], "A reaches no one");
      // Allocations from owned space are instant: no virtual time passes.
      for (let i = 1; i <= 5; i++) {
        for (const [name, allocator] of [
          ["a", a],
          ["b", b],
          ["c", c],
        ] as const) {
          const address = expectAddress(
            await settledNow(allocator.allocate(`${name}-${i}`)),
            `${name}-${i} during the partition`,
          );
          assert.equal(
            allocator.ownerOf(address),
            allocator.me,
            `${name} owns ${formatAddress(address)}`,
          );
        }
      }
      sim.run(5_000);
      ipam.heal();
      const healedMs = sim.runUntil(() => ringsEqual(allocators), 60_000, 250);
      assert.ok(healedMs >= 0, "rings converge after healing");
      assert.equal(
        checkNoDuplicates(ipam),
        17,
        "17 distinct addresses, each owned by its holder everywhere",
      );
      for (const allocator of allocators) {
        assert.deepEqual(allocator.ring.stats().rejected, {}, "no ring delta was refused");
      }
      await ipam.close();
    }));

  test("a peer without space in a minority partition fails after the timeout with a clear error, then succeeds after healing", () =>
    withSeed("minority", async (seed) => {
      const ipam = createIpamSim({ count: 3, seed, timeoutMs: 10_000 });
      const { sim, allocators } = ipam;
      const [, b, c] = allocators as [
        (typeof allocators)[0],
        (typeof allocators)[0],
        (typeof allocators)[0],
      ];
      expectAddress(await runUntilSettled(sim, b.allocate("b-0"), 20_000), "B's first");
      assert.ok(
        sim.runUntil(() => ringsEqual(allocators), 20_000) >= 0,
        "rings agree before the cut",
      );
      assert.equal(c.status().owned, 0, "C owns nothing yet");

      ipam.partition([2], [0, 1]);
      sim.run(10_000);
      const failed = expectIpamError(
        await runUntilSettled(sim, c.allocate("c-0"), 15_000),
        "NO_SPACE_TIMEOUT",
        "C's allocation in the minority",
      );
      assert.match(failed.message, /No free address for "c-0" after 10000 ms/);
      assert.equal(c.allocations().size, 0, "C handed out nothing");

      ipam.heal();
      const address = expectAddress(
        await runUntilSettled(sim, c.allocate("c-0"), 30_000),
        "C's allocation after healing",
      );
      assert.equal(c.ownerOf(address), c.me, "C owns what it got");
      assert.ok(sim.runUntil(() => ringsEqual(allocators), 30_000, 250) >= 0, "rings converge");
      assert.equal(checkNoDuplicates(ipam), 2, "B's and C's addresses are distinct");
      await ipam.close();
    }));

  test("bootstrap consensus among 5 peers completes over links losing 20% of datagrams", () =>
    withSeed("consensus-loss", async (seed) => {
      const ipam = createIpamSim({
        count: 5,
        seed,
        link: { lossRate: 0.2, latencyMs: 10 },
        timeoutMs: 120_000,
        bootstrap: (_, keys) => ({ kind: "consensus", peers: keys }),
      });
      const { sim, allocators } = ipam;
      const requests = allocators.map((allocator, i) => allocator.allocate(`host-${i}`));
      const seededMs = sim.runUntil(() => allocators.every((a) => a.ring.isSeeded()), 90_000, 250);
      assert.ok(seededMs >= 0, "every peer learns the seeds");
      const { sent, dropped } = sim.network.counters();
      assert.ok(dropped.loss > sent * 0.1, `the links lost datagrams (${dropped.loss} of ${sent})`);
      const seeds = allocators[0]!.ring.seeds;
      assert.ok(seeds.length >= 3, `a quorum of 3 or more seeds, got ${seeds.length}`);
      for (const allocator of allocators)
        assert.deepEqual(allocator.ring.seeds, seeds, "one decision");
      for (const [i, request] of requests.entries()) {
        expectAddress(await runUntilSettled(sim, request, 60_000), `host-${i}`);
      }
      assert.ok(sim.runUntil(() => ringsEqual(allocators), 60_000, 250) >= 0, "rings converge");
      assert.equal(checkNoDuplicates(ipam), 5, "5 distinct addresses");
      await ipam.close();
    }));

  test("bootstrap consensus split 2 | 3: only the majority seeds; the minority joins after healing", () =>
    withSeed("consensus-split", async (seed) => {
      const ipam = createIpamSim({
        count: 5,
        seed,
        timeoutMs: 20_000,
        bootstrap: (_, keys) => ({ kind: "consensus", peers: keys }),
      });
      const { sim, allocators, keys } = ipam;
      ipam.partition([0, 1], [2, 3, 4]);
      const requests = allocators.map((allocator, i) => allocator.allocate(`host-${i}`));
      sim.run(25_000);
      const majority = allocators.slice(2);
      const minority = allocators.slice(0, 2);
      for (const allocator of majority) {
        assert.ok(allocator.ring.isSeeded(), "a majority peer is seeded");
        assert.ok(
          allocator.ring.seeds.every((s) => keys.slice(2).includes(s)),
          "seeds come from the majority side only",
        );
      }
      for (const allocator of minority)
        assert.ok(!allocator.ring.isSeeded(), "the minority does not seed");
      for (const [i, request] of requests.entries()) {
        const outcome = await settledNow(request);
        if (i < 2) expectIpamError(outcome, "NOT_SEEDED_TIMEOUT", `host-${i} in the minority`);
        else expectAddress(outcome, `host-${i} in the majority`);
      }

      ipam.heal();
      for (const [i, allocator] of minority.entries()) {
        expectAddress(
          await runUntilSettled(sim, allocator.allocate(`again-${i}`), 30_000),
          `minority peer ${i} after healing`,
        );
      }
      assert.ok(sim.runUntil(() => ringsEqual(allocators), 30_000, 250) >= 0, "rings converge");
      assert.equal(checkNoDuplicates(ipam), 5, "5 distinct addresses");
      await ipam.close();
    }));

  test("a restarted peer keeps its addresses and ring through its store, seed and joiner alike", () =>
    withSeed("restart", async (seed) => {
      const ipam = createIpamSim({ count: 3, seed });
      const { sim, allocators, stores } = ipam;
      const handles = ["web", "db", "cache"];
      for (const handle of handles) {
        expectAddress(await runUntilSettled(sim, allocators[1]!.allocate(handle), 20_000), handle);
      }
      expectAddress(await runUntilSettled(sim, allocators[0]!.allocate("seed-host"), 1_000), "A's");
      assert.ok(sim.runUntil(() => ringsEqual(allocators), 20_000, 250) >= 0, "rings agree");
      const before = allocators.map((a) => ({
        allocations: a.allocations(),
        owned: a.ring.rangesOf(a.me),
      }));
      assert.ok((stores[1]!.saves.get("ipam") ?? 0) >= 4, "B saved its state on every change");

      for (const index of [1, 0]) {
        await ipam.restart(index);
        const restarted = allocators[index]!;
        assert.deepEqual(restarted.allocations(), before[index]!.allocations, "allocations kept");
        assert.deepEqual(
          restarted.ring.rangesOf(restarted.me),
          before[index]!.owned,
          "ranges kept",
        );
        assert.ok(restarted.ring.isSeeded(), "the ring is back without gossip");
        for (const [handle, address] of before[index]!.allocations) {
          assert.equal(
            await settledNow(restarted.allocate(handle)),
            address,
            `"${handle}" gets its address again at once`,
          );
        }
      }
      const fresh = expectAddress(
        await settledNow(allocators[1]!.allocate("new")),
        "B after restart",
      );
      assert.ok(
        ![...before[1]!.allocations.values()].includes(fresh),
        "a new handle gets a new address",
      );
      assert.ok(sim.runUntil(() => ringsEqual(allocators), 30_000, 250) >= 0, "rings converge");
      assert.equal(checkNoDuplicates(ipam), 5, "5 distinct addresses");
      for (const allocator of allocators) {
        assert.deepEqual(
          allocator.ring.stats().rejected,
          {},
          "no peer refused the restarted rings",
        );
      }
      await ipam.close();
    }));
});
