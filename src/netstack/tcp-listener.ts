/**
 * The LISTEN side of TCP (RFC 9293 §3.10.7.2) and the answer for segments no connection
 * owns (§3.10.7.1). A listener turns a SYN into a connection in SYN-RECEIVED, and bounds
 * how many of those half-open connections exist at once, so a SYN flood costs bounded
 * memory: past the bound, a SYN is answered with a SYN cookie (tcp-syn-cookie.ts, RFC
 * 4987 §3.6) and no state, and the ACK that returns a valid cookie becomes a connection,
 * so legitimate clients still connect under a SYN flood (without window scaling or SACK,
 * which a cookie does not carry). With `synCookies: false`, SYNs past the bound are
 * dropped and counted instead. The Netstack keeps the 4-tuple table and passes the
 * addresses a cookie covers.
 */

import { mssForPathMtu, TcpConnection, type TcpConnectionOptions } from "./tcp-connection.ts";
import {
  DEFAULT_PATH_MTU_BYTES,
  DEFAULT_RECEIVE_BUFFER_BYTES,
  MAX_WINDOW_FIELD,
} from "./tcp-constants.ts";
import { NO_FLAGS, type TcpSegment } from "./tcp-segment.ts";
import { seqAdd } from "./tcp-sequence.ts";
import { SYN_COOKIE_PERIOD_MS, SynCookies } from "./tcp-syn-cookie.ts";

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
  /** Connections in SYN-RECEIVED at once; further SYNs get cookies (or are dropped). */
  readonly maxHalfOpen?: number;
  /** Answer SYNs past `maxHalfOpen` with SYN cookies; true by default. */
  readonly synCookies?: boolean;
  /** Called when a connection completes its handshake; set its events there. */
  readonly onConnection: (connection: TcpConnection) => void;
}

export interface TcpListenerStats {
  synsAccepted: number;
  /** SYNs dropped because `maxHalfOpen` connections were already half-open (no cookies). */
  synsDropped: number;
  /** SYN+ACKs sent with a cookie instead of state. */
  cookiesSent: number;
  /** ACKs that returned a valid cookie and became connections. */
  cookiesAccepted: number;
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
  readonly stats: TcpListenerStats = {
    synsAccepted: 0,
    synsDropped: 0,
    cookiesSent: 0,
    cookiesAccepted: 0,
    strays: 0,
  };
  readonly #synCookies: boolean;
  #cookies: SynCookies | undefined;
  #lastCookieMs = Number.NEGATIVE_INFINITY;
  /** A cookie connection waiting for `settle()`, with the ACK that made it. */
  #pending: { connection: TcpConnection; ack: TcpSegment } | undefined;

  constructor(options: TcpListenerOptions) {
    const max = options.maxHalfOpen ?? DEFAULT_MAX_HALF_OPEN;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Expected "maxHalfOpen" to be a positive integer, got ${max}`);
    }
    this.#maxHalfOpen = max;
    this.#onConnection = options.onConnection;
    this.#synCookies = options.synCookies ?? true;
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
   * (which has already sent its SYN+ACK through `options.send`); past the bound it gets
   * a SYN cookie. An ACK that returns a valid cookie becomes a connection too: file it,
   * then call `settle()`. Any other ACK is answered with a RST through `options.send`;
   * anything else is ignored. `addresses` (remote and local) go into the cookie; without
   * them it covers the ports only. Never throws on input.
   */
  receive(
    segment: TcpSegment,
    options: Omit<TcpConnectionOptions, "events">,
    addresses?: { readonly remote: Uint8Array; readonly local: Uint8Array },
  ): TcpConnection | undefined {
    const f = segment.flags;
    if (f.rst) {
      this.stats.strays++;
      return undefined;
    }
    if (f.ack && !f.syn && this.#cookies !== undefined) {
      const connection = this.#fromCookie(segment, options, addresses);
      if (connection !== undefined) return connection;
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
      if (this.#synCookies) this.#sendCookie(segment, options, addresses);
      else this.stats.synsDropped++;
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

  /**
   * Completes the connection `receive` made from a cookie, once the caller has filed it:
   * it takes the ACK (and any data on it), reports itself established, and reaches
   * `onConnection`. Does nothing when there is none.
   */
  settle(): void {
    const pending = this.#pending;
    this.#pending = undefined;
    if (pending === undefined) return;
    pending.connection.receive(pending.ack);
    // An ACK the rebuilt connection refused leaves nothing to wait for.
    if (pending.connection.state === "SYN-RECEIVED") pending.connection.abort();
  }

  #sendCookie(
    syn: TcpSegment,
    options: Omit<TcpConnectionOptions, "events">,
    addresses: { readonly remote: Uint8Array; readonly local: Uint8Array } | undefined,
  ): void {
    this.#cookies ??= new SynCookies(options.randomUint32);
    const now = options.clock.now();
    this.#lastCookieMs = now;
    const ourMss = mssForPathMtu(
      options.pathMtuBytes ?? DEFAULT_PATH_MTU_BYTES,
      options.ipVersion ?? 4,
    );
    const peerMss = Math.min(syn.options.mss ?? 536, ourMss);
    const iss = this.#cookies.make(tupleOf(syn, addresses), syn.seq, peerMss, now);
    this.stats.cookiesSent++;
    options.send({
      sourcePort: syn.destinationPort,
      destinationPort: syn.sourcePort,
      seq: iss,
      ack: seqAdd(syn.seq, 1),
      flags: { ...NO_FLAGS, syn: true, ack: true },
      window: Math.min(
        MAX_WINDOW_FIELD,
        options.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES,
      ),
      urgentPointer: 0,
      options: { mss: ourMss },
      payload: new Uint8Array(0),
    });
  }

  #fromCookie(
    ack: TcpSegment,
    options: Omit<TcpConnectionOptions, "events">,
    addresses: { readonly remote: Uint8Array; readonly local: Uint8Array } | undefined,
  ): TcpConnection | undefined {
    const now = options.clock.now();
    // Only while cookies are in use (two periods after the last one sent), so ACKs
    // cannot be tried against cookies when there is no flood to defend against.
    if (this.#cookies === undefined || now - this.#lastCookieMs > 2 * SYN_COOKIE_PERIOD_MS) {
      return undefined;
    }
    const mss = this.#cookies.check(
      tupleOf(ack, addresses),
      seqAdd(ack.seq, -1),
      seqAdd(ack.ack, -1),
      now,
    );
    if (mss === undefined) return undefined;
    const connection = TcpConnection.acceptCookie(ack, mss, {
      ...options,
      events: { onConnected: () => this.#onConnection(connection) },
    });
    this.stats.cookiesAccepted++;
    this.#pending?.connection.abort();
    this.#pending = { connection, ack };
    return connection;
  }
}

function tupleOf(
  segment: TcpSegment,
  addresses: { readonly remote: Uint8Array; readonly local: Uint8Array } | undefined,
) {
  const none = new Uint8Array(0);
  return {
    remote: addresses?.remote ?? none,
    remotePort: segment.sourcePort,
    local: addresses?.local ?? none,
    localPort: segment.destinationPort,
  };
}
