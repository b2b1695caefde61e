/**
 * The gossip wire format: versioned CBOR envelopes, packed into size-limited messages.
 *
 * Every message is one CBOR array `[version, kind, ...head, body]`:
 *
 * ```
 * digests  [1, 1, [[channel, digest], ...]]              all channels' digests, one message
 * summary  [1, 2, channel, fromKey, toKey|null, [[key, version], ...]]
 *          the sender's versions of every key k with fromKey <= k < toKey (null: no bound)
 * request  [1, 3, channel, [key, ...]]                   "send me your entries for these"
 * delta    [1, 4, channel, [item, ...]]                  items from GossipState.encode
 * unicast  [1, 5, channel, bytes]                        opaque, for the channel's handler
 * tree     [1, 6, channel, origin, [item, ...]]          a delta broadcast by `origin`,
 *                                                        forwarded along its spanning tree
 * ```
 *
 * Decoding never throws: the size is checked first, then a walk over the CBOR heads
 * refuses anything cbor-x could turn into a large allocation or a live object (a length
 * longer than the bytes left, nesting deeper than `MAX_NESTING`, tags, indefinite lengths,
 * trailing bytes), and only then does cbor-x build values, which are checked for shape.
 */
import { Decoder, Encoder } from "cbor-x";

export const GOSSIP_PROTOCOL_VERSION = 1;

export const MESSAGE_KIND = {
  digests: 1,
  summary: 2,
  request: 3,
  delta: 4,
  unicast: 5,
  tree: 6,
} as const;

/** The longest origin a tree message may name (a base64 public key has 44 characters). */
const MAX_ORIGIN_LENGTH = 64;

export type MessageKindName = keyof typeof MESSAGE_KIND;

/** Deep enough for any state's items inside the envelope; shallow enough for any stack. */
const MAX_NESTING = 32;
/** Bytes a message needs besides its body elements: array heads, version, kind. */
const ENVELOPE_OVERHEAD_BYTES = 16;

export type GossipMessage =
  | { kind: "digests"; digests: Array<[channel: string, digest: Uint8Array]> }
  | {
      kind: "summary";
      channel: string;
      fromKey: string;
      toKey: string | null;
      entries: Array<[key: string, version: number]>;
    }
  | { kind: "request"; channel: string; keys: string[] }
  | { kind: "delta"; channel: string; items: unknown[] }
  | { kind: "unicast"; channel: string; payload: Uint8Array }
  | { kind: "tree"; channel: string; origin: string; items: unknown[] };

/** Why the wire layer refused a message. */
export type WireDropReason = "oversize" | "malformed" | "version" | "kind" | "shape";

export type DecodeResult =
  | { ok: true; message: GossipMessage }
  | { ok: false; reason: WireDropReason; version?: number };

// Byte strings without Node's tag 64, so every runtime writes the same bytes.
const encoder = new Encoder({ useRecords: false, tagUint8Array: false });
// copyBuffers: decoded byte strings must not alias a buffer the mesh may reuse.
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

/**
 * One value as CBOR, or null when it is not plain data (tags, typed arrays other than
 * Uint8Array, Dates, Sets...) that a peer would refuse to decode.
 */
export function encodeValue(value: unknown): Uint8Array | null {
  let encoded: Uint8Array;
  try {
    encoded = new Uint8Array(encoder.encode(value)); // a copy: cbor-x reuses its buffer
  } catch {
    return null;
  }
  return isPlainCbor(encoded) ? encoded : null;
}

/** The largest encoded delta item that fits a message on `channel`. */
export function deltaItemBudget(channel: string, maxMessageBytes: number): number {
  return maxMessageBytes - ENVELOPE_OVERHEAD_BYTES - utf8Length(channel) - 5;
}

/** How many bytes a unicast payload may have on `channel`. */
export function unicastPayloadBudget(channel: string, maxMessageBytes: number): number {
  return deltaItemBudget(channel, maxMessageBytes);
}

