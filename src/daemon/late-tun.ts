/**
 * A Tun that exists before the device does: the mesh needs its Tun when it starts, but
 * the kernel device can only be configured once IPAM has given this peer its address,
 * which takes the mesh. Packets for the host before then are dropped, as they would be
 * by a TUN that is not up.
 */
import type { PacketHandler, Tun } from "../net/tun.ts";

export class LateTun implements Tun {
  readonly name: string;
  #mtuBytes: number;
  #device: Tun | undefined;
  #handler: PacketHandler = () => {};

  constructor(name: string, mtuBytes: number) {
    this.name = name;
    this.#mtuBytes = mtuBytes;
  }

  get mtuBytes(): number {
    return this.#device?.mtuBytes ?? this.#mtuBytes;
  }

  /** The device to use from now on; its packets go to the handler set with `onPacket`. */
  attach(device: Tun): void {
    this.#device = device;
    device.onPacket((packet) => this.#handler(packet));
  }

  get attached(): boolean {
    return this.#device !== undefined;
  }

  write(packet: Uint8Array): void {
    this.#device?.write(packet);
  }

  onPacket(handler: PacketHandler): void {
    this.#handler = handler;
  }

  async close(): Promise<void> {
    const device = this.#device;
    this.#device = undefined;
    await device?.close();
  }
}
