/** The Bun adapter: maps Bun's APIs onto the core's seams. */
/// <reference path="./bun.d.ts" />
import { systemClock } from "../src/clock.ts";
import type { Runtime } from "../src/runtime.ts";
import { runCommand } from "./command.ts";
import { createFileStore } from "./file-store.ts";
import { createNativeCrypto } from "./native-crypto.ts";
import { dialTcp, listenTcp } from "./tcp.ts";
import { listenUdp } from "./udp.ts";

/**
 * The Runtime for Bun. Bun's `node:crypto` has X25519 but no ChaCha20-Poly1305
 * ("Unknown cipher"), so the AEAD stays on noble; feature detection finds that out.
 */
export function createBunRuntime(): Runtime {
  return {
    name: "bun",
    version: Bun.version,
    crypto: createNativeCrypto(),
    clock: systemClock,
    listenUdp,
    listenTcp,
    dialTcp,
    openStore: (directory) => createFileStore(directory),
    openTun: async (options) => (await import("./tun-bun.ts")).openTun(options),
    runCommand,
  };
}
