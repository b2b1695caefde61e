/**
 * Path MTU of a mesh peer (issue #9, "Path MTU"): the largest IP packet from the Tun that
 * reaches it in one WireGuard datagram. Pure state and functions; the Mesh sends the
 * probes and applies the result with `device.setPeerMtu`.
 *
 * Sizes here are IP packet bytes inside the tunnel (transport plaintext), never underlay
 * bytes. A WireGuard datagram adds its header and tag (32), UDP (8) and the outer IP
 * header (20 or 40), so:
 *
 * - the Tun MTU is the underlay MTU minus 80 (`TUN_MTU_OVERHEAD_BYTES`, WireGuard's rule:
 *   an IPv6 outer header, the larger), 1420 on a 1500 underlay, the same for every peer;
 * - a direct path's ceiling is min(Tun MTU, underlay MTU towards its endpoint minus 60
 *   over IPv4 or 80 over IPv6), where the underlay MTU is what the host's routing says
 *   (the interface's MTU or a cached path MTU), because the host's own kernel fragments
 *   a UDP datagram larger than that silently and probes would never see the limit;
 * - probing finds black holes beyond the host (a smaller link further on that drops
 *   bigger packets without a word): padded pings of each rung of a ladder (below),
 *   answered by any peer with an ordinary pong;
 * - a relayed path carries the packet's WireGuard message inside a relay frame in the
 *   first hop's session: its MTU is min(first hop's path MTU, the mesh's largest frame)
 *   minus the relay frame header (68: type, length, hop limit, two keys) and the message's header and tag (32). Only the
 *   first hop is measured; a smaller link between two relays further on is crossed by
 *   the relay cutting the frame into mesh fragments (`fragments.ts`), at a cost, but
 *   the sender is not told a smaller MTU.
 *
 * Probing: every rung at or below the ceiling is probed at once, one probe per rung per
 * PROBE_INTERVAL_MS. An answer makes that rung and every smaller one good; three
 * unanswered probes make a rung bad. The MTU in use is the largest rung not known to be
 * bad, so it is optimistic at first (the ceiling, as stock WireGuard would use) and never
 * drops below what the path carries: lowering it tells the local kernel, which remembers
 * for ten minutes, so a transient low value would cost ten minutes of small packets. A
 * black hole costs three probe intervals of lost big packets, once per path. Every
 * REPROBE_MS the rungs from the current one up are probed again (a bad rung stays bad
 * until answered), so a path that grew is noticed, and one that shrank too: a good rung
 * turning bad sends every smaller rung back to probing. A new path (endpoint) or ceiling
 * starts over.
 *
 * ```
 *   rung: unknown ──answer──► good ◄──answer── bad
 *            └───3 unanswered──► bad ◄──3 unanswered (re-probe)── good
 * ```
 */

/**
 * Inner MTUs of common underlays, largest first: 1432/1412 PPPoE (1492) over IPv4/IPv6,
 * 1400 a 1480 underlay (6in4, IPIP) over IPv6, 1380 and 1340/1320 tunnelled or IPsec
 * clouds (about 1440 and 1400), 1280 the IPv6 minimum (worth knowing exactly: IPv6 must
 * get 1280 through), 1220/1200 a 1280 underlay over IPv4/IPv6, 1024 and 576 the floor
 * (IPv4's minimum reassembly size, below which we stop asking). Rungs above a path's
 * ceiling are skipped and the ceiling itself is the first rung.
 */
export const PATH_MTU_LADDER: readonly number[] = [
  1432, 1412, 1400, 1380, 1340, 1320, 1280, 1220, 1200, 1024, 576,
];
/** Underlay MTU minus this is the Tun MTU (WireGuard's rule: 1500 → 1420). */
export const TUN_MTU_OVERHEAD_BYTES = 80;
/** A transport message's header (16) and tag (16). */
export const TRANSPORT_OVERHEAD_BYTES = 32;
const UDP_HEADER_BYTES = 8;
const IPV4_HEADER_BYTES = 20;
const IPV6_HEADER_BYTES = 40;
/** One probe per rung per interval; as the path's liveness pings are paced. */
export const PROBE_INTERVAL_MS = 1_000;
/** Unanswered probes that make a rung bad (like the three pings that declare a path dead). */
export const MAX_UNANSWERED_PROBES = 3;
/** How often the rungs above the current MTU are tried again. */
export const REPROBE_MS = 10 * 60_000;

