/**
 * Userspace networking (`weft up --userspace`): the peer's overlay address lives on a
 * TCP/IP stack in this process (src/netstack) instead of a kernel TUN, so no root and no
 * /dev/net/tun are needed. The mesh sees the stack as just another Tun. Programs on this
 * host reach the mesh through the SOCKS5 proxy and `--forward`; mesh peers reach local
 * services through `--expose`; the peer answers pings and DNS on its overlay address.
 */
import { formatIp, type IpPrefix, parseIp, prefixContains } from "../net/ip.ts";
import { endpointKey, type PacketConn } from "../net/packet-conn.ts";
import {
  Netstack,
  netstackUdpConn,
  TcpError,
  TcpStack,
  type TcpStream,
} from "../netstack/index.ts";
import {
  type ExposeSpec,
  type ForwardSpec,
  type ProxyService,
  type RelayCounters,
  type Socks5Counters,
  type Socks5Server,
  serveExpose,
  serveForward,
  serveSocks5,
} from "../proxy/index.ts";
import type { Runtime } from "../runtime.ts";
import type { UserspaceConfig } from "./config.ts";
import type { LateTun } from "./late-tun.ts";
import type { Level } from "./log.ts";

/** How long a connection into the mesh may take before the dial fails with ETIMEDOUT. */
export const MESH_DIAL_TIMEOUT_MS = 10_000;
/** How long `--expose` waits for the local service to accept. */
const LOCAL_DIAL_TIMEOUT_MS = 5_000;

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
  /** Where the SOCKS5 proxy listens (the bound port), when it does. */
  readonly socks5?: { readonly listen: string; readonly counters: Socks5Counters };
  readonly forwards: readonly {
    readonly listen: string;
    readonly target: string;
    readonly counters: RelayCounters;
  }[];
  readonly exposes: readonly {
    readonly meshPort: number;
    readonly local: string;
    readonly counters: RelayCounters;
  }[];
  readonly tcpConnections: number;
  readonly received: number;
  readonly sent: number;
  readonly drops: Readonly<Record<string, number>>;
}

/** The `weft status` lines of a userspace stack and its services. */
export function formatUserspace(status: UserspaceStatus): string {
  const drops = Object.values(status.drops).reduce((sum, n) => sum + n, 0);
  const lines = [
    `  userspace stack (no TUN) on ${status.address}: ${status.tcpConnections} TCP connection(s), ${status.received} packets in, ${status.sent} out, ${drops} dropped`,
  ];
  const relay = (c: RelayCounters) =>
    `${c.active} active, ${c.accepted} accepted, ${c.dialFailures} failed`;
  if (status.socks5) {
    lines.push(`  SOCKS5 proxy on ${status.socks5.listen}: ${relay(status.socks5.counters)}`);
  }
  for (const f of status.forwards) {
    lines.push(`  forward ${f.listen} -> ${f.target}: ${relay(f.counters)}`);
  }
  for (const e of status.exposes) {
    lines.push(`  expose ${status.address}:${e.meshPort} -> ${e.local}: ${relay(e.counters)}`);
  }
  return lines.join("\n");
}

export class UserspaceNetwork {
  readonly netstack: Netstack;
  readonly tcp: TcpStack;
  readonly #options: UserspaceOptions;
  readonly #closers: (() => unknown)[] = [];
  #socks5: { listen: string; server: Socks5Server } | undefined;
  readonly #forwards: { listen: string; target: string; service: ProxyService }[] = [];
  readonly #exposes: { meshPort: number; local: string; service: ProxyService }[] = [];

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
    const address = parseIp(unbracketed) ?? parseIp(this.#pick(unbracketed));
    if (address === undefined) throw new TcpError("ENOTFOUND", `"${host}" has no IP address`);
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
    const conn = netstackUdpConn(this.netstack, port);
    this.#closers.push(() => conn.close());
    return conn;
  }

