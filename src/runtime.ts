/**
 * The Runtime: the capabilities a host program hands to the core. `runtimes/` builds
 * one per JavaScript runtime; the core never asks which runtime it is on.
 */
import type { Clock } from "./clock.ts";
import type { Crypto } from "./crypto/index.ts";

export interface Runtime {
  /** "node", "deno" or "bun", for logs and benchmark results. */
  readonly name: string;
  /** The runtime's version string, for logs and benchmark results. */
  readonly version: string;
  /** The fastest Crypto that agrees with the noble reference on this runtime. */
  readonly crypto: Crypto;
  /** Monotonic and wall time, timers. */
  readonly clock: Clock;
}
