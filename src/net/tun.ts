/**
 * The Tun seam: IP packets to and from the host's network stack. A kernel TUN device in
 * `runtimes/`, a userspace TCP/IP stack in `src/netstack/`, a channel in `src/sim/`.
 */

/** What a kernel TUN device is opened with (`Runtime.openTun`). */
export interface TunOptions {
  /**
   * The interface name, at most 15 bytes (the kernel's IFNAMSIZ less its NUL); "weft0" by
   * default. A name with "%d" (such as "weft%d") lets the kernel number it: `Tun.name`
   * then says which name it got.
   */
  readonly name?: string;
  /** The interface MTU in bytes; 1420 by default (WireGuard's). At least 1280 with IPv6 addresses. */
  readonly mtu?: number;
  /** Addresses with prefix lengths, IPv4 or IPv6, such as "10.40.0.1/16" or "fd00::1/64". */
  readonly addresses?: readonly string[];
  /**
   * Carry multicast and broadcast: the MULTICAST flag, IPv4 addresses with their broadcast
   * address, and the route 224.0.0.0/4 through the device (replacing one through another
   * device; it goes when the device does), so the host sends its multicast into the mesh.
   */
  readonly multicast?: boolean;
}

/** Called with each IP packet read from the host; valid only during the call unless copied. */
export type PacketHandler = (packet: Uint8Array) => void;

export interface Tun {
  /** Interface name (e.g. "weft0"), or a label for userspace implementations. */
  readonly name: string;
  /** The largest IP packet the host may send through this device, in bytes. */
  readonly mtuBytes: number;
  /**
   * Delivers an IP packet to the host. Dropped silently after `close()`.
   * The caller may reuse `packet` as soon as `write` returns.
   */
  write(packet: Uint8Array): void;
  /** Sets the one handler for packets the host sends (replacing any earlier one). */
  onPacket(handler: PacketHandler): void;
  /** Stops reading and releases the device; idempotent. */
  close(): Promise<void>;
}
