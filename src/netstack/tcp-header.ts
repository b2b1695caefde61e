/**
 * TCP headers (RFC 9293 §3.1) to and from the shared `TcpSegment`: the fixed header, the
 * options this stack understands (MSS, window scale and timestamps from RFC 7323, SACK
 * permitted and SACK blocks from RFC 2018), and the checksum over the pseudo-header.
 *
 * Decoding skips options of unknown kinds by their length and refuses option lists that
 * do not parse (a length below 2, past the header, or wrong for a known kind), as RFC 9293
 * §3.1 "Options" asks of a receiver. Encoding lays options out as Linux does (MSS, SACK
 * permitted with timestamps, NOP plus window scale, NOPs before SACK blocks) so 4-byte
 * fields stay aligned, and pads with End of Option List to a multiple of 4 bytes.
 */

import { internetChecksum } from "../net/checksum.ts";
import { pseudoHeaderSum } from "../net/pseudo-header.ts";
import { PROTOCOL_TCP, TCP_MAX_HEADER_BYTES, TCP_MIN_HEADER_BYTES } from "./constants.ts";
import { type DecodeError, decodeError } from "./decode-error.ts";
import type { TcpFlags, TcpOptions, TcpSegment } from "./tcp-segment.ts";

// Option kinds (IANA "TCP Option Kind Numbers") and their lengths.
const OPTION_END_OF_LIST = 0;
const OPTION_NO_OPERATION = 1;
const OPTION_MSS = 2;
const OPTION_MSS_BYTES = 4;
const OPTION_WINDOW_SCALE = 3;
const OPTION_WINDOW_SCALE_BYTES = 3;
const OPTION_SACK_PERMITTED = 4;
const OPTION_SACK_PERMITTED_BYTES = 2;
const OPTION_SACK = 5;
const SACK_BLOCK_BYTES = 8;
/** RFC 2018 §3: at most 4 blocks fit in 40 bytes of options. */
const SACK_MAX_BLOCKS = 4;
const OPTION_TIMESTAMP = 8;
const OPTION_TIMESTAMP_BYTES = 10;
/** RFC 7323 §2.3: a larger shift is used as 14. */
export const TCP_MAX_WINDOW_SCALE = 14;

const CHECKSUM_OFFSET = 16;
const FLAG_FIN = 0x01;
const FLAG_SYN = 0x02;
const FLAG_RST = 0x04;
const FLAG_PSH = 0x08;
const FLAG_ACK = 0x10;
const FLAG_URG = 0x20;
const FLAG_ECE = 0x40;
const FLAG_CWR = 0x80;

/**
 * The TCP segment in `bytes` (the whole IP payload) from `source` to `destination` (both
 * 4 or both 16 bytes), or why not: "truncated", "bad-data-offset", "bad-checksum",
 * "bad-option". Never throws for any bytes.
 *
 * @example
 * ```ts
 * const segment = decodeTcp(ip.payload, ip.source, ip.destination);
 * if (!isDecodeError(segment)) connection.receive(segment);
 * ```
 */
export function decodeTcp(
  bytes: Uint8Array,
  source: Uint8Array,
  destination: Uint8Array,
): TcpSegment | DecodeError {
  if (bytes.length < TCP_MIN_HEADER_BYTES) return decodeError("truncated");
  const headerBytes = (bytes[12]! >> 4) * 4;
  if (headerBytes < TCP_MIN_HEADER_BYTES || headerBytes > bytes.length) {
    return decodeError("bad-data-offset");
  }
  if (source.length !== destination.length || (source.length !== 4 && source.length !== 16)) {
    throw new RangeError(`Expected addresses of 4 or 16 bytes, got ${source.length}`);
  }
  const pseudo = pseudoHeaderSum(source, destination, PROTOCOL_TCP, bytes.length);
  if (internetChecksum(bytes, pseudo) !== 0) return decodeError("bad-checksum");
  const options =
    headerBytes === TCP_MIN_HEADER_BYTES
      ? NO_OPTIONS
      : decodeOptions(bytes.subarray(TCP_MIN_HEADER_BYTES, headerBytes));
  if (options === undefined) return decodeError("bad-option");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  return {
    sourcePort: view.getUint16(0),
    destinationPort: view.getUint16(2),
    seq: view.getUint32(4),
    ack: view.getUint32(8),
    flags: FLAGS_BY_BYTE[bytes[13]!]!,
    window: view.getUint16(14),
    urgentPointer: view.getUint16(18),
    options,
    payload: bytes.subarray(headerBytes),
  };
}

/** No options: shared by every decoded segment without any, so none allocates. */
const NO_OPTIONS: TcpOptions = Object.freeze({});

/** The decoded flags of every flags byte, made once (a segment's flags are read-only). */
const FLAGS_BY_BYTE: readonly TcpFlags[] = Array.from({ length: 256 }, (_, byte) =>
  Object.freeze({
    fin: (byte & FLAG_FIN) !== 0,
    syn: (byte & FLAG_SYN) !== 0,
    rst: (byte & FLAG_RST) !== 0,
    psh: (byte & FLAG_PSH) !== 0,
    ack: (byte & FLAG_ACK) !== 0,
    urg: (byte & FLAG_URG) !== 0,
    ece: (byte & FLAG_ECE) !== 0,
    cwr: (byte & FLAG_CWR) !== 0,
  }),
);

