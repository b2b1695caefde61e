/** Runs the weft CLI the way users of this test's runtime would, capturing its output. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { detectRuntime } from "../../runtimes/detect.ts";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..");

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** `weft ARGS` via `node bin/weft.js`, `deno run -A mod.ts` or `bun run src/cli.ts`. */
export function runCli(args: string[], input = ""): CliResult {
  const runtime = detectRuntime();
  const entry =
    runtime === "deno"
      ? ["run", "-A", join(ROOT, "mod.ts")]
      : runtime === "bun"
        ? ["run", join(ROOT, "src", "cli.ts")]
        : [join(ROOT, "bin", "weft.js")];
  const result = spawnSync(process.execPath, [...entry, ...args], {
    input,
    encoding: "utf8",
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
