/**
 * SOCKS version 5 on the wire (RFC 1928), with username/password authentication
 * (RFC 1929). Parsers never throw: they take the bytes received so far and answer
 * `{ status: "ok", value, length }` (the message is the first `length` bytes),
 * `{ status: "more" }` (a prefix of a valid message: wait for more bytes), or
 * `{ status: "error", error }` (no valid message starts with these bytes). So bytes may
 * arrive split at any position. The UDP header is a datagram, never split: a short one is
 * an error, not "more".
 *
 * ```
 *  greeting          VER=5 NMETHODS METHODS...
 *  method selection  VER=5 METHOD
 *  auth (RFC 1929)   VER=1 ULEN UNAME PLEN PASSWD   →   VER=1 STATUS
 *  request           VER=5 CMD RSV ATYP DST.ADDR DST.PORT
 *  reply             VER=5 REP RSV ATYP BND.ADDR BND.PORT
 *  UDP header        RSV RSV FRAG ATYP DST.ADDR DST.PORT DATA
 * ```
 */
import { formatIp, IPV4_BYTES, IPV6_BYTES, parseIp } from "../net/ip.ts";

export const SOCKS_VERSION = 5;
export const AUTH_VERSION = 1;

/** Authentication methods (RFC 1928 §3). */
export const SOCKS_METHOD = {
  NO_AUTH: 0x00,
  GSSAPI: 0x01,
  USERNAME_PASSWORD: 0x02,
  NO_ACCEPTABLE: 0xff,
} as const;

/** Commands (RFC 1928 §4). */
export const SOCKS_COMMAND = { CONNECT: 0x01, BIND: 0x02, UDP_ASSOCIATE: 0x03 } as const;

/** Address types (RFC 1928 §5). */
export const SOCKS_ATYP = { IPV4: 0x01, DOMAIN: 0x03, IPV6: 0x04 } as const;

/** Reply codes (RFC 1928 §6). */
export const SOCKS_REPLY = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

export type Parsed<T> =
  | { readonly status: "ok"; readonly value: T; readonly length: number }
  | { readonly status: "more" }
  | {
      readonly status: "error";
      readonly error: string;
      /** The reply code a server should answer with, when the error allows a reply. */
      readonly reply?: number;
    };

/** An address as SOCKS5 carries it: an IP (text) or a domain name (at most 255 bytes). */
export interface SocksAddress {
  readonly type: "ipv4" | "ipv6" | "domain";
  /** IPv4 dotted, IPv6 in RFC 5952 text, or the domain name as sent. */
  readonly host: string;
  readonly port: number;
}

