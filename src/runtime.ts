/**
 * The Runtime: the capabilities a host program hands to the core. `runtimes/` builds
 * one per JavaScript runtime; the core never asks which runtime it is on.
 */
import type { Clock } from "./clock.ts";
import type { Crypto } from "./crypto/index.ts";
import type { PacketConn } from "./net/packet-conn.ts";
import type { DialTcp, ListenTcp } from "./net/stream.ts";
import type { Tun, TunOptions } from "./net/tun.ts";
import type { Store } from "./store.ts";

/** Where to bind a UDP socket. */
export interface ListenUdpOptions {
  /** The local port; 0 or absent lets the system pick one (see `PacketConn.localPort`). */
  readonly port?: number;
  /**
   * The local IP address. Absent, or "::", means every address of both families on one
   * dual-stack socket; "0.0.0.0" means every IPv4 address; anything else binds just it.
   */
  readonly address?: string;
}

/** What a finished command did (`Runtime.runCommand`). */
export interface CommandResult {
  /** The exit code; -1 when a signal ended it. */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Runtime {
  /** "node", "deno" or "bun", for logs and benchmark results. */
  readonly name: string;
  /** The runtime's version string, for logs and benchmark results. */
  readonly version: string;
  /** The fastest Crypto that agrees with the noble reference on this runtime. */
  readonly crypto: Crypto;
  /** Monotonic and wall time, timers. */
  readonly clock: Clock;
  /** Opens a UDP socket; rejects when it cannot bind (the port is taken, the address is not local). */
  listenUdp(options: ListenUdpOptions): Promise<PacketConn>;
  /** Opens a TCP listener (same address rules as `listenUdp`); rejects when it cannot bind. */
  readonly listenTcp: ListenTcp;
  /** Opens a TCP connection to an IP address and port; rejects on failure or timeout. */
  readonly dialTcp: DialTcp;
  /** Opens the Store of a state directory (created if missing); throws a `StoreError` when it cannot. */
  openStore(directory: string): Store;
  /**
   * Opens a kernel TUN device and sets its addresses and MTU and brings it up; rejects
   * with the reason when it cannot (no root, no TUN support, the name in use). The device
   * goes away when the Tun closes or the process exits.
   */
  openTun(options: TunOptions): Promise<Tun>;
  /**
   * Runs a program found on the PATH with `args` and `input` on its stdin, resolving when
   * it exits (a nonzero code included; killed after a timeout); rejects only when it
   * cannot start. For the daemon's glue (iproute2's `ip`), never for the core.
   */
  runCommand(command: string, args: readonly string[], input?: string): Promise<CommandResult>;
}
