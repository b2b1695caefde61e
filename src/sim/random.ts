/**
 * A small seeded pseudo-random generator for simulations: sfc32 (Chris Doty-Humphrey's
 * Small Fast Counting generator, as in PractRand) seeded through splitmix32. Only 32-bit
 * integer arithmetic, so a seed gives the same sequence on every runtime, and a failing
 * simulation replays from its printed seed. Not for keys or nonces: use `Crypto.randomBytes`.
 */

/** A deterministic stream of random values; the same seed gives the same stream. */
export interface Random {
  /** The seed this stream started from, to print when a test fails. */
  readonly seed: number;
  /** A float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** An integer in [0, `max`), without modulo bias; `max` is an integer from 1 to 2^32. */
  int(max: number): number;
  /** `n` random bytes. */
  bytes(n: number): Uint8Array;
}

const TWO_TO_32 = 0x1_0000_0000;
/** sfc32's authors discard the first outputs so that similar seeds diverge. */
const WARM_UP_ROUNDS = 12;

/**
 * A Random seeded from any safe integer (both 32-bit halves count, so `Date.now()` works).
 *
 * @example Replaying a simulation
 * ```ts
 * const random = createRandom(Date.now());
 * console.log(`simulation seed ${random.seed}`); // rerun with createRandom(thatSeed)
 * ```
 */
export function createRandom(seed: number): Random {
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`Expected "seed" to be a safe integer, got ${seed}`);
  }
  const mix = splitmix32((seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_TO_32) >>> 0, 0x9e3779b9));
  let a = mix();
  let b = mix();
  let c = mix();
  let d = mix();

  /** One sfc32 step: an unsigned 32-bit integer. */
  function nextUint32(): number {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  }
  for (let i = 0; i < WARM_UP_ROUNDS; i++) nextUint32();

  return {
    seed,
    next: () => nextUint32() / TWO_TO_32,
    int(max) {
      if (!Number.isInteger(max) || max < 1 || max > TWO_TO_32) {
        throw new RangeError(`Expected "max" to be an integer from 1 to 2^32, got ${max}`);
      }
      // Reject the top partial range so every result is equally likely.
      const limit = TWO_TO_32 - (TWO_TO_32 % max);
      let x = nextUint32();
      while (x >= limit) x = nextUint32();
      return x % max;
    },
    bytes(n) {
      if (!Number.isInteger(n) || n < 0) {
        throw new RangeError(`Expected "n" to be a non-negative integer, got ${n}`);
      }
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i += 4) {
        let x = nextUint32();
        for (let j = i; j < Math.min(i + 4, n); j++) {
          out[j] = x & 0xff;
          x >>>= 8;
        }
      }
      return out;
    },
  };
}

/** splitmix32 (after Steele, Lea and Flood's SplitMix): spreads a seed over sfc32's state. */
function splitmix32(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}
