/**
 * WireGuard's four message formats (whitepaper §5.4.2-5.4.6): little-endian header
 * fields at fixed offsets (constants.ts). Writers fill a fresh buffer; readers return
 * views into the datagram and never throw: a wrong size or type gives `undefined`.
 */
import {
  COOKIE_NONCE_SIZE,
  COOKIE_REPLY_COOKIE_OFFSET,
  COOKIE_REPLY_NONCE_OFFSET,
  COOKIE_REPLY_RECEIVER_OFFSET,
  INITIATION_EPHEMERAL_OFFSET,
  INITIATION_MAC1_OFFSET,
  INITIATION_SENDER_OFFSET,
  INITIATION_STATIC_OFFSET,
  INITIATION_TIMESTAMP_OFFSET,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  RESPONSE_EMPTY_OFFSET,
  RESPONSE_EPHEMERAL_OFFSET,
  RESPONSE_MAC1_OFFSET,
  RESPONSE_RECEIVER_OFFSET,
  RESPONSE_SENDER_OFFSET,
} from "./constants.ts";

/**
 * The message type: the first four bytes as a little-endian integer, so a message whose
 * reserved bytes are not zero has no known type (as in wireguard-go). 0 when too short.
 */
export function messageType(data: Uint8Array): number {
  if (data.length < 4) return 0;
  return (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0;
}

/** Reads a little-endian uint32 at `offset`. */
export function readUint32(data: Uint8Array, offset: number): number {
  return (
    (data[offset]! |
      (data[offset + 1]! << 8) |
      (data[offset + 2]! << 16) |
      (data[offset + 3]! << 24)) >>>
    0
  );
}

/** Writes a little-endian uint32 at `offset`. */
export function writeUint32(data: Uint8Array, offset: number, value: number): void {
  data[offset] = value & 0xff;
  data[offset + 1] = (value >>> 8) & 0xff;
  data[offset + 2] = (value >>> 16) & 0xff;
  data[offset + 3] = (value >>> 24) & 0xff;
}

/** Is this a well-formed message of a known type and its exact (or minimum) size? */
export function isWellFormed(data: Uint8Array): boolean {
  switch (messageType(data)) {
    case MESSAGE_INITIATION_TYPE:
      return data.length === MESSAGE_INITIATION_SIZE;
    case MESSAGE_RESPONSE_TYPE:
      return data.length === MESSAGE_RESPONSE_SIZE;
    case MESSAGE_COOKIE_REPLY_TYPE:
      return data.length === MESSAGE_COOKIE_REPLY_SIZE;
    case MESSAGE_TRANSPORT_TYPE:
      return data.length >= MESSAGE_TRANSPORT_MIN_SIZE;
    default:
      return false;
  }
}

export interface InitiationFields {
  readonly sender: number;
  readonly ephemeral: Uint8Array;
  readonly encryptedStatic: Uint8Array;
  readonly encryptedTimestamp: Uint8Array;
}

/** A 148-byte initiation with mac1 and mac2 left zero (cookie.ts fills them). */
export function writeInitiationMessage(fields: InitiationFields): Uint8Array {
  const out = new Uint8Array(MESSAGE_INITIATION_SIZE);
  out[0] = MESSAGE_INITIATION_TYPE;
  writeUint32(out, INITIATION_SENDER_OFFSET, fields.sender);
  out.set(fields.ephemeral, INITIATION_EPHEMERAL_OFFSET);
  out.set(fields.encryptedStatic, INITIATION_STATIC_OFFSET);
  out.set(fields.encryptedTimestamp, INITIATION_TIMESTAMP_OFFSET);
  return out;
}

/** Views of an initiation's fields, or undefined when it is not one. */
export function readInitiationMessage(data: Uint8Array): InitiationFields | undefined {
  if (messageType(data) !== MESSAGE_INITIATION_TYPE || data.length !== MESSAGE_INITIATION_SIZE)
    return undefined;
  return {
    sender: readUint32(data, INITIATION_SENDER_OFFSET),
    ephemeral: data.subarray(INITIATION_EPHEMERAL_OFFSET, INITIATION_STATIC_OFFSET),
    encryptedStatic: data.subarray(INITIATION_STATIC_OFFSET, INITIATION_TIMESTAMP_OFFSET),
    encryptedTimestamp: data.subarray(INITIATION_TIMESTAMP_OFFSET, INITIATION_MAC1_OFFSET),
  };
}

export interface ResponseFields {
  readonly sender: number;
  readonly receiver: number;
  readonly ephemeral: Uint8Array;
  readonly encryptedNothing: Uint8Array;
}

/** A 92-byte response with mac1 and mac2 left zero. */
export function writeResponseMessage(fields: ResponseFields): Uint8Array {
  const out = new Uint8Array(MESSAGE_RESPONSE_SIZE);
  out[0] = MESSAGE_RESPONSE_TYPE;
  writeUint32(out, RESPONSE_SENDER_OFFSET, fields.sender);
  writeUint32(out, RESPONSE_RECEIVER_OFFSET, fields.receiver);
  out.set(fields.ephemeral, RESPONSE_EPHEMERAL_OFFSET);
  out.set(fields.encryptedNothing, RESPONSE_EMPTY_OFFSET);
  return out;
}

/** Views of a response's fields, or undefined when it is not one. */
export function readResponseMessage(data: Uint8Array): ResponseFields | undefined {
  if (messageType(data) !== MESSAGE_RESPONSE_TYPE || data.length !== MESSAGE_RESPONSE_SIZE)
    return undefined;
  return {
    sender: readUint32(data, RESPONSE_SENDER_OFFSET),
    receiver: readUint32(data, RESPONSE_RECEIVER_OFFSET),
    ephemeral: data.subarray(RESPONSE_EPHEMERAL_OFFSET, RESPONSE_EMPTY_OFFSET),
    encryptedNothing: data.subarray(RESPONSE_EMPTY_OFFSET, RESPONSE_MAC1_OFFSET),
  };
}

export interface CookieReplyFields {
  readonly receiver: number;
  readonly nonce: Uint8Array;
  readonly encryptedCookie: Uint8Array;
}

/** A 64-byte cookie reply. */
export function writeCookieReplyMessage(fields: CookieReplyFields): Uint8Array {
  const out = new Uint8Array(MESSAGE_COOKIE_REPLY_SIZE);
  out[0] = MESSAGE_COOKIE_REPLY_TYPE;
  writeUint32(out, COOKIE_REPLY_RECEIVER_OFFSET, fields.receiver);
  out.set(fields.nonce, COOKIE_REPLY_NONCE_OFFSET);
  out.set(fields.encryptedCookie, COOKIE_REPLY_COOKIE_OFFSET);
  return out;
}

/** Views of a cookie reply's fields, or undefined when it is not one. */
export function readCookieReplyMessage(data: Uint8Array): CookieReplyFields | undefined {
  if (messageType(data) !== MESSAGE_COOKIE_REPLY_TYPE || data.length !== MESSAGE_COOKIE_REPLY_SIZE)
    return undefined;
  return {
    receiver: readUint32(data, COOKIE_REPLY_RECEIVER_OFFSET),
    nonce: data.subarray(COOKIE_REPLY_NONCE_OFFSET, COOKIE_REPLY_NONCE_OFFSET + COOKIE_NONCE_SIZE),
    encryptedCookie: data.subarray(COOKIE_REPLY_COOKIE_OFFSET),
  };
}
