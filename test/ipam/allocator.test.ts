/** The allocator: instant allocation from owned space, claims, donation, timeouts, bootstrap modes. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatAddress, IpamError, parseAddress } from "../../src/ipam/index.ts";
import { TestMesh } from "./harness.ts";

/** Settles a promise that the test expects to be settled already (microtasks only). */
async function outcome<T>(promise: Promise<T>): Promise<T | IpamError | "pending"> {
  const marker = Symbol();
  const result = await Promise.race([
    promise.catch((error: unknown) => error as IpamError),
    new Promise<typeof marker>((resolve) => setTimeout(() => resolve(marker), 0)),
  ]);
  return result === marker ? "pending" : (result as T | IpamError);
}

function address(text: string): number {
  const value = parseAddress(text);
  assert.notEqual(value, undefined);
  return value!;
}

describe("Allocator", () => {
  test("a seeding peer allocates at once, lowest first, skipping the network address", async () => {
    const mesh = new TestMesh({ peers: 1, range: "10.40.0.0/16" });
    const [a] = mesh.peers;
    assert.equal(formatAddress(await a!.allocate("one")), "10.40.0.1");
    assert.equal(formatAddress(await a!.allocate("two")), "10.40.0.2");
    assert.equal(mesh.pool.length, 0, "no network traffic for a local allocation");
  });

  test("allocate is idempotent per handle; release frees the address for reuse", async () => {
    const mesh = new TestMesh({ peers: 1 });
    const a = mesh.peers[0]!;
    const first = await a.allocate("h");
    assert.equal(await a.allocate("h"), first);
    assert.equal(a.allocations().size, 1);
    assert.equal(a.release("h"), true);
    assert.equal(a.release("h"), false);
    assert.equal(await a.allocate("other"), first);
  });

  test("claim takes a specific free address and refuses ones in use, reserved or outside", async () => {
    const mesh = new TestMesh({ peers: 1, range: "10.40.0.0/24" });
    const a = mesh.peers[0]!;
    assert.equal(await a.claim("web", address("10.40.0.50")), address("10.40.0.50"));
    assert.equal(await a.claim("web", address("10.40.0.50")), address("10.40.0.50"));
    const codes = await Promise.all(
      [
        a.claim("db", address("10.40.0.50")),
        a.claim("web", address("10.40.0.51")),
        a.claim("x", address("10.40.0.255")),
        a.claim("y", address("10.41.0.1")),
      ].map((p) =>
        p.then(
          () => "ok",
          (e: IpamError) => e.code,
        ),
      ),
    );
    assert.deepEqual(codes, [
      "ADDRESS_IN_USE",
      "HANDLE_HAS_OTHER_ADDRESS",
      "ADDRESS_IN_USE",
      "ADDRESS_OUTSIDE_RANGE",
    ]);
  });

  test("a joining peer gets space by donation from the peer with most free space", async () => {
    const mesh = new TestMesh({ peers: 2, range: "10.40.0.0/24" });
    const [a, b] = mesh.peers as [(typeof mesh.peers)[0], (typeof mesh.peers)[0]];
    mesh.settle();
    const pending = b.allocate("container");
    assert.equal(await outcome(pending), "pending");
    mesh.settle();
    const got = await pending;
    assert.equal(b.ownerOf(got), b.me);
    assert.equal(a.ownerOf(got), b.me);
    // Half of A's largest free stretch, aligned: the upper /25.
    assert.deepEqual(b.ring.rangesOf(b.me), [
      { start: address("10.40.0.128"), end: address("10.40.1.0") },
    ]);
    assert.equal(formatAddress(got), "10.40.0.128");
    assert.equal(a.status().donationsGiven, 1);
    mesh.converge();
    mesh.checkSafety();
  });

  test("a claim of an address another peer owns fails at once, naming the owner", async () => {
    const mesh = new TestMesh({ peers: 2, range: "10.40.0.0/24" });
    mesh.settle();
    const error = await mesh.peers[1]!.claim("x", address("10.40.0.7")).catch((e: IpamError) => e);
    assert.ok(error instanceof IpamError);
    assert.equal(error.code, "ADDRESS_OWNED_ELSEWHERE");
    assert.match(
      error.message,
      new RegExp(`peer ${mesh.keys[0]!.replace(/[+/]/g, "\\$&")} owns it`),
    );
  });

  test("with no reachable donor, allocation fails after the timeout with a clear error, then works after healing", async () => {
    const mesh = new TestMesh({ peers: 2, range: "10.40.0.0/24", timeoutMs: 5_000 });
    mesh.settle();
    mesh.groups = [0, 1];
    const pending = mesh.peers[1]!.allocate("lonely");
    mesh.clock.advance(4_999);
    assert.equal(await outcome(pending), "pending");
    mesh.clock.advance(1);
    const error = await outcome(pending);
    assert.ok(error instanceof IpamError);
    assert.equal(error.code, "NO_SPACE_TIMEOUT");
    assert.match(error.message, /after 5000 ms: this peer owns no free space/);
    mesh.groups = [0, 0];
    const retry = mesh.peers[1]!.allocate("lonely");
    mesh.settle();
    assert.equal(typeof (await retry), "number");
    mesh.checkSafety();
  });

  test("a joining peer that never hears of a ring fails with NOT_SEEDED_TIMEOUT", async () => {
    const mesh = new TestMesh({ peers: 1, bootstrap: () => ({ kind: "join" }), timeoutMs: 1_000 });
    const pending = mesh.peers[0]!.allocate("x");
    mesh.clock.advance(1_000);
    const error = await outcome(pending);
    assert.ok(error instanceof IpamError && error.code === "NOT_SEEDED_TIMEOUT", String(error));
  });

  test("an observer never owns space and refuses to allocate, but answers ownerOf", async () => {
    const mesh = new TestMesh({
      peers: 2,
      bootstrap: (i) => (i === 0 ? { kind: "seed" } : { kind: "observer" }),
    });
    mesh.settle();
    const observer = mesh.peers[1]!;
    const error = await observer.allocate("x").catch((e: IpamError) => e);
    assert.ok(error instanceof IpamError && error.code === "OBSERVER");
    assert.equal(observer.ownerOf(address("10.40.0.9")), mesh.keys[0]);
    assert.equal(observer.status().owned, 0);
  });

  test("consensus among 3 static peers seeds one ring split among the promisers", async () => {
    const consensus = new TestMesh({
      peers: 3,
      bootstrap: (_, keys) => ({ kind: "consensus", peers: keys }),
    });
    const pending = consensus.peers[2]!.allocate("first");
    consensus.settle();
    await pending;
    consensus.converge();
    const seeds = consensus.peers[0]!.ring.seeds;
    assert.ok(seeds.length >= 2, `seeded by a quorum, got ${seeds.length}`);
    for (const peer of consensus.peers) assert.deepEqual(peer.ring.seeds, seeds);
    consensus.checkSafety();
  });

  test("two separately seeded meshes refuse each other's rings, naming both seeds", () => {
    const mesh = new TestMesh({ peers: 2, bootstrap: () => ({ kind: "seed" }) });
    mesh.settle();
    assert.equal(mesh.peers[0]!.ring.seeds[0], mesh.keys[0]);
    const before = mesh.peers[1]!.gossip.digest();
    mesh.antiEntropy(0, 1);
    assert.equal(mesh.rejections.length > 0, true);
    assert.match(mesh.rejections.at(-1)!, /seeded by \[.*\]: ours was seeded by \[.*\]/);
    assert.ok(
      mesh.rejections.at(-1)!.includes(mesh.keys[0]!) &&
        mesh.rejections.at(-1)!.includes(mesh.keys[1]!),
    );
    assert.deepEqual(mesh.peers[1]!.gossip.digest(), before);
    assert.equal(mesh.peers[1]!.ring.stats().rejected.OTHER_SEEDS! >= 1, true);
  });
});
