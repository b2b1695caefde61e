/**
 * The error a host sends for a UDP datagram to a port nobody listens on: ICMP destination
 * unreachable, code 3 "port unreachable" (RFC 792, RFC 1122 §4.1.3.1), or ICMPv6
 * destination unreachable, code 4 "port unreachable" (RFC 4443 §3.1). Both quote the
 * start of the offending packet: as much as keeps the error within 576 bytes for IPv4
 * (RFC 1812 §4.3.2.3) and 1280 for IPv6 (RFC 4443 §2.4 (c)).
 *
 * Pure, like `src/net/icmp-errors.ts`: rate limiting (RFC 4443 §2.4 (f)) is the caller's.
 */
import { internetChecksum } from "../net/checksum.ts";
import { IPV4_BYTES } from "../net/ip.ts";
import { upperLayerChecksum } from "../net/pseudo-header.ts";
import {
  ICMP_CODE_PORT_UNREACHABLE,
  ICMP_DESTINATION_UNREACHABLE,
  ICMP_ERROR_MAX_DATAGRAM_BYTES,
  ICMP_HEADER_BYTES,
  ICMPV6_CODE_PORT_UNREACHABLE,
  ICMPV6_DESTINATION_UNREACHABLE,
  IPV4_HEADER_BYTES,
  IPV6_HEADER_BYTES,
  IPV6_MIN_MTU_BYTES,
  PROTOCOL_ICMP,
  PROTOCOL_ICMPV6,
} from "./constants.ts";
import { encodeIpv4 } from "./ipv4.ts";
import { encodeIpv6 } from "./ipv6.ts";

/**
 * The port unreachable error for `original` (the offending IP packet, up to its IP length)
 * that came from `source` to our `destination`, sent back from `destination`; or
 * `undefined` when none may be sent because `source` is not one host (RFC 1122 §3.2.2,
 * RFC 4443 §2.4 (e)): for IPv4 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 and above; for IPv6
 * ::, ::1 and ff00::/8.
 *
 * @example
 * ```ts
 * const error = portUnreachable(packet, ip.source, ip.destination);
 * if (error !== undefined) send(error);
 * ```
 */
export function portUnreachable(
  original: Uint8Array,
  source: Uint8Array,
  destination: Uint8Array,
): Uint8Array | undefined {
  if (source.length === IPV4_BYTES) {
    const first = source[0]!;
    if (first === 0 || first === 127 || first >= 224) return undefined;
    const quoted = original.subarray(
      0,
      ICMP_ERROR_MAX_DATAGRAM_BYTES - IPV4_HEADER_BYTES - ICMP_HEADER_BYTES,
    );
    const icmp = new Uint8Array(ICMP_HEADER_BYTES + quoted.length);
    icmp[0] = ICMP_DESTINATION_UNREACHABLE;
    icmp[1] = ICMP_CODE_PORT_UNREACHABLE;
    icmp.set(quoted, ICMP_HEADER_BYTES);
    new DataView(icmp.buffer).setUint16(2, internetChecksum(icmp));
    return encodeIpv4({ source: destination, destination: source, protocol: PROTOCOL_ICMP }, icmp);
  }
  if (source[0] === 0xff) return undefined;
  const last = source[source.length - 1]!;
  if (source.subarray(0, -1).every((byte) => byte === 0) && last <= 1) return undefined;
  const quoted = original.subarray(0, IPV6_MIN_MTU_BYTES - IPV6_HEADER_BYTES - ICMP_HEADER_BYTES);
  const icmp = new Uint8Array(ICMP_HEADER_BYTES + quoted.length);
  icmp[0] = ICMPV6_DESTINATION_UNREACHABLE;
  icmp[1] = ICMPV6_CODE_PORT_UNREACHABLE;
  icmp.set(quoted, ICMP_HEADER_BYTES);
  new DataView(icmp.buffer).setUint16(
    2,
    upperLayerChecksum(icmp, destination, source, PROTOCOL_ICMPV6),
  );
  return encodeIpv6({ source: destination, destination: source, protocol: PROTOCOL_ICMPV6 }, icmp);
}
