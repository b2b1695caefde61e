/**
 * The stream seam: byte streams over TCP, for the DNS server (queries over TCP, RFC 7766),
 * its forwarder (retrying truncated upstream answers over TCP) and the local side of the
 * proxies (`src/proxy/`: SOCKS5, forwards). Real sockets in
 * `runtimes/tcp.ts`; the core sees only these records.
 */
import type { Endpoint } from "./packet-conn.ts";

/**
 * One accepted or dialled connection: ordered bytes both ways.
 *
 * Flow control, for code that relays bytes (the proxies in `src/proxy/`): `write` returns
 * false once the send queue is above the high-water mark, and `onDrain` says when it has
 * emptied; `pause` stops `onData` calls (the kernel's window then closes on the peer).
 * Half-close: `onEnd` hears the peer's FIN while we may still send, `end` sends ours while
 * we still read. Users that need none of this (the DNS server) keep the simple contract:
 * with no `onEnd` handler, the peer's FIN closes our side too.
 */
export interface StreamConn {
  /** The other end's address and port (IPv4 as plain text, not IPv4-mapped). */
  readonly remote: Endpoint;
  /** Bytes accepted by `write` and not yet handed to the operating system. */
  readonly bufferedBytes: number;
  /** Sets the one handler for received bytes; `data` is only valid during the call unless copied. */
  onData(handler: (data: Uint8Array) => void): void;
  /**
   * Sets the one handler called once when the connection is gone (closed by either side or
   * failed); `error` is set when it failed (a reset, a write to a dead peer) rather than
   * ending with a FIN each way, or `close`/`abort` on our side.
   */
  onClose(handler: (error?: Error) => void): void;
  /**
   * Sets the one handler called once when the peer sent FIN (after its last data): it sends
   * no more, but we may go on writing until `end` or `close`. Without a handler, the
   * connection answers the peer's FIN with its own.
   */
  onEnd(handler: () => void): void;
  /** Sets the one handler called when the send queue has emptied after `write` returned false. */
  onDrain(handler: () => void): void;
  /**
   * Queues bytes to send (copied); never throws (bytes written after close, or on a broken
   * connection, are dropped). Returns false when the queue is above the high-water mark:
   * the caller should wait for `onDrain` before writing more.
   */
  write(data: Uint8Array): boolean;
  /** Stops `onData` calls until `resume`; bytes wait in the kernel and its window closes. */
  pause(): void;
  /** Restarts `onData` calls after `pause`. */
  resume(): void;
  /** Sends what is queued, then FIN; reading goes on until the peer's FIN. Idempotent. */
  end(): void;
  /** Sends what is queued, then closes; idempotent. No data handler call follows it. */
  close(): void;
  /** Drops what is queued and resets the connection (RST where the runtime can); idempotent. */
  abort(): void;
}

/** A listening socket handing out connections. */
export interface StreamListener {
  /** The local port connections are accepted on. */
  readonly localPort: number;
  /** Sets the one handler for new connections (replacing any earlier one). */
  onConnection(handler: (conn: StreamConn) => void): void;
  /** Stops accepting; connections already handed out stay open. Idempotent. */
  close(): Promise<void>;
}

/** Where to listen: as `ListenUdpOptions` (absent address: every address of both families). */
export interface ListenTcpOptions {
  readonly port?: number;
  readonly address?: string;
}

/** Opens a TCP listener; rejects when it cannot bind. */
export type ListenTcp = (options: ListenTcpOptions) => Promise<StreamListener>;

/** Connects to an IP address (text, never a name) and port; rejects on failure or after `timeoutMs`. */
export type DialTcp = (to: Endpoint, timeoutMs: number) => Promise<StreamConn>;
