/**
 * SYN cookies (RFC 4987 §3.6): when a listener's half-open table is full, its SYN+ACK
 * carries the connection's state in its sequence number instead of in memory, and the
 * client's ACK brings it back. The ISS we choose is
 *
 *   bits 31..27  t, a 64-second time counter, mod 32
 *   bits 26..24  which MSS of MSS_TABLE the peer gets (the largest not above its own)
 *   bits 23..0   a keyed hash of the 4-tuple, the peer's ISN, t and the MSS index
 *
 * so an ACK is accepted only if ACK - 1 is a cookie we could have made in the last two
 * periods for this very tuple and sequence number; guessing takes 2^24 tries per tuple.
 * Window scaling and SACK are not remembered (a cookie connection runs without them),
 * as with classic cookies. The hash is a HalfSipHash-2-4-style ARX function keyed with
 * 64 random bits; it needs no crypto provider and no allocation.
 */

/** MSS values a cookie can carry (3 bits): common path MTUs less 40 or 60 bytes. */
export const SYN_COOKIE_MSS_TABLE: readonly number[] = [
  536, 1200, 1220, 1240, 1360, 1380, 1400, 1460,
];
/** The time counter's unit: a cookie is good for one to two of these. */
export const SYN_COOKIE_PERIOD_MS = 64_000;

/** What a SYN cookie encodes and checks. */
export interface SynCookieTuple {
  readonly remote: Uint8Array;
  readonly remotePort: number;
  readonly local: Uint8Array;
  readonly localPort: number;
}

export class SynCookies {
  readonly #k0: number;
  readonly #k1: number;

  constructor(randomUint32: () => number) {
    this.#k0 = randomUint32() >>> 0;
    this.#k1 = randomUint32() >>> 0;
  }

  /** The ISS for a SYN with sequence `peerIsn` and MSS option `peerMss` at `nowMs`. */
  make(tuple: SynCookieTuple, peerIsn: number, peerMss: number, nowMs: number): number {
    let index = 0;
    for (let i = SYN_COOKIE_MSS_TABLE.length - 1; i > 0; i--) {
      if (SYN_COOKIE_MSS_TABLE[i]! <= peerMss) {
        index = i;
        break;
      }
    }
    const t = Math.floor(nowMs / SYN_COOKIE_PERIOD_MS) & 31;
    return ((t << 27) | (index << 24) | this.#hash(tuple, peerIsn, t, index)) >>> 0;
  }

  /**
   * The MSS a cookie carries when `cookie` is one we made for this tuple and `peerIsn`
   * in this period or the one before, else undefined.
   */
  check(tuple: SynCookieTuple, peerIsn: number, cookie: number, nowMs: number): number | undefined {
    const t = (cookie >>> 27) & 31;
    const index = (cookie >>> 24) & 7;
    const age = (Math.floor(nowMs / SYN_COOKIE_PERIOD_MS) - t) & 31;
    if (age > 1) return undefined;
    if ((cookie & 0xffffff) !== this.#hash(tuple, peerIsn, t, index)) return undefined;
    return SYN_COOKIE_MSS_TABLE[index];
  }

  /** 24 bits of a keyed ARX hash over the tuple, the peer's ISN, t and the MSS index. */
  #hash(tuple: SynCookieTuple, peerIsn: number, t: number, index: number): number {
    const s = new SipState(this.#k0, this.#k1);
    absorbAddress(s, tuple.remote);
    absorbAddress(s, tuple.local);
    s.absorb(((tuple.remotePort << 16) | tuple.localPort) >>> 0);
    s.absorb(peerIsn >>> 0);
    s.absorb((t << 8) | index);
    return s.finish() & 0xffffff;
  }
}

function absorbAddress(s: SipState, address: Uint8Array): void {
  for (let i = 0; i + 3 < address.length; i += 4) {
    s.absorb(
      (address[i]! | (address[i + 1]! << 8) | (address[i + 2]! << 16) | (address[i + 3]! << 24)) >>>
        0,
    );
  }
}

const rotl = (x: number, b: number) => ((x << b) | (x >>> (32 - b))) >>> 0;

/** HalfSipHash-style state: four 32-bit words, two rounds per word, four to finish. */
class SipState {
  v0: number;
  v1: number;
  v2: number;
  v3: number;
  words = 0;

  constructor(k0: number, k1: number) {
    this.v0 = k0;
    this.v1 = k1;
    this.v2 = (0x6c796765 ^ k0) >>> 0;
    this.v3 = (0x74656462 ^ k1) >>> 0;
  }

  absorb(word: number): void {
    this.v3 = (this.v3 ^ word) >>> 0;
    this.round();
    this.round();
    this.v0 = (this.v0 ^ word) >>> 0;
    this.words++;
  }

  finish(): number {
    const b = ((this.words * 4) << 24) >>> 0;
    this.v3 = (this.v3 ^ b) >>> 0;
    this.round();
    this.round();
    this.v0 = (this.v0 ^ b) >>> 0;
    this.v2 = (this.v2 ^ 0xff) >>> 0;
    for (let i = 0; i < 4; i++) this.round();
    return (this.v1 ^ this.v3) >>> 0;
  }

  round(): void {
    this.v0 = (this.v0 + this.v1) >>> 0;
    this.v1 = rotl(this.v1, 5) ^ this.v0;
    this.v0 = rotl(this.v0, 16);
    this.v2 = (this.v2 + this.v3) >>> 0;
    this.v3 = rotl(this.v3, 8) ^ this.v2;
    this.v0 = (this.v0 + this.v3) >>> 0;
    this.v3 = rotl(this.v3, 7) ^ this.v0;
    this.v2 = (this.v2 + this.v1) >>> 0;
    this.v1 = rotl(this.v1, 13) ^ this.v2;
    this.v2 = rotl(this.v2, 16);
  }
}
