/**
 * A simulated IP network for tests: hosts named by IP address, UDP-like `PacketConn`s
 * bound to (address, port), and links with latency, jitter, loss, duplication,
 * reordering and an MTU, set per directed pair of hosts over a default. Partitions and
 * one-way blocks cut links. Every datagram travels as a timer on the given clock (a
 * `VirtualClock` in tests), so nothing arrives until the clock advances, and every random
 * choice comes from the given `Random`, so a seed replays the same trace.
 *
 * Per datagram, in this order (all decided when it is sent):
 *
 * ```
 * send ─► closed? ─► bad address? ─► cut (partition, block)? ─► over MTU? ─► lost?
 *      ─► duplicated? ─► per copy: latency + jitter (+ reorder hold) ─► timer
 * timer ─► listener at (address, port)? ─► handler set? ─► handler(copy, from)
 * ```
 *
 * A host is just an address: one that anything listens on, sends from or configures.
 * Multi-homed hosts are not modelled.
 *
 * Gateways (`attachGateway`; `SimNat` in nat.ts is one) own an address and a private
 * network behind it. A datagram between hosts of the same network goes straight there; one
 * from a host behind a gateway to a host outside its network goes first to that gateway
 * (over the link host → gateway address), which gets it with its original endpoints at
 * arrival and may send it on with other ones. Nothing outside a private network reaches a
 * host in it but its gateway ("unroutable"). Links, cuts and loss apply to each such hop.
 *
 * ```
 * 192.168.1.2 ──► gateway 203.0.113.1 ──► 198.51.100.7      (hop, receive, send on)
 * 198.51.100.7 ──► gateway 203.0.113.1 ──► 192.168.1.2      (hop to its address, receive, send in)
 * ```
 */
import type { Clock } from "../clock.ts";
import { formatIp, IPV6_BYTES, type IpPrefix, parseIp, parsePrefix } from "../net/ip.ts";
import {
  type Endpoint,
  endpointKey,
  type PacketConn,
  type ReceiveHandler,
} from "../net/packet-conn.ts";
import type { Random } from "./random.ts";

/** How one direction of a link between two hosts behaves. */
export interface LinkOptions {
  /** Fixed one-way delay. */
  readonly latencyMs: number;
  /** Extra one-way delay drawn uniformly from [0, jitterMs) per datagram; reorders when large. */
  readonly jitterMs: number;
  /** Probability (0 to 1) that a datagram is lost. */
  readonly lossRate: number;
  /** Probability (0 to 1) that a datagram arrives twice; each copy draws its own delay. */
  readonly duplicateRate: number;
  /** Probability (0 to 1) that a datagram is held back by `reorderDelayMs`, so later ones overtake it. */
  readonly reorderRate: number;
  /** How long a datagram picked for reordering is held back. */
  readonly reorderDelayMs: number;
  /**
   * The link's IP MTU: a datagram whose payload plus UDP header (8 bytes) plus IP header
   * (20 bytes for IPv4, 40 for IPv6) exceeds it is dropped, as with the don't-fragment bit.
   */
  readonly mtuBytes: number;
}

/** Why the network dropped a datagram. */
export type DropCause =
  /** Sent from a conn after its `close()`. */
  | "closed"
  /**
   * The destination is not an IP address or port, its family differs from the sender's, or
   * it is in a gateway's private network that the sender is outside of.
   */
  | "unroutable"
  /** A `partition` separates the two hosts. */
  | "partition"
  /** A `block` cuts this direction. */
  | "blocked"
  /** Larger than the link's MTU allows. */
  | "mtu"
  /** Lost at random, per the link's `lossRate`. */
  | "loss"
  /** Nothing listens at the destination when it arrives. */
  | "noListener"
  /** The destination conn has no receive handler yet. */
  | "noHandler";

/**
 * Running totals. `sent + duplicated === delivered + forwarded + inFlight + every dropped
 * count`.
 */
