/**
 * WireGuard's key derivation (whitepaper §5.4, "HKDF" built from HMAC-BLAKE2s, RFC 5869
 * with the info string empty and one-byte counters): KDF_n(key, input) returns n 32-byte
 * keys τ1..τn where τ0 = HMAC(key, input), τ1 = HMAC(τ0, 0x1) and
 * τi = HMAC(τ0, τ(i-1) ‖ i).
 */
import { wipe } from "./bytes.ts";
import type { Crypto } from "./crypto.ts";

/** KDF with n outputs (1 to 3, as the protocol uses); τ0 is wiped before returning. */
export function kdf(
  crypto: Crypto,
  n: 1 | 2 | 3,
  key: Uint8Array,
  input: Uint8Array,
): Uint8Array[] {
  const prk = crypto.hmac(key, input);
  const out: Uint8Array[] = [];
  const block = new Uint8Array(33);
  let previous: Uint8Array = new Uint8Array(0);
  for (let i = 1; i <= n; i++) {
    block.set(previous, 0);
    block[previous.length] = i;
    previous = crypto.hmac(prk, block.subarray(0, previous.length + 1));
    out.push(previous);
  }
  wipe(prk, block);
  return out;
}

/** KDF1: one derived key. */
export function kdf1(crypto: Crypto, key: Uint8Array, input: Uint8Array): Uint8Array {
  return kdf(crypto, 1, key, input)[0]!;
}

/** KDF2: two derived keys. */
export function kdf2(crypto: Crypto, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const [a, b] = kdf(crypto, 2, key, input);
  return [a!, b!];
}

/** KDF3: three derived keys. */
export function kdf3(
  crypto: Crypto,
  key: Uint8Array,
  input: Uint8Array,
): [Uint8Array, Uint8Array, Uint8Array] {
  const [a, b, c] = kdf(crypto, 3, key, input);
  return [a!, b!, c!];
}
