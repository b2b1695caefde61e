/**
 * A userspace IP host that is a `Tun` (#10): the mesh writes the IP packets meant for us
 * into `write()`, and what we send leaves through the `onPacket` handler, so the mesh
 * never knows whether a kernel or this class sits behind its Tun (as wireguard-go's
 * `tun/netstack` is just another `tun.Device`).
 *
 * ```
 *  mesh ── write(packet) ─► decode IPv4/IPv6 ─┬─ not ours, bad ─► drop (counted)
 *                                             ├─ fragment ─► reassembly ─► whole: decoded again
 *                                             ├─ ICMP/ICMPv6 echo request ─► echo reply ─┐
 *                                             ├─ UDP, port bound ─► handler              │
 *                                             ├─ UDP, port free ─► port unreachable ─────┤
 *                                             └─ TCP ─► onTcp handler (the TCP engine)   │
 *  mesh ◄── onPacket handler ◄── sendUdp / sendTcp ◄─────────────────────────────────────┘
 * ```
 *
 * It holds no clock and no timers: TCP's timers belong to the connection state machine
 * that plugs in through `onTcp` and `sendTcp` (`new TcpStack(netstack, ...)` in
 * tcp-stack.ts does, and offers `dial` and `listen`). Fragments of IPv4 and IPv6 are
 * reassembled (ip-reassembly.ts) with bounded memory, overlaps refused.
 */
import { type Clock, systemClock } from "../clock.ts";
import { TokenBuckets } from "../mesh/token-buckets.ts";
import { internetChecksum } from "../net/checksum.ts";
import { formatIp, IPV4_BYTES, IPV6_BYTES, parseIp } from "../net/ip.ts";
import type { PacketHandler, Tun } from "../net/tun.ts";
import {
  IPV4_HEADER_BYTES,
  IPV6_HEADER_BYTES,
  PROTOCOL_ICMP,
  PROTOCOL_ICMPV6,
  PROTOCOL_TCP,
  PROTOCOL_UDP,
  TCP_MIN_HEADER_BYTES,
} from "./constants.ts";
import { isDecodeError } from "./decode-error.ts";
import { decodeIcmpv4, decodeIcmpv6, encodeIcmpv4Echo, encodeIcmpv6Echo } from "./icmp.ts";
import {
  IPV4_REASSEMBLY_TIMEOUT_MS,
  IPV6_REASSEMBLY_TIMEOUT_MS,
  Reassembler,
  type ReassemblerOptions,
} from "./ip-reassembly.ts";
import {
  decodeIpv4,
  encodeIpv4,
  type Ipv4Packet,
  isIpv4Fragment,
  writeIpv4Header,
} from "./ipv4.ts";
import {
  decodeIpv6,
  encodeIpv6,
  type Ipv6Fragment,
  type Ipv6Packet,
  writeIpv6Header,
} from "./ipv6.ts";
import { portUnreachable } from "./port-unreachable.ts";
import { decodeTcp, encodedOptions, writeTcp } from "./tcp-header.ts";
import type { TcpSegment } from "./tcp-segment.ts";
import { decodeUdp, encodeUdp } from "./udp.ts";

/** The MTU of a Netstack unless told otherwise: WireGuard's 1420, as for a kernel TUN. */
export const NETSTACK_DEFAULT_MTU_BYTES = 1420;
/** Where `bindUdp(0, …)` picks a port: the IANA dynamic range (RFC 6335 §6). */
const EPHEMERAL_FIRST_PORT = 49152;
const EPHEMERAL_LAST_PORT = 65535;
/**
 * ICMP errors we send, per destination (RFC 1812 §4.3.2.8, RFC 4443 §2.4 (f)): 10 a
 * second with a burst of 10, so a scan of closed ports cannot turn us into an amplifier.
 */
export const NETSTACK_ICMP_ERRORS_PER_SECOND = 10;
const ICMP_ERROR_BURST = 10;
const IPV4_FLAG_DONT_FRAGMENT = 0x4000;