export interface NetworkCounters {
  /** Calls to `send` on any conn of this network, and on any gateway's port. */
  readonly sent: number;
  /** Handler calls, duplicates included. */
  readonly delivered: number;
  /** Datagrams (and copies) handed to a gateway; what it sends on counts as sent again. */
  readonly forwarded: number;
  /** Extra copies made by duplication. */
  readonly duplicated: number;
  /** Datagrams held back for reordering. */
  readonly reordered: number;
  /** Datagrams (and copies) scheduled but not yet arrived. */
  readonly inFlight: number;
  readonly dropped: Readonly<Record<DropCause, number>>;
}

/** What happened to a datagram, for the `trace` option. */
export type NetworkEvent =
  | {
      readonly type: "deliver";
      readonly atMs: number;
      readonly from: Endpoint;
      readonly to: Endpoint;
      readonly bytes: number;
    }
  | {
      /** Handed to the gateway at `gateway` (its address); `to` is still the datagram's own. */
      readonly type: "forward";
      readonly gateway: string;
      readonly atMs: number;
      readonly from: Endpoint;
      readonly to: Endpoint;
      readonly bytes: number;
    }
  | {
      readonly type: "drop";
      readonly cause: DropCause;
      readonly atMs: number;
      readonly from: Endpoint;
      readonly to: Endpoint;
      readonly bytes: number;
    };

/** A PacketConn on the simulated network, which also says where it is bound. */
export interface SimPacketConn extends PacketConn {
  readonly localAddress: string;
  /** True once `close()` has been called. */
  readonly closed: boolean;
}

export interface SimNetworkOptions {
  /** Delivery timers run on this clock; a `VirtualClock` in tests. */
  readonly clock: Clock;
  /** Every loss, duplication, jitter and reordering choice comes from here. */
  readonly random: Random;
  /** Overrides of `DEFAULT_LINK` for every link not configured otherwise. */
  readonly defaultLink?: Partial<LinkOptions>;
  /** Called for each delivery and drop, for debugging and for recording traces. */
  readonly trace?: (event: NetworkEvent) => void;
}

/**
 * A router on the network, such as a NAT: it owns one address, and the hosts of a private
 * network sit behind it (see `SimNetwork.attachGateway`).
 */
export interface SimGateway {
  /**
   * A datagram reached the gateway: one a host behind it sent to a host outside its
   * private network or to the gateway's address (`fromBehind`), or one sent to its address
   * from outside. `from` and `to` are the datagram's own endpoints; `data` is the
   * gateway's to keep.
   */
  receive(data: Uint8Array, from: Endpoint, to: Endpoint, fromBehind: boolean): void;
}

/** What `attachGateway` hands a gateway: the network as its address sees it. */
export interface SimGatewayPort {
  /** The gateway's address, as the network spells it. */
  readonly address: string;
  /**
   * Sends a datagram from the gateway's address with any source endpoint, as a router
   * forwards one: into its private network, or out (through its own gateway, if its
   * address is behind one). It is routed, cut, lost, delayed and counted as a conn's is.
   */
  send(data: Uint8Array, from: Endpoint, to: Endpoint): void;
  /** The network clock's `now()`. */
  now(): number;
}

/** A perfect link: no delay, loss or reordering, and Ethernet's 1500-byte MTU. */
export const DEFAULT_LINK: Readonly<LinkOptions> = Object.freeze({
  latencyMs: 0,
  jitterMs: 0,
  lossRate: 0,
  duplicateRate: 0,
  reorderRate: 0,
  reorderDelayMs: 10,
  mtuBytes: 1500,
});

const UDP_HEADER_BYTES = 8;
const IPV4_HEADER_BYTES = 20;
const IPV6_HEADER_BYTES = 40;
/** Ports `listen(address, 0)` picks from, in order: IANA's dynamic range (RFC 6335 §6). */
const EPHEMERAL_PORT_FIRST = 49152;
const EPHEMERAL_PORT_LAST = 65535;

