/**
 * Mesh control frames: what peers say to each other inside WireGuard transport messages,
 * told apart from IP packets by the first byte (IP starts with nibble 4 or 6, so a stock
 * WireGuard peer drops these as bad packets). Transport plaintext is padded, so every
 * frame carries its own length:
 *
 * ```
 * frame     = type:u8 length:u16 body[length] (padding ignored)
 * hello     = version:u8 cbor[nickname, [[address, port]...], [feature...]]
 * ping      = nonce[8]
 * pong      = nonce[8] flags:u8 port:u16 address[4|16]  (flags bit 0: "I have your hello";
 *                                                       address:port: where the ping came from)
 * relay     = hopLimit:u8 destination[32] source[32] message (a WireGuard message, sealed end to end)
 * gossip    = message (the gossip engine's own encoding)
 * datagram  = port:u16 data
 * broadcast = hopLimit:u8 source[32] port:u16 data
 * fragment  = id:u32 index:u8 count:u8 piece  (pieces of one larger frame, reassembled first)
 * candidates = cbor[[address, port]...]  (where the sender may be reached: its listen
 *              addresses and the ones peers saw it at; sent end to end, also through
 *              relays, to start hole punching)
 * ```
 *
 * Decoders return an error string for anything malformed; they never throw.
 */
import { decode as decodeCbor, encode as encodeCbor } from "cbor-x";
import { formatIp, parseIp } from "../net/ip.ts";
import type { Endpoint } from "../net/packet-conn.ts";

export const MESH_PROTOCOL_VERSION = 1;

export const FRAME_TYPE = {
  hello: 0x01,
  ping: 0x02,
  pong: 0x03,
  relay: 0x04,
  gossip: 0x05,
  datagram: 0x06,
  broadcast: 0x07,
  fragment: 0x08,
  candidates: 0x09,
} as const;

export const FRAME_HEADER_BYTES = 3;
/** The largest body a frame can declare. */
export const MAX_FRAME_BODY_BYTES = 0xffff;
export const KEY_BYTES = 32;
export const PING_NONCE_BYTES = 8;
/** Relay frames start with this many hops; each relay takes one. */
export const DEFAULT_HOP_LIMIT = 16;
/** Offset of the end-to-end message in an encoded relay frame. */
export const RELAY_HEADER_BYTES = FRAME_HEADER_BYTES + 1 + 2 * KEY_BYTES;
const MAX_NICKNAME_BYTES = 64;
const MAX_HELLO_ENDPOINTS = 16;
/** Candidates a peer offers for hole punching, at most. */
export const MAX_CANDIDATES = 16;
const MAX_FEATURES = 32;

export interface Hello {
  readonly version: number;
  readonly nickname: string;
  /** Where the sender can be reached (its listen addresses, as it knows them). */
  readonly endpoints: readonly Endpoint[];
  readonly features: readonly string[];
}

export type Frame =
  | { readonly type: "hello"; readonly hello: Hello }
  | { readonly type: "ping"; readonly nonce: Uint8Array }
  | {
      readonly type: "pong";
      readonly nonce: Uint8Array;
      readonly helloSeen: boolean;
      readonly observed: Endpoint;
    }
  | {
      readonly type: "relay";
      readonly hopLimit: number;
      readonly destination: Uint8Array;
      readonly source: Uint8Array;
      readonly message: Uint8Array;
    }
  | { readonly type: "gossip"; readonly message: Uint8Array }
  | { readonly type: "datagram"; readonly port: number; readonly data: Uint8Array }
  | {
      readonly type: "broadcast";
      readonly hopLimit: number;
      readonly source: Uint8Array;
      readonly port: number;
      readonly data: Uint8Array;
    }
  | {
      readonly type: "fragment";
      readonly id: number;
      readonly index: number;
      readonly count: number;
      readonly piece: Uint8Array;
    }
  | { readonly type: "candidates"; readonly endpoints: readonly Endpoint[] };

export type DecodedFrame = Frame | { readonly error: string };

