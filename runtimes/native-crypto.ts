/**
 * The native Crypto fast path: `node:crypto` (OpenSSL on Node, Rust on Deno, BoringSSL on
 * Bun) for ChaCha20-Poly1305 and X25519 where the runtime has them. Each algorithm is
 * checked once at startup against the noble reference; any algorithm the runtime lacks
 * or gets wrong stays on noble. BLAKE2s and XChaCha20-Poly1305 always come from noble:
 * `node:crypto` has no keyed BLAKE2s and no XChaCha, and neither is on the data path.
 */
import * as nodeCrypto from "node:crypto";
import {
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  assertBytes,
  type Crypto,
  clampPrivateKey,
  concatBytes,
  equalBytes,
  fromHex,
  isZero,
  KEY_BYTES,
  nobleCrypto,
} from "../src/crypto/index.ts";

/**
 * The ASN.1 DER header that wraps a raw 32-byte X25519 private key in PKCS#8 (RFC 8410).
 * Public keys travel as JWK instead: on Node 20 a JWK import takes 7 µs where SPKI DER
 * takes 106 µs. A private JWK must carry the public key too, so private keys stay DER
 * (and are imported once: see the cache below).
 */
const PKCS8_X25519_PREFIX = fromHex("302e020100300506032b656e04220420");

/**
 * Importing a raw key into a KeyObject costs more than the DH itself (on Node 20 a PKCS#8
 * import runs at about 2,800/s, a DH at 27,000/s), and WireGuard uses the same static keys
 * for every handshake. So KeyObjects are cached per key array, and each hit checks that
 * the array still holds the bytes it was imported from (callers may wipe or reuse it).
 */
interface CachedKey {
  bytes: Uint8Array;
  object: nodeCrypto.KeyObject;
}

function cachedKeyObject(
  cache: WeakMap<Uint8Array, CachedKey>,
  key: Uint8Array,
  create: (key: Uint8Array) => nodeCrypto.KeyObject,
): nodeCrypto.KeyObject {
  const hit = cache.get(key);
  if (hit && equalBytes(hit.bytes, key)) return hit.object;
  const object = create(key);
  cache.set(key, { bytes: key.slice(), object });
  return object;
}

const privateKeyCache = new WeakMap<Uint8Array, CachedKey>();
const publicKeyCache = new WeakMap<Uint8Array, CachedKey>();

function privateKeyObject(privateKey: Uint8Array): nodeCrypto.KeyObject {
  assertBytes(privateKey, KEY_BYTES, "privateKey");
  return cachedKeyObject(privateKeyCache, privateKey, (raw) =>
    nodeCrypto.createPrivateKey({
      key: Buffer.from(concatBytes(PKCS8_X25519_PREFIX, raw)),
      format: "der",
      type: "pkcs8",
    }),
  );
}

function publicKeyObject(publicKey: Uint8Array): nodeCrypto.KeyObject {
  assertBytes(publicKey, KEY_BYTES, "publicKey");
  return cachedKeyObject(publicKeyCache, publicKey, (raw) =>
    nodeCrypto.createPublicKey({
      key: { kty: "OKP", crv: "X25519", x: Buffer.from(raw).toString("base64url") },
      format: "jwk",
    }),
  );
}

/**
 * Generates the key natively and caches its KeyObject, so an ephemeral key's DHs skip
 * the slow import. OpenSSL clamps at use, so the clamped bytes and the unclamped
 * KeyObject give the same results.
 */
function nativeGeneratePrivateKey(): Uint8Array {
  const { privateKey } = nodeCrypto.generateKeyPairSync("x25519");
  const jwk = privateKey.export({ format: "jwk" });
  const raw = clampPrivateKey(new Uint8Array(Buffer.from(jwk.d ?? "", "base64url")));
  assertBytes(raw, KEY_BYTES, "generated private key");
  privateKeyCache.set(raw, { bytes: raw.slice(), object: privateKey });
  return raw;
}

function nativePublicKey(privateKey: Uint8Array): Uint8Array {
  const jwk = nodeCrypto.createPublicKey(privateKeyObject(privateKey)).export({ format: "jwk" });
  return new Uint8Array(Buffer.from(jwk.x ?? "", "base64url"));
}

function nativeDh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
  const priv = privateKeyObject(privateKey);
  const pub = publicKeyObject(publicKey);
  let shared: Uint8Array;
  try {
    shared = nodeCrypto.diffieHellman({ privateKey: priv, publicKey: pub });
  } catch {
    return null; // OpenSSL refuses an all-zero result (low-order point)
  }
  return isZero(shared) ? null : new Uint8Array(shared.buffer, shared.byteOffset, shared.length);
}