/** Where a datagram is sent from: a conn's socket, or a gateway's address. */
interface Sender {
  readonly address: string;
  readonly ipv6: boolean;
  readonly closed: boolean;
}

/** A gateway as the network keeps it. */
interface GatewayEntry {
  readonly address: string;
  readonly network: IpPrefix;
  readonly gateway: SimGateway;
}

const DROP_CAUSES: readonly DropCause[] = [
  "closed",
  "unroutable",
  "partition",
  "blocked",
  "mtu",
  "loss",
  "noListener",
  "noHandler",
];

/** One bound (address, port): the state behind a SimPacketConn. */
interface Socket {
  readonly address: string;
  readonly port: number;
  readonly ipv6: boolean;
  handler: ReceiveHandler | undefined;
  closed: boolean;
}

/**
 * The simulated network. Hosts appear when first named; `listen` binds conns to them.
 *
 * @example Two hosts, 20 ms apart
 * ```ts
 * const clock = new VirtualClock();
 * const network = new SimNetwork({ clock, random: createRandom(1) });
 * network.setLinkBetween("10.0.0.1", "10.0.0.2", { latencyMs: 20 });
 * const a = network.listen("10.0.0.1", 51820);
 * const b = network.listen("10.0.0.2", 51820);
 * b.onReceive((data, from) => console.log(clock.now(), data, from)); // 20, [1, 2, 3], 10.0.0.1:51820
 * a.send(new Uint8Array([1, 2, 3]), { address: "10.0.0.2", port: 51820 });
 * clock.advance(20);
 * ```
 */
export class SimNetwork {
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #trace: ((event: NetworkEvent) => void) | undefined;
  #defaultLink: Readonly<LinkOptions>;
  /** Per directed pair ("from>to"), the options set for it, layered over the default. */
  readonly #linkOverrides = new Map<string, Partial<LinkOptions>>();
  /** Resolved options per directed pair; cleared whenever any link option changes. */
  readonly #linkCache = new Map<string, Readonly<LinkOptions>>();
  readonly #partitioned = new Set<string>();
  readonly #blocked = new Set<string>();
  /** Bound sockets by `endpointKey`. */
  readonly #sockets = new Map<string, Socket>();
  /** Per host, where the search for a free ephemeral port starts next. */
  readonly #nextEphemeralPort = new Map<string, number>();
  /** Gateways by their address. */
  readonly #gateways = new Map<string, GatewayEntry>();
  /** Per host, the gateway it is behind (null: none); cleared when a gateway is attached. */
  readonly #gatewayOfHost = new Map<string, GatewayEntry | null>();
  #sent = 0;
  #delivered = 0;
  #forwarded = 0;
  #duplicated = 0;
  #reordered = 0;
  #inFlight = 0;
  readonly #dropped = Object.fromEntries(DROP_CAUSES.map((cause) => [cause, 0])) as Record<
    DropCause,
    number
  >;

  constructor(options: SimNetworkOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#trace = options.trace;
    this.#defaultLink = resolveLink(DEFAULT_LINK, options.defaultLink ?? {});
  }

  /**
   * Binds a conn to `port` on the host `hostAddress` (IPv4 or IPv6 text). Port 0 picks
   * a free port from 49152 up. Throws an Error with `code: "EADDRINUSE"`, as a socket
   * would, when the port is taken; a closed conn frees its port at once.
   */
  listen(hostAddress: string, port = 0): SimPacketConn {
    const address = hostAddressOf(hostAddress, "hostAddress");
    if (!Number.isInteger(port) || port < 0 || port > EPHEMERAL_PORT_LAST) {
      throw new RangeError(`Expected "port" to be an integer from 0 to 65535, got ${port}`);
    }
    const bound = port === 0 ? this.#freePort(address) : port;
    const key = endpointKey({ address, port: bound });
    if (this.#sockets.has(key) || this.#gateways.has(address)) {
      throw Object.assign(new Error(`Address "${key}" is already in use`), {
        code: "EADDRINUSE",
      });
    }
    const socket: Socket = {
      address,
      port: bound,
      ipv6: address.includes(":"),
      handler: undefined,
      closed: false,
    };
    this.#sockets.set(key, socket);
    return {
      localAddress: address,
      localPort: bound,
      get closed() {
        return socket.closed;
      },
      send: (data, to) => this.#send(socket, { address, port: bound }, data, to),
      onReceive(handler) {
        if (!socket.closed) socket.handler = handler;
      },
      close: () => {
        if (!socket.closed) {
          socket.closed = true;
          socket.handler = undefined;
          this.#sockets.delete(key);
        }
        return Promise.resolve();
      },
    };
  }

