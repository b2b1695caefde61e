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
}
