/**
 * `weft demo`, the README's first command: three peers in one process on loopback, C
 * reachable from A only through B. Its output is checked line by line for what it claims.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runCli } from "../helpers/cli.ts";

test("weft demo joins B and C by invitation, resolves every name and relays A to C via B", () => {
  const result = runCli(["demo"]);
  assert.equal(result.status, 0, `demo exits 0:\n${result.stdout}\n${result.stderr}`);
  const out = result.stdout;
  assert.match(out, /A founded mesh [0-9a-f]{32} \(range 10\.40\.0\.0\/16\)/);
  assert.match(out, /A invited B: .*weft1-/);
  assert.match(out, /C joined with B's token/);
  const addresses = new Map(
    [...out.matchAll(/^ {2}([abc]) {2}(10\.40\.\d+\.\d+)$/gm)].map((m) => [m[1]!, m[2]!]),
  );
  assert.deepEqual([...addresses.keys()].sort(), ["a", "b", "c"], "three addresses listed");
  assert.equal(new Set(addresses.values()).size, 3, "three different addresses");
  assert.equal(addresses.get("a"), "10.40.0.1", "the founder seeds the range");
  for (const peer of ["a", "b", "c"]) {
    const line = out.split("\n").find((l) => l.startsWith(`  on ${peer}: `));
    assert.ok(line, `names resolved on ${peer}`);
    for (const [name, address] of addresses) {
      assert.ok(line.includes(`${name}.weft.internal.=${address}`), `${peer} resolves ${name}`);
    }
  }
  assert.match(out, /C received "hello C, this is A" \(B forwarded [1-9]\d* end-to-end encrypted/);
  assert.match(
    out,
    /A fetched http:\/\/c\.weft\.internal\/hello over TCP on its userspace stack: HTTP 200, "hello from C's userspace stack: you asked for \/hello from weft-demo" \(B forwarded [1-9]\d* encrypted/,
    "a real HTTP request from A to C, relayed by B",
  );
  assert.match(out, /^ {2}userspace stack \(no TUN\) on 10\.40\.0\.1: /m, "A runs no TUN");
  // Status of A shows C relayed via B; of B, both direct.
  const statusA = out.slice(out.indexOf("\na 10.40.0.1"));
  assert.match(statusA, /^10\.40\.\d+\.\d+ +c +\S+ +relayed via b,/m);
  assert.match(out, /weft demo: done\.$/m);
});
