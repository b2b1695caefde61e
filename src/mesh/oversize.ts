/**
 * What the mesh does with an IP packet from the Tun that is longer than its peer's path
 * MTU (issue #9, "Path MTU"), and the rate limit on the ICMP errors it answers with.
 *
 * ```
 *  oversize packet ── pathMtuAction ─┬─ fragmentation-needed (IPv4, DF) ─► ICMP error to the Tun
 *                                    ├─ packet-too-big (IPv6)           ─► ICMPv6 error to the Tun
 *                                    ├─ fragment (IPv4, no DF)          ─► fragments to the peer
 *                                    ├─ below-ipv6-minimum (≤ 1280)     ─► the packet to the peer
 *                                    └─ malformed / fits                ─► drop / the packet
 * ```
 *
 * The error's source is the original's destination, the far end: a router on the path
 * would use its own address, but the mesh has none the sender's kernel would accept, and
 * this peer's own overlay address is a local address of that kernel, which drops an
 * arriving packet from it as a martian (see `src/net/icmp-errors.ts`;
 * `test/root/pmtu-netns.test.ts` shows the kernel taking the far end's).
 *
 * An IPv6 packet of at most 1280 bytes on a path below 1280 (RFC 8200 §5: every link
 * carries 1280) is sent as it is: its WireGuard datagram is then larger than the path,
 * and the underlay's IP fragmentation carries it (the sending kernel fragments UDP
 * larger than its interface or its cached path MTU; a black hole further on loses it).
 *
 * Errors are limited per far end by a token bucket (RFC 1812 §4.3.2.8, RFC 4443 §2.4
 * (f)): a burst of ICMP_BURST, then ICMP_PER_SECOND. A sender's kernel caches what one
 * error told it for ten minutes (Linux `ip_rt_mtu_expires`) for every socket to that
 * destination, so a few per second are plenty, and a flood of oversize packets costs a
 * few errors, not one each.
 */
import { fragmentationNeeded, packetTooBig, pathMtuAction } from "../net/icmp-errors.ts";
import type { IpPrefix } from "../net/ip.ts";
import { fragmentIpv4, IPV4_DESTINATION_OFFSET } from "../net/ipv4-fragment.ts";

/** Errors a far end may get at once, and per second after that. */
export const ICMP_BURST = 10;
export const ICMP_PER_SECOND = 5;
/** Far ends the limiter remembers; past it the quietest is forgotten (its bucket was full). */
export const ICMP_LIMITER_MAX_ENTRIES = 1024;

const IPV6_DESTINATION_OFFSET = 24;

/** What to do with an oversize packet: the result of `handleOversize`. */
export type OversizeResult =
  /** Write `packet`, an ICMP or ICMPv6 error, back into the Tun. */
  | { readonly kind: "reply"; readonly packet: Uint8Array }
  /** Send these packets to the peer, whatever their size (fragments, or IPv6 ≤ 1280). */
  | { readonly kind: "send"; readonly packets: readonly Uint8Array[] }
  /**
   * Drop it: `malformed` (not IP), `refused` (the RFCs forbid an error for it, e.g. an
   * error, a non-first fragment, a broadcast), `rate-limited`.
   */
  | { readonly kind: "drop"; readonly reason: "malformed" | "refused" | "rate-limited" };

/** Token buckets per far end; plain data, driven by `allowIcmpError`. */
export interface IcmpRateLimiter {
  readonly burst: number;
  readonly perSecond: number;
  readonly maxEntries: number;
  /** Far end (its address bytes as a string key) → tokens left and when they were counted. */
  readonly buckets: Map<string, { tokens: number; atMs: number }>;
}

export function createIcmpRateLimiter(
  burst = ICMP_BURST,
  perSecond = ICMP_PER_SECOND,
  maxEntries = ICMP_LIMITER_MAX_ENTRIES,
): IcmpRateLimiter {
  if (!(burst >= 1) || !(perSecond > 0) || !(maxEntries >= 1))
    throw new RangeError(
      `Expected a burst of 1 or more, a positive rate and entries, got ${burst}, ${perSecond}, ${maxEntries}`,
    );
  return { burst, perSecond, maxEntries, buckets: new Map() };
}

/** Takes a token for an error from `farEnd` at `nowMs`; false when its bucket is empty. */
export function allowIcmpError(limiter: IcmpRateLimiter, farEnd: string, nowMs: number): boolean {
  const { buckets } = limiter;
  let bucket = buckets.get(farEnd);
  if (bucket === undefined) {
    if (buckets.size >= limiter.maxEntries) {
      // Map order is insertion order, refreshed below on use: the first is the quietest.
      buckets.delete(buckets.keys().next().value!);
    }
    bucket = { tokens: limiter.burst, atMs: nowMs };
  } else {
    buckets.delete(farEnd);
    const elapsedMs = Math.max(0, nowMs - bucket.atMs);
    bucket.tokens = Math.min(limiter.burst, bucket.tokens + (elapsedMs / 1000) * limiter.perSecond);
    bucket.atMs = Math.max(bucket.atMs, nowMs); // a clock stepping back earns nothing
  }
  buckets.set(farEnd, bucket);
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

/**
 * What to do with `packet`, which is longer than `mtuBytes`, the MTU of its peer's path
 * (see the file header). `overlay`, the mesh's prefix, lets the errors refuse its
 * directed broadcasts too. Never throws for packet bytes; `mtuBytes` must be an integer
 * of at least 68.
 *
 * @example
 * ```ts
 * const result = handleOversize(packet, 1220, limiter, clock.now());
 * if (result.kind === "reply") tun.write(result.packet);
 * else if (result.kind === "send") for (const p of result.packets) device.sendPacket(key, p);
 * ```
 */
export function handleOversize(
  packet: Uint8Array,
  mtuBytes: number,
  limiter: IcmpRateLimiter,
  nowMs: number,
  overlay?: IpPrefix,
): OversizeResult {
  const action = pathMtuAction(packet, mtuBytes);
  switch (action.kind) {
    case "fits":
      return { kind: "send", packets: [packet] };
    case "below-ipv6-minimum":
      return { kind: "send", packets: [packet] };
    case "malformed":
      return { kind: "drop", reason: "malformed" };
    case "fragment": {
      const result = fragmentIpv4(packet, mtuBytes);
      return result.ok
        ? { kind: "send", packets: result.fragments }
        : { kind: "drop", reason: "malformed" };
    }
    case "fragmentation-needed": {
      const farEnd = packet.subarray(IPV4_DESTINATION_OFFSET, IPV4_DESTINATION_OFFSET + 4);
      const error = fragmentationNeeded(packet, action.mtuBytes, farEnd, overlay);
      return limited(error, farEnd, limiter, nowMs);
    }
    case "packet-too-big": {
      const farEnd = packet.subarray(IPV6_DESTINATION_OFFSET, IPV6_DESTINATION_OFFSET + 16);
      // A multicast destination is no source: the error then comes from nowhere valid.
      if (farEnd[0] === 0xff) return { kind: "drop", reason: "refused" };
      const error = packetTooBig(packet, action.mtuBytes, farEnd);
      return limited(error, farEnd, limiter, nowMs);
    }
  }
}

function limited(
  error: Uint8Array | undefined,
  farEnd: Uint8Array,
  limiter: IcmpRateLimiter,
  nowMs: number,
): OversizeResult {
  if (error === undefined) return { kind: "drop", reason: "refused" };
  if (!allowIcmpError(limiter, farEnd.join("."), nowMs))
    return { kind: "drop", reason: "rate-limited" };
  return { kind: "reply", packet: error };
}
