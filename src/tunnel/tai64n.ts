/**
 * TAI64N timestamps (https://cr.yp.to/libtai/tai64.html): 8 bytes of big-endian seconds
 * offset by 2^62, then 4 bytes of big-endian nanoseconds. The handshake initiation
 * carries one so a responder can refuse a replayed initiation (whitepaper §5.1).
 */
import { TAI64N_SIZE } from "./constants.ts";

const TAI64_BASE = 2n ** 62n;
/**
 * Nanoseconds are rounded down to a multiple of 2^24 (about 16.8 ms), as wireguard-go
 * does, so the timestamp does not leak a fine-grained clock; initiations are at least
 * 20 ms apart anyway.
 */
const NANOSECOND_WHITENER_MASK = 0x1000000 - 1;

/** The TAI64N label of a wall-clock time in milliseconds since the Unix epoch. */
export function tai64n(wallMs: number): Uint8Array {
  const out = new Uint8Array(TAI64N_SIZE);
  const view = new DataView(out.buffer);
  const seconds = Math.floor(wallMs / 1000);
  const nanos = Math.floor((wallMs - seconds * 1000) * 1e6) & ~NANOSECOND_WHITENER_MASK;
  view.setBigUint64(0, TAI64_BASE + BigInt(seconds), false);
  view.setUint32(8, nanos >>> 0, false);
  return out;
}

/** True when `a` is strictly later than `b` (big-endian labels compare as bytes). */
export function isAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TAI64N_SIZE; i++) {
    if (a[i] !== b[i]) return a[i]! > b[i]!;
  }
  return false;
}