/** The decoded flags object for a flags byte (shared and frozen). */
export function tcpFlagsFromByte(byte: number): TcpFlags {
  return FLAGS_BY_BYTE[byte & 0xff]!;
}

/**
 * The bytes of `segment` from `source` to `destination`, options laid out and padded,
 * checksum included. Throws `RangeError` for fields out of range or options over 40 bytes
 * (for example 4 SACK blocks with timestamps: RFC 2018 §3 allows 3 then).
 *
 * @example
 * ```ts
 * const bytes = encodeTcp({ ...segment, options: { mss: 1380 } }, source, destination);
 * ```
 */
export function encodeTcp(
  segment: TcpSegment,
  source: Uint8Array,
  destination: Uint8Array,
): Uint8Array {
  const options = encodedOptions(segment.options);
  const bytes = new Uint8Array(TCP_MIN_HEADER_BYTES + options.length + segment.payload.length);
  writeTcp(segment, options, source, destination, bytes, 0);
  return bytes;
}

/**
 * The options of a segment laid out for `encodeTcpInto` (empty, and allocation-free, for
 * a segment without any). Throws `RangeError` like `encodeTcp`.
 */
export function encodedOptions(options: TcpOptions): Uint8Array {
  if (
    options.mss === undefined &&
    options.windowScale === undefined &&
    options.sackPermitted === undefined &&
    options.sack === undefined &&
    options.timestamp === undefined
  ) {
    return EMPTY;
  }
  const encoded = encodeOptions(options);
  if (encoded.length > TCP_MAX_HEADER_BYTES - TCP_MIN_HEADER_BYTES) {
    throw new RangeError(`Expected TCP options of at most 40 bytes, got ${encoded.length}`);
  }
  return encoded;
}

const EMPTY = new Uint8Array(0);

/**
 * Writes `segment` with its `options` (from `encodedOptions`) into `out` at `at`,
 * checksum included, and returns the bytes written: 20 + options + payload. The
 * Netstack uses it to build the IP packet in one buffer, the payload copied once.
 * Throws `RangeError` for fields out of range.
 */
export function writeTcp(
  segment: TcpSegment,
  options: Uint8Array,
  source: Uint8Array,
  destination: Uint8Array,
  out: Uint8Array,
  at: number,
): number {
  assertUint(segment.sourcePort, 16, "sourcePort");
  assertUint(segment.destinationPort, 16, "destinationPort");
  assertUint(segment.seq, 32, "seq");
  assertUint(segment.ack, 32, "ack");
  assertUint(segment.window, 16, "window");
  assertUint(segment.urgentPointer, 16, "urgentPointer");
  if (source.length !== destination.length || (source.length !== 4 && source.length !== 16)) {
    throw new RangeError(`Expected addresses of 4 or 16 bytes, got ${source.length}`);
  }
  const headerBytes = TCP_MIN_HEADER_BYTES + options.length;
  const total = headerBytes + segment.payload.length;
  const bytes = out.subarray(at, at + total);
  const view = new DataView(bytes.buffer, bytes.byteOffset, total);
  view.setUint16(0, segment.sourcePort);
  view.setUint16(2, segment.destinationPort);
  view.setUint32(4, segment.seq);
  view.setUint32(8, segment.ack);
  bytes[12] = (headerBytes / 4) << 4;
  bytes[13] = encodeFlags(segment.flags);
  view.setUint16(14, segment.window);
  view.setUint16(CHECKSUM_OFFSET, 0);
  view.setUint16(18, segment.urgentPointer);
  if (options.length > 0) bytes.set(options, TCP_MIN_HEADER_BYTES);
  bytes.set(segment.payload, headerBytes);
  const pseudo = pseudoHeaderSum(source, destination, PROTOCOL_TCP, total);
  view.setUint16(CHECKSUM_OFFSET, internetChecksum(bytes, pseudo));
  return total;
}

function encodeFlags(flags: TcpFlags): number {
  return (
    (flags.fin ? FLAG_FIN : 0) |
    (flags.syn ? FLAG_SYN : 0) |
    (flags.rst ? FLAG_RST : 0) |
    (flags.psh ? FLAG_PSH : 0) |
    (flags.ack ? FLAG_ACK : 0) |
    (flags.urg ? FLAG_URG : 0) |
    (flags.ece ? FLAG_ECE : 0) |
    (flags.cwr ? FLAG_CWR : 0)
  );
}