  /**
   * Puts `gateway` at `address` with the hosts of `privateNetwork` (a prefix such as
   * "192.168.1.0/24") behind it: from then on it gets every datagram sent to `address`, and
   * every one a host behind it sends outside the network (see the module comment).
   * `address` may itself be behind another gateway, which nests them. Throws if `address`
   * has conns or a gateway, is inside `privateNetwork`, another gateway has that network,
   * or the nesting would loop.
   */
  attachGateway(address: string, privateNetwork: string, gateway: SimGateway): SimGatewayPort {
    const own = hostAddressOf(address, "address");
    const network = typeof privateNetwork === "string" ? parsePrefix(privateNetwork) : undefined;
    if (network === undefined) {
      throw new SyntaxError(
        `Expected "privateNetwork" to be an IP prefix, got "${privateNetwork}"`,
      );
    }
    if ((network.address.length === IPV6_BYTES) !== own.includes(":")) {
      throw new RangeError(`Expected "privateNetwork" to be of the family of "${own}"`);
    }
    if (prefixContains(network, own)) {
      throw new RangeError(`Expected "address" to be outside "${privateNetwork}", got "${own}"`);
    }
    if (this.#gateways.has(own) || [...this.#sockets.values()].some((s) => s.address === own)) {
      throw Object.assign(new Error(`Address "${own}" is already in use`), {
        code: "EADDRINUSE",
      });
    }
    for (const other of this.#gateways.values()) {
      if (samePrefix(other.network, network)) {
        throw new RangeError(`Expected "privateNetwork" to be free, but "${other.address}" has it`);
      }
    }
    const entry: GatewayEntry = { address: own, network, gateway };
    this.#gateways.set(own, entry);
    this.#gatewayOfHost.clear();
    // Nesting must end: a gateway cannot sit (however deep) behind itself.
    for (let g = this.#gatewayOf(own), depth = 0; g !== undefined; g = this.#gatewayOf(g.address)) {
      if (g === entry || ++depth > this.#gateways.size) {
        this.#gateways.delete(own);
        this.#gatewayOfHost.clear();
        throw new RangeError(`Expected "${own}" not to end up behind itself`);
      }
    }
    const sender: Sender = { address: own, ipv6: own.includes(":"), closed: false };
    return {
      address: own,
      send: (data, from, to) => this.#send(sender, from, data, to),
      now: () => this.#clock.now(),
    };
  }

  /** Merges `options` into the default for links not configured with `setLink`. */
  setDefaultLink(options: Partial<LinkOptions>): void {
    this.#defaultLink = resolveLink(this.#defaultLink, options);
    this.#linkCache.clear();
  }