/** Encodes a frame; throws RangeError for values no valid frame can hold (a caller's bug). */
export function encodeFrame(frame: Frame): Uint8Array {
  switch (frame.type) {
    case "hello":
      return withHeader(FRAME_TYPE.hello, encodeHello(frame.hello));
    case "ping":
      return withHeader(FRAME_TYPE.ping, checkLength(frame.nonce, PING_NONCE_BYTES, "nonce"));
    case "pong": {
      const address = parseIp(frame.observed.address);
      if (!address) throw new RangeError(`Not an IP address: ${frame.observed.address}`);
      const body = new Uint8Array(PING_NONCE_BYTES + 3 + address.length);
      body.set(checkLength(frame.nonce, PING_NONCE_BYTES, "nonce"));
      body[PING_NONCE_BYTES] = frame.helloSeen ? 1 : 0;
      writeUint16(body, PING_NONCE_BYTES + 1, checkPort(frame.observed.port));
      body.set(address, PING_NONCE_BYTES + 3);
      return withHeader(FRAME_TYPE.pong, body);
    }
    case "relay":
      return encodeRelay(frame.hopLimit, frame.destination, frame.source, frame.message);
    case "gossip":
      return withHeader(FRAME_TYPE.gossip, frame.message);
    case "datagram": {
      const body = new Uint8Array(2 + frame.data.length);
      writeUint16(body, 0, checkPort(frame.port));
      body.set(frame.data, 2);
      return withHeader(FRAME_TYPE.datagram, body);
    }
    case "broadcast": {
      const body = new Uint8Array(1 + KEY_BYTES + 2 + frame.data.length);
      body[0] = checkHopLimit(frame.hopLimit);
      body.set(checkLength(frame.source, KEY_BYTES, "source"), 1);
      writeUint16(body, 1 + KEY_BYTES, checkPort(frame.port));
      body.set(frame.data, 3 + KEY_BYTES);
      return withHeader(FRAME_TYPE.broadcast, body);
    }
    case "fragment": {
      const body = new Uint8Array(6 + frame.piece.length);
      new DataView(body.buffer).setUint32(0, frame.id >>> 0);
      body[4] = frame.index;
      body[5] = frame.count;
      body.set(frame.piece, 6);
      return withHeader(FRAME_TYPE.fragment, body);
    }
    case "candidates":
      return withHeader(
        FRAME_TYPE.candidates,
        encodeCbor(frame.endpoints.slice(0, MAX_CANDIDATES).map((e) => [e.address, e.port])),
      );
  }
}

/** A relay frame, built in one copy: it is on the data path of every relayed packet. */
export function encodeRelay(
  hopLimit: number,
  destination: Uint8Array,
  source: Uint8Array,
  message: Uint8Array,
): Uint8Array {
  const frame = new Uint8Array(RELAY_HEADER_BYTES + message.length);
  const bodyLength = frame.length - FRAME_HEADER_BYTES;
  if (bodyLength > MAX_FRAME_BODY_BYTES) throw new RangeError("Relayed message too large");
  frame[0] = FRAME_TYPE.relay;
  writeUint16(frame, 1, bodyLength);
  frame[3] = checkHopLimit(hopLimit);
  frame.set(checkLength(destination, KEY_BYTES, "destination"), 4);
  frame.set(checkLength(source, KEY_BYTES, "source"), 4 + KEY_BYTES);
  frame.set(message, RELAY_HEADER_BYTES);
  return frame;
}

/**
 * Decodes one frame from decrypted plaintext (padding after it is ignored). Returned byte
 * arrays are views into `bytes`: copy them to keep them past the call.
 */
export function decodeFrame(bytes: Uint8Array): DecodedFrame {
  if (bytes.length < FRAME_HEADER_BYTES) return { error: "shorter than a frame header" };
  const length = (bytes[1]! << 8) | bytes[2]!;
  if (FRAME_HEADER_BYTES + length > bytes.length)
    return { error: `declares ${length} bytes, has ${bytes.length - FRAME_HEADER_BYTES}` };
  const body = bytes.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
  switch (bytes[0]) {
    case FRAME_TYPE.hello:
      return decodeHello(body);
    case FRAME_TYPE.ping:
      if (body.length !== PING_NONCE_BYTES) return { error: "ping of the wrong size" };
      return { type: "ping", nonce: body };
    case FRAME_TYPE.pong: {
      const addressBytes = body.length - PING_NONCE_BYTES - 3;
      if (addressBytes !== 4 && addressBytes !== 16) return { error: "pong of the wrong size" };
      const port = readUint16(body, PING_NONCE_BYTES + 1);
      if (port === 0) return { error: "pong with port 0" };
      return {
        type: "pong",
        nonce: body.subarray(0, PING_NONCE_BYTES),
        helloSeen: (body[PING_NONCE_BYTES]! & 1) === 1,
        observed: { address: formatIp(body.subarray(PING_NONCE_BYTES + 3)), port },
      };
    }
    case FRAME_TYPE.relay:
      if (body.length <= 1 + 2 * KEY_BYTES) return { error: "relay frame without a message" };
      return {
        type: "relay",
        hopLimit: body[0]!,
        destination: body.subarray(1, 1 + KEY_BYTES),
        source: body.subarray(1 + KEY_BYTES, 1 + 2 * KEY_BYTES),
        message: body.subarray(1 + 2 * KEY_BYTES),
      };
    case FRAME_TYPE.gossip:
      if (body.length === 0) return { error: "empty gossip frame" };
      return { type: "gossip", message: body };
    case FRAME_TYPE.datagram:
      if (body.length < 2) return { error: "datagram without a port" };
      return { type: "datagram", port: readUint16(body, 0), data: body.subarray(2) };
    case FRAME_TYPE.broadcast:
      if (body.length < 3 + KEY_BYTES) return { error: "broadcast frame too short" };
      return {
        type: "broadcast",
        hopLimit: body[0]!,
        source: body.subarray(1, 1 + KEY_BYTES),
        port: readUint16(body, 1 + KEY_BYTES),
        data: body.subarray(3 + KEY_BYTES),
      };
    case FRAME_TYPE.fragment: {
      if (body.length < 7) return { error: "fragment too short" };
      const index = body[4]!;
      const count = body[5]!;
      if (count < 2 || index >= count) return { error: `fragment ${index} of ${count}` };
      return {
        type: "fragment",
        id: new DataView(body.buffer, body.byteOffset).getUint32(0),
        index,
        count,
        piece: body.subarray(6),
      };
    }
    case FRAME_TYPE.candidates: {
      let value: unknown;
      try {
        value = decodeCbor(body);
      } catch (error) {
        return {
          error: `candidates are not CBOR: ${error instanceof Error ? error.message : error}`,
        };
      }
      const endpoints = decodeEndpoints(value, MAX_CANDIDATES, "candidate");
      return "error" in endpoints ? endpoints : { type: "candidates", endpoints };
    }
    default:
      return { error: `unknown frame type ${bytes[0]}` };
  }
}