/** The options in `area`, or `undefined` when they do not parse. */
function decodeOptions(area: Uint8Array): TcpOptions | undefined {
  const view = new DataView(area.buffer, area.byteOffset, area.length);
  let mss: number | undefined;
  let windowScale: number | undefined;
  let sackPermitted: boolean | undefined;
  let sack: [number, number][] | undefined;
  let timestamp: { value: number; echo: number } | undefined;
  let at = 0;
  while (at < area.length) {
    const kind = area[at]!;
    if (kind === OPTION_END_OF_LIST) break;
    if (kind === OPTION_NO_OPERATION) {
      at++;
      continue;
    }
    if (at + 1 >= area.length) return undefined;
    const length = area[at + 1]!;
    if (length < 2 || at + length > area.length) return undefined;
    switch (kind) {
      case OPTION_MSS:
        if (length !== OPTION_MSS_BYTES) return undefined;
        mss = view.getUint16(at + 2);
        break;
      case OPTION_WINDOW_SCALE:
        if (length !== OPTION_WINDOW_SCALE_BYTES) return undefined;
        windowScale = Math.min(area[at + 2]!, TCP_MAX_WINDOW_SCALE);
        break;
      case OPTION_SACK_PERMITTED:
        if (length !== OPTION_SACK_PERMITTED_BYTES) return undefined;
        sackPermitted = true;
        break;
      case OPTION_SACK: {
        const blocks = (length - 2) / SACK_BLOCK_BYTES;
        if (!Number.isInteger(blocks) || blocks < 1 || blocks > SACK_MAX_BLOCKS) return undefined;
        sack = [];
        for (let i = 0; i < blocks; i++) {
          const start = at + 2 + i * SACK_BLOCK_BYTES;
          sack.push([view.getUint32(start), view.getUint32(start + 4)]);
        }
        break;
      }
      case OPTION_TIMESTAMP:
        if (length !== OPTION_TIMESTAMP_BYTES) return undefined;
        timestamp = { value: view.getUint32(at + 2), echo: view.getUint32(at + 6) };
        break;
      default:
        break; // Unknown kinds are skipped by their length.
    }
    at += length;
  }
  return {
    ...(mss !== undefined && { mss }),
    ...(windowScale !== undefined && { windowScale }),
    ...(sackPermitted !== undefined && { sackPermitted }),
    ...(sack !== undefined && { sack }),
    ...(timestamp !== undefined && { timestamp }),
  };
}

function encodeOptions(options: TcpOptions): Uint8Array {
  const out: number[] = [];
  const push16 = (value: number) => out.push((value >> 8) & 0xff, value & 0xff);
  const push32 = (value: number) => {
    push16(Math.floor(value / 0x10000));
    push16(value & 0xffff);
  };
  if (options.mss !== undefined) {
    assertUint(options.mss, 16, "options.mss");
    out.push(OPTION_MSS, OPTION_MSS_BYTES);
    push16(options.mss);
  }
  const timestamp = options.timestamp;
  if (timestamp !== undefined) {
    assertUint(timestamp.value, 32, "options.timestamp.value");
    assertUint(timestamp.echo, 32, "options.timestamp.echo");
  }
  if (options.sackPermitted) {
    // Before timestamps it takes the place of their two NOPs.
    if (timestamp === undefined) out.push(OPTION_NO_OPERATION, OPTION_NO_OPERATION);
    out.push(OPTION_SACK_PERMITTED, OPTION_SACK_PERMITTED_BYTES);
  }
  if (timestamp !== undefined) {
    if (!options.sackPermitted) out.push(OPTION_NO_OPERATION, OPTION_NO_OPERATION);
    out.push(OPTION_TIMESTAMP, OPTION_TIMESTAMP_BYTES);
    push32(timestamp.value);
    push32(timestamp.echo);
  }
  if (options.windowScale !== undefined) {
    if (!Number.isInteger(options.windowScale) || options.windowScale < 0) {
      throw new RangeError(
        `Expected "options.windowScale" to be 0 to 14, got ${options.windowScale}`,
      );
    }
    if (options.windowScale > TCP_MAX_WINDOW_SCALE) {
      throw new RangeError(
        `Expected "options.windowScale" to be 0 to 14, got ${options.windowScale}`,
      );
    }
    out.push(
      OPTION_NO_OPERATION,
      OPTION_WINDOW_SCALE,
      OPTION_WINDOW_SCALE_BYTES,
      options.windowScale,
    );
  }
  const sack = options.sack;
  if (sack !== undefined && sack.length > 0) {
    if (sack.length > SACK_MAX_BLOCKS) {
      throw new RangeError(`Expected at most 4 SACK blocks, got ${sack.length}`);
    }
    out.push(
      OPTION_NO_OPERATION,
      OPTION_NO_OPERATION,
      OPTION_SACK,
      2 + sack.length * SACK_BLOCK_BYTES,
    );
    for (const [left, right] of sack) {
      assertUint(left, 32, "options.sack");
      assertUint(right, 32, "options.sack");
      push32(left);
      push32(right);
    }
  }
  while (out.length % 4 !== 0) out.push(OPTION_END_OF_LIST);
  return Uint8Array.from(out);
}

function assertUint(value: number, bits: 16 | 32, name: string): void {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new RangeError(`Expected "${name}" to be an unsigned ${bits}-bit integer, got ${value}`);
  }
}