  /** Merges `options` into the direction `from` → `to` (earlier settings for it stay). */
  setLink(from: string, to: string, options: Partial<LinkOptions>): void {
    const key = linkKey(hostAddressOf(from, "from"), hostAddressOf(to, "to"));
    const merged = { ...this.#linkOverrides.get(key), ...options };
    resolveLink(this.#defaultLink, merged); // validates
    this.#linkOverrides.set(key, merged);
    this.#linkCache.clear();
  }

  /** `setLink` in both directions between `a` and `b`. */
  setLinkBetween(a: string, b: string, options: Partial<LinkOptions>): void {
    this.setLink(a, b, options);
    this.setLink(b, a, options);
  }

  /** The options in force for datagrams from `from` to `to`. */
  linkOptions(from: string, to: string): Readonly<LinkOptions> {
    return this.#link(hostAddressOf(from, "from"), hostAddressOf(to, "to"));
  }

  /**
   * Cuts every link between a host of `groupA` and a host of `groupB`, both ways, until
   * `heal()`. Datagrams already in flight still arrive: the cut applies at send time.
   */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    const a = groupA.map((address) => hostAddressOf(address, "groupA"));
    const b = groupB.map((address) => hostAddressOf(address, "groupB"));
    for (const x of a) {
      for (const y of b) {
        if (x === y) continue;
        this.#partitioned.add(linkKey(x, y));
        this.#partitioned.add(linkKey(y, x));
      }
    }
  }

  /** Cuts the direction `from` → `to` only, until `unblock` or `heal()`. */
  block(from: string, to: string): void {
    this.#blocked.add(linkKey(hostAddressOf(from, "from"), hostAddressOf(to, "to")));
  }

  /** Undoes `block(from, to)`. */
  unblock(from: string, to: string): void {
    this.#blocked.delete(linkKey(hostAddressOf(from, "from"), hostAddressOf(to, "to")));
  }

  /** Removes every partition and block. Link options stay as they are. */
  heal(): void {
    this.#partitioned.clear();
    this.#blocked.clear();
  }

  /** A snapshot of the running totals. */
  counters(): NetworkCounters {
    return {
      sent: this.#sent,
      delivered: this.#delivered,
      forwarded: this.#forwarded,
      duplicated: this.#duplicated,
      reordered: this.#reordered,
      inFlight: this.#inFlight,
      dropped: { ...this.#dropped },
    };
  }

  #send(sender: Sender, from: Endpoint, data: Uint8Array, to: Endpoint): void {
    this.#sent++;
    const route = this.#route(sender, data.length, to);
    if (typeof route === "string") {
      this.#drop(route, from, to, data.length);
      return;
    }
    const { destination, gateway, fromBehind, link } = route;
    const random = this.#random;
    let copies = 1;
    if (link.duplicateRate > 0 && random.next() < link.duplicateRate) {
      copies = 2;
      this.#duplicated++;
    }
    for (let i = 0; i < copies; i++) {
      let delayMs = link.latencyMs;
      if (link.jitterMs > 0) delayMs += random.next() * link.jitterMs;
      if (link.reorderRate > 0 && random.next() < link.reorderRate) {
        delayMs += link.reorderDelayMs;
        this.#reordered++;
      }
      // A copy per arrival: the sender may reuse its buffer, and a receiver may decrypt in place.
      const payload = data.slice();
      this.#inFlight++;
      this.#clock.setTimer(delayMs, () =>
        this.#arrive(from, destination, payload, gateway, fromBehind),
      );
    }
  }

