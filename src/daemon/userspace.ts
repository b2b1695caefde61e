/**
 * Userspace networking (`weft up --userspace`): the peer's overlay address lives on a
 * TCP/IP stack in this process (src/netstack) instead of a kernel TUN, so no root and no
 * /dev/net/tun are needed. The mesh sees the stack as just another Tun. Programs on this
 * host reach the mesh through the SOCKS5 proxy and `--forward`; mesh peers reach local
 * services through `--expose`; the peer answers pings and DNS on its overlay address.
 */
import { formatIp, type IpPrefix, parseIp, prefixContains } from "../net/ip.ts";
import type { Endpoint, PacketConn } from "../net/packet-conn.ts";
import { Netstack, TcpError, TcpStack, type TcpStream } from "../netstack/index.ts";
import type { Runtime } from "../runtime.ts";
import type { LateTun } from "./late-tun.ts";
import type { Level } from "./log.ts";

/** How long a connection into the mesh may take before the dial fails with ETIMEDOUT. */
export const MESH_DIAL_TIMEOUT_MS = 10_000;

export interface UserspaceOptions {
  readonly runtime: Runtime;
  /** The mesh's Tun; the stack is attached to it. */
  readonly tun: LateTun;
  /** This peer's overlay address. */
  readonly address: string;
  readonly mtuBytes: number;
  /** The mesh's range: the only addresses a dial may reach. */
  readonly range: IpPrefix;
  /** The addresses of a mesh name (bare, or in the mesh domain), as weft's DNS has them. */
  readonly lookup: (name: string) => readonly string[];
  readonly log: (level: Level, message: string) => void;
}

export interface UserspaceStatus {
  readonly address: string;
  readonly tcpConnections: number;
  readonly received: number;
  readonly sent: number;
  readonly drops: Readonly<Record<string, number>>;
}

/** The `weft status` line of a userspace stack. */
export function formatUserspace(status: UserspaceStatus): string {
  const drops = Object.values(status.drops).reduce((sum, n) => sum + n, 0);
  return `  userspace stack (no TUN) on ${status.address}: ${status.tcpConnections} TCP connection(s), ${status.received} packets in, ${status.sent} out, ${drops} dropped`;
}

export class UserspaceNetwork {
  readonly netstack: Netstack;
  readonly tcp: TcpStack;
  readonly #options: UserspaceOptions;
  readonly #closers: (() => unknown)[] = [];

  constructor(options: UserspaceOptions) {
    this.#options = options;
    const { runtime } = options;
    this.netstack = new Netstack({
      addresses: [options.address],
      name: "userspace",
      mtuBytes: options.mtuBytes,
      clock: runtime.clock,
    });
    this.tcp = new TcpStack(this.netstack, {
      clock: runtime.clock,
      randomUint32: () => new DataView(runtime.crypto.randomBytes(4).buffer).getUint32(0),
    });
    options.tun.attach(this.netstack);
  }

  /**
   * Opens a TCP connection into the mesh: `host` is an address in the mesh's range or a
   * mesh name (one of its addresses at random: names with several are load-balanced).
   * Rejects with a TcpError: ENETUNREACH outside the mesh, ENOTFOUND for an unknown name,
   * ECONNREFUSED, ETIMEDOUT (after 10 s), and the rest of `TcpStack.dial`'s.
   */
  async dial(host: string, port: number): Promise<TcpStream> {
    const unbracketed = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
    let address = parseIp(unbracketed);
    if (address === undefined) {
      const found = this.#options.lookup(unbracketed);
      if (found.length === 0) {
        throw new TcpError("ENOTFOUND", `"${host}" is not a name in the mesh`);
      }
      address = parseIp(found[Math.floor(Math.random() * found.length)]!);
      if (address === undefined) throw new TcpError("ENOTFOUND", `"${host}" has no IP address`);
    }
    if (!prefixContains(this.#options.range, address)) {
      throw new TcpError(
        "ENETUNREACH",
        `${formatIp(address)} is outside the mesh's range; only mesh addresses are reachable`,
      );
    }
    return this.tcp.dial(address, port, { timeoutMs: MESH_DIAL_TIMEOUT_MS });
  }

  /** A UDP port of the overlay address as a PacketConn (the DNS server's socket). */
  udpConn(port: number): PacketConn {
    const netstack = this.netstack;
    let handler: ((data: Uint8Array, from: Endpoint) => void) | undefined;
    const binding = netstack.bindUdp(port, (datagram) =>
      handler?.(datagram.data, { address: formatIp(datagram.source), port: datagram.sourcePort }),
    );
    this.#closers.push(() => binding.close());
    return {
      localPort: binding.port,
      send(data, to) {
        try {
          netstack.sendUdp(binding.port, to.address, to.port, data);
        } catch {
          // Too big or not an address of ours to answer from: UDP may drop.
        }
      },
      onReceive(next) {
        handler = next;
      },
      close: async () => {
        handler = undefined;
        binding.close();
      },
    };
  }

  /** Runs `close` when the network closes (services started on it). */
  addCloser(close: () => unknown): void {
    this.#closers.push(close);
  }

  status(): UserspaceStatus {
    const counters = this.netstack.counters();
    return {
      address: this.#options.address,
      tcpConnections: this.tcp.connectionCount,
      received: counters.received,
      sent: counters.sent,
      drops: counters.drops,
    };
  }

  async close(): Promise<void> {
    for (const close of this.#closers.splice(0).reverse()) {
      try {
        await close();
      } catch (error) {
        this.#options.log("debug", `closing: ${(error as Error).message}`);
      }
    }
    this.tcp.close();
    await this.netstack.close();
  }
}
