/**
 * What a peer of the mesh knows about one other member: where it might be reached, whether
 * a direct path to it is confirmed, and the hello it sent. Plain records and small pure
 * functions; the Mesh class drives them.
 *
 * A direct path is confirmed only by a pong to our ping through that address, inside the
 * WireGuard session: proof that both directions work, which a handshake alone is not
 * (with a one-way block a handshake can half-succeed). A connection, an edge of the
 * topology, is a confirmed direct path plus the peer's hello.
 */
import { parseIp } from "../net/ip.ts";
import { type Endpoint, endpointKey } from "../net/packet-conn.ts";
import type { PeerKey } from "./gossip-state.ts";

/** A confirmed direct path. */
export interface DirectPath {
  readonly endpoint: Endpoint;
  /** Pings sent on this path since the last pong. */
  pingsOutstanding: number;
  lastPingMs: number;
  lastPongMs: number;
  rttMs: number;
  /** Found by hole punching: a ping sent to a candidate the peer offered through a relay. */
  readonly punched: boolean;
}

/** A ping in flight: where it went, when, and whether it was part of a hole punch. */
export interface PingRecord {
  readonly endpoint: Endpoint;
  readonly sentMs: number;
  readonly punch: boolean;
}

export interface PeerState {
  readonly key: PeerKey;
  readonly publicKey: Uint8Array;
  /** Where the Device sends this peer's messages; the mesh picks the real path per message. */
  readonly virtualEndpoint: Endpoint;
  /** Configured by the operator: kept connected forever, never forgotten. */
  isStatic: boolean;
  nickname: string;
  configured: Endpoint[];
  /** From its hello and its topology entry. */
  advertised: Endpoint[];
  /** What it offered in its last candidates frame (hole punching), best first. */
  offered: Endpoint[];
  /** When we last sent it our candidates, and last pinged its offered ones (rate limits). */
  lastCandidatesSentMs: number;
  lastPunchMs: number;
  /** The neighbour its relay frames last came through: a way back before routes know it. */
  relayedVia: PeerKey | undefined;
  relayedViaMs: number;
  /** Where its authenticated packets last came from directly. */
  observed: Endpoint | undefined;
  direct: DirectPath | undefined;
  /** Pings in flight to candidates or the direct path, by nonce (hex). */
  readonly pings: Map<string, PingRecord>;
  helloReceived: boolean;
  /** The peer said (in a pong) that it has our hello. */
  helloSeen: boolean;
  lastHelloSentMs: number;
  /** When we last answered its ping with one of ours, to confirm the way back. */
  lastReversePingMs: number;
  /** A hello of another protocol version was seen; logged once. */
  incompatibleVersion: number | undefined;
  connected: boolean;
  attempts: number;
  nextAttemptMs: number;
  /** A member learned by gossip that never answered is left alone until then. */
  gaveUpUntilMs: number;
  /** Last time anything was sent towards this peer (direct or relayed), for ping pacing. */
  lastSentMs: number;
  inDevice: boolean;
}

const VIRTUAL_PREFIX = "mesh:";

export function createPeerState(key: PeerKey, publicKey: Uint8Array): PeerState {
  return {
    key,
    publicKey,
    virtualEndpoint: { address: `${VIRTUAL_PREFIX}${key}`, port: 0 },
    isStatic: false,
    nickname: "",
    configured: [],
    advertised: [],
    offered: [],
    lastCandidatesSentMs: Number.NEGATIVE_INFINITY,
    lastPunchMs: Number.NEGATIVE_INFINITY,
    observed: undefined,
    relayedVia: undefined,
    relayedViaMs: Number.NEGATIVE_INFINITY,
    direct: undefined,
    pings: new Map(),
    helloReceived: false,
    helloSeen: false,
    lastHelloSentMs: Number.NEGATIVE_INFINITY,
    lastReversePingMs: Number.NEGATIVE_INFINITY,
    incompatibleVersion: undefined,
    connected: false,
    attempts: 0,
    nextAttemptMs: 0,
    gaveUpUntilMs: 0,
    lastSentMs: Number.NEGATIVE_INFINITY,
    inDevice: false,
  };
}

/** The peer named by a virtual endpoint, or undefined for a real address. */
export function virtualPeerKey(endpoint: Endpoint): PeerKey | undefined {
  return endpoint.address.startsWith(VIRTUAL_PREFIX)
    ? endpoint.address.slice(VIRTUAL_PREFIX.length)
    : undefined;
}

/**
 * Addresses worth probing, best first, without duplicates: where its packets came from,
 * what it offered for punching, what the operator configured, what it advertised.
 */
export function candidateEndpoints(peer: PeerState, limit: number): Endpoint[] {
  return uniqueEndpoints(
    [
      ...(peer.observed ? [peer.observed] : []),
      ...peer.offered,
      ...peer.configured,
      ...peer.advertised,
    ],
    limit,
  );
}

/** The first `limit` endpoints of `list`, each once, in order. */
export function uniqueEndpoints(list: readonly Endpoint[], limit: number): Endpoint[] {
  const seen = new Set<string>();
  const out: Endpoint[] = [];
  for (const e of list) {
    const k = endpointKey(e);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(e);
    if (out.length >= limit) break;
  }
  return out;
}

export function sameEndpoint(a: Endpoint | undefined, b: Endpoint | undefined): boolean {
  return a !== undefined && b !== undefined && a.address === b.address && a.port === b.port;
}

/** Capped exponential backoff with ±25% jitter, so restarted peers do not retry in lockstep. */
export function backoffMs(
  attempts: number,
  baseMs: number,
  capMs: number,
  random: () => number,
): number {
  const raw = Math.min(capMs, baseMs * 2 ** Math.min(attempts, 30));
  return Math.round(raw * (0.75 + 0.5 * random()));
}

/**
 * Whether a candidate someone offered is worth a ping: a unicast address. Unspecified,
 * multicast and broadcast ones are refused, so a member cannot make us spray pings at a
 * group or a whole segment.
 */
export function isUnicastCandidate(endpoint: Endpoint): boolean {
  const ip = parseIp(endpoint.address);
  if (!ip || endpoint.port === 0) return false;
  if (ip.length === 4) return ip[0] !== 0 && ip[0]! < 224;
  return ip[0] !== 0xff && ip.some((b) => b !== 0);
}
