/**
 * What every decoder in `src/netstack/` returns instead of throwing: a stable code that
 * says why the bytes were refused. The netstack counts its drops by these codes.
 */
export interface DecodeError {
  readonly error: string;
}

/** Is `result` a refusal rather than a decoded value? */
export function isDecodeError(result: object): result is DecodeError {
  return "error" in result && typeof (result as DecodeError).error === "string";
}

/** A refusal with `code`. */
export function decodeError(code: string): DecodeError {
  return { error: code };
}
