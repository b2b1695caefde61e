/**
 * Encoded answers to queries seen before, so a repeated query costs a map lookup and a
 * copy instead of decode, answer and encode through dns-packet (most of the handler's
 * time under load). The key is the query's bytes after the ID, and the transport: the
 * answer is a function of exactly those and of the names, so nothing but the ID differs.
 * The whole cache is dropped when the names change (`generation`).
 *
 * Load balancing survives: an answer whose records all have one size (A only, or AAAA
 * only: dns-packet writes names uncompressed, so each record is name + 10 + address) has
 * them permuted in the copy, a fresh random order on each answer. Answers with records
 * of different sizes are cached only when they hold at most one.
 */
import { HEADER_BYTES, MAX_CACHED_ANSWERS, MAX_CACHED_QUERY_BYTES } from "./constants.ts";

export interface CachedAnswer {
  readonly bytes: Uint8Array;
  /** Where the answer section starts, its record count, and the size of each record. */
  readonly answersOffset: number;
  readonly answerCount: number;
  readonly recordBytes: number;
  readonly truncated: boolean;
}

export interface AnswerCache {
  generation: number;
  readonly answers: Map<string, CachedAnswer>;
}

export function createAnswerCache(): AnswerCache {
  return { generation: -1, answers: new Map() };
}

/** The cache key of a query, or undefined for one too large to be worth keeping. */
export function cacheKey(query: Uint8Array, transport: string): string | undefined {
  if (query.length < HEADER_BYTES || query.length > MAX_CACHED_QUERY_BYTES) return undefined;
  return transport + String.fromCharCode.apply(null, query.subarray(2) as unknown as number[]);
}

/** The cached answer for `key` while the names are at `generation`. */
export function cachedAnswer(
  cache: AnswerCache,
  key: string,
  generation: number,
): CachedAnswer | undefined {
  if (cache.generation !== generation) {
    cache.answers.clear();
    cache.generation = generation;
    return undefined;
  }
  return cache.answers.get(key);
}

/** Keeps `response` (bytes as sent) for `key`, if its layout allows replaying it. */
export function keepAnswer(
  cache: AnswerCache,
  key: string,
  generation: number,
  response: Uint8Array,
): void {
  if (cache.generation !== generation) return;
  const layout = answerLayout(response);
  if (layout === undefined) return;
  // A flood of distinct queries empties the cache rather than growing it.
  if (cache.answers.size >= MAX_CACHED_ANSWERS) cache.answers.clear();
  cache.answers.set(key, {
    bytes: response.slice(), // the caller owns `response`
    ...layout,
    truncated: (response[2]! & 0x02) !== 0,
  });
}

/** A copy of a cached answer with the query's ID and the answer records in a fresh order. */
export function replayAnswer(cached: CachedAnswer, id: number, random: () => number): Uint8Array {
  const out = cached.bytes.slice();
  out[0] = id >> 8;
  out[1] = id & 0xff;
  const { answersOffset: start, answerCount: count, recordBytes: size } = cached;
  const source = cached.bytes;
  // Fisher-Yates over record indices, then each record copied to its new place.
  if (count > 1) {
    const order = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (let i = 0; i < count; i++) {
      const from = start + order[i]! * size;
      out.set(source.subarray(from, from + size), start + i * size);
    }
  }
  return out;
}

/** Where the answer records are and their common size; undefined if they differ in size. */
function answerLayout(
  bytes: Uint8Array,
): { answersOffset: number; answerCount: number; recordBytes: number } | undefined {
  const u16 = (at: number) => (bytes[at]! << 8) | bytes[at + 1]!;
  if (bytes.length < HEADER_BYTES || u16(4) !== 1) return undefined;
  let offset = skipName(bytes, HEADER_BYTES);
  if (offset === undefined) return undefined;
  const answersOffset = offset + 4;
  const answerCount = u16(6);
  let recordBytes = 0;
  offset = answersOffset;
  for (let i = 0; i < answerCount; i++) {
    const end = skipName(bytes, offset);
    if (end === undefined || end + 10 > bytes.length) return undefined;
    const next = end + 10 + u16(end + 8);
    if (i > 0 && next - offset !== recordBytes) return undefined;
    recordBytes = next - offset;
    offset = next;
  }
  return offset <= bytes.length ? { answersOffset, answerCount, recordBytes } : undefined;
}

/** The offset after the name at `offset` (labels, or a compression pointer). */
function skipName(bytes: Uint8Array, offset: number): number | undefined {
  while (offset < bytes.length) {
    const length = bytes[offset]!;
    if (length === 0) return offset + 1;
    if ((length & 0xc0) === 0xc0) return offset + 2;
    offset += length + 1;
  }
  return undefined;
}