export interface Greeting {
  readonly methods: readonly number[];
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface SocksRequest {
  /** CONNECT, BIND, UDP ASSOCIATE, or any other byte (answered with 0x07). */
  readonly command: number;
  readonly address: SocksAddress;
}

export interface SocksReply {
  readonly reply: number;
  readonly address: SocksAddress;
}

export interface UdpDatagram {
  /** Fragment number; 0 is a whole datagram. */
  readonly fragment: number;
  readonly address: SocksAddress;
  /** A view into the parsed bytes. */
  readonly data: Uint8Array;
}

const MORE = { status: "more" } as const;

function fail(error: string, reply?: number): Parsed<never> {
  return reply === undefined ? { status: "error", error } : { status: "error", error, reply };
}

function ok<T>(value: T, length: number): Parsed<T> {
  return { status: "ok", value, length };
}

/** Client → server: VER NMETHODS METHODS. */
export function parseGreeting(bytes: Uint8Array): Parsed<Greeting> {
  if (bytes.length < 1) return MORE;
  if (bytes[0] !== SOCKS_VERSION) return fail(`expected SOCKS version 5, got ${bytes[0]}`);
  if (bytes.length < 2) return MORE;
  const count = bytes[1]!;
  if (count === 0) return fail("the greeting offers no method");
  if (bytes.length < 2 + count) return MORE;
  return ok({ methods: [...bytes.subarray(2, 2 + count)] }, 2 + count);
}

export function encodeGreeting(methods: readonly number[]): Uint8Array {
  if (methods.length < 1 || methods.length > 255) {
    throw new RangeError(`Expected 1 to 255 methods, got ${methods.length}`);
  }
  return Uint8Array.of(SOCKS_VERSION, methods.length, ...methods.map(byte));
}

/** Server → client: VER METHOD. */
export function parseMethodSelection(bytes: Uint8Array): Parsed<number> {
  if (bytes.length < 1) return MORE;
  if (bytes[0] !== SOCKS_VERSION) return fail(`expected SOCKS version 5, got ${bytes[0]}`);
  if (bytes.length < 2) return MORE;
  return ok(bytes[1]!, 2);
}

export function encodeMethodSelection(method: number): Uint8Array {
  return Uint8Array.of(SOCKS_VERSION, byte(method));
}

/** Client → server (RFC 1929): VER=1 ULEN UNAME PLEN PASSWD; names are UTF-8. */
export function parseCredentials(bytes: Uint8Array): Parsed<Credentials> {
  if (bytes.length < 1) return MORE;
  if (bytes[0] !== AUTH_VERSION) return fail(`expected auth version 1, got ${bytes[0]}`);
  if (bytes.length < 2) return MORE;
  const ulen = bytes[1]!;
  if (bytes.length < 3 + ulen) return MORE;
  const plen = bytes[2 + ulen]!;
  const length = 3 + ulen + plen;
  if (bytes.length < length) return MORE;
  const username = utf8(bytes.subarray(2, 2 + ulen));
  const password = utf8(bytes.subarray(3 + ulen, length));
  if (username === undefined || password === undefined) return fail("credentials are not UTF-8");
  return ok({ username, password }, length);
}

export function encodeCredentials(credentials: Credentials): Uint8Array {
  const user = new TextEncoder().encode(credentials.username);
  const pass = new TextEncoder().encode(credentials.password);
  if (user.length > 255 || pass.length > 255) {
    throw new RangeError("Expected a username and password of at most 255 bytes each");
  }
  return Uint8Array.of(AUTH_VERSION, user.length, ...user, pass.length, ...pass);
}

/** Server → client (RFC 1929): VER=1 STATUS; 0 is success. */
export function parseAuthStatus(bytes: Uint8Array): Parsed<number> {
  if (bytes.length < 1) return MORE;
  if (bytes[0] !== AUTH_VERSION) return fail(`expected auth version 1, got ${bytes[0]}`);
  if (bytes.length < 2) return MORE;
  return ok(bytes[1]!, 2);
}

export function encodeAuthStatus(status: number): Uint8Array {
  return Uint8Array.of(AUTH_VERSION, byte(status));
}

/** Client → server: VER CMD RSV ATYP DST.ADDR DST.PORT (RSV is not checked). */
export function parseRequest(bytes: Uint8Array): Parsed<SocksRequest> {
  if (bytes.length < 1) return MORE;
  if (bytes[0] !== SOCKS_VERSION) return fail(`expected SOCKS version 5, got ${bytes[0]}`);
  if (bytes.length < 3) return MORE;
  const address = parseAddress(bytes, 3);
  if (address.status !== "ok") return address;
  return ok({ command: bytes[1]!, address: address.value }, address.length);
}

export function encodeRequest(request: SocksRequest): Uint8Array {
  return concat(
    Uint8Array.of(SOCKS_VERSION, byte(request.command), 0),
    encodeAddress(request.address),
  );
}

/** Server → client: VER REP RSV ATYP BND.ADDR BND.PORT. */
export function parseReply(bytes: Uint8Array): Parsed<SocksReply> {
  if (bytes.length < 1) return MORE;
  if (bytes[0] !== SOCKS_VERSION) return fail(`expected SOCKS version 5, got ${bytes[0]}`);
  if (bytes.length < 3) return MORE;
  const address = parseAddress(bytes, 3);
  if (address.status !== "ok") return address;
  return ok({ reply: bytes[1]!, address: address.value }, address.length);
}

export function encodeReply(reply: SocksReply): Uint8Array {
  return concat(Uint8Array.of(SOCKS_VERSION, byte(reply.reply), 0), encodeAddress(reply.address));
}

/** A UDP ASSOCIATE datagram: RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA, whole. */
export function parseUdpDatagram(bytes: Uint8Array): Parsed<UdpDatagram> {
  if (bytes.length < 4) return fail("the UDP datagram is shorter than its header");
  if (bytes[0] !== 0 || bytes[1] !== 0) return fail("the UDP header's reserved bytes are not 0");
  const address = parseAddress(bytes, 3);
  if (address.status === "more") return fail("the UDP datagram is shorter than its header");
  if (address.status === "error") return address;
  return ok(
    { fragment: bytes[2]!, address: address.value, data: bytes.subarray(address.length) },
    bytes.length,
  );
}

export function encodeUdpDatagram(datagram: UdpDatagram): Uint8Array {
  return concat(
    Uint8Array.of(0, 0, byte(datagram.fragment)),
    encodeAddress(datagram.address),
    datagram.data,
  );
}

/** A SocksAddress for `host` (an IP text, or else a domain name) and `port`. */
export function socksAddress(host: string, port: number): SocksAddress {
  const ip = parseIp(host);
  if (ip === undefined) return { type: "domain", host, port };
  return { type: ip.length === IPV4_BYTES ? "ipv4" : "ipv6", host: formatIp(ip), port };
}

/** ATYP DST.ADDR DST.PORT; throws RangeError for what cannot be encoded. */
export function encodeAddress(address: SocksAddress): Uint8Array {
  const port = address.port;
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`Expected a port from 0 to 65535, got ${port}`);
  }
  let head: Uint8Array;
  if (address.type === "domain") {
    const name = new TextEncoder().encode(address.host);
    if (name.length < 1 || name.length > 255) {
      throw new RangeError(`Expected a domain name of 1 to 255 bytes, got ${name.length}`);
    }
    head = Uint8Array.of(SOCKS_ATYP.DOMAIN, name.length, ...name);
  } else {
    const ip = parseIp(address.host);
    const size = address.type === "ipv4" ? IPV4_BYTES : IPV6_BYTES;
    if (ip === undefined || ip.length !== size) {
      throw new RangeError(`Expected an ${address.type} address, got "${address.host}"`);
    }
    head = Uint8Array.of(address.type === "ipv4" ? SOCKS_ATYP.IPV4 : SOCKS_ATYP.IPV6, ...ip);
  }
  return concat(head, Uint8Array.of(port >> 8, port & 0xff));
}

