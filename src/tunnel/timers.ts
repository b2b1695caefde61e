/**
 * A peer's protocol timers (whitepaper §6, after wireguard-go timers.go) as deadlines in
 * milliseconds, set and cleared by named protocol events. The device arms one clock timer
 * per peer for the earliest deadline and calls `expired` when it fires; nothing here
 * touches a clock.
 *
 *   event                         effect
 *   handshakeInitiated            retransmitHandshake = now + REKEY_TIMEOUT + jitter
 *   handshakeComplete             retransmitHandshake cleared, attempts = 0
 *   sessionDerived                zeroKeyMaterial = now + 3 * REJECT_AFTER_TIME
 *   dataSent                      newHandshake = now + KEEPALIVE + REKEY_TIMEOUT + jitter, unless set
 *   dataReceived                  sendKeepalive = now + KEEPALIVE_TIMEOUT, unless set
 *   anyAuthenticatedPacketSent    sendKeepalive cleared
 *   anyAuthenticatedPacketReceived newHandshake cleared
 *   anyAuthenticatedPacketTraversal persistentKeepalive = now + interval, when configured
 */
import {
  KEEPALIVE_TIMEOUT_MS,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_TIME_MS,
  REKEY_ATTEMPT_TIME_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
} from "./constants.ts";

/** The protocol's timing parameters; tests shorten them, production uses the spec's. */
export interface TimerSettings {
  readonly rekeyAfterTimeMs: number;
  readonly rejectAfterTimeMs: number;
  readonly rekeyTimeoutMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly rekeyAttemptTimeMs: number;
  readonly rekeyAfterMessages: number;
}

export type TimerName =
  | "retransmitHandshake"
  | "sendKeepalive"
  | "newHandshake"
  | "zeroKeyMaterial"
  | "persistentKeepalive";

export interface PeerTimers {
  deadlines: Partial<Record<TimerName, number>>;
  handshakeAttempts: number;
  needAnotherKeepalive: boolean;
  persistentKeepaliveMs: number;
}

export function createPeerTimers(persistentKeepaliveMs = 0): PeerTimers {
  return {
    deadlines: {},
    handshakeAttempts: 0,
    needAnotherKeepalive: false,
    persistentKeepaliveMs,
  };
}

/** Retransmissions before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT, as wireguard-go. */
export function maxHandshakeAttempts(settings: TimerSettings): number {
  return Math.max(1, Math.floor(settings.rekeyAttemptTimeMs / settings.rekeyTimeoutMs) - 2);
}

/** Jitter so that peers do not retry in lockstep. */
function jitter(random: () => number, settings: TimerSettings): number {
  return Math.floor(random() * Math.min(REKEY_TIMEOUT_JITTER_MAX_MS, settings.rekeyTimeoutMs / 10));
}

export function handshakeInitiated(
  t: PeerTimers,
  s: TimerSettings,
  now: number,
  random: () => number,
): void {
  t.deadlines.retransmitHandshake = now + s.rekeyTimeoutMs + jitter(random, s);
}

export function handshakeComplete(t: PeerTimers): void {
  delete t.deadlines.retransmitHandshake;
  t.handshakeAttempts = 0;
}

export function sessionDerived(t: PeerTimers, s: TimerSettings, now: number): void {
  t.deadlines.zeroKeyMaterial = now + s.rejectAfterTimeMs * 3;
}

export function dataSent(t: PeerTimers, s: TimerSettings, now: number, random: () => number): void {
  t.deadlines.newHandshake ??= now + s.keepaliveTimeoutMs + s.rekeyTimeoutMs + jitter(random, s);
}

export function dataReceived(t: PeerTimers, s: TimerSettings, now: number): void {
  if (t.deadlines.sendKeepalive === undefined)
    t.deadlines.sendKeepalive = now + s.keepaliveTimeoutMs;
  else t.needAnotherKeepalive = true;
}

export function anyAuthenticatedPacketSent(t: PeerTimers): void {
  delete t.deadlines.sendKeepalive;
}

export function anyAuthenticatedPacketReceived(t: PeerTimers): void {
  delete t.deadlines.newHandshake;
}

export function anyAuthenticatedPacketTraversal(t: PeerTimers, now: number): void {
  if (t.persistentKeepaliveMs > 0) t.deadlines.persistentKeepalive = now + t.persistentKeepaliveMs;
}

/** The earliest deadline, or undefined when no timer is set. */
export function nextDeadline(t: PeerTimers): number | undefined {
  let earliest: number | undefined;
  for (const d of Object.values(t.deadlines))
    if (d !== undefined && (earliest === undefined || d < earliest)) earliest = d;
  return earliest;
}

/** Removes and returns the timers due at `now`, earliest first. */
export function takeExpired(t: PeerTimers, now: number): TimerName[] {
  const due = (Object.entries(t.deadlines) as Array<[TimerName, number]>)
    .filter(([, d]) => d <= now)
    .sort((a, b) => a[1] - b[1])
    .map(([name]) => name);
  for (const name of due) delete t.deadlines[name];
  return due;
}

/** The spec's timers. */
export const SPEC_TIMERS: TimerSettings = {
  rekeyAfterTimeMs: REKEY_AFTER_TIME_MS,
  rejectAfterTimeMs: REJECT_AFTER_TIME_MS,
  rekeyTimeoutMs: REKEY_TIMEOUT_MS,
  keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS,
  rekeyAttemptTimeMs: REKEY_ATTEMPT_TIME_MS,
  rekeyAfterMessages: 2 ** 60, // REKEY_AFTER_MESSAGES as a number (see keypairs.ts)
};
