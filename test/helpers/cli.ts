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

/** The command line that runs `weft` on this test's runtime: executable and leading arguments. */
export function cliCommand(): [string, string[]] {
  const runtime = detectRuntime();
  const entry =
    runtime === "deno"
      ? ["run", "-A", join(ROOT, "mod.ts")]
      : runtime === "bun"
        ? ["run", join(ROOT, "src", "cli.ts")]
        : [join(ROOT, "bin", "weft.js")];
  return [process.execPath, entry];
}

/** `weft ARGS` via `node bin/weft.js`, `deno run -A mod.ts` or `bun run src/cli.ts`. */
export function runCli(args: string[], input = ""): CliResult {
  const [command, entry] = cliCommand();
  const result = spawnSync(command, [...entry, ...args], {
    input,
    encoding: "utf8",
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 120_000,
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
