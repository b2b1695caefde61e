/**
 * IP addresses, prefixes and endpoints as text: the spellings a WireGuard configuration
 * uses for AllowedIPs and Endpoint.
 *
 * Parsing accepts exactly what glibc's `inet_pton` accepts (it is what `wg` calls):
 * IPv4 as four decimal octets, IPv6 as in RFC 4291 §2.2 with at most one `::` and an
 * optional trailing dotted quad. Formatting follows RFC 5952. Addresses are bytes in
 * network order: 4 for IPv4, 16 for IPv6.
 *
 * Bad text gives `undefined`, never an exception, so a caller can decide how to report
 * it; the `format*` functions throw `TypeError`/`RangeError` on values no parser returns,
 * which are programmer errors.
 */

/** Bytes of an IPv4 address. */
export const IPV4_BYTES = 4;
/** Bytes of an IPv6 address. */
export const IPV6_BYTES = 16;

/** An address with the number of leading bits that name the network (RFC 4632 notation). */
export interface IpPrefix {
  /** 4 or 16 bytes; host bits are kept as written, not masked. */
  readonly address: Uint8Array;
  /** 0 to 32 for IPv4, 0 to 128 for IPv6. */
  readonly prefixLength: number;
}

/** A UDP endpoint as written: an IP literal or a name still to be resolved, and a port. */
export interface HostPort {
  /** An IPv4 literal, an IPv6 literal without brackets (perhaps with a `%zone`), or a DNS name. */
  readonly host: string;
  /** 1 to 65535. */
  readonly port: number;
}

// The longest spelling inet_pton can accept: eight 4-digit groups, or six and a dotted quad.
const MAX_IP_TEXT = 45;
const IPV4_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const IPV6_GROUP = /^[0-9A-Fa-f]{1,4}$/;
const DECIMAL = /^[0-9]+$/;
// Interface names (IFNAMSIZ is 16 with the NUL) or numeric scope ids, as after `%` in fe80::1%eth0.
const ZONE = /^[A-Za-z0-9_.-]{1,15}$/;
const DNS_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const MAX_DNS_NAME = 253;

/**
 * Bytes of an IPv4 or IPv6 address, or `undefined` when `text` is not one. Text with a
 * `:` is IPv6, as `wg` decides.
 *
 * IPv4 octets with a leading zero (`01.2.3.4`) are refused, as glibc's `inet_pton` does:
 * `inet_aton` would read them as octal, so they have two meanings. Shorthands such as
 * `10.1` and zone suffixes such as `fe80::1%eth0` are refused too (neither is an address).
 *
 * @example
 * ```ts
 * parseIp("10.0.0.1"); // Uint8Array [10, 0, 0, 1]
 * parseIp("::ffff:192.0.2.1")?.length; // 16
 * parseIp("10.1"); // undefined
 * ```
 */
