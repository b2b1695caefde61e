/**
 * Benchmark helpers shared by bench/*.ts: repeated timed runs reported as medians, and
 * results written as JSON to bench/results/. Runs on Node, Deno and Bun.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "results");

/** The median of `values` (mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Operations per second of `operation`: calls it in batches until `minMs` have passed,
 * after a warm-up, and returns the median rate over `runs` such runs.
 */
export function opsPerSecond(operation: () => void, runs = 5, minMs = 200): number {
  const once = (ms: number) => {
    let count = 0;
    let batch = 1;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < ms) {
      for (let i = 0; i < batch; i++) operation();
      count += batch;
      if (batch < 1024) batch *= 2;
      elapsed = performance.now() - start;
    }
    return count / (elapsed / 1000);
  };
  once(minMs / 2); // warm-up: let the JIT settle
  const rates: number[] = [];
  for (let i = 0; i < runs; i++) rates.push(once(minMs));
  return median(rates);
}

/** Writes `result` as JSON to bench/results/NAME.json atomically (temp file, rename). */
export function writeResult(name: string, result: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.json`);
  const temp = `${path}.${Date.now()}.tmp`;
  writeFileSync(temp, `${JSON.stringify(result, null, 2)}\n`);
  renameSync(temp, path);
  return path;
}

/** The value of a `--name=value` argument, if given. */
export function argument(name: string): string | undefined {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** The commit the benchmark ran on and whether the tree had changes, when git is there. */
export function gitSource(): { commit: string; dirty: boolean } | undefined {
  try {
    const git = (...args: string[]) => execFileSync("git", args, { encoding: "utf8" }).trim();
    return {
      commit: git("rev-parse", "--short", "HEAD"),
      dirty: git("status", "--porcelain") !== "",
    };
  } catch {
    return undefined;
  }
}
