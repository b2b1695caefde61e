/**
 * The Noise_IKpsk2 handshake (noiseprotocol.org rev 34, §7.5 and §9) over the Crypto
 * seam, as WireGuard uses it (whitepaper §5.4.2-5.4.4), with the prologue and the
 * protocol name as parameters so the same code runs the generic Noise test vectors.
 *
 *   initiator                                  responder
 *   <- s                       (pre-message: the responder's static key is known)
 *   -> e, es, s, ss, {payload} (initiation)
 *   <- e, ee, se, psk, {payload} (response)
 *   split() -> (initiator send key, initiator receive key)
 *
 * Pure functions: state in, new state out. Every failure (bad AEAD, low-order point)
 * returns null. Intermediate secrets are wiped where the code owns them; JS may keep
 * copies elsewhere that no one can wipe.
 */
import {
  AEAD_NONCE_BYTES,
  type Crypto,
  KEY_BYTES,
  kdf1,
  kdf2,
  kdf3,
  wipe,
} from "../crypto/index.ts";

/** The symmetric state both sides carry through the handshake: chaining key and hash. */
export interface SymmetricState {
  readonly chainingKey: Uint8Array;
  readonly hash: Uint8Array;
}

/** Handshake nonces are always zero: each handshake key encrypts exactly once. */
const ZERO_NONCE = new Uint8Array(AEAD_NONCE_BYTES);
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/**
 * The state before the first message: ck = HASH(name), h = HASH(HASH(ck || prologue) || rs).
 * Depends only on the responder's static key, so both sides can precompute it.
 */
export function initialState(
  crypto: Crypto,
  protocolName: string,
  prologue: Uint8Array,
  responderStatic: Uint8Array,
): SymmetricState {
  // Names longer than the hash length are hashed (Noise §5.2); WireGuard's is 37 bytes.
  const name = encoder.encode(protocolName);
  const chainingKey = name.length <= 32 ? padTo32(name) : crypto.hash(name);
  const hash = crypto.hash(crypto.hash(chainingKey, prologue), responderStatic);
  return { chainingKey, hash };
}

function padTo32(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  out.set(bytes);
  return out;
}

/** The initiator's state between sending the initiation and reading the response. */
export interface InitiatorState extends SymmetricState {
  readonly ephemeralPrivate: Uint8Array;
}

export interface InitiationBody {
  readonly ephemeralPublic: Uint8Array;
  /** The initiator's static public key, sealed: 32 + 16 bytes. */
  readonly encryptedStatic: Uint8Array;
  /** The payload (a TAI64N timestamp in WireGuard), sealed. */
  readonly encryptedPayload: Uint8Array;
}

/** Initiator, message 1: e, es, s, ss, {payload}. */
export function writeInitiation(
  crypto: Crypto,
  start: SymmetricState,
  localStaticPrivate: Uint8Array,
  localStaticPublic: Uint8Array,
  remoteStatic: Uint8Array,
  ephemeralPrivate: Uint8Array,
  payload: Uint8Array,
): { body: InitiationBody; state: InitiatorState } | null {
  const ephemeralPublic = crypto.publicKey(ephemeralPrivate);
  let ck = kdf1(crypto, start.chainingKey, ephemeralPublic);
  let h = crypto.hash(start.hash, ephemeralPublic);

  const es = crypto.dh(ephemeralPrivate, remoteStatic);
  if (!es) return null;
  let key: Uint8Array;
  [ck, key] = kdf2(crypto, ck, es);
  const encryptedStatic = crypto.aeadSeal(key, ZERO_NONCE, localStaticPublic, h);
  h = crypto.hash(h, encryptedStatic);

  const ss = crypto.dh(localStaticPrivate, remoteStatic);
  if (!ss) return null;
  wipe(key, es);
  [ck, key] = kdf2(crypto, ck, ss);
  const encryptedPayload = crypto.aeadSeal(key, ZERO_NONCE, payload, h);
  h = crypto.hash(h, encryptedPayload);
  wipe(key, ss);

  return {
    body: { ephemeralPublic, encryptedStatic, encryptedPayload },
    state: { chainingKey: ck, hash: h, ephemeralPrivate },
  };
}

/** What the responder learns from a valid initiation. */
export interface ReadInitiation {
  readonly initiatorStatic: Uint8Array;
  readonly initiatorEphemeral: Uint8Array;
  readonly payload: Uint8Array;
  readonly state: SymmetricState;
}

/**
 * Responder, message 1. `staticShared` is DH(local static, initiator static) if already
 * known for this initiator (a precomputation), else computed here. Returns null when the
 * message does not authenticate.
 */
