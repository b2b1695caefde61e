/** The slice of the `Bun` global that weft's adapters use (bun-types is not installed). */
declare namespace Bun {
  const version: string;
}

/** The slice of `bun:ffi` that `tun-bun.ts` uses; "ptr" arguments take typed arrays. */
declare module "bun:ffi" {
  type FFITypeName = "i32" | "u32" | "i64" | "u64" | "isize" | "usize" | "ptr" | "void";

  interface FFIFunction {
    readonly args: readonly FFITypeName[];
    readonly returns: FFITypeName;
  }

  /** Throws when the library or a symbol is missing. */
  export function dlopen(
    path: string,
    symbols: Record<string, FFIFunction>,
  ): { symbols: Record<string, (...args: never[]) => unknown>; close(): void };

  /** The `byteLength` bytes at the address `pointer`, without a copy. */
  export function toArrayBuffer(
    pointer: number,
    byteOffset: number,
    byteLength: number,
  ): ArrayBuffer;
}
