/**
 * Numbers from the specifications the userspace stack speaks, in one place: IP protocol
 * numbers (IANA, RFC 790 onwards), ICMP (RFC 792) and ICMPv6 (RFC 4443) types and codes,
 * and the header sizes of UDP (RFC 768) and TCP (RFC 9293 §3.1).
 */

// IP protocol numbers, the IPv4 protocol field and the IPv6 next header.
export const PROTOCOL_ICMP = 1;
export const PROTOCOL_TCP = 6;
export const PROTOCOL_UDP = 17;
export const PROTOCOL_ICMPV6 = 58;

// IPv6 extension headers walked to the upper layer (RFC 8200 §4).
export const IPV6_HOP_BY_HOP = 0;
export const IPV6_ROUTING = 43;
export const IPV6_FRAGMENT = 44;
export const IPV6_NO_NEXT_HEADER = 59;
export const IPV6_DESTINATION_OPTIONS = 60;

// ICMP (RFC 792).
export const ICMP_ECHO_REPLY = 0;
export const ICMP_DESTINATION_UNREACHABLE = 3;
export const ICMP_CODE_PORT_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;

// ICMPv6 (RFC 4443).
export const ICMPV6_DESTINATION_UNREACHABLE = 1;
export const ICMPV6_CODE_PORT_UNREACHABLE = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
/** Types below this are errors (RFC 4443 §2.1). */
export const ICMPV6_FIRST_INFORMATIONAL_TYPE = 128;

/** Type, code, checksum and 4 bytes that depend on the type, for ICMP and ICMPv6. */
export const ICMP_HEADER_BYTES = 8;
export const UDP_HEADER_BYTES = 8;
export const TCP_MIN_HEADER_BYTES = 20;
export const TCP_MAX_HEADER_BYTES = 60;

export const IPV4_HEADER_BYTES = 20;
export const IPV6_HEADER_BYTES = 40;

/** Default TTL and hop limit of what we send: 64, as Linux and RFC 1700 use. */
export const DEFAULT_HOP_LIMIT = 64;
/** An ICMP error datagram stays within 576 bytes (RFC 1812 §4.3.2.3). */
export const ICMP_ERROR_MAX_DATAGRAM_BYTES = 576;
/** An ICMPv6 error stays within the IPv6 minimum MTU (RFC 4443 §2.4 (c)). */
export const IPV6_MIN_MTU_BYTES = 1280;
