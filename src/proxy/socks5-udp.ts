/**
 * SOCKS5 UDP ASSOCIATE (RFC 1928 §7): a relay socket on the host for one client, and a
 * UDP socket on the mesh side, for as long as the client's TCP control connection lives.
 *
 * ```
 *  client ──UDP (RSV FRAG ATYP DST DATA)──► relay socket ──parse──► mesh socket ──► DST
 *  client ◄──UDP (header: the sender)────── relay socket ◄──wrap─── mesh socket ◄── DST
 * ```
 *
 * What is let through:
 * - towards the mesh, only datagrams from the client's address (the control connection's
 *   peer), from the address and port the request named when it named them, and from
 *   one port once the first datagram came (RFC 1928: the relay "MUST drop any datagrams
 *   from any source IP address other than the one recorded");
 * - back to the client, only datagrams from a destination the client has sent to (the
 *   address and port: a port-restricted cone), so a mesh peer cannot spray the client;
 * - FRAG other than 0 is dropped (fragmentation is not implemented, as §7 allows);
 * - domain destinations are resolved with `resolve`, or dropped without it.
 */

import { formatIp, parseIp } from "../net/ip.ts";
import { type Endpoint, endpointKey, type PacketConn } from "../net/packet-conn.ts";
import type { ListenUdpOptions } from "../runtime.ts";
import {
  encodeUdpDatagram,
  parseUdpDatagram,
  type SocksAddress,
  socksAddress,
} from "./socks5-codec.ts";

/** What UDP ASSOCIATE needs from the daemon. */
export interface Socks5UdpOptions {
  /** Opens the host relay socket (`Runtime.listenUdp`). */
  readonly listenUdp: (options: ListenUdpOptions) => Promise<PacketConn>;
  /** The host address the relay socket binds to and the reply names; 127.0.0.1 by default. */
  readonly address?: string;
  /** Opens a UDP socket on the mesh side, one per association (see `netstackUdpConn`). */
  readonly bindMesh: () => PacketConn | Promise<PacketConn>;
  /** Turns a domain name into IP text (weft's DNS); without it datagrams to names are dropped. */
  readonly resolve?: (name: string) => Promise<string>;
}

/** UDP counts, shared by the associations of one server. */
export interface UdpCounts {
  udpAssociations: number;
  datagramsToMesh: number;
  datagramsFromMesh: number;
  /** Datagrams refused by the rules above, or unparseable, or that failed to resolve. */
  datagramsDropped: number;
}

export interface UdpAssociation {
  /** Where the client sends its datagrams (BND.ADDR and BND.PORT of the reply). */
  readonly relay: SocksAddress;
  /** Closes both sockets; idempotent. */
  close(): Promise<void>;
}

/** Peers an association answers for at once; the oldest is forgotten beyond it. */
const MAX_PEERS = 1024;

/**
 * Opens the sockets of one association. `client` is the control connection's peer,
 * `requested` the DST.ADDR and DST.PORT of the request (zeros: not known yet).
 */
export async function openUdpAssociation(
  options: Socks5UdpOptions,
  client: Endpoint,
  requested: SocksAddress,
  counts: UdpCounts,
): Promise<UdpAssociation> {
  const address = options.address ?? "127.0.0.1";
  const local = await options.listenUdp({ address, port: 0 });
  let mesh: PacketConn;
  try {
    mesh = await options.bindMesh();
  } catch (error) {
    await local.close();
    throw error;
  }
  counts.udpAssociations++;
  const clientAddress = canonical(client.address);
  const wantAddress =
    requested.type === "domain" || isZero(requested.host) ? undefined : canonical(requested.host);
  let clientEndpoint: Endpoint | undefined =
    requested.port !== 0 ? { address: clientAddress, port: requested.port } : undefined;
  const peers = new Map<string, true>();
  let closed = false;

  const allow = (to: Endpoint) => {
    const key = endpointKey(to);
    peers.delete(key);
    peers.set(key, true);
    if (peers.size > MAX_PEERS) peers.delete(peers.keys().next().value!);
  };

  local.onReceive((data, from) => {
    const source = canonical(from.address);
    if (
      source !== clientAddress ||
      (wantAddress !== undefined && source !== wantAddress) ||
      (clientEndpoint !== undefined && clientEndpoint.port !== from.port)
    ) {
      counts.datagramsDropped++;
      return;
    }
    clientEndpoint ??= { address: source, port: from.port };
    const parsed = parseUdpDatagram(data);
    if (parsed.status !== "ok" || parsed.value.fragment !== 0) {
      counts.datagramsDropped++;
      return;
    }
    const { address: destination, data: payload } = parsed.value;
    if (destination.port === 0) {
      counts.datagramsDropped++;
      return;
    }
    if (destination.type !== "domain") {
      const to = { address: destination.host, port: destination.port };
      allow(to);
      counts.datagramsToMesh++;
      mesh.send(payload, to);
      return;
    }
    const resolve = options.resolve;
    if (resolve === undefined) {
      counts.datagramsDropped++;
      return;
    }
    const copy = payload.slice();
    resolve(destination.host).then(
      (ip) => {
        if (closed || parseIp(ip) === undefined) {
          counts.datagramsDropped++;
          return;
        }
        const to = { address: canonical(ip), port: destination.port };
        allow(to);
        counts.datagramsToMesh++;
        mesh.send(copy, to);
      },
      () => {
        counts.datagramsDropped++;
      },
    );
  });

  mesh.onReceive((data, from) => {
    const sender = { address: canonical(from.address), port: from.port };
    if (clientEndpoint === undefined || !peers.has(endpointKey(sender))) {
      counts.datagramsDropped++;
      return;
    }
    counts.datagramsFromMesh++;
    local.send(
      encodeUdpDatagram({ fragment: 0, address: socksAddress(sender.address, sender.port), data }),
      clientEndpoint,
    );
  });

  let closing: Promise<void> | undefined;
  return {
    relay: socksAddress(address, local.localPort),
    close() {
      closed = true;
      closing ??= Promise.all([local.close(), mesh.close()]).then(() => {});
      return closing;
    },
  };
}

/** IP text in one form (IPv4-mapped IPv6 as IPv4), so addresses compare as strings. */
function canonical(text: string): string {
  const bytes = parseIp(text);
  if (bytes === undefined) return text;
  if (
    bytes.length === 16 &&
    bytes.subarray(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff &&
    bytes[11] === 0xff
  ) {
    return formatIp(bytes.subarray(12));
  }
  return formatIp(bytes);
}

function isZero(text: string): boolean {
  return parseIp(text)?.every((b) => b === 0) ?? false;
}
