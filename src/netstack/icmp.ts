/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) messages as the userspace stack needs them: echo
 * request and reply decoded and encoded, every other type decoded only far enough to be
 * told apart (and errors never answered). ICMP's checksum covers the message alone;
 * ICMPv6's adds the IPv6 pseudo-header (RFC 4443 §2.3).
 */
import { internetChecksum } from "../net/checksum.ts";
import { upperLayerChecksum } from "../net/pseudo-header.ts";
import {
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_HEADER_BYTES,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  PROTOCOL_ICMPV6,
} from "./constants.ts";
import { type DecodeError, decodeError } from "./decode-error.ts";

const CHECKSUM_OFFSET = 2;

/** An echo request or reply (RFC 792 "Echo or Echo Reply Message", RFC 4443 §4). */
export interface IcmpEcho {
  readonly kind: "echo-request" | "echo-reply";
  readonly identifier: number;
  readonly sequence: number;
  /** A view when decoded. */
  readonly data: Uint8Array;
}

/** Any other ICMP or ICMPv6 message: its type and code, body not read. */
export interface IcmpOther {
  readonly kind: "other";
  readonly type: number;
  readonly code: number;
}

export type IcmpMessage = IcmpEcho | IcmpOther;

/**
 * The ICMP message in `bytes` (an IPv4 payload), or why not: "truncated",
 * "bad-checksum". Never throws for any bytes.
 *
 * @example
 * ```ts
 * const message = decodeIcmpv4(ip.payload);
 * if (!isDecodeError(message) && message.kind === "echo-request") reply(message);
 * ```
 */
export function decodeIcmpv4(bytes: Uint8Array): IcmpMessage | DecodeError {
  if (bytes.length < ICMP_HEADER_BYTES) return decodeError("truncated");
  if (internetChecksum(bytes) !== 0) return decodeError("bad-checksum");
  return readMessage(bytes, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY);
}

/** The bytes of an ICMP echo request or reply, checksum included. */
export function encodeIcmpv4Echo(echo: IcmpEcho): Uint8Array {
  const bytes = writeEcho(echo, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY);
  new DataView(bytes.buffer).setUint16(CHECKSUM_OFFSET, internetChecksum(bytes));
  return bytes;
}

/**
 * The ICMPv6 message in `bytes` (the upper-layer bytes of an IPv6 packet from `source`
 * to `destination`, 16 bytes each), or why not: "truncated", "bad-checksum". Never
 * throws for any bytes.
 */
export function decodeIcmpv6(
  bytes: Uint8Array,
  source: Uint8Array,
  destination: Uint8Array,
): IcmpMessage | DecodeError {
  if (bytes.length < ICMP_HEADER_BYTES) return decodeError("truncated");
  if (upperLayerChecksum(bytes, source, destination, PROTOCOL_ICMPV6) !== 0) {
    return decodeError("bad-checksum");
  }
  return readMessage(bytes, ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY);
}

/** The bytes of an ICMPv6 echo request or reply from `source` to `destination`, checksum included. */
export function encodeIcmpv6Echo(
  echo: IcmpEcho,
  source: Uint8Array,
  destination: Uint8Array,
): Uint8Array {
  const bytes = writeEcho(echo, ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY);
  new DataView(bytes.buffer).setUint16(
    CHECKSUM_OFFSET,
    upperLayerChecksum(bytes, source, destination, PROTOCOL_ICMPV6),
  );
  return bytes;
}

function readMessage(bytes: Uint8Array, requestType: number, replyType: number): IcmpMessage {
  const type = bytes[0]!;
  const code = bytes[1]!;
  if ((type !== requestType && type !== replyType) || code !== 0) {
    return { kind: "other", type, code };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  return {
    kind: type === requestType ? "echo-request" : "echo-reply",
    identifier: view.getUint16(4),
    sequence: view.getUint16(6),
    data: bytes.subarray(ICMP_HEADER_BYTES),
  };
}

function writeEcho(echo: IcmpEcho, requestType: number, replyType: number): Uint8Array {
  const bytes = new Uint8Array(ICMP_HEADER_BYTES + echo.data.length);
  const view = new DataView(bytes.buffer);
  bytes[0] = echo.kind === "echo-request" ? requestType : replyType;
  view.setUint16(4, echo.identifier);
  view.setUint16(6, echo.sequence);
  bytes.set(echo.data, ICMP_HEADER_BYTES);
  return bytes;
}