export interface NetstackOptions {
  /** Our addresses, IPv4 and/or IPv6, such as "10.40.0.2" or "fd00::2" (a "/len" is ignored). */
  readonly addresses: readonly string[];
  /** The label `name` reports; "netstack" by default. */
  readonly name?: string;
  /** The largest IP packet we send or expect; 1420 by default. */
  readonly mtuBytes?: number;
  /** Time for rate limiting ICMP errors; the system clock by default. */
  readonly clock?: Pick<Clock, "now">;
  /** Bounds on fragment reassembly, per IP version: 4 MiB in 64 datagrams by default. */
  readonly reassembly?: ReassemblerOptions;
}

/** A UDP datagram delivered to a bound port. Its bytes stay valid after the call. */
export interface UdpReceived {
  readonly source: Uint8Array;
  readonly sourcePort: number;
  /** Which of our addresses it was sent to. */
  readonly destination: Uint8Array;
  readonly destinationPort: number;
  readonly data: Uint8Array;
}

export type UdpHandler = (datagram: UdpReceived) => void;

/**
 * A TCP segment for one of our addresses, checksum verified, with its addresses (ours is
 * `destination`). The segment's payload stays valid after the call.
 */
export type TcpHandler = (segment: TcpSegment, source: Uint8Array, destination: Uint8Array) => void;

/** A bound UDP port; `close()` frees it (idempotent). */
export interface UdpBinding {
  readonly port: number;
  close(): void;
}

/** What a Netstack has done, for tests and status; a snapshot. */
export interface NetstackCounters {
  /** Packets written into us by the mesh. */
  readonly received: number;
  /** Packets we handed to the `onPacket` handler. */
  readonly sent: number;
  readonly echoRepliesSent: number;
  readonly udpDelivered: number;
  readonly tcpDelivered: number;
  /** Datagrams reassembled from fragments (each then counted like any packet). */
  readonly reassembled: number;
  /** Bytes held for reassembly now, both IP versions. */
  readonly reassemblyBytes: number;
  /** Packets dropped, by reason ("not-for-us", "fragment", "ipv4-bad-checksum", ...). */
  readonly drops: Readonly<Record<string, number>>;
}

/**
 * A userspace IP host on the mesh.
 *
 * @example Answer pings and echo UDP on port 7
 * ```ts
 * const stack = new Netstack({ addresses: ["10.40.0.2", "fd00::2"] });
 * stack.bindUdp(7, (d) => stack.sendUdp(7, d.source, d.sourcePort, d.data));
 * const mesh = new Mesh({ tun: stack, ... });
 * ```
 */
