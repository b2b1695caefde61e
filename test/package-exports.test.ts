/** package.json and deno.json must publish the same entry points, at the same version. */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..");
const read = (name: string) => JSON.parse(readFileSync(join(ROOT, name), "utf8"));

test("package.json and deno.json list the same exports and version, and each file exists", () => {
  const pkg = read("package.json");
  const deno = read("deno.json");
  assert.deepEqual(pkg.exports, deno.exports);
  assert.equal(pkg.version, deno.version);
  for (const path of Object.values(pkg.exports as Record<string, string>)) {
    assert.ok(existsSync(join(ROOT, path)), `${path} is exported but missing`);
  }
});

test("the VERSION constant matches package.json", async () => {
  const { VERSION } = await import("../src/version.ts");
  assert.equal(VERSION, read("package.json").version);
});