  /**
   * Where a datagram from `sender` to `to` goes and over which link (and to which gateway,
   * when its next hop is one), or why it goes nowhere. Random draws happen only for
   * features a link uses, so enabling loss on one link leaves the choices made for links
   * without it as they were.
   */
  #route(
    sender: Sender,
    bytes: number,
    to: Endpoint,
  ):
    | DropCause
    | {
        destination: Endpoint;
        gateway: GatewayEntry | undefined;
        fromBehind: boolean;
        link: Readonly<LinkOptions>;
      } {
    if (sender.closed) return "closed";
    const address = typeof to?.address === "string" ? canonicalAddress(to.address) : undefined;
    const port = to?.port;
    if (address === undefined || address.includes(":") !== sender.ipv6) return "unroutable";
    if (!Number.isInteger(port) || port < 1 || port > EPHEMERAL_PORT_LAST) return "unroutable";
    const hop = this.#nextHop(sender.address, address);
    if (hop === undefined) return "unroutable";
    const key = linkKey(sender.address, hop.hop);
    if (this.#partitioned.has(key)) return "partition";
    if (this.#blocked.has(key)) return "blocked";
    const link = this.#link(sender.address, hop.hop);
    const ipHeaderBytes = sender.ipv6 ? IPV6_HEADER_BYTES : IPV4_HEADER_BYTES;
    if (ipHeaderBytes + UDP_HEADER_BYTES + bytes > link.mtuBytes) return "mtu";
    if (link.lossRate > 0 && this.#random.next() < link.lossRate) return "loss";
    return {
      destination: { address, port },
      gateway: hop.gateway,
      fromBehind: hop.fromBehind,
      link,
    };
  }

  /**
   * The host a datagram from `from` to `to` travels to first, the gateway there if the
   * datagram is handed to one, and whether `from` is behind that gateway; undefined when
   * `to` is in a private network that `from` is outside of (and is not the gateway of).
   */
  #nextHop(
    from: string,
    to: string,
  ): { hop: string; gateway: GatewayEntry | undefined; fromBehind: boolean } | undefined {
    if (this.#gateways.size === 0) return { hop: to, gateway: undefined, fromBehind: false };
    const fromBehind = this.#gatewayOf(from);
    const toBehind = this.#gatewayOf(to);
    if (toBehind === fromBehind || toBehind?.address === from) {
      return { hop: to, gateway: this.#gateways.get(to), fromBehind: false };
    }
    // Up through the sender's gateway, unless `to` sits in a network below the sender's.
    for (let g = toBehind; g !== undefined; g = this.#gatewayOf(g.address)) {
      if (this.#gatewayOf(g.address) === fromBehind) return undefined;
    }
    if (fromBehind === undefined) return undefined;
    return { hop: fromBehind.address, gateway: fromBehind, fromBehind: true };
  }

  /** The gateway whose private network holds `host`, the most specific one if several. */
  #gatewayOf(host: string): GatewayEntry | undefined {
    let found = this.#gatewayOfHost.get(host);
    if (found === undefined) {
      found = null;
      for (const entry of this.#gateways.values()) {
        if (!prefixContains(entry.network, host)) continue;
        if (found === null || entry.network.prefixLength > found.network.prefixLength) {
          found = entry;
        }
      }
      this.#gatewayOfHost.set(host, found);
    }
    return found ?? undefined;
  }

  #arrive(
    from: Endpoint,
    to: Endpoint,
    payload: Uint8Array,
    gateway: GatewayEntry | undefined,
    fromBehind: boolean,
  ): void {
    this.#inFlight--;
    if (gateway !== undefined) {
      this.#forwarded++;
      this.#trace?.({
        type: "forward",
        gateway: gateway.address,
        atMs: this.#clock.now(),
        from,
        to,
        bytes: payload.length,
      });
      gateway.gateway.receive(payload, from, to, fromBehind);
      return;
    }
    const handler = this.#sockets.get(endpointKey(to))?.handler;
    if (handler === undefined) {
      this.#drop(
        this.#sockets.has(endpointKey(to)) ? "noHandler" : "noListener",
        from,
        to,
        payload.length,
      );
      return;
    }
    this.#delivered++;
    this.#trace?.({ type: "deliver", atMs: this.#clock.now(), from, to, bytes: payload.length });
    handler(payload, from);
  }

  #drop(cause: DropCause, from: Endpoint, to: Endpoint, bytes: number): void {
    this.#dropped[cause]++;
    this.#trace?.({ type: "drop", cause, atMs: this.#clock.now(), from, to, bytes });
  }

  #link(from: string, to: string): Readonly<LinkOptions> {
    const key = linkKey(from, to);
    let link = this.#linkCache.get(key);
    if (link === undefined) {
      const override = this.#linkOverrides.get(key);
      link = override === undefined ? this.#defaultLink : resolveLink(this.#defaultLink, override);
      this.#linkCache.set(key, link);
    }
    return link;
  }

  #freePort(address: string): number {
    const span = EPHEMERAL_PORT_LAST - EPHEMERAL_PORT_FIRST + 1;
    const start = this.#nextEphemeralPort.get(address) ?? EPHEMERAL_PORT_FIRST;
    for (let i = 0; i < span; i++) {
      const port = EPHEMERAL_PORT_FIRST + ((start - EPHEMERAL_PORT_FIRST + i) % span);
      if (!this.#sockets.has(endpointKey({ address, port }))) {
        this.#nextEphemeralPort.set(
          address,
          port === EPHEMERAL_PORT_LAST ? EPHEMERAL_PORT_FIRST : port + 1,
        );
        return port;
      }
    }
    throw Object.assign(new Error(`No free port on "${address}"`), { code: "EADDRINUSE" });
  }
}

