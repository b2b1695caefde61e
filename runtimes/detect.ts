/**
 * Which JavaScript runtime is this? The one place that asks. Deno and Bun are checked
 * before Node because both also define `process.versions.node`.
 */

export type RuntimeName = "deno" | "bun" | "node";

/** The runtime this code runs on; throws on anything else. */
export function detectRuntime(): RuntimeName {
  const g = globalThis as {
    Deno?: unknown;
    Bun?: unknown;
    process?: { versions?: { node?: string } };
  };
  if (typeof g.Deno === "object" && g.Deno !== null) return "deno";
  if (typeof g.Bun === "object" && g.Bun !== null) return "bun";
  if (typeof g.process?.versions?.node === "string") return "node";
  throw new Error("Unsupported runtime: weft runs on Node, Deno or Bun");
}
