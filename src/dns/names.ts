/**
 * DNS names as weft stores and compares them: lowercase ASCII letters (RFC 4343: names
 * compare case-insensitively), a trailing dot, other characters (IDNA A-labels, or UTF-8
 * left as written) untouched. Lengths follow RFC 1035 §2.3.4, counted in UTF-8 bytes.
 */
import { MAX_LABEL_BYTES, MAX_NAME_WIRE_BYTES } from "./constants.ts";

const UPPER_ASCII = /[A-Z]/g;
// Dots separate labels; whitespace, control characters and backslashes (zone-file escapes)
// have no place in a name weft registers.
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters refused
const FORBIDDEN = /[\u0000-\u0020\u007f\\]/;
const encoder = new TextEncoder();

/**
 * `text` normalised (lowercase ASCII, trailing dot), or `undefined` when it is not a
 * valid name: empty labels, a label over 63 bytes, a name over 255 bytes on the wire.
 * The root "." is not a name one can register, so it is refused too.
 *
 * @example
 * ```ts
 * normaliseName("Web.Weft.Internal"); // "web.weft.internal."
 * normaliseName("a..b"); // undefined
 * ```
 */
export function normaliseName(text: string): string | undefined {
  if (typeof text !== "string" || text.length === 0 || FORBIDDEN.test(text)) return undefined;
  const withoutDot = text.endsWith(".") ? text.slice(0, -1) : text;
  if (withoutDot.length === 0) return undefined;
  let wireBytes = 1; // the root label's zero byte
  for (const label of withoutDot.split(".")) {
    const bytes = encoder.encode(label).length;
    if (bytes === 0 || bytes > MAX_LABEL_BYTES) return undefined;
    wireBytes += bytes + 1;
  }
  if (wireBytes > MAX_NAME_WIRE_BYTES) return undefined;
  return `${withoutDot.replace(UPPER_ASCII, (c) => c.toLowerCase())}.`;
}

/** Lowercases ASCII and adds the trailing dot, without validating (for names off the wire). */
export function foldName(name: string): string {
  const lower = name.replace(UPPER_ASCII, (c) => c.toLowerCase());
  if (lower === "" || lower === ".") return ".";
  return lower.endsWith(".") ? lower : `${lower}.`;
}

/** Whether the folded `name` is `zone` or below it (both folded, with trailing dots). */
export function isInZone(name: string, zone: string): boolean {
  return zone === "." || name === zone || name.endsWith(`.${zone}`);
}
