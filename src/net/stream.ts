/**
 * The stream seam: byte streams over TCP, for the DNS server (queries over TCP, RFC 7766)
 * and its forwarder (retrying truncated upstream answers over TCP). Real sockets in
 * `runtimes/tcp.ts`; the core sees only these records.
 */
import type { Endpoint } from "./packet-conn.ts";

/** One accepted or dialled connection: ordered bytes both ways. */
export interface StreamConn {
  /** The other end's address and port (IPv4 as plain text, not IPv4-mapped). */
  readonly remote: Endpoint;
  /** Sets the one handler for received bytes; `data` is only valid during the call unless copied. */
  onData(handler: (data: Uint8Array) => void): void;
  /** Sets the one handler called once when the connection is gone (closed by either side or failed). */
  onClose(handler: () => void): void;
  /** Queues bytes to send; never throws (bytes written after close, or on a broken connection, are dropped). */
  write(data: Uint8Array): void;
  /** Sends what is queued, then closes; idempotent. No data handler call follows it. */
  close(): void;
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