export interface Packed {
  messages: Uint8Array[];
  /** Elements too large for any message, left out. */
  skipped: number;
}

/** All channels' digests, split only if they would not fit one message. */
export function packDigests(
  digests: ReadonlyArray<readonly [string, Uint8Array]>,
  maxMessageBytes: number,
): Packed {
  const elements = digests.map(([channel, digest]) => encodeValue([channel, digest]));
  return packElements([], plain(elements), maxMessageBytes, MESSAGE_KIND.digests);
}

/** Delta items (already encoded) into as few messages as fit. */
export function packDelta(channel: string, items: Uint8Array[], maxMessageBytes: number): Packed {
  return packElements([encodeValue(channel)!], items, maxMessageBytes, MESSAGE_KIND.delta);
}

/** The largest encoded item that fits a tree message on `channel`. */
export function treeItemBudget(channel: string, maxMessageBytes: number): number {
  return deltaItemBudget(channel, maxMessageBytes) - MAX_ORIGIN_LENGTH - 3;
}

/** Items broadcast by `origin`, into as few tree messages as fit. */
export function packTree(
  channel: string,
  origin: string,
  items: Uint8Array[],
  maxMessageBytes: number,
): Packed {
  const head = [encodeValue(channel)!, encodeValue(origin)!];
  return packElements(head, items, maxMessageBytes, MESSAGE_KIND.tree);
}

/** Keys to ask for, into as few messages as fit. */
export function packRequest(channel: string, keys: readonly string[], maxMessageBytes: number) {
  const elements = plain(keys.map((key) => encodeValue(key)));
  return packElements([encodeValue(channel)!], elements, maxMessageBytes, MESSAGE_KIND.request);
}

/**
 * A summary split by sorted key ranges: each message covers [fromKey, toKey) and lists
 * every key of the range, so the receiver can act on each part alone.
 */
export function packSummary(
  channel: string,
  summary: ReadonlyMap<string, number>,
  maxMessageBytes: number,
): Packed {
  const keys = [...summary.keys()].sort(compareKeys);
  const entries = keys.map((key) => encodeValue([key, summary.get(key)]));
  let longestKeyBytes = 0;
  for (const key of keys) longestKeyBytes = Math.max(longestKeyBytes, utf8Length(key) + 5);
  const channelBytes = encodeValue(channel)!;
  // Room for the head: channel, fromKey and toKey (each at most the longest key).
  const budget =
    maxMessageBytes - ENVELOPE_OVERHEAD_BYTES - channelBytes.length - 2 * longestKeyBytes;
  const messages: Uint8Array[] = [];
  let skipped = 0;
  const groups = groupBySize(
    entries.map((e) => e?.length ?? Number.POSITIVE_INFINITY),
    budget,
  );
  skipped = groups.skipped;
  if (groups.ranges.length === 0) groups.ranges.push([0, 0]);
  groups.ranges.forEach(([start, end], index) => {
    const fromKey = index === 0 ? "" : keys[start]!;
    const next = groups.ranges[index + 1];
    const toKey = next === undefined ? null : keys[next[0]]!;
    const head = [channelBytes, encodeValue(fromKey)!, encodeValue(toKey)!];
    const body = plain(entries.slice(start, end));
    messages.push(buildMessage(MESSAGE_KIND.summary, head, body));
  });
  return { messages, skipped };
}

/** A unicast message, or null when the payload is over `unicastPayloadBudget`. */
export function encodeUnicast(
  channel: string,
  payload: Uint8Array,
  maxMessageBytes: number,
): Uint8Array | null {
  if (payload.length > unicastPayloadBudget(channel, maxMessageBytes)) return null;
  return encodeValue([GOSSIP_PROTOCOL_VERSION, MESSAGE_KIND.unicast, channel, plainBytes(payload)]);
}

/** Keys compare by UTF-16 code units on every runtime, so both sides agree on ranges. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether `key` lies in the summary range [fromKey, toKey). */
export function inRange(key: string, fromKey: string, toKey: string | null): boolean {
  return key >= fromKey && (toKey === null || key < toKey);
}