function encodeHello(hello: Hello): Uint8Array {
  const nickname = new TextEncoder().encode(hello.nickname);
  if (nickname.length > MAX_NICKNAME_BYTES) throw new RangeError("Nickname too long");
  const cbor = encodeCbor([
    hello.nickname,
    hello.endpoints.slice(0, MAX_HELLO_ENDPOINTS).map((e) => [e.address, e.port]),
    hello.features.slice(0, MAX_FEATURES),
  ]);
  const body = new Uint8Array(1 + cbor.length);
  body[0] = hello.version;
  body.set(cbor, 1);
  return body;
}

/** A hello of another protocol version decodes to its version alone, so it can be reported. */
function decodeHello(body: Uint8Array): DecodedFrame {
  if (body.length < 1) return { error: "empty hello" };
  const version = body[0]!;
  if (version !== MESH_PROTOCOL_VERSION)
    return { type: "hello", hello: { version, nickname: "", endpoints: [], features: [] } };
  let value: unknown;
  try {
    value = decodeCbor(body.subarray(1));
  } catch (error) {
    return { error: `hello is not CBOR: ${error instanceof Error ? error.message : error}` };
  }
  if (!Array.isArray(value) || value.length !== 3) return { error: "hello is not a triple" };
  const [nickname, endpoints, features] = value as unknown[];
  if (typeof nickname !== "string" || new TextEncoder().encode(nickname).length > 64)
    return { error: "hello nickname is not a short string" };
  const parsed = decodeEndpoints(endpoints, MAX_HELLO_ENDPOINTS, "hello endpoint");
  if ("error" in parsed) return parsed;
  if (
    !Array.isArray(features) ||
    features.length > MAX_FEATURES ||
    !features.every((f) => typeof f === "string" && f.length <= 32)
  )
    return { error: "hello features are not a short list of names" };
  return { type: "hello", hello: { version, nickname, endpoints: parsed, features } };
}

/** A CBOR list of [address, port] pairs, checked and made canonical. */
function decodeEndpoints(
  value: unknown,
  max: number,
  what: string,
): Endpoint[] | { readonly error: string } {
  if (!Array.isArray(value) || value.length > max)
    return { error: `${what}s are not a list of at most ${max}` };
  const parsed: Endpoint[] = [];
  for (const e of value) {
    if (!Array.isArray(e) || e.length !== 2) return { error: `${what} is not a pair` };
    const [address, port] = e as unknown[];
    const ip = typeof address === "string" ? parseIp(address) : undefined;
    if (!ip) return { error: `${what} address is not an IP address` };
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 0xffff)
      return { error: `${what} port is out of range` };
    parsed.push({ address: formatIp(ip), port });
  }
  return parsed;
}

function withHeader(type: number, body: Uint8Array): Uint8Array {
  if (body.length > MAX_FRAME_BODY_BYTES)
    throw new RangeError(`Frame body of ${body.length} bytes is over ${MAX_FRAME_BODY_BYTES}`);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  frame[0] = type;
  writeUint16(frame, 1, body.length);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

function checkLength(bytes: Uint8Array, length: number, what: string): Uint8Array {
  if (bytes.length !== length) throw new RangeError(`${what} must be ${length} bytes`);
  return bytes;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError("Bad port");
  return port;
}

function checkHopLimit(hopLimit: number): number {
  if (!Number.isInteger(hopLimit) || hopLimit < 0 || hopLimit > 255)
    throw new RangeError("Bad hop limit");
  return hopLimit;
}

function writeUint16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 8;
  bytes[offset + 1] = value & 0xff;
}

function readUint16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}
