/** The slice of the `Deno` global that weft's adapters use (Deno's own types are not installed). */
declare namespace Deno {
  const version: { deno: string };

  /** A UDP endpoint as Deno reports and takes it. */
  interface NetAddr {
    transport: "udp";
    hostname: string;
    port: number;
  }

  /** A bound UDP socket. */
  interface DatagramConn {
    readonly addr: NetAddr;
    /** The next datagram, read into `buffer` (the result is a view of it) and its source. */
    receive(buffer: Uint8Array): Promise<[Uint8Array, NetAddr]>;
    /** Resolves with the bytes sent; Deno resolves a host name through DNS (weft passes IP text). */
    send(data: Uint8Array, to: NetAddr): Promise<number>;
    /** Throws `BadResource` when already closed; a pending `receive` rejects with `Interrupted`. */
    close(): void;
  }

  /** Unstable: needs `--unstable-net`, or `"unstable": ["net"]` in deno.json. Throws when binding fails. */
  function listenDatagram(options: {
    transport: "udp";
    hostname: string;
    port: number;
  }): DatagramConn;

  namespace errors {
    class BadResource extends Error {}
    class Interrupted extends Error {}
  }

  /** The FFI types weft's bindings use (see `tun-deno.ts`); "buffer" takes a typed array. */
  type NativeType =
    | "i32"
    | "u32"
    | "i64"
    | "u64"
    | "isize"
    | "usize"
    | "buffer"
    | "pointer"
    | "void";

  interface ForeignFunction {
    readonly parameters: readonly NativeType[];
    readonly result: NativeType;
    /** Runs the call on a separate thread and returns a promise of its result. */
    readonly nonblocking?: boolean;
  }

  /** An opaque native pointer ("pointer" results), or null. */
  type PointerValue = object | null;

  /** Loaded with `dlopen`; each symbol is a function of the declared types. */
  interface DynamicLibrary {
    readonly symbols: Record<string, (...args: never[]) => unknown>;
    close(): void;
  }

  /** Needs `--allow-ffi` (or -A). Throws when the library or a symbol is missing. */
  function dlopen(path: string, symbols: Record<string, ForeignFunction>): DynamicLibrary;

  namespace UnsafePointerView {
    /** The `byteLength` bytes at `pointer`, without a copy. */
    function getArrayBuffer(pointer: object, byteLength: number, offset?: number): ArrayBuffer;
  }
}