export function readInitiation(
  crypto: Crypto,
  start: SymmetricState,
  localStaticPrivate: Uint8Array,
  body: InitiationBody,
  staticShared?: (initiatorStatic: Uint8Array) => Uint8Array | null,
): ReadInitiation | null {
  let ck = kdf1(crypto, start.chainingKey, body.ephemeralPublic);
  let h = crypto.hash(start.hash, body.ephemeralPublic);

  const es = crypto.dh(localStaticPrivate, body.ephemeralPublic);
  if (!es) return null;
  let key: Uint8Array;
  [ck, key] = kdf2(crypto, ck, es);
  const initiatorStatic = crypto.aeadOpen(key, ZERO_NONCE, body.encryptedStatic, h);
  wipe(key, es);
  if (!initiatorStatic || initiatorStatic.length !== KEY_BYTES) return null;
  h = crypto.hash(h, body.encryptedStatic);

  const ss = staticShared
    ? staticShared(initiatorStatic)
    : crypto.dh(localStaticPrivate, initiatorStatic);
  if (!ss) return null;
  [ck, key] = kdf2(crypto, ck, ss);
  const payload = crypto.aeadOpen(key, ZERO_NONCE, body.encryptedPayload, h);
  wipe(key);
  if (!payload) return null;
  h = crypto.hash(h, body.encryptedPayload);

  return {
    initiatorStatic,
    initiatorEphemeral: body.ephemeralPublic,
    payload,
    state: { chainingKey: ck, hash: h },
  };
}

export interface ResponseBody {
  readonly ephemeralPublic: Uint8Array;
  /** The payload (empty in WireGuard), sealed: payload length + 16 bytes. */
  readonly encryptedPayload: Uint8Array;
}

/**
 * The part of message 2 both sides compute alike: mix in the responder's ephemeral, the
 * two DH results (ee, se) and the preshared key. Returns the state and the key that
 * seals the payload, or null for a low-order point. Wipes the DH results.
 */
function mixResponse(
  crypto: Crypto,
  start: SymmetricState,
  responderEphemeral: Uint8Array,
  ee: Uint8Array | null,
  se: Uint8Array | null,
  presharedKey: Uint8Array,
): { state: SymmetricState; key: Uint8Array } | null {
  if (!ee || !se) return null;
  let ck = kdf1(crypto, start.chainingKey, responderEphemeral);
  ck = kdf1(crypto, ck, ee);
  ck = kdf1(crypto, ck, se);
  wipe(ee, se);
  const [chainingKey, tau, key] = kdf3(crypto, ck, presharedKey);
  const hash = crypto.hash(crypto.hash(start.hash, responderEphemeral), tau);
  wipe(tau);
  return { state: { chainingKey, hash }, key };
}

/** Responder, message 2: e, ee, se, psk, {payload}. Returns the final symmetric state. */
export function writeResponse(
  crypto: Crypto,
  read: ReadInitiation,
  presharedKey: Uint8Array,
  ephemeralPrivate: Uint8Array,
  payload: Uint8Array,
): { body: ResponseBody; state: SymmetricState } | null {
  const ephemeralPublic = crypto.publicKey(ephemeralPrivate);
  const ee = crypto.dh(ephemeralPrivate, read.initiatorEphemeral);
  const se = crypto.dh(ephemeralPrivate, read.initiatorStatic);
  const mixed = mixResponse(crypto, read.state, ephemeralPublic, ee, se, presharedKey);
  if (!mixed) return null;
  const encryptedPayload = crypto.aeadSeal(mixed.key, ZERO_NONCE, payload, mixed.state.hash);
  wipe(mixed.key);
  const hash = crypto.hash(mixed.state.hash, encryptedPayload);
  return {
    body: { ephemeralPublic, encryptedPayload },
    state: { chainingKey: mixed.state.chainingKey, hash },
  };
}

/** Initiator, message 2. Returns the payload and final state, or null if it does not authenticate. */
export function readResponse(
  crypto: Crypto,
  initiator: InitiatorState,
  localStaticPrivate: Uint8Array,
  presharedKey: Uint8Array,
  body: ResponseBody,
): { payload: Uint8Array; state: SymmetricState } | null {
  const ee = crypto.dh(initiator.ephemeralPrivate, body.ephemeralPublic);
  const se = crypto.dh(localStaticPrivate, body.ephemeralPublic);
  const mixed = mixResponse(crypto, initiator, body.ephemeralPublic, ee, se, presharedKey);
  if (!mixed) return null;
  const payload = crypto.aeadOpen(mixed.key, ZERO_NONCE, body.encryptedPayload, mixed.state.hash);
  wipe(mixed.key);
  if (!payload) return null;
  const hash = crypto.hash(mixed.state.hash, body.encryptedPayload);
  return { payload, state: { chainingKey: mixed.state.chainingKey, hash } };
}

/**
 * Split (Noise §5.2): the two transport keys. The initiator sends with the first and
 * receives with the second; the responder the other way round. Wipes the chaining key.
 */
export function split(crypto: Crypto, state: SymmetricState): [Uint8Array, Uint8Array] {
  const keys = kdf2(crypto, state.chainingKey, EMPTY);
  wipe(state.chainingKey);
  return keys;
}
