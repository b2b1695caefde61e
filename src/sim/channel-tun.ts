/**
 * A Tun for tests, after wireguard-go's `tuntest.ChannelTUN`: the test plays the host.
 * `inject` is the host sending a packet into the device; what the device writes back to
 * the host collects in `written`, goes to `onWrite`, and resolves `nextWritten()`.
 */
import type { PacketHandler, Tun } from "../net/tun.ts";

export interface ChannelTunOptions {
  /** The interface name to report; "sim0" by default. */
  readonly name?: string;
  /** The MTU to report and to hold injected packets to; 1420, WireGuard's default, by default. */
  readonly mtuBytes?: number;
}

/** A test's view of a packet the device wrote to the host. */
export type WriteListener = (packet: Uint8Array) => void;

interface Waiter {
  resolve(packet: Uint8Array): void;
  reject(error: Error): void;
}

/**
 * A Tun whose host side is the test.
 *
 * @example A device echoing what it reads
 * ```ts
 * const tun = new ChannelTun();
 * tun.onPacket((packet) => tun.write(packet)); // the device under test would go here
 * tun.inject(new Uint8Array([0x45, 0, 0, 20]));
 * const echoed = await tun.nextWritten();
 * ```
 */
export class ChannelTun implements Tun {
  readonly name: string;
  readonly mtuBytes: number;
  /** Every packet the device wrote, in order, each a copy taken at `write`. */
  readonly written: Uint8Array[] = [];
  #handler: PacketHandler | undefined;
  #writeListener: WriteListener | undefined;
  /** How many of `written` `nextWritten()` has handed out. */
  #taken = 0;
  readonly #waiters: Waiter[] = [];
  #closed = false;

  constructor(options: ChannelTunOptions = {}) {
    this.name = options.name ?? "sim0";
    this.mtuBytes = options.mtuBytes ?? 1420;
    if (!Number.isInteger(this.mtuBytes) || this.mtuBytes < 1) {
      throw new RangeError(`Expected "mtuBytes" to be a positive integer, got ${this.mtuBytes}`);
    }
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The device delivers a packet to the host: recorded (as a copy), then announced. */
  write(packet: Uint8Array): void {
    if (this.#closed) return;
    // The device may reuse its buffer as soon as write returns.
    const copy = packet.slice();
    this.written.push(copy);
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      this.#taken++;
      waiter.resolve(copy);
    }
    this.#writeListener?.(copy);
  }

  /** Sets the device's one handler for packets the host sends. */
  onPacket(handler: PacketHandler): void {
    if (!this.#closed) this.#handler = handler;
  }

  /**
   * The host sends `packet` into the device: the handler gets a copy, so a test may
   * inject one packet twice. Returns false when nothing took it (closed, or no handler
   * yet). A packet over `mtuBytes` throws `RangeError`: a host would never send one.
   */
  inject(packet: Uint8Array): boolean {
    if (!(packet instanceof Uint8Array)) {
      throw new TypeError(`Expected "packet" to be a Uint8Array, got ${typeof packet}`);
    }
    if (packet.length > this.mtuBytes) {
      throw new RangeError(
        `Expected "packet" to fit the MTU of ${this.mtuBytes} bytes, got ${packet.length} bytes`,
      );
    }
    const handler = this.#handler;
    if (this.#closed || handler === undefined) return false;
    handler(packet.slice());
    return true;
  }

  /** Sets the one callback for packets the device writes (replacing any earlier one). */
  onWrite(listener: WriteListener | undefined): void {
    this.#writeListener = listener;
  }

  /**
   * The next written packet not yet handed out by this method: at once if one is
   * waiting, else when the device writes it. Rejects if the Tun closes first.
   */
  nextWritten(): Promise<Uint8Array> {
    if (this.#taken < this.written.length) {
      return Promise.resolve(this.written[this.#taken++]!);
    }
    if (this.#closed) return Promise.reject(new Error("ChannelTun is closed"));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Stops delivery both ways and rejects pending `nextWritten()` calls; idempotent. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#handler = undefined;
      for (const waiter of this.#waiters.splice(0)) {
        waiter.reject(new Error("ChannelTun closed while waiting for a written packet"));
      }
    }
    return Promise.resolve();
  }
}
