/**
 * Reverse names (RFC 1035 §3.5 `in-addr.arpa`, RFC 3596 §2.5 `ip6.arpa`): addresses to
 * names and back, and the reverse zone that holds a prefix.
 */
import { IPV4_BYTES, IPV6_BYTES, type IpPrefix } from "../net/ip.ts";

const IPV4_SUFFIX = "in-addr.arpa.";
const IPV6_SUFFIX = "ip6.arpa.";

/** The reverse name of a 4- or 16-byte address ("1.0.40.10.in-addr.arpa."). */
export function reverseNameOf(address: Uint8Array): string {
  if (address.length === IPV4_BYTES) return `${[...address].reverse().join(".")}.${IPV4_SUFFIX}`;
  return `${nibbles(address).reverse().join(".")}.${IPV6_SUFFIX}`;
}

/** The address a full reverse name stands for (folded name), or undefined if it is not one. */
export function addressOfReverseName(name: string): Uint8Array | undefined {
  if (name.endsWith(`.${IPV4_SUFFIX}`)) {
    const labels = name.slice(0, -IPV4_SUFFIX.length - 1).split(".");
    if (labels.length !== IPV4_BYTES || !labels.every((l) => /^(0|[1-9][0-9]{0,2})$/.test(l)))
      return undefined;
    const octets = labels.reverse().map(Number);
    return octets.every((o) => o <= 255) ? Uint8Array.from(octets) : undefined;
  }
  if (name.endsWith(`.${IPV6_SUFFIX}`)) {
    const labels = name.slice(0, -IPV6_SUFFIX.length - 1).split(".");
    if (labels.length !== IPV6_BYTES * 2 || !labels.every((l) => /^[0-9a-f]$/.test(l)))
      return undefined;
    const hex = labels.reverse();
    return Uint8Array.from({ length: IPV6_BYTES }, (_, i) =>
      Number.parseInt(hex[2 * i]! + hex[2 * i + 1]!, 16),
    );
  }
  return undefined;
}

/**
 * The reverse zone holding every address of `prefix`: its reverse name cut to whole
 * octets (IPv4) or nibbles (IPv6), rounding the prefix length down ("10.32.0.0/12" gives
 * "10.in-addr.arpa.").
 */
export function reverseZoneOf(prefix: IpPrefix): string {
  const full = reverseNameOf(prefix.address).split(".");
  const unitBits = prefix.address.length === IPV4_BYTES ? 8 : 4;
  const units = full.length - 3; // address labels, without the suffix's two and the root
  const kept = Math.floor(prefix.prefixLength / unitBits);
  return `${full.slice(units - kept).join(".")}`;
}

/** Whether `address` lies in `prefix`. */
export function prefixContains(prefix: IpPrefix, address: Uint8Array): boolean {
  if (address.length !== prefix.address.length) return false;
  let bits = prefix.prefixLength;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((address[i]! & mask) !== (prefix.address[i]! & mask)) return false;
  }
  return true;
}

function nibbles(bytes: Uint8Array): string[] {
  return [...bytes].flatMap((b) => [(b >> 4).toString(16), (b & 0xf).toString(16)]);
}