const AEAD_OPTIONS = { authTagLength: AEAD_TAG_BYTES } as const;

function checkAead(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array): void {
  assertBytes(key, KEY_BYTES, "key");
  assertBytes(nonce, AEAD_NONCE_BYTES, "nonce");
  assertBytes(aad, undefined, "aad");
}

function nativeAeadSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  output?: Uint8Array,
): Uint8Array {
  checkAead(key, nonce, aad);
  const out = output ?? new Uint8Array(plaintext.length + AEAD_TAG_BYTES);
  assertBytes(out, plaintext.length + AEAD_TAG_BYTES, "output");
  const cipher = nodeCrypto.createCipheriv("chacha20-poly1305", key, nonce, AEAD_OPTIONS);
  if (aad.length > 0) cipher.setAAD(aad, { plaintextLength: plaintext.length });
  out.set(cipher.update(plaintext), 0);
  cipher.final();
  out.set(cipher.getAuthTag(), plaintext.length);
  return out;
}

function nativeAeadOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
  output?: Uint8Array,
): Uint8Array | null {
  checkAead(key, nonce, aad);
  if (sealed.length < AEAD_TAG_BYTES) return null;
  const length = sealed.length - AEAD_TAG_BYTES;
  if (output) assertBytes(output, length, "output");
  try {
    const decipher = nodeCrypto.createDecipheriv("chacha20-poly1305", key, nonce, AEAD_OPTIONS);
    decipher.setAuthTag(sealed.subarray(length));
    if (aad.length > 0) decipher.setAAD(aad, { plaintextLength: length });
    const plaintext = decipher.update(sealed.subarray(0, length));
    decipher.final(); // throws when the tag does not authenticate
    if (!output) return new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.length);
    output.set(plaintext);
    return output;
  } catch {
    return null;
  }
}

/** Does the native X25519 agree with noble, and refuse a low-order point? */
function x25519Works(): boolean {
  try {
    const a = nobleCrypto.generatePrivateKey();
    const b = nobleCrypto.generatePrivateKey();
    const bPublic = nobleCrypto.publicKey(b);
    if (!equalBytes(nativePublicKey(a), nobleCrypto.publicKey(a))) return false;
    const generated = nativeGeneratePrivateKey();
    const generatedPublic = nobleCrypto.publicKey(generated);
    if (!equalBytes(nativeDh(generated, bPublic)!, nobleCrypto.dh(b, generatedPublic)!))
      return false;
    const shared = nativeDh(a, bPublic);
    const expected = nobleCrypto.dh(a, bPublic);
    if (!shared || !expected || !equalBytes(shared, expected)) return false;
    return nativeDh(a, new Uint8Array(KEY_BYTES)) === null; // u = 0 has order 4
  } catch {
    return false;
  }
}

/** Does the native ChaCha20-Poly1305 agree with noble, and reject a forged tag? */
function chachaWorks(): boolean {
  try {
    const key = nobleCrypto.randomBytes(KEY_BYTES);
    const nonce = nobleCrypto.randomBytes(AEAD_NONCE_BYTES);
    const aad = nobleCrypto.randomBytes(13);
    const plaintext = nobleCrypto.randomBytes(100);
    const sealed = nativeAeadSeal(key, nonce, plaintext, aad);
    if (!equalBytes(sealed, nobleCrypto.aeadSeal(key, nonce, plaintext, aad))) return false;
    const opened = nativeAeadOpen(key, nonce, sealed, aad);
    if (!opened || !equalBytes(opened, plaintext)) return false;
    sealed[sealed.length - 1]! ^= 1;
    return nativeAeadOpen(key, nonce, sealed, aad) === null;
  } catch {
    return false;
  }
}

/**
 * The native provider for this runtime: `node:crypto` per algorithm where it works,
 * noble for the rest. `implementations` says which was chosen.
 */
export function createNativeCrypto(): Crypto {
  const x25519 = x25519Works();
  const chacha = chachaWorks();
  return {
    ...nobleCrypto,
    implementations: {
      ...nobleCrypto.implementations,
      x25519: x25519 ? "node:crypto" : "noble",
      chacha20poly1305: chacha ? "node:crypto" : "noble",
    },
    generatePrivateKey: x25519 ? nativeGeneratePrivateKey : nobleCrypto.generatePrivateKey,
    publicKey: x25519 ? nativePublicKey : nobleCrypto.publicKey,
    dh: x25519 ? nativeDh : nobleCrypto.dh,
    aeadSeal: chacha ? nativeAeadSeal : nobleCrypto.aeadSeal,
    aeadOpen: chacha ? nativeAeadOpen : nobleCrypto.aeadOpen,
  };
}