  /**
   * Starts the services of `config`: the SOCKS5 proxy, the forwards and the exposed
   * ports. Rejects, naming the option, when a host port cannot be bound or a mesh port is
   * taken; what was started stays until `close`.
   */
  async startServices(config: UserspaceConfig): Promise<void> {
    const { runtime, log } = this.#options;
    const proxyLog = (level: Level, message: string) => log(level, message);
    if (config.socks5) {
      const listener = await runtime
        .listenTcp(config.socks5)
        .catch((error) => failed("--socks5", endpointKey(config.socks5!), error));
      const listen = endpointKey({ address: config.socks5.address, port: listener.localPort });
      const server = serveSocks5({
        listener,
        dial: (host, port) => this.dial(host, port),
        clock: runtime.clock,
        log: proxyLog,
        dialTimeoutMs: MESH_DIAL_TIMEOUT_MS + 1_000,
        udp: {
          listenUdp: (options) => runtime.listenUdp(options),
          address: config.socks5.address,
          bindMesh: () => netstackUdpConn(this.netstack),
          resolve: async (name) => this.#pick(name),
        },
      });
      this.#closers.push(() => server.close());
      this.#socks5 = { listen, server };
      if (!isLoopback(config.socks5.address)) {
        log(
          "warn",
          `SOCKS5 on ${listen} asks no password: anyone who can reach it reaches the mesh`,
        );
      }
      log("info", `SOCKS5 proxy into the mesh on ${listen}`);
    }
    for (const spec of config.forwards) await this.#startForward(spec);
    for (const spec of config.exposes) this.#startExpose(spec);
  }

  async #startForward(spec: ForwardSpec): Promise<void> {
    const { runtime, log } = this.#options;
    const target = endpointKey({ address: spec.host, port: spec.port });
    const listener = await runtime
      .listenTcp({ address: spec.bindAddress, port: spec.localPort })
      .catch((error) =>
        failed(
          "--forward",
          endpointKey({ address: spec.bindAddress, port: spec.localPort }),
          error,
        ),
      );
    const listen = endpointKey({ address: spec.bindAddress, port: listener.localPort });
    const service = serveForward({
      listener,
      dial: () => this.dial(spec.host, spec.port),
      log: (level, message) => log(level, message),
      name: `forward ${listen} -> ${target}`,
    });
    this.#closers.push(() => service.close());
    this.#forwards.push({ listen, target, service });
    log("info", `forwarding ${listen} to ${target} in the mesh`);
  }

  #startExpose(spec: ExposeSpec): void {
    const { runtime, log } = this.#options;
    const local = endpointKey({ address: spec.localHost, port: spec.localPort });
    let server: ReturnType<TcpStack["listen"]>;
    try {
      server = this.tcp.listen(spec.meshPort);
    } catch (error) {
      failed("--expose", String(spec.meshPort), error);
    }
    const service = serveExpose({
      server,
      dialLocal: () =>
        runtime.dialTcp({ address: spec.localHost, port: spec.localPort }, LOCAL_DIAL_TIMEOUT_MS),
      log: (level, message) => log(level, message),
      name: `expose ${spec.meshPort} -> ${local}`,
    });
    this.#closers.push(() => service.close());
    this.#exposes.push({ meshPort: spec.meshPort, local, service });
    log("info", `serving ${local} to the mesh on ${this.#options.address}:${spec.meshPort}`);
  }

  /** One address of a mesh name, at random. */
  #pick(name: string): string {
    const found = this.#options.lookup(name);
    if (found.length === 0) throw new TcpError("ENOTFOUND", `"${name}" is not a name in the mesh`);
    return found[Math.floor(Math.random() * found.length)]!;
  }

  status(): UserspaceStatus {
    const counters = this.netstack.counters();
    return {
      address: this.#options.address,
      ...(this.#socks5
        ? { socks5: { listen: this.#socks5.listen, counters: this.#socks5.server.counters() } }
        : {}),
      forwards: this.#forwards.map(({ listen, target, service }) => ({
        listen,
        target,
        counters: service.counters(),
      })),
      exposes: this.#exposes.map(({ meshPort, local, service }) => ({
        meshPort,
        local,
        counters: service.counters(),
      })),
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

function isLoopback(address: string): boolean {
  return address === "::1" || address.startsWith("127.");
}

function failed(option: string, what: string, error: unknown): never {
  throw new Error(`${option} ${what}: ${(error as Error).message}`);
}