/** Parses one received message; never throws. */
export function decodeMessage(bytes: Uint8Array, maxMessageBytes: number): DecodeResult {
  if (bytes.length > maxMessageBytes) return { ok: false, reason: "oversize" };
  if (!isPlainCbor(bytes)) return { ok: false, reason: "malformed" };
  let value: unknown;
  try {
    value = decoder.decode(plainBytes(bytes));
  } catch {
    return { ok: false, reason: "malformed" };
  }
  if (!Array.isArray(value) || value.length < 2) return { ok: false, reason: "shape" };
  const [version, kind] = value;
  if (version !== GOSSIP_PROTOCOL_VERSION) {
    return typeof version === "number"
      ? { ok: false, reason: "version", version }
      : { ok: false, reason: "shape" };
  }
  const message = parseBody(kind, value);
  if (message === "kind") return { ok: false, reason: "kind" };
  return message === null ? { ok: false, reason: "shape" } : { ok: true, message };
}

function parseBody(kind: unknown, value: unknown[]): GossipMessage | null | "kind" {
  switch (kind) {
    case MESSAGE_KIND.digests: {
      const [, , list] = value;
      if (value.length !== 3 || !Array.isArray(list)) return null;
      const digests: Array<[string, Uint8Array]> = [];
      for (const pair of list) {
        if (!Array.isArray(pair) || pair.length !== 2) return null;
        const [channel, digest] = pair;
        if (typeof channel !== "string" || !(digest instanceof Uint8Array)) return null;
        digests.push([channel, digest]);
      }
      return { kind: "digests", digests };
    }
    case MESSAGE_KIND.summary: {
      const [, , channel, fromKey, toKey, list] = value;
      if (value.length !== 6 || typeof channel !== "string" || typeof fromKey !== "string") {
        return null;
      }
      if ((toKey !== null && typeof toKey !== "string") || !Array.isArray(list)) return null;
      const entries: Array<[string, number]> = [];
      for (const pair of list) {
        if (!Array.isArray(pair) || pair.length !== 2) return null;
        const [key, version] = pair;
        if (typeof key !== "string" || typeof version !== "number") return null;
        if (!Number.isFinite(version) || !inRange(key, fromKey, toKey)) return null;
        entries.push([key, version]);
      }
      return { kind: "summary", channel, fromKey, toKey, entries };
    }
    case MESSAGE_KIND.request: {
      const [, , channel, keys] = value;
      if (value.length !== 4 || typeof channel !== "string" || !Array.isArray(keys)) return null;
      if (!keys.every((key) => typeof key === "string")) return null;
      return { kind: "request", channel, keys };
    }
    case MESSAGE_KIND.delta: {
      const [, , channel, items] = value;
      if (value.length !== 4 || typeof channel !== "string" || !Array.isArray(items)) return null;
      return { kind: "delta", channel, items };
    }
    case MESSAGE_KIND.tree: {
      const [, , channel, origin, items] = value;
      if (value.length !== 5 || typeof channel !== "string" || !Array.isArray(items)) return null;
      if (typeof origin !== "string" || origin.length === 0 || origin.length > MAX_ORIGIN_LENGTH)
        return null;
      return { kind: "tree", channel, origin, items };
    }
    case MESSAGE_KIND.unicast: {
      const [, , channel, payload] = value;
      if (value.length !== 4 || typeof channel !== "string") return null;
      if (!(payload instanceof Uint8Array)) return null;
      return { kind: "unicast", channel, payload: plainBytes(payload) };
    }
    default:
      return "kind";
  }
}

/**
 * Whether `bytes` is exactly one CBOR item of definite-length arrays, maps, strings,
 * byte strings, integers, floats, booleans, null and undefined, nested at most
 * `MAX_NESTING` deep, with every declared length fitting in the bytes left.
 */