export function parseIp(text: string): Uint8Array | undefined {
  if (text.length > MAX_IP_TEXT) return undefined;
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== IPV4_BYTES) return undefined;
  const out = new Uint8Array(IPV4_BYTES);
  for (let i = 0; i < IPV4_BYTES; i++) {
    const part = parts[i]!;
    if (!IPV4_OCTET.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    out[i] = value;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | undefined {
  // A trailing dotted quad stands for the last two groups; spell it as them and parse on.
  let spelled = text;
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = parseIpv4(tail);
    if (v4 === undefined) return undefined;
    const high = ((v4[0]! << 8) | v4[1]!).toString(16);
    const low = ((v4[2]! << 8) | v4[3]!).toString(16);
    spelled = `${text.slice(0, lastColon + 1)}${high}:${low}`;
  }

  const gap = spelled.indexOf("::");
  if (gap !== spelled.lastIndexOf("::")) return undefined;
  const head = parseGroups(gap < 0 ? spelled : spelled.slice(0, gap));
  const rest = gap < 0 ? [] : parseGroups(spelled.slice(gap + 2));
  if (head === undefined || rest === undefined) return undefined;
  const groupCount = head.length + rest.length;
  // Without `::` all eight groups are written; with it, `::` must stand for at least one.
  if (gap < 0 ? groupCount !== 8 : groupCount > 7) return undefined;

  const out = new Uint8Array(IPV6_BYTES);
  const view = new DataView(out.buffer);
  for (const [i, group] of head.entries()) view.setUint16(2 * i, group);
  for (const [i, group] of rest.entries()) view.setUint16(2 * (8 - rest.length + i), group);
  return out;
}

/** Colon-separated hex groups; the empty string is no groups. */
function parseGroups(text: string): number[] | undefined {
  if (text === "") return [];
  const groups: number[] = [];
  for (const part of text.split(":")) {
    if (!IPV6_GROUP.test(part)) return undefined;
    groups.push(Number.parseInt(part, 16));
  }
  return groups;
}

/**
 * Text of a 4- or 16-byte address. IPv6 follows RFC 5952 §4: lowercase hex without
 * leading zeros, the longest run of two or more zero groups (the first of equal runs)
 * shortened to `::`. IPv4-mapped addresses end in a dotted quad (§5).
 *
 * glibc's `inet_ntop`, and so `wg showconf`, also writes the deprecated IPv4-compatible
 * form (`::192.0.2.1`); we write those as plain IPv6 (`::c000:201`), as RFC 5952 asks.
 *
 * @example
 * ```ts
 * formatIp(parseIp("2001:0DB8:0:0:0:0:0:0001")!); // "2001:db8::1"
 * ```
 */
export function formatIp(bytes: Uint8Array): string {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`Expected "bytes" to be a Uint8Array, got ${typeof bytes}`);
  }
  if (bytes.length === IPV4_BYTES) return bytes.join(".");
  if (bytes.length !== IPV6_BYTES) {
    throw new RangeError(`Expected "bytes" to be 4 or 16 bytes, got ${bytes.length}`);
  }

  const view = new DataView(bytes.buffer, bytes.byteOffset, IPV6_BYTES);
  const groups = Array.from({ length: 8 }, (_, i) => view.getUint16(2 * i));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.subarray(12).join(".")}`;
  }

  let bestStart = -1;
  let bestLength = 1; // a lone zero group stays written out (RFC 5952 §4.2.2)
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const before = hex.slice(0, bestStart).join(":");
  const after = hex.slice(bestStart + bestLength).join(":");
  return `${before}::${after}`;
}

/**
 * An address and prefix length from `address/length`; a bare address is a single host
 * (/32 or /128). The length is decimal and, as `wg` reads it with `strtoul`, may carry
 * leading zeros (`10.0.0.0/08`). Host bits beyond the prefix are kept: `wg` warns about
 * them and the kernel masks them, so whether they are an error is the caller's call.
 *
 * @example
 * ```ts
 * parsePrefix("fd00::/64"); // { address: <16 bytes>, prefixLength: 64 }
 * parsePrefix("10.0.0.0/33"); // undefined
 * ```
 */
export function parsePrefix(text: string): IpPrefix | undefined {
  const slash = text.indexOf("/");
  const address = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (address === undefined) return undefined;
  const bits = address.length * 8;
  if (slash < 0) return { address, prefixLength: bits };
  const lengthText = text.slice(slash + 1);
  if (!DECIMAL.test(lengthText)) return undefined;
  const prefixLength = Number(lengthText);
  if (prefixLength > bits) return undefined;
  return { address, prefixLength };
}

/**
 * `address/length`, always with the length (as `wg showconf` writes AllowedIPs).
 *
 * @example
 * ```ts
 * formatPrefix({ address: new Uint8Array([10, 0, 0, 0]), prefixLength: 8 }); // "10.0.0.0/8"
 * ```
 */
export function formatPrefix(prefix: IpPrefix): string {
  const text = formatIp(prefix.address);
  const bits = prefix.address.length * 8;
  const { prefixLength } = prefix;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > bits) {
    throw new RangeError(
      `Expected "prefixLength" to be an integer from 0 to ${bits}, got ${prefixLength}`,
    );
  }
  return `${text}/${prefixLength}`;
}

/**
 * Host and port of `host:port` or `[ipv6]:port`. The host stays text, as written: an
 * IPv4 literal, a DNS name (resolving it is the caller's job), or inside brackets an
 * IPv6 literal with an optional `%zone`. The port is decimal, 1 to 65535.
 *
 * Stricter than `wg`, which hands the text to `getaddrinfo`: an IPv6 literal needs its
 * brackets (`fd00::1:51820` reads two ways), a host of only digits and dots must be a
 * full dotted quad (`getaddrinfo` reads `10.1` as 10.0.0.1), ports out of range are
 * refused (`getaddrinfo` silently takes 70000 as 4464) and so is port 0, which no
 * datagram can be sent to.
 *
 * @example
 * ```ts
 * parseEndpoint("[fd00::1]:51820"); // { host: "fd00::1", port: 51820 }
 * parseEndpoint("vpn.example.com:51820"); // { host: "vpn.example.com", port: 51820 }
 * ```
 */
export function parseEndpoint(text: string): HostPort | undefined {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return undefined;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIpv6Host(host)) return undefined;
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return undefined;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (!isIpv4OrNameHost(host)) return undefined;
  }
  if (!DECIMAL.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}

function isIpv6Host(host: string): boolean {
  const percent = host.indexOf("%");
  const address = parseIp(percent < 0 ? host : host.slice(0, percent));
  if (address?.length !== IPV6_BYTES) return false;
  return percent < 0 || ZONE.test(host.slice(percent + 1));
}

function isIpv4OrNameHost(host: string): boolean {
  if (/^[0-9.]+$/.test(host)) return parseIp(host) !== undefined;
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > MAX_DNS_NAME) return false;
  return name.split(".").every((label) => DNS_LABEL.test(label));
}

/**
 * `host:port`, with brackets around an IPv6 host, as `wg showconf` writes Endpoint.
 * Throws `RangeError` for an endpoint that `parseEndpoint` would not read back.
 *
 * @example
 * ```ts
 * formatEndpoint({ host: "fd00::1", port: 51820 }); // "[fd00::1]:51820"
 * ```
 */
export function formatEndpoint(endpoint: HostPort): string {
  const { host, port } = endpoint;
  const text = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  if (!Number.isInteger(port) || parseEndpoint(text) === undefined) {
    throw new RangeError(`Expected a host and a port from 1 to 65535, got "${text}"`);
  }
  return text;
}

/** Whether `address` (4 or 16 bytes) is inside `prefix`; false across IP versions. */
export function prefixContains(prefix: IpPrefix, address: Uint8Array): boolean {
  if (prefix.address.length !== address.length) return false;
  let bits = prefix.prefixLength;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((prefix.address[i]! & mask) !== (address[i]! & mask)) return false;
  }
  return true;
}
