/** The core (src/ minus the CLI and daemon glue) must run on any runtime: nothing runtime-specific in it. */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { findRuntimeSpecificCode, isGlue } from "./helpers/core-imports.ts";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : name.endsWith(".ts") ? [path] : [];
  });
}

describe("core import guard", () => {
  test("no core file under src/ uses node:*, bun:*, Deno or Bun", () => {
    const offenders: string[] = [];
    const files = sourceFiles(join(ROOT, "src"));
    assert.ok(files.length > 0, "expected source files under src/");
    for (const path of files) {
      const rel = relative(ROOT, path).replaceAll("\\", "/");
      if (isGlue(rel)) continue;
      for (const v of findRuntimeSpecificCode(readFileSync(path, "utf8"))) {
        offenders.push(`${rel}:${v.line}: ${v.reason}: ${v.text}`);
      }
    }
    assert.deepEqual(offenders, []);
  });

  test("catches each kind of forbidden code in a fixture", () => {
    const fixtures = [
      'import { createHash } from "node:crypto";',
      "import * as fs from 'node:fs';",
      'const os = await import("node:os");',
      'const x = require("node:path");',
      'import { dlopen } from "bun:ffi";',
      "const file = Deno.openSync(path);",
      "const v = Bun.version;",
      "const g = globalThis.Deno;",
      "const port = process.env.PORT;",
    ];
    for (const fixture of fixtures) {
      assert.equal(findRuntimeSpecificCode(fixture).length > 0, true, `missed: ${fixture}`);
    }
  });

  test("allows web standards, npm packages and comments that name runtimes", () => {
    const clean = [
      'import { x25519 } from "@noble/curves/ed25519.js";',
      "const t = performance.now();",
      "// Deno.listenDatagram is used by runtimes/deno.ts",
      '/* import from "node:crypto" happens in runtimes/ */',
      'const label = "node:crypto";',
      "const nodeName = denoVersion.major;",
    ];
    for (const line of clean) assert.deepEqual(findRuntimeSpecificCode(line), [], line);
  });

  test("only the CLI (cli.ts and cli/) and the daemon folder are glue", () => {
    assert.equal(isGlue("src/cli.ts"), true);
    assert.equal(isGlue("src/cli/members.ts"), true);
    assert.equal(isGlue("src/daemon/state-dir.ts"), true);
    assert.equal(isGlue("src/tunnel/device.ts"), false);
    assert.equal(isGlue("src/cli-helpers.ts"), false);
  });
});