export function isPlainCbor(bytes: Uint8Array): boolean {
  const length = bytes.length;
  let offset = 0;
  // Items still to read in each open array or map; the outermost level holds one item.
  const open: number[] = [1];
  while (open.length > 0) {
    const top = open.length - 1;
    if (open[top] === 0) {
      open.pop();
      continue;
    }
    open[top]!--;
    if (offset >= length) return false;
    const initial = bytes[offset++]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    let argument: number;
    if (info < 24) {
      argument = info;
    } else if (info <= 27) {
      const size = 1 << (info - 24);
      if (offset + size > length) return false;
      argument = 0;
      for (let i = 0; i < size; i++) argument = argument * 256 + bytes[offset + i]!;
      offset += size;
    } else {
      return false; // reserved, or indefinite length: our encoder writes neither
    }
    const left = length - offset;
    switch (major) {
      case 0:
      case 1:
        break;
      case 2:
      case 3:
        if (argument > left) return false;
        offset += argument;
        break;
      case 4:
      case 5: {
        const items = major === 4 ? argument : argument * 2;
        if (items > left || open.length > MAX_NESTING) return false;
        open.push(items);
        break;
      }
      case 6:
        return false; // tags make cbor-x build objects we never send
      default:
        // Major 7: false, true, null, undefined, and half, single and double floats.
        if (info < 20 || info === 24) return false;
    }
  }
  return offset === length;
}

/** Groups consecutive element sizes into runs whose sum stays within `budget`. */
function groupBySize(sizes: readonly number[], budget: number) {
  const ranges: Array<[number, number]> = [];
  let skipped = 0;
  let start = 0;
  let used = 0;
  for (let i = 0; i < sizes.length; i++) {
    const size = sizes[i]!;
    if (size > budget) {
      if (i > start) ranges.push([start, i]);
      skipped++;
      start = i + 1;
      used = 0;
      continue;
    }
    if (used + size > budget) {
      ranges.push([start, i]);
      start = i;
      used = 0;
    }
    used += size;
  }
  if (start < sizes.length) ranges.push([start, sizes.length]);
  return { ranges, skipped };
}

function packElements(
  head: Uint8Array[],
  elements: Uint8Array[],
  maxMessageBytes: number,
  kind: number,
): Packed {
  const headBytes = head.reduce((sum, part) => sum + part.length, 0);
  const budget = maxMessageBytes - ENVELOPE_OVERHEAD_BYTES - headBytes;
  const { ranges, skipped } = groupBySize(
    elements.map((e) => e.length),
    budget,
  );
  const messages = ranges.map(([start, end]) =>
    buildMessage(kind, head, elements.slice(start, end)),
  );
  return { messages, skipped };
}

/** `[version, kind, ...head, [...body]]` from parts already encoded. */
function buildMessage(kind: number, head: Uint8Array[], body: Uint8Array[]): Uint8Array {
  const parts = [
    arrayHead(head.length + 3),
    encodeValue(GOSSIP_PROTOCOL_VERSION)!,
    encodeValue(kind)!,
    ...head,
    arrayHead(body.length),
    ...body,
  ];
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** The CBOR head of a definite-length array (major type 4). */
function arrayHead(count: number): Uint8Array {
  if (count < 24) return Uint8Array.of(0x80 | count);
  if (count < 0x100) return Uint8Array.of(0x98, count);
  if (count < 0x10000) return Uint8Array.of(0x99, count >> 8, count & 0xff);
  return Uint8Array.of(
    0x9a,
    count >>> 24,
    (count >>> 16) & 0xff,
    (count >>> 8) & 0xff,
    count & 0xff,
  );
}

/** Elements that failed to encode are left out (callers encode only plain values). */
function plain(elements: ReadonlyArray<Uint8Array | null>): Uint8Array[] {
  return elements.filter((e): e is Uint8Array => e !== null);
}

/** A Uint8Array view, never a Node Buffer (whose slice and tag differ). */
function plainBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const textEncoder = new TextEncoder();

function utf8Length(text: string): number {
  return textEncoder.encode(text).length;
}
