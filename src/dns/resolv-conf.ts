/**
 * Upstream resolvers from resolv.conf(5) text. Reading the file is the daemon's job; this
 * is only the parsing. Only `nameserver` lines matter here; an IPv6 address with a
 * `%zone` is skipped (the forwarder sends to plain addresses), as are malformed lines.
 */

import { formatIp, parseIp } from "../net/ip.ts";
import type { Endpoint } from "../net/packet-conn.ts";

const DNS_PORT = 53;
/** glibc uses at most three (MAXNS). */
const MAX_NAMESERVERS = 3;

/**
 * @example
 * ```ts
 * parseResolvConf("nameserver 10.0.0.53\nsearch example.com\n");
 * // [{ address: "10.0.0.53", port: 53 }]
 * ```
 */
export function parseResolvConf(text: string): Endpoint[] {
  const servers: Endpoint[] = [];
  for (const line of text.split(/\r?\n/)) {
    const words = line
      .replace(/[#;].*$/, "")
      .trim()
      .split(/\s+/);
    if (words[0] !== "nameserver" || words.length < 2) continue;
    const bytes = parseIp(words[1]!);
    if (bytes === undefined) continue;
    servers.push({ address: formatIp(bytes), port: DNS_PORT });
    if (servers.length === MAX_NAMESERVERS) break;
  }
  return servers;
}
