/**
 * The LISTEN side of TCP (RFC 9293 §3.10.7.2) and the answer for segments no connection
 * owns (§3.10.7.1). A listener turns a SYN into a connection in SYN-RECEIVED, and bounds
 * how many of those half-open connections exist at once, so a SYN flood costs bounded
 * memory: past the bound, SYNs are dropped and counted (the peer's SYN retransmission
 * tries again later). The Netstack keeps the 4-tuple table; this file owns no addresses.
 */
import { TcpConnection, type TcpConnectionOptions } from "./tcp-connection.ts";
import { NO_FLAGS, type TcpSegment } from "./tcp-segment.ts";
import { seqAdd } from "./tcp-sequence.ts";

/** Half-open connections a listener keeps by default (Linux's default SYN backlog is 128-1024). */
export const DEFAULT_MAX_HALF_OPEN = 128;

/**
 * The RST answering a segment that reached no connection (RFC 9293 §3.10.7.1), or
 * undefined when none is due (the segment was itself a RST).
 */
export function resetFor(segment: TcpSegment): TcpSegment | undefined {
  if (segment.flags.rst) return undefined;
  const base = {
    sourcePort: segment.destinationPort,
    destinationPort: segment.sourcePort,
    window: 0,
    urgentPointer: 0,
    options: {},
    payload: new Uint8Array(0),
  };
  if (segment.flags.ack) {
    return { ...base, seq: segment.ack, ack: 0, flags: { ...NO_FLAGS, rst: true } };
  }
  const length = segment.payload.length + (segment.flags.syn ? 1 : 0) + (segment.flags.fin ? 1 : 0);
  return {
    ...base,
    seq: 0,
    ack: seqAdd(segment.seq, length),
    flags: { ...NO_FLAGS, rst: true, ack: true },
  };
}

export interface TcpListenerOptions {
  /** Connections in SYN-RECEIVED at once; further SYNs are dropped. */
  readonly maxHalfOpen?: number;
  /** Called when a connection completes its handshake; set its events there. */
  readonly onConnection: (connection: TcpConnection) => void;
}

export interface TcpListenerStats {
  synsAccepted: number;
  /** SYNs dropped because `maxHalfOpen` connections were already half-open. */
  synsDropped: number;
  /** Non-SYN segments answered with a RST or ignored. */
  strays: number;
}

/**
 * A listening port. The Netstack hands it segments for the port that match no existing
 * connection; a new connection comes back for the Netstack to file under its 4-tuple.
 */
export class TcpListener {
  readonly #maxHalfOpen: number;
  readonly #onConnection: (connection: TcpConnection) => void;
  #halfOpen = 0;
  readonly stats: TcpListenerStats = { synsAccepted: 0, synsDropped: 0, strays: 0 };

  constructor(options: TcpListenerOptions) {
    const max = options.maxHalfOpen ?? DEFAULT_MAX_HALF_OPEN;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Expected "maxHalfOpen" to be a positive integer, got ${max}`);
    }
    this.#maxHalfOpen = max;
    this.#onConnection = options.onConnection;
  }

  get state(): "LISTEN" {
    return "LISTEN";
  }

  /** Connections in SYN-RECEIVED now. */
  get halfOpen(): number {
    return this.#halfOpen;
  }

  /**
   * Handles a segment in LISTEN. A SYN within the half-open bound becomes a connection
   * (which has already sent its SYN+ACK through `options.send`); an ACK is answered with
   * a RST through `options.send`; anything else is ignored. Never throws on input.
   */
  receive(
    segment: TcpSegment,
    options: Omit<TcpConnectionOptions, "events">,
  ): TcpConnection | undefined {
    const f = segment.flags;
    if (f.rst) {
      this.stats.strays++;
      return undefined;
    }
    if (f.ack) {
      this.stats.strays++;
      const reset = resetFor(segment);
      if (reset !== undefined) options.send(reset);
      return undefined;
    }
    if (!f.syn || f.fin) {
      this.stats.strays++;
      return undefined;
    }
    if (this.#halfOpen >= this.#maxHalfOpen) {
      this.stats.synsDropped++;
      return undefined;
    }
    let counted = true;
    const release = () => {
      if (counted) {
        counted = false;
        this.#halfOpen--;
      }
    };
    this.#halfOpen++;
    const connection = TcpConnection.accept(segment, {
      ...options,
      events: {
        onConnected: () => {
          release();
          this.#onConnection(connection!);
        },
      },
      onRelease: (reason) => {
        release();
        options.onRelease?.(reason);
      },
    });
    if (connection === undefined) {
      release();
      return undefined;
    }
    this.stats.synsAccepted++;
    return connection;
  }
}
