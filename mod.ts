/**
 * @module weft: a userspace mesh network on WireGuard tunnels.
 *
 * As a library: the Crypto seam and providers, the Clock and Runtime seams.
 * As a program: `deno run -A mod.ts <command>` runs the CLI (see `weft --help`).
 */
export * from "./src/clock.ts";
export * from "./src/crypto/index.ts";
export type { Runtime } from "./src/runtime.ts";
export { VERSION } from "./src/version.ts";

if ((import.meta as { main?: boolean }).main) {
  const { main } = await import("./src/cli.ts");
  process.exitCode = await main(process.argv);
}