export interface PathMtuSettings {
  readonly ladder: readonly number[];
  readonly probeIntervalMs: number;
  readonly maxUnanswered: number;
  readonly reprobeMs: number;
}

export const DEFAULT_PATH_MTU_SETTINGS: PathMtuSettings = {
  ladder: PATH_MTU_LADDER,
  probeIntervalMs: PROBE_INTERVAL_MS,
  maxUnanswered: MAX_UNANSWERED_PROBES,
  reprobeMs: REPROBE_MS,
};

export type RungState = "unknown" | "good" | "bad";

export interface Rung {
  readonly bytes: number;
  state: RungState;
  /** Being probed in the current round. */
  probing: boolean;
  /** Probes sent in the current round, and when the last went. */
  sent: number;
  lastSentMs: number;
}

/** What is known about one path; mutable, driven by the functions below. */
export interface PathMtuState {
  /** The path this is about (the endpoint's key): another path starts over. */
  readonly pathKey: string;
  readonly ceilingBytes: number;
  /** Largest first; the first is the ceiling. */
  readonly rungs: readonly Rung[];
  /** Probe nonce (hex) → the rung it probes. */
  readonly outstanding: Map<string, number>;
  readonly startedMs: number;
  /** When the first round ended (every rung above the MTU known bad): for benchmarks. */
  convergedMs: number | undefined;
  /** When the next re-probe starts, once no round is running. */
  nextReprobeMs: number;
}

/** Bytes an underlay adds to a tunnelled packet towards `address` (IPv6 if it has a colon). */
export function underlayOverheadBytes(address: string): number {
  return (
    (address.includes(":") ? IPV6_HEADER_BYTES : IPV4_HEADER_BYTES) +
    UDP_HEADER_BYTES +
    TRANSPORT_OVERHEAD_BYTES
  );
}

/**
 * The largest packet a direct path to `address` may carry before probing: the Tun MTU,
 * or less when the underlay towards it is smaller (`underlayMtu`, from the host's routes).
 */
export function directCeilingBytes(
  tunMtu: number,
  address: string,
  underlayMtu: number | undefined,
  floorBytes = PATH_MTU_LADDER[PATH_MTU_LADDER.length - 1]!,
): number {
  if (underlayMtu === undefined) return tunMtu;
  return Math.max(floorBytes, Math.min(tunMtu, underlayMtu - underlayOverheadBytes(address)));
}

/** The MTU of a path relayed through a first hop whose path MTU is `hopMtu` (file header). */
export function relayedPathMtu(hopMtu: number, maxFrameBytes: number, relayHeaderBytes: number) {
  return Math.min(hopMtu, maxFrameBytes) - relayHeaderBytes - TRANSPORT_OVERHEAD_BYTES;
}

/** A path just confirmed: every rung unknown and being probed. */
export function createPathMtu(
  pathKey: string,
  ceilingBytes: number,
  nowMs: number,
  settings: PathMtuSettings = DEFAULT_PATH_MTU_SETTINGS,
): PathMtuState {
  if (!Number.isInteger(ceilingBytes) || ceilingBytes < 1)
    throw new RangeError(`Expected "ceilingBytes" to be a positive integer, got ${ceilingBytes}`);
  const sizes = [ceilingBytes, ...settings.ladder.filter((bytes) => bytes < ceilingBytes)];
  return {
    pathKey,
    ceilingBytes,
    rungs: sizes.map((bytes) => ({
      bytes,
      state: "unknown",
      probing: true,
      sent: 0,
      lastSentMs: Number.NEGATIVE_INFINITY,
    })),
    outstanding: new Map(),
    startedMs: nowMs,
    convergedMs: undefined,
    nextReprobeMs: Number.POSITIVE_INFINITY,
  };
}

