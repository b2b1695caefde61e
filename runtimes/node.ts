/** The Node.js adapter: maps Node's APIs onto the core's seams. */
import { systemClock } from "../src/clock.ts";
import type { Runtime } from "../src/runtime.ts";
import { runCommand } from "./command.ts";
import { createFileStore } from "./file-store.ts";
import { createNativeCrypto } from "./native-crypto.ts";
import { dialTcp, listenTcp } from "./tcp.ts";
import { listenUdp } from "./udp.ts";

/** The Runtime for Node.js. */
export function createNodeRuntime(): Runtime {
  return {
    name: "node",
    version: process.versions.node,
    crypto: createNativeCrypto(),
    clock: systemClock,
    listenUdp,
    listenTcp,
    dialTcp,
    openStore: (directory) => createFileStore(directory),
    // Loaded on first use: koffi's native module is only needed with a TUN device.
    openTun: async (options) => (await import("./tun-node.ts")).openTun(options),
    runCommand,
  };
}
