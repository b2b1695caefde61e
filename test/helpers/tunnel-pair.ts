/**
 * Two WireGuard devices on the simulated network, in virtual time, for tunnel tests:
 * A (underlay 192.0.2.1, overlay 10.214.0.1) and B (192.0.2.2, 10.214.0.2), each the
 * other's only peer. Only A knows B's endpoint at first; B learns A's by roaming.
 */
import type { Crypto } from "../../src/crypto/index.ts";
import type { Endpoint, PacketConn, ReceiveHandler } from "../../src/net/packet-conn.ts";
import {
  ChannelTun,
  createRandom,
  type LinkOptions,
  SimNetwork,
  VirtualClock,
} from "../../src/sim/index.ts";
import {
  Device,
  type DeviceEvent,
  type DeviceOptions,
  type LogLevel,
} from "../../src/tunnel/device.ts";
import type { TimerSettings } from "../../src/tunnel/timers.ts";

export const A_UNDERLAY = "192.0.2.1";
export const B_UNDERLAY = "192.0.2.2";
export const A_OVERLAY = "10.214.0.1";
export const B_OVERLAY = "10.214.0.2";
const PORT = 51820;

/**
 * A PacketConn that records what the device sends and can move to another address, as
 * a laptop changing networks or a NAT rebinding would, keeping the device's state.
 */
export class RecordingConn implements PacketConn {
  readonly sent: Uint8Array[] = [];
  #conn: PacketConn;
  #handler: ReceiveHandler | undefined;
  constructor(conn: PacketConn) {
    this.#conn = conn;
  }
  get localPort(): number {
    return this.#conn.localPort;
  }
  send(data: Uint8Array, to: Endpoint): void {
    this.sent.push(data.slice());
    this.#conn.send(data, to);
  }
  onReceive(handler: ReceiveHandler): void {
    this.#handler = handler;
    this.#conn.onReceive(handler);
  }
  /** Moves to `conn`: later sends leave from it, and only it delivers to the device. */
  rebind(conn: PacketConn): void {
    this.#conn.onReceive(() => {});
    this.#conn = conn;
    if (this.#handler) conn.onReceive(this.#handler);
  }
  close(): Promise<void> {
    return this.#conn.close();
  }
}

export interface Side {
  device: Device;
  tun: ChannelTun;
  conn: RecordingConn;
  logs: string[];
  events: DeviceEvent[];
  /** Control messages received (copies, padding included). */
  controls: { publicKey: Uint8Array; payload: Uint8Array; from: Endpoint }[];
  publicKey: Uint8Array;
}

export interface TunnelPair {
  clock: VirtualClock;
  network: SimNetwork;
  a: Side;
  b: Side;
}

export interface PairOptions {
  crypto: Crypto;
  seed?: number;
  link?: Partial<LinkOptions>;
  timers?: Partial<TimerSettings>;
  /** Per side overrides. */
  a?: Partial<Pick<DeviceOptions, "underLoadHandshakesPerSecond">> & {
    presharedKey?: Uint8Array;
    peerPublicKey?: Uint8Array;
  };
  b?: Partial<Pick<DeviceOptions, "underLoadHandshakesPerSecond">> & {
    presharedKey?: Uint8Array;
    peerPublicKey?: Uint8Array;
    roaming?: boolean;
  };
  /** Whether the devices hand control messages up (else they drop them as bad packets). */
  control?: boolean;
  persistentKeepaliveSeconds?: number;
}

export function createTunnelPair(options: PairOptions): TunnelPair {
  const { crypto } = options;
  const clock = new VirtualClock();
  const random = createRandom(options.seed ?? 1);
  const network = new SimNetwork({ clock, random, defaultLink: options.link });
  const aKey = crypto.generatePrivateKey();
  const bKey = crypto.generatePrivateKey();
  const aPublic = crypto.publicKey(aKey);
  const bPublic = crypto.publicKey(bKey);
  const make = (underlay: string, privateKey: Uint8Array, extra: PairOptions["a"]): Side => {
    const tun = new ChannelTun({ mtuBytes: 1420 });
    const logs: string[] = [];
    const events: DeviceEvent[] = [];
    const controls: Side["controls"] = [];
    const conn = new RecordingConn(network.listen(underlay, PORT));
    const device = new Device({
      crypto,
      clock,
      conn,
      tun,
      privateKey,
      timers: options.timers,
      random: () => random.next(),
      underLoadHandshakesPerSecond: extra?.underLoadHandshakesPerSecond,
      log: (level: LogLevel, message: string) => logs.push(`${level}: ${message}`),
      onEvent: (event) => events.push(event),
      onControl: options.control
        ? (publicKey, payload, from) => controls.push({ publicKey, payload: payload.slice(), from })
        : undefined,
    });
    const publicKey = crypto.publicKey(privateKey);
    return { device, tun, conn, logs, events, controls, publicKey };
  };
  const a = make(A_UNDERLAY, aKey, options.a);
  const b = make(B_UNDERLAY, bKey, options.b);
  a.device.addPeer({
    publicKey: options.a?.peerPublicKey ?? bPublic,
    presharedKey: options.a?.presharedKey,
    allowedIps: [{ address: new Uint8Array([10, 214, 0, 2]), prefixLength: 32 }],
    endpoint: { address: B_UNDERLAY, port: PORT },
    persistentKeepaliveSeconds: options.persistentKeepaliveSeconds,
  });
  b.device.addPeer({
    publicKey: options.b?.peerPublicKey ?? aPublic,
    presharedKey: options.b?.presharedKey,
    allowedIps: [{ address: new Uint8Array([10, 214, 0, 1]), prefixLength: 32 }],
    roaming: options.b?.roaming,
  });
  return { clock, network, a, b };
}
