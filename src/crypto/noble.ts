/**
 * The reference Crypto provider on `@noble/*`: portable to every runtime, audited, and
 * the implementation every native fast path must agree with bit for bit.
 */
import { chacha20poly1305, xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { assertBytes, isZero } from "./bytes.ts";
import {
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  type Crypto,
  HASH_BYTES,
  KEY_BYTES,
  MAC_BYTES,
  XAEAD_NONCE_BYTES,
} from "./crypto.ts";

/** Clamps an X25519 scalar in place (RFC 7748 §5), as `wg genkey` stores it. */
export function clampPrivateKey(key: Uint8Array): Uint8Array {
  key[0]! &= 248;
  key[31]! &= 127;
  key[31]! |= 64;
  return key;
}

function generatePrivateKey(): Uint8Array {
  return clampPrivateKey(randomBytes(KEY_BYTES));
}

function publicKey(privateKey: Uint8Array): Uint8Array {
  assertBytes(privateKey, KEY_BYTES, "privateKey");
  return x25519.getPublicKey(privateKey);
}

function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
  assertBytes(privateKey, KEY_BYTES, "privateKey");
  assertBytes(publicKey, KEY_BYTES, "publicKey");
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(privateKey, publicKey);
  } catch {
    return null; // noble refuses an all-zero result (low-order point)
  }
  return isZero(shared) ? null : shared;
}

function checkAead(key: Uint8Array, nonce: Uint8Array, nonceBytes: number, aad: Uint8Array): void {
  assertBytes(key, KEY_BYTES, "key");
  assertBytes(nonce, nonceBytes, "nonce");
  assertBytes(aad, undefined, "aad");
}

function aeadSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  output?: Uint8Array,
): Uint8Array {
  checkAead(key, nonce, AEAD_NONCE_BYTES, aad);
  if (output) assertBytes(output, plaintext.length + AEAD_TAG_BYTES, "output");
  return chacha20poly1305(key, nonce, aad).encrypt(plaintext, output);
}

function aeadOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
  output?: Uint8Array,
): Uint8Array | null {
  checkAead(key, nonce, AEAD_NONCE_BYTES, aad);
  if (sealed.length < AEAD_TAG_BYTES) return null;
  if (output) assertBytes(output, sealed.length - AEAD_TAG_BYTES, "output");
  try {
    return chacha20poly1305(key, nonce, aad).decrypt(sealed, output);
  } catch {
    return null;
  }
}

function xaeadSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  checkAead(key, nonce, XAEAD_NONCE_BYTES, aad);
  return xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

function xaeadOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array | null {
  checkAead(key, nonce, XAEAD_NONCE_BYTES, aad);
  if (sealed.length < AEAD_TAG_BYTES) return null;
  try {
    return xchacha20poly1305(key, nonce, aad).decrypt(sealed);
  } catch {
    return null;
  }
}

function hash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({ dkLen: HASH_BYTES });
  for (const p of parts) h.update(p);
  return h.digest();
}

function mac(key: Uint8Array, input: Uint8Array): Uint8Array {
  assertBytes(key, undefined, "key");
  return blake2s(input, { key, dkLen: MAC_BYTES });
}

function hmacBlake2s(key: Uint8Array, input: Uint8Array): Uint8Array {
  assertBytes(key, undefined, "key");
  return hmac(blake2s, key, input);
}

/** The noble provider: every algorithm from `@noble/*`. */
export const nobleCrypto = {
  implementations: {
    x25519: "noble",
    chacha20poly1305: "noble",
    xchacha20poly1305: "noble",
    blake2s: "noble",
  },
  generatePrivateKey,
  publicKey,
  dh,
  aeadSeal,
  aeadOpen,
  xaeadSeal,
  xaeadOpen,
  hash,
  mac,
  hmac: hmacBlake2s,
  randomBytes,
} as const satisfies Crypto;
