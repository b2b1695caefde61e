/**
 * Byte helpers shared by every layer: argument checks in the manner of noble's
 * `abytes`, constant-time comparison and base64. Hex and concatenation come from
 * `@noble/hashes/utils.js` (re-exported here so callers have one place to look).
 */

export { bytesToHex as toHex, concatBytes, hexToBytes as fromHex } from "@noble/hashes/utils.js";

/**
 * Throws unless `value` is a `Uint8Array` (of `length` bytes, when given), naming `title`.
 * For programmer errors only; bytes from the network are checked by their parsers.
 */
export function assertBytes(value: unknown, length: number | undefined, title: string): void {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Expected "${title}" to be a Uint8Array, got ${typeof value}`);
  }
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`Expected "${title}" to be ${length} bytes, got ${value.length}`);
  }
}

/** Compares two byte arrays without an early exit, so timing says nothing about where they differ. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** True when every byte is zero, in constant time. */
export function isZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!;
  return acc === 0;
}

/** Overwrites `buffers` with zeros. JS cannot promise that no copy of a secret survives elsewhere. */
export function wipe(...buffers: Uint8Array[]): void {
  for (const b of buffers) b.fill(0);
}

/** Standard padded base64 (RFC 4648 §4), the encoding of WireGuard keys. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!);
  return btoa(binary);
}

/** Bytes of canonical standard padded base64; throws `SyntaxError` on anything else. */
export function fromBase64(text: string): Uint8Array {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    const shown = text.length > 64 ? `${text.slice(0, 64)}...` : text;
    throw new SyntaxError(`Invalid base64 "${shown}"`);
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  // Non-canonical forms (stray bits in the last character) would give two spellings of one key.
  if (toBase64(out) !== text) throw new SyntaxError("Invalid base64: not in canonical form");
  return out;
}