/** The MTU to use now: the largest rung not known to be bad (the smallest if all are). */
export function pathMtuBytes(state: PathMtuState): number {
  for (const rung of state.rungs) if (rung.state !== "bad") return rung.bytes;
  return state.rungs[state.rungs.length - 1]!.bytes;
}

/** Whether a round of probes is running. */
export function isProbing(state: PathMtuState): boolean {
  return state.rungs.some((rung) => rung.probing);
}

/**
 * Advances time: rungs whose last probe went unanswered too often turn bad, a re-probe
 * starts when due, and the sizes to probe now come back, largest first (the caller sends
 * each and records its nonce with `probeSent`).
 */
export function tickPathMtu(
  state: PathMtuState,
  nowMs: number,
  settings: PathMtuSettings = DEFAULT_PATH_MTU_SETTINGS,
): number[] {
  if (!isProbing(state) && nowMs >= state.nextReprobeMs) startReprobe(state);
  const due: number[] = [];
  for (const rung of state.rungs) {
    if (!rung.probing || nowMs - rung.lastSentMs < settings.probeIntervalMs) continue;
    if (rung.sent >= settings.maxUnanswered) {
      const wasGood = rung.state === "good";
      resolve(state, rung, "bad");
      if (wasGood) restartBelow(state, rung);
      continue;
    }
    rung.sent++;
    rung.lastSentMs = nowMs;
    due.push(rung.bytes);
  }
  endRoundIfDone(state, nowMs, settings);
  return due;
}

/** Records the nonce (hex) of a probe of `bytes` just sent. */
export function probeSent(state: PathMtuState, nonce: string, bytes: number): void {
  state.outstanding.set(nonce, bytes);
}

/**
 * A pong came for `nonce`: if it was a probe of this path, its rung and every smaller one
 * are good. Returns whether the nonce was one of ours (else it is some other ping's).
 */
export function probeAnswered(
  state: PathMtuState,
  nonce: string,
  nowMs: number,
  settings: PathMtuSettings = DEFAULT_PATH_MTU_SETTINGS,
): boolean {
  const bytes = state.outstanding.get(nonce);
  if (bytes === undefined) return false;
  for (const rung of state.rungs) if (rung.bytes <= bytes) resolve(state, rung, "good");
  endRoundIfDone(state, nowMs, settings);
  return true;
}

function resolve(state: PathMtuState, rung: Rung, verdict: "good" | "bad"): void {
  rung.state = verdict;
  rung.probing = false;
  for (const [nonce, bytes] of state.outstanding)
    if (bytes === rung.bytes) state.outstanding.delete(nonce);
}

/** The rungs from the current MTU up are probed again; bad ones stay bad until answered. */
function startReprobe(state: PathMtuState): void {
  const mtu = pathMtuBytes(state);
  for (const rung of state.rungs) if (rung.bytes >= mtu) startProbing(rung);
}

/** A good rung turned bad: the path shrank, and what was good below it is in doubt too. */
function restartBelow(state: PathMtuState, failed: Rung): void {
  for (const rung of state.rungs) {
    if (rung.bytes >= failed.bytes || rung.probing) continue;
    if (rung.state === "good") rung.state = "unknown";
    startProbing(rung);
  }
}

function startProbing(rung: Rung): void {
  rung.probing = true;
  rung.sent = 0;
  rung.lastSentMs = Number.NEGATIVE_INFINITY;
}

function endRoundIfDone(state: PathMtuState, nowMs: number, settings: PathMtuSettings): void {
  if (isProbing(state)) return;
  state.convergedMs ??= nowMs;
  if (state.nextReprobeMs <= nowMs || state.nextReprobeMs === Number.POSITIVE_INFINITY)
    state.nextReprobeMs = nowMs + settings.reprobeMs;
}