export class Netstack implements Tun {
  readonly name: string;
  readonly mtuBytes: number;
  /** Our addresses, 4 or 16 bytes each, in the order given. */
  readonly addresses: readonly Uint8Array[];
  #output: PacketHandler | undefined;
  #tcp: TcpHandler | undefined;
  readonly #udp = new Map<number, UdpHandler>();
  #closed = false;
  #received = 0;
  #sent = 0;
  #echoRepliesSent = 0;
  #udpDelivered = 0;
  #tcpDelivered = 0;
  readonly #drops = new Map<string, number>();
  #reassembled = 0;
  readonly #reassembly4: Reassembler<Uint8Array>;
  readonly #reassembly6: Reassembler<Ipv6Packet>;
  readonly #clock: Pick<Clock, "now">;
  readonly #errorLimiter = new TokenBuckets<string>(
    NETSTACK_ICMP_ERRORS_PER_SECOND,
    ICMP_ERROR_BURST,
  );

  /** Throws `RangeError` for an address that does not parse, none at all, or a bad MTU. */
  constructor(options: NetstackOptions) {
    this.name = options.name ?? "netstack";
    this.#clock = options.clock ?? systemClock;
    this.mtuBytes = options.mtuBytes ?? NETSTACK_DEFAULT_MTU_BYTES;
    if (!Number.isInteger(this.mtuBytes) || this.mtuBytes < 68 || this.mtuBytes > 0xffff) {
      throw new RangeError(
        `Expected "mtuBytes" to be an integer from 68 to 65535, got ${this.mtuBytes}`,
      );
    }
    this.#reassembly4 = new Reassembler(IPV4_REASSEMBLY_TIMEOUT_MS, options.reassembly);
    this.#reassembly6 = new Reassembler(IPV6_REASSEMBLY_TIMEOUT_MS, options.reassembly);
    if (options.addresses.length === 0) throw new RangeError(`Expected at least one address`);
    this.addresses = options.addresses.map((text) => {
      const address = parseIp(text.split("/")[0]!);
      if (address === undefined) throw new RangeError(`Expected an IP address, got "${text}"`);
      return address;
    });
  }

  /** The mesh delivers an IP packet to us. Never throws; what we cannot use is counted. */
  write(packet: Uint8Array): void {
    if (this.#closed) return;
    this.#received++;
    // The caller may reuse its buffer once we return; handlers may keep what we give them.
    const bytes = packet.slice();
    const version = bytes.length > 0 ? bytes[0]! >> 4 : 0;
    if (version === 4) this.#receiveIpv4(bytes);
    else if (version === 6) this.#receiveIpv6(bytes);
    else this.#drop("not-ip");
  }

  /** Sets the one handler for the packets we send (replacing any earlier one). */
  onPacket(handler: PacketHandler): void {
    if (!this.#closed) this.#output = handler;
  }

  /** Stops: packets in either direction are dropped from now on, bindings freed; idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#output = undefined;
    this.#tcp = undefined;
    this.#udp.clear();
  }

  /**
   * Delivers UDP datagrams for `port` on any of our addresses to `handler`. Port 0 picks a
   * free port from 49152 to 65535 (the binding says which). Throws `RangeError` for a port
   * outside 0 to 65535 or already bound, or when no port is free.
   */
  bindUdp(port: number, handler: UdpHandler): UdpBinding {
    assertPort(port, "port");
    let bound = port;
    if (bound === 0) {
      bound = EPHEMERAL_FIRST_PORT;
      while (bound <= EPHEMERAL_LAST_PORT && this.#udp.has(bound)) bound++;
      if (bound > EPHEMERAL_LAST_PORT) throw new RangeError("Expected a free UDP port, found none");
    } else if (this.#udp.has(bound)) {
      throw new RangeError(`Expected a free UDP port, got ${bound} in use`);
    }
    this.#udp.set(bound, handler);
    return {
      port: bound,
      close: () => {
        if (this.#udp.get(bound) === handler) this.#udp.delete(bound);
      },
    };
  }

  /**
   * Sends `data` from our `fromPort` to `toPort` at `to` (bytes or text), from our first
   * address of the same IP version. Dropped after `close()`. Throws `RangeError` for a
   * bad port or address, no address of that version, or a packet over `mtuBytes` (we
   * do not fragment).
   */
  sendUdp(fromPort: number, to: Uint8Array | string, toPort: number, data: Uint8Array): void {
    assertPort(fromPort, "fromPort");
    assertPort(toPort, "toPort");
    const destination = typeof to === "string" ? parseIp(to) : to;
    if (destination === undefined)
      throw new RangeError(`Expected an IP address, got "${String(to)}"`);
    const source = this.sourceFor(destination);
    const udp = encodeUdp(
      { sourcePort: fromPort, destinationPort: toPort, payload: data },
      source,
      destination,
    );
    this.#emit(this.#wrap(source, destination, PROTOCOL_UDP, udp));
  }

  /**
   * Sets the one handler for TCP segments to our addresses (replacing any earlier one):
   * the seam where the TCP engine plugs in. Without one, TCP is dropped as "tcp-no-handler".
   */
  onTcp(handler: TcpHandler | undefined): void {
    if (!this.#closed) this.#tcp = handler;
  }

  /**
   * Sends `segment` from `source` (one of our addresses) to `destination`. Dropped after
   * `close()`. Throws `RangeError` for a source that is not ours, a destination of another
   * IP version, or a packet over `mtuBytes`.
   */
  sendTcp(segment: TcpSegment, source: Uint8Array, destination: Uint8Array): void {
    if (!this.#isOurs(source)) throw new RangeError(`Expected one of our addresses as "source"`);
    if (destination.length !== source.length) {
      throw new RangeError(`Expected "destination" of the same IP version as "source"`);
    }
    // One buffer for the IP header, the TCP header and the payload: the payload is
    // copied once, straight from the connection's send buffer.
    const options = encodedOptions(segment.options);
    const ipHeaderBytes = source.length === IPV4_BYTES ? IPV4_HEADER_BYTES : IPV6_HEADER_BYTES;
    const tcpBytes = TCP_MIN_HEADER_BYTES + options.length + segment.payload.length;
    const total = ipHeaderBytes + tcpBytes;
    if (total > this.mtuBytes) {
      throw new RangeError(`Expected a packet of at most ${this.mtuBytes} bytes, got ${total}`);
    }
    const packet = new Uint8Array(total);
    writeTcp(segment, options, source, destination, packet, ipHeaderBytes);
    const fields = { source, destination, protocol: PROTOCOL_TCP };
    if (ipHeaderBytes === IPV4_HEADER_BYTES) writeIpv4Header(packet, fields, tcpBytes);
    else writeIpv6Header(packet, fields, tcpBytes);
    this.#emit(packet);
  }

  /**
   * Our first address of the IP version of `destination`. Throws `RangeError` when we
   * have none or `destination` is not 4 or 16 bytes.
   */
  sourceFor(destination: Uint8Array): Uint8Array {
    if (destination.length !== IPV4_BYTES && destination.length !== IPV6_BYTES) {
      throw new RangeError(`Expected an address of 4 or 16 bytes, got ${destination.length}`);
    }
    const source = this.addresses.find((address) => address.length === destination.length);
    if (source === undefined) {
      throw new RangeError(
        `Expected an address of ours for ${formatIp(destination)}, have none of its version`,
      );
    }
    return source;
  }

  /**
   * The TCP MSS to announce for a connection with `destination` (RFC 9293 §3.7.1): our
   * MTU less the IP header of its version and the 20-byte TCP header. Options sent with
   * data come out of this too (RFC 6691).
   */
  tcpMssFor(destination: Uint8Array): number {
    const ipHeaderBytes = destination.length === IPV4_BYTES ? IPV4_HEADER_BYTES : IPV6_HEADER_BYTES;
    return this.mtuBytes - ipHeaderBytes - TCP_MIN_HEADER_BYTES;
  }

  /** A snapshot of what we have received, sent and dropped. */
  counters(): NetstackCounters {
    return {
      received: this.#received,
      sent: this.#sent,
      echoRepliesSent: this.#echoRepliesSent,
      udpDelivered: this.#udpDelivered,
      tcpDelivered: this.#tcpDelivered,
      reassembled: this.#reassembled,
      reassemblyBytes: this.#reassembly4.bytes + this.#reassembly6.bytes,
      drops: Object.fromEntries(this.#drops),
    };
  }

  #receiveIpv4(bytes: Uint8Array): void {
    const ip = decodeIpv4(bytes);
    if (isDecodeError(ip)) {
      this.#drop(`ipv4-${ip.error}`);
      return;
    }
    if (!isUnicastSource(ip.source)) {
      this.#drop("bad-source");
      return;
    }
    if (!this.#isOurs(ip.destination)) {
      this.#drop("not-for-us");
      return;
    }
    if (isIpv4Fragment(ip)) {
      this.#reassembleIpv4(bytes, ip);
      return;
    }
    const packet = bytes.subarray(0, ip.headerBytes + ip.payload.length);
    if (ip.protocol === PROTOCOL_ICMP) {
      const message = decodeIcmpv4(ip.payload);
      if (isDecodeError(message)) {
        this.#drop(`icmp-${message.error}`);
        return;
      }
      if (message.kind !== "echo-request") {
        this.#drop("icmp-not-echo-request");
        return;
      }
      this.#echoRepliesSent++;
      const reply = encodeIcmpv4Echo({ ...message, kind: "echo-reply" });
      this.#emit(
        encodeIpv4(
          { source: ip.destination, destination: ip.source, protocol: PROTOCOL_ICMP },
          reply,
        ),
      );
      return;
    }
    this.#receiveTransport(packet, ip.protocol, ip.payload, ip.source, ip.destination);
  }

  #receiveIpv6(bytes: Uint8Array): void {
    const ip = decodeIpv6(bytes);
    if (isDecodeError(ip)) {
      this.#drop(`ipv6-${ip.error}`);
      return;
    }
    if (!isUnicastSource(ip.source)) {
      this.#drop("bad-source");
      return;
    }
    if (!this.#isOurs(ip.destination)) {
      this.#drop("not-for-us");
      return;
    }
    if (ip.fragment !== undefined) {
      this.#reassembleIpv6(ip, ip.fragment);
      return;
    }
    const packet = bytes.subarray(0, ip.payload.byteOffset + ip.payload.length);
    if (ip.protocol === PROTOCOL_ICMPV6) {
      const message = decodeIcmpv6(ip.payload, ip.source, ip.destination);
      if (isDecodeError(message)) {
        this.#drop(`icmpv6-${message.error}`);
        return;
      }
      if (message.kind !== "echo-request") {
        this.#drop("icmpv6-not-echo-request");
        return;
      }
      this.#echoRepliesSent++;
      const reply = encodeIcmpv6Echo({ ...message, kind: "echo-reply" }, ip.destination, ip.source);
      this.#emit(
        encodeIpv6(
          { source: ip.destination, destination: ip.source, protocol: PROTOCOL_ICMPV6 },
          reply,
        ),
      );
      return;
    }
    this.#receiveTransport(packet, ip.protocol, ip.payload, ip.source, ip.destination);
  }

  /**
   * A fragment of an IPv4 datagram for us: held until the datagram is whole, which is
   * then rebuilt with the first fragment's header and received like any packet.
   */
  #reassembleIpv4(bytes: Uint8Array, ip: Ipv4Packet): void {
    // RFC 1858 §3.2: a TCP fragment at offset 8 can only be rewriting the TCP flags.
    if (ip.protocol === PROTOCOL_TCP && ip.fragmentOffsetBytes === 8) {
      this.#drop("fragment-tiny");
      return;
    }
    const key = `${ip.source.join(".")}>${ip.destination.join(".")}|${ip.protocol}|${ip.identification}`;
    const result = this.#reassembly4.add(
      key,
      { offsetBytes: ip.fragmentOffsetBytes, moreFragments: ip.moreFragments, data: ip.payload },
      bytes.subarray(0, ip.headerBytes),
      this.#clock.now(),
      minimumTransportHeader(ip.protocol),
    );
    this.#syncReassemblyLosses();
    if (result.kind === "dropped") this.#drop(result.reason);
    if (result.kind !== "complete") return;
    const header = result.header;
    const total = header.length + result.data.length;
    if (total > 0xffff) {
      this.#drop("fragment-too-big");
      return;
    }
    const packet = new Uint8Array(total);
    packet.set(header);
    packet.set(result.data, header.length);
    const view = new DataView(packet.buffer);
    view.setUint16(2, total);
    view.setUint16(6, view.getUint16(6) & IPV4_FLAG_DONT_FRAGMENT); // one piece now
    view.setUint16(10, 0);
    view.setUint16(10, internetChecksum(packet.subarray(0, header.length)));
    this.#reassembled++;
    this.#receiveIpv4(packet);
  }

  /** The same for IPv6 (RFC 8200 §4.5): the rebuilt packet keeps no extension headers. */
  #reassembleIpv6(ip: Ipv6Packet, fragment: Ipv6Fragment): void {
    const key = `${ip.source.join(",")}>${ip.destination.join(",")}|${fragment.identification}`;
    const result = this.#reassembly6.add(
      key,
      {
        offsetBytes: fragment.offsetBytes,
        moreFragments: fragment.moreFragments,
        data: ip.payload,
      },
      ip,
      this.#clock.now(),
      minimumTransportHeader(ip.protocol),
    );
    this.#syncReassemblyLosses();
    if (result.kind === "dropped") this.#drop(result.reason);
    if (result.kind !== "complete") return;
    const first = result.header;
    const packet = new Uint8Array(IPV6_HEADER_BYTES + result.data.length);
    writeIpv6Header(
      packet,
      {
        source: first.source,
        destination: first.destination,
        protocol: first.protocol,
        hopLimit: first.hopLimit,
        trafficClass: first.trafficClass,
        flowLabel: first.flowLabel,
      },
      result.data.length,
    );
    packet.set(result.data, IPV6_HEADER_BYTES);
    this.#reassembled++;
    this.#receiveIpv6(packet);
  }

  /** Datagrams that timed out or were evicted, as drop reasons. */
  #syncReassemblyLosses(): void {
    const timedOut = this.#reassembly4.losses.timedOut + this.#reassembly6.losses.timedOut;
    const evicted = this.#reassembly4.losses.evicted + this.#reassembly6.losses.evicted;
    if (timedOut > 0) this.#drops.set("fragment-timeout", timedOut);
    if (evicted > 0) this.#drops.set("fragment-evicted", evicted);
  }

  /** UDP and TCP, the same over either IP version. `packet` is the whole IP packet. */
  #receiveTransport(
    packet: Uint8Array,
    protocol: number,
    payload: Uint8Array,
    source: Uint8Array,
    destination: Uint8Array,
  ): void {
    if (protocol === PROTOCOL_UDP) {
      const datagram = decodeUdp(payload, source, destination);
      if (isDecodeError(datagram)) {
        this.#drop(`udp-${datagram.error}`);
        return;
      }
      const handler = this.#udp.get(datagram.destinationPort);
      if (handler === undefined) {
        this.#drop("udp-port-unreachable");
        const error = portUnreachable(packet, source, destination);
        if (error === undefined) return;
        if (this.#errorLimiter.take(formatIp(source), this.#clock.now())) this.#emit(error);
        else this.#drop("icmp-error-rate-limited");
        return;
      }
      this.#udpDelivered++;
      this.#deliver("udp-handler-threw", () =>
        handler({
          source,
          sourcePort: datagram.sourcePort,
          destination,
          destinationPort: datagram.destinationPort,
          data: datagram.payload,
        }),
      );
      return;
    }
    if (protocol === PROTOCOL_TCP) {
      const segment = decodeTcp(payload, source, destination);
      if (isDecodeError(segment)) {
        this.#drop(`tcp-${segment.error}`);
        return;
      }
      const handler = this.#tcp;
      if (handler === undefined) {
        this.#drop("tcp-no-handler");
        return;
      }
      this.#tcpDelivered++;
      this.#deliver("tcp-handler-threw", () => handler(segment, source, destination));
      return;
    }
    this.#drop("unknown-protocol");
  }

  /** Runs a handler; one that throws must not throw into the mesh's packet loop. */
  #deliver(reason: string, call: () => void): void {
    try {
      call();
    } catch {
      this.#drop(reason);
    }
  }

  #wrap(
    source: Uint8Array,
    destination: Uint8Array,
    protocol: number,
    upper: Uint8Array,
  ): Uint8Array {
    const packet =
      source.length === IPV4_BYTES
        ? encodeIpv4({ source, destination, protocol }, upper)
        : encodeIpv6({ source, destination, protocol }, upper);
    if (packet.length > this.mtuBytes) {
      throw new RangeError(
        `Expected a packet of at most ${this.mtuBytes} bytes, got ${packet.length}`,
      );
    }
    return packet;
  }

  #emit(packet: Uint8Array): void {
    if (this.#closed) return;
    const output = this.#output;
    if (output === undefined) {
      this.#drop("no-packet-handler");
      return;
    }
    this.#sent++;
    output(packet);
  }

  #isOurs(address: Uint8Array): boolean {
    for (const ours of this.addresses) if (sameBytes(ours, address)) return true;
    return false;
  }

  #drop(reason: string): void {
    this.#drops.set(reason, (this.#drops.get(reason) ?? 0) + 1);
  }
}

