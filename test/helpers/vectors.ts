/** Loads a known-answer vector file from test/vectors/ (sources in test/vectors/README.md). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const DIR = join(fileURLToPath(import.meta.url), "..", "..", "vectors");

export function loadVectors<T>(name: string): T[] {
  return JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8")).vectors as T[];
}
