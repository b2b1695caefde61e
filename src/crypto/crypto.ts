/**
 * The Crypto seam: every primitive the WireGuard protocol needs, bytes in and bytes out.
 *
 * Two implementations must agree bit for bit: the portable `@noble/*` reference
 * (`noble.ts`) and a native fast path supplied by `runtimes/`. Everything is
 * synchronous so that the packet path never awaits.
 *
 * Programmer errors (a key of the wrong length) throw `TypeError`/`RangeError` naming
 * the argument. Conditions the network can cause (a forged tag, a low-order public key)
 * return `null`, never throw, so a peer drops what it cannot authenticate and keeps serving.
 */

/** The algorithms a provider serves; each may come from a different implementation. */
export type Algorithm = "x25519" | "chacha20poly1305" | "xchacha20poly1305" | "blake2s";

/** Key, nonce and tag sizes fixed by the algorithms (RFC 7748, RFC 8439, RFC 7693). */
export const KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 12;
export const XAEAD_NONCE_BYTES = 24;
export const AEAD_TAG_BYTES = 16;
export const HASH_BYTES = 32;
export const MAC_BYTES = 16;

export interface Crypto {
  /** Which implementation serves each algorithm (e.g. "noble", "node:crypto"), for logs and benchmarks. */
  readonly implementations: Readonly<Record<Algorithm, string>>;

  /** A fresh X25519 private key: 32 random bytes, clamped as `wg genkey` does. */
  generatePrivateKey(): Uint8Array;
  /** The X25519 public key of `privateKey`. */
  publicKey(privateKey: Uint8Array): Uint8Array;
  /**
   * X25519 Diffie-Hellman (RFC 7748 §5). Returns `null` when the shared secret is all
   * zeros, which happens only for low-order public keys and which WireGuard refuses.
   */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null;

  /**
   * ChaCha20-Poly1305 (RFC 8439 §2.8) with a 12-byte nonce. Returns ciphertext followed by
   * the 16-byte tag. When `output` is given (exactly `plaintext.length + 16` bytes) the
   * result is written there and `output` is returned, so callers can seal in place in a
   * message buffer without another allocation.
   */
  aeadSeal(
    key: Uint8Array,
    nonce: Uint8Array,
    plaintext: Uint8Array,
    aad: Uint8Array,
    output?: Uint8Array,
  ): Uint8Array;
  /**
   * Opens what `aeadSeal` made. Returns `null` when authentication fails (any altered bit
   * of ciphertext, tag or `aad`, or a wrong key or nonce). When `output` is given (exactly
   * `sealed.length - 16` bytes) the plaintext is written there.
   */
  aeadOpen(
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    aad: Uint8Array,
    output?: Uint8Array,
  ): Uint8Array | null;

  /** XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) with a 24-byte nonce; used by cookie replies. */
  xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  /** Opens what `xaeadSeal` made, `null` when authentication fails. */
  xaeadOpen(
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array | null;

  /** BLAKE2s-256 of the concatenation of `parts` (RFC 7693). */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** Keyed BLAKE2s with a 16-byte output, WireGuard's `MAC(key, input)`. */
  mac(key: Uint8Array, input: Uint8Array): Uint8Array;
  /** HMAC-BLAKE2s-256 (RFC 2104 over BLAKE2s, 64-byte block), WireGuard's `HMAC`. */
  hmac(key: Uint8Array, input: Uint8Array): Uint8Array;

  /** `length` bytes from a cryptographically secure source. */
  randomBytes(length: number): Uint8Array;
}
