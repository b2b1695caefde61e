/**
 * The Tun seam: IP packets to and from the host's network stack. A kernel TUN device in
 * `runtimes/`, a userspace TCP/IP stack in `src/netstack/`, a channel in `src/sim/`.
 */

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