/** Whether the canonical address `host` is in `prefix`. */
function prefixContains(prefix: IpPrefix, host: string): boolean {
  const bytes = parseIp(host);
  if (bytes === undefined || bytes.length !== prefix.address.length) return false;
  return leadingBitsEqual(bytes, prefix.address, prefix.prefixLength);
}

/** Whether two prefixes name the same network (host bits aside). */
function samePrefix(a: IpPrefix, b: IpPrefix): boolean {
  return (
    a.prefixLength === b.prefixLength &&
    a.address.length === b.address.length &&
    leadingBitsEqual(a.address, b.address, a.prefixLength)
  );
}

function leadingBitsEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((a[whole]! ^ b[whole]!) & mask) === 0;
}

function linkKey(from: string, to: string): string {
  return `${from}>${to}`;
}

/** `base` with `overrides` applied, checked: rates in [0, 1], times 0 or more, a positive MTU. */
function resolveLink(
  base: Readonly<LinkOptions>,
  overrides: Partial<LinkOptions>,
): Readonly<LinkOptions> {
  const link: LinkOptions = { ...base };
  for (const [name, value] of Object.entries(overrides) as [keyof LinkOptions, unknown][]) {
    if (value === undefined) continue;
    if (!(name in DEFAULT_LINK)) throw new TypeError(`Unknown link option "${name}"`);
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`Expected "${name}" to be a finite number of 0 or more, got ${value}`);
    }
    if (name.endsWith("Rate") && value > 1) {
      throw new RangeError(`Expected "${name}" to be a probability from 0 to 1, got ${value}`);
    }
    if (name === "mtuBytes" && (!Number.isInteger(value) || value < 1)) {
      throw new RangeError(`Expected "mtuBytes" to be a positive integer, got ${value}`);
    }
    (link as Record<keyof LinkOptions, number>)[name] = value;
  }
  return Object.freeze(link);
}

/** The canonical text of a host's address; throws on anything that cannot name a host. */
function hostAddressOf(text: string, title: string): string {
  const address = typeof text === "string" ? canonicalAddress(text) : undefined;
  if (address === undefined) {
    throw new SyntaxError(`Expected "${title}" to be an IPv4 or IPv6 address, got "${text}"`);
  }
  if (address === "0.0.0.0" || address === "::") {
    throw new RangeError(`Expected "${title}" to be a host's address, got unspecified "${text}"`);
  }
  return address;
}

/**
 * One spelling per address, so "::1" and "0:0::1" name the same host: `formatIp`'s, with
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) as plain IPv4, as the UDP adapter reports it.
 */
function canonicalAddress(text: string): string | undefined {
  const bytes = parseIp(text);
  if (bytes === undefined) return undefined;
  const mapped = bytes.length === IPV6_BYTES && bytes.subarray(0, 12).every(isMappedPrefixByte);
  return formatIp(mapped ? bytes.subarray(12) : bytes);
}

/** Bytes 0-9 of ::ffff:0:0/96 are zero, bytes 10 and 11 are 0xff. */
function isMappedPrefixByte(byte: number, index: number): boolean {
  return byte === (index < 10 ? 0 : 0xff);
}
