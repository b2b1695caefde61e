/** The Deno adapter: maps Deno's APIs onto the core's seams. */
/// <reference path="./deno.d.ts" />
import { systemClock } from "../src/clock.ts";
import type { Runtime } from "../src/runtime.ts";
import { createNativeCrypto } from "./native-crypto.ts";
import { listenUdp } from "./udp.ts";

/** The Runtime for Deno. Deno's `node:crypto` serves ChaCha20-Poly1305 and X25519. */
export function createDenoRuntime(): Runtime {
  return {
    name: "deno",
    version: Deno.version.deno,
    crypto: createNativeCrypto(),
    clock: systemClock,
    listenUdp,
  };
}