/** ATYP ADDR PORT at `offset`; `length` in the result is the offset just past the port. */
function parseAddress(bytes: Uint8Array, offset: number): Parsed<SocksAddress> {
  if (bytes.length < offset + 1) return MORE;
  const atyp = bytes[offset]!;
  let start = offset + 1;
  let end: number;
  let type: SocksAddress["type"];
  if (atyp === SOCKS_ATYP.IPV4) {
    type = "ipv4";
    end = start + IPV4_BYTES;
  } else if (atyp === SOCKS_ATYP.IPV6) {
    type = "ipv6";
    end = start + IPV6_BYTES;
  } else if (atyp === SOCKS_ATYP.DOMAIN) {
    type = "domain";
    if (bytes.length < start + 1) return MORE;
    const size = bytes[start]!;
    if (size === 0) return fail("the domain name is empty", SOCKS_REPLY.HOST_UNREACHABLE);
    start += 1;
    end = start + size;
  } else {
    return fail(`unknown address type ${atyp}`, SOCKS_REPLY.ADDRESS_TYPE_NOT_SUPPORTED);
  }
  if (bytes.length < end + 2) return MORE;
  const raw = bytes.subarray(start, end);
  let host: string;
  if (type === "domain") {
    // Names are ASCII on the wire (IDNs arrive as punycode): anything else is refused.
    if (!raw.every((b) => b > 0x20 && b < 0x7f)) {
      return fail(
        "the domain name has bytes that are not printable ASCII",
        SOCKS_REPLY.HOST_UNREACHABLE,
      );
    }
    host = String.fromCharCode(...raw);
  } else {
    host = formatIp(raw);
  }
  const port = (bytes[end]! << 8) | bytes[end + 1]!;
  return ok({ type, host, port }, end + 2);
}

function byte(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new RangeError(`Expected a byte value, got ${value}`);
  }
  return value;
}

function utf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
