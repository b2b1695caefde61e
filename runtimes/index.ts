/** @module Picks and builds the Runtime adapter for the JavaScript runtime in use. */
import type { Runtime } from "../src/runtime.ts";
import { detectRuntime, type RuntimeName } from "./detect.ts";

export { detectRuntime, type RuntimeName };

/** Builds the Runtime for this process, loading only the adapter it needs. */
export async function loadRuntime(): Promise<Runtime> {
  switch (detectRuntime()) {
    case "deno":
      return (await import("./deno.ts")).createDenoRuntime();
    case "bun":
      return (await import("./bun.ts")).createBunRuntime();
    case "node":
      return (await import("./node.ts")).createNodeRuntime();
  }
}
