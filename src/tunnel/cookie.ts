/**
 * mac1, mac2 and cookie replies (whitepaper §5.4.4, §5.4.7): the DoS defence of the
 * handshake. mac1 proves the sender knows our public key (every handshake message
 * carries it and it is always checked). Under load a responder also wants mac2, keyed by
 * a cookie that only the sender's real address can receive, and answers a message
 * without a valid mac2 with a cookie reply instead of doing any Diffie-Hellman.
 *
 *   CookieChecker   one per device: checks mac1/mac2 of what arrives, makes cookie replies
 *   CookieGenerator one per peer: adds mac1/mac2 to what we send, takes cookie replies
 */
import { type Crypto, equalBytes, MAC_BYTES } from "../crypto/index.ts";
import {
  COOKIE_NONCE_SIZE,
  COOKIE_REFRESH_TIME_MS,
  INITIATION_MAC1_OFFSET,
  LABEL_COOKIE,
  LABEL_MAC1,
  MESSAGE_INITIATION_TYPE,
  RESPONSE_MAC1_OFFSET,
} from "./constants.ts";
import { messageType, readCookieReplyMessage, writeCookieReplyMessage } from "./messages.ts";

const encoder = new TextEncoder();

/** Offset of mac1 in a handshake message (initiation or response); mac2 follows it. */
function mac1Offset(message: Uint8Array): number {
  return messageType(message) === MESSAGE_INITIATION_TYPE
    ? INITIATION_MAC1_OFFSET
    : RESPONSE_MAC1_OFFSET;
}

/** The responder side: one per device, keyed by the device's own static public key. */
export interface CookieChecker {
  readonly mac1Key: Uint8Array;
  readonly cookieKey: Uint8Array;
  /** Random secret the cookies are MACed with; changes every two minutes. */
  secret: Uint8Array;
  secretSetAtMs: number;
}

export function createCookieChecker(
  crypto: Crypto,
  localPublic: Uint8Array,
  nowMs: number,
): CookieChecker {
  return {
    mac1Key: crypto.hash(encoder.encode(LABEL_MAC1), localPublic),
    cookieKey: crypto.hash(encoder.encode(LABEL_COOKIE), localPublic),
    secret: crypto.randomBytes(32),
    secretSetAtMs: nowMs,
  };
}

/** Is mac1 of this handshake message valid for our public key? */
export function checkMac1(crypto: Crypto, checker: CookieChecker, message: Uint8Array): boolean {
  const offset = mac1Offset(message);
  const expected = crypto.mac(checker.mac1Key, message.subarray(0, offset));
  return equalBytes(expected, message.subarray(offset, offset + MAC_BYTES));
}

/** The cookie for a source address: MAC(secret, source); the secret is rotated when stale. */
function cookieFor(
  crypto: Crypto,
  checker: CookieChecker,
  source: Uint8Array,
  nowMs: number,
): Uint8Array {
  if (nowMs - checker.secretSetAtMs >= COOKIE_REFRESH_TIME_MS) {
    checker.secret = crypto.randomBytes(32);
    checker.secretSetAtMs = nowMs;
  }
  return crypto.mac(checker.secret, source);
}

/** Is mac2 valid, i.e. made with the current cookie for `source` (address and port bytes)? */
export function checkMac2(
  crypto: Crypto,
  checker: CookieChecker,
  message: Uint8Array,
  source: Uint8Array,
  nowMs: number,
): boolean {
  const offset = mac1Offset(message) + MAC_BYTES;
  const cookie = cookieFor(crypto, checker, source, nowMs);
  const expected = crypto.mac(cookie, message.subarray(0, offset));
  return equalBytes(expected, message.subarray(offset, offset + MAC_BYTES));
}

/** A cookie reply to `message` from `source`, addressed to the sender's index `receiver`. */
export function createCookieReply(
  crypto: Crypto,
  checker: CookieChecker,
  message: Uint8Array,
  receiver: number,
  source: Uint8Array,
  nowMs: number,
): Uint8Array {
  const offset = mac1Offset(message);
  const cookie = cookieFor(crypto, checker, source, nowMs);
  const nonce = crypto.randomBytes(COOKIE_NONCE_SIZE);
  const mac1 = message.subarray(offset, offset + MAC_BYTES);
  const encryptedCookie = crypto.xaeadSeal(checker.cookieKey, nonce, cookie, mac1);
  return writeCookieReplyMessage({ receiver, nonce, encryptedCookie });
}

/** The initiator side: one per peer, keyed by the peer's static public key. */
export interface CookieGenerator {
  readonly mac1Key: Uint8Array;
  readonly cookieKey: Uint8Array;
  /** mac1 of the last handshake message we sent: the AAD a cookie reply must match. */
  lastMac1: Uint8Array | undefined;
  cookie: Uint8Array | undefined;
  cookieSetAtMs: number;
}

export function createCookieGenerator(crypto: Crypto, peerPublic: Uint8Array): CookieGenerator {
  return {
    mac1Key: crypto.hash(encoder.encode(LABEL_MAC1), peerPublic),
    cookieKey: crypto.hash(encoder.encode(LABEL_COOKIE), peerPublic),
    lastMac1: undefined,
    cookie: undefined,
    cookieSetAtMs: 0,
  };
}

/** Writes mac1, and mac2 when we hold a fresh cookie, into a handshake message in place. */
export function addMacs(
  crypto: Crypto,
  generator: CookieGenerator,
  message: Uint8Array,
  nowMs: number,
): void {
  const offset = mac1Offset(message);
  const mac1 = crypto.mac(generator.mac1Key, message.subarray(0, offset));
  message.set(mac1, offset);
  generator.lastMac1 = mac1;
  const fresh =
    generator.cookie !== undefined && nowMs - generator.cookieSetAtMs < COOKIE_REFRESH_TIME_MS;
  const mac2 = fresh
    ? crypto.mac(generator.cookie!, message.subarray(0, offset + MAC_BYTES))
    : new Uint8Array(MAC_BYTES);
  message.set(mac2, offset + MAC_BYTES);
}

/** Takes a cookie reply; false when it does not decrypt against our last mac1. */
export function consumeCookieReply(
  crypto: Crypto,
  generator: CookieGenerator,
  reply: Uint8Array,
  nowMs: number,
): boolean {
  const fields = readCookieReplyMessage(reply);
  if (!fields || !generator.lastMac1) return false;
  const cookie = crypto.xaeadOpen(
    generator.cookieKey,
    fields.nonce,
    fields.encryptedCookie,
    generator.lastMac1,
  );
  if (!cookie) return false;
  generator.cookie = cookie;
  generator.cookieSetAtMs = nowMs;
  generator.lastMac1 = undefined; // one cookie per message we sent
  return true;
}
