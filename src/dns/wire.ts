/**
 * DNS messages to and from bytes through `dns-packet`, which throws on malformed input
 * and works on its runtime's `Buffer`. Here both become plain results: decoding returns
 * a message or the reason it is not one, and the rest of `src/dns/` sees `Uint8Array`.
 */
import * as dnsPacket from "dns-packet";
import { HEADER_BYTES } from "./constants.ts";

export type DnsMessage = dnsPacket.Packet;
export type DnsAnswer = dnsPacket.Answer;

/** A decoded message, or why the bytes are not one (with the header's ID when readable). */
export type Decoded =
  | { readonly ok: true; readonly message: DnsMessage }
  | { readonly ok: false; readonly reason: string; readonly header: RawHeader | undefined };

/** The fixed header fields, readable from any 12 bytes. */
export interface RawHeader {
  readonly id: number;
  readonly isResponse: boolean;
  readonly opcode: number;
}

// dns-packet reads with Buffer methods (readUInt16BE, toString("utf-8")). It hands out
// Buffers itself, so its own output tells us the class, without the core naming a
// runtime module: a view over the same memory, no copy.
type BufferLike = Uint8Array & { readUInt16BE(offset: number): number };
const BufferClass = Object.getPrototypeOf(dnsPacket.encode({ questions: [] })).constructor as {
  from(buffer: ArrayBufferLike, offset: number, length: number): BufferLike;
};

function asBuffer(bytes: Uint8Array): BufferLike {
  return BufferClass.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The header of `bytes`, or undefined when there are fewer than 12. */
export function readHeader(bytes: Uint8Array): RawHeader | undefined {
  if (bytes.length < HEADER_BYTES) return undefined;
  const flags = (bytes[2]! << 8) | bytes[3]!;
  return {
    id: (bytes[0]! << 8) | bytes[1]!,
    isResponse: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
  };
}

/** Decodes a whole message; never throws. */
export function decodeMessage(bytes: Uint8Array): Decoded {
  const header = readHeader(bytes);
  if (header === undefined) return { ok: false, reason: "shorter than a header", header };
  // dns-packet allocates an array per section count before reading: refuse counts the
  // bytes cannot hold (a question takes at least 5 bytes, a record 11) without calling it.
  const count = (offset: number) => (bytes[offset]! << 8) | bytes[offset + 1]!;
  const least = count(4) * 5 + (count(6) + count(8) + count(10)) * 11;
  if (least > bytes.length - HEADER_BYTES) {
    return { ok: false, reason: "section counts exceed the message", header };
  }
  try {
    const message = dnsPacket.decode(
      asBuffer(bytes) as unknown as Parameters<typeof dnsPacket.decode>[0],
    );
    return { ok: true, message };
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error), header };
  }
}

/** Encodes a message; returns undefined when dns-packet cannot (a name it refuses). */
export function encodeMessage(message: DnsMessage): Uint8Array | undefined {
  try {
    const buffer = dnsPacket.encode(message);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch {
    return undefined;
  }
}

/** `bytes` with the ID set to `id` (a copy). */
export function withId(bytes: Uint8Array, id: number): Uint8Array {
  const copy = bytes.slice();
  copy[0] = id >> 8;
  copy[1] = id & 0xff;
  return copy;
}

/** The 2-byte length prefix of DNS over TCP (RFC 1035 §4.2.2) before `message`. */
export function frameForTcp(message: Uint8Array): Uint8Array {
  const framed = new Uint8Array(message.length + 2);
  framed[0] = message.length >> 8;
  framed[1] = message.length & 0xff;
  framed.set(message, 2);
  return framed;
}

/**
 * Splits a TCP byte stream into messages: feed it bytes, it returns the complete
 * messages so far and keeps the rest. Lengths are 16-bit, so at most 64 KiB is held.
 */
export function createTcpDeframer(): (data: Uint8Array) => Uint8Array[] {
  let pending = new Uint8Array(0);
  return (data) => {
    const joined = new Uint8Array(pending.length + data.length);
    joined.set(pending);
    joined.set(data, pending.length);
    const messages: Uint8Array[] = [];
    let offset = 0;
    while (joined.length - offset >= 2) {
      const length = (joined[offset]! << 8) | joined[offset + 1]!;
      if (joined.length - offset - 2 < length) break;
      messages.push(joined.slice(offset + 2, offset + 2 + length));
      offset += 2 + length;
    }
    pending = joined.slice(offset);
    return messages;
  };
}