/**
 * May `address` be a packet's source? Not for IPv4 0.0.0.0/8, loopback 127.0.0.0/8,
 * multicast or reserved 224.0.0.0 and above (RFC 1122 §3.2.1.3 asks a host to discard
 * these silently); not for IPv6 the unspecified ::, loopback ::1 (RFC 4291 §2.5.2,
 * §2.5.3) or multicast ff00::/8 (§2.7). Answering any of them would answer no one host.
 */
function isUnicastSource(address: Uint8Array): boolean {
  if (address.length === IPV4_BYTES) {
    const first = address[0]!;
    return first !== 0 && first !== 127 && first < 224;
  }
  if (address[0] === 0xff) return false;
  const last = address[IPV6_BYTES - 1]!;
  return !(address.subarray(0, IPV6_BYTES - 1).every((byte) => byte === 0) && last <= 1);
}

/**
 * How much data a first fragment must carry: the whole fixed transport header, so a
 * filter (or this stack) never sees ports or flags split across fragments (RFC 1858 §3.1).
 */
function minimumTransportHeader(protocol: number): number {
  if (protocol === PROTOCOL_TCP) return TCP_MIN_HEADER_BYTES;
  if (protocol === PROTOCOL_UDP || protocol === PROTOCOL_ICMP || protocol === PROTOCOL_ICMPV6) {
    return 8;
  }
  return 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function assertPort(port: number, name: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`Expected "${name}" to be a port from 0 to 65535, got ${port}`);
  }
}
