/** The Deno adapter: maps Deno's APIs onto the core's seams. */
/// <reference path="./deno.d.ts" />
import { systemClock } from "../src/clock.ts";
import type { Runtime } from "../src/runtime.ts";
import { runCommand } from "./command.ts";
import { listenUdp as listenDatagram } from "./deno-udp.ts";
import { createFileStore } from "./file-store.ts";
import { createNativeCrypto } from "./native-crypto.ts";
import { dialTcp, listenTcp } from "./tcp.ts";
import { listenUdp as listenDgram } from "./udp.ts";

/**
 * The Runtime for Deno. Deno's `node:crypto` serves ChaCha20-Poly1305 and X25519. UDP
 * goes through `Deno.listenDatagram` (`deno-udp.ts`), which keeps up with bursts better
 * than Deno's `node:dgram`; that API is unstable, and where it is not enabled (a program
 * whose deno.json lacks `"unstable": ["net"]`, run without `--unstable-net`), through
 * `node:dgram` (`udp.ts`) after all.
 */
export function createDenoRuntime(): Runtime {
  return {
    name: "deno",
    version: Deno.version.deno,
    crypto: createNativeCrypto(),
    clock: systemClock,
    listenUdp: typeof Deno.listenDatagram === "function" ? listenDatagram : listenDgram,
    listenTcp,
    dialTcp,
    openStore: (directory) => createFileStore(directory),
    openTun: async (options) => (await import("./tun-deno.ts")).openTun(options),
    runCommand,
  };
}
