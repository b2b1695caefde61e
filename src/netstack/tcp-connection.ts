/**
 * One TCP connection's state machine (RFC 9293 §3.10), on segments, not bytes: the
 * Netstack decodes a segment for this connection's 4-tuple and calls `receive`; what the
 * connection sends goes out through the `send` callback. Reliability per RFC 6298 (RTO,
 * Karn's rule), congestion control NewReno (RFC 5681, RFC 6582), window scaling (RFC
 * 7323), SACK blocks on receive (RFC 2018), and the RFC 5961 checks against blind RST,
 * SYN and data injection. Time comes from the Clock seam; nothing here throws on input.
 *
 * ```
 *                  active open (connect)                 passive open (listener, SYN)
 *   CLOSED ── SYN ──> SYN-SENT ── SYN+ACK / ACK ──┐   SYN-RECEIVED <── SYN / SYN+ACK ── LISTEN
 *                        └── SYN / SYN+ACK ───────┼──> SYN-RECEIVED ── ACK ──┐
 *                                                 v                          v
 *                                             ESTABLISHED <──────────────────┘
 *               close / FIN ┌──────────────────────┴─────────────────┐ FIN / ACK
 *                           v                                        v
 *   FIN-WAIT-1 ── FIN / ACK ──> CLOSING ── ACK of FIN ──┐        CLOSE-WAIT ── close / FIN ──> LAST-ACK
 *      │ ACK of FIN                                     v                                        │ ACK of FIN
 *      v                                            TIME-WAIT ── 2 MSL ──> CLOSED <──────────────┘
 *   FIN-WAIT-2 ── FIN / ACK ────────────────────────────^
 * ```
 */
import type { CancelTimer, Clock } from "../clock.ts";
import {
  CHALLENGE_ACKS_PER_SECOND,
  DEFAULT_MSL_MS,
  DEFAULT_PATH_MTU_BYTES,
  DEFAULT_RECEIVE_BUFFER_BYTES,
  DEFAULT_SEND_BUFFER_BYTES,
  DEFAULT_SEND_MSS_BYTES,
  DELAYED_ACK_MS,
  DELAYED_ACK_SEGMENTS,
  DELAYED_ACK_WORST_MS,
  DUPLICATE_ACK_THRESHOLD,
  IPV4_HEADER_BYTES,
  IPV6_HEADER_BYTES,
  MAX_DATA_RETRANSMISSIONS,
  MAX_REASSEMBLY_SEGMENTS,
  MAX_SACK_BLOCKS,
  MAX_SACK_SCOREBOARD_RANGES,
  MAX_SYN_RETRANSMISSIONS,
  MAX_WINDOW_FIELD,
  MAX_WINDOW_SCALE,
  PROBE_MIN_MS,
  TCP_HEADER_BYTES,
} from "./tcp-constants.ts";
import { ReassemblyQueue } from "./tcp-reassembly.ts";
import { addRttSample, backOff, createRtoEstimator, type RtoEstimator } from "./tcp-rto.ts";
import { SackScoreboard } from "./tcp-sack-scoreboard.ts";
import { NO_FLAGS, type TcpFlags, type TcpOptions, type TcpSegment } from "./tcp-segment.ts";
import {
  seqAdd,
  seqDiff,
  seqGe,
  seqGt,
  seqInWindow,
  seqLe,
  seqLt,
  seqMax,
} from "./tcp-sequence.ts";
import { LazyTimer } from "./tcp-timer.ts";

export type TcpState =
  | "LISTEN"
  | "SYN-SENT"
  | "SYN-RECEIVED"
  | "ESTABLISHED"
  | "FIN-WAIT-1"
  | "FIN-WAIT-2"
  | "CLOSE-WAIT"
  | "CLOSING"
  | "LAST-ACK"
  | "TIME-WAIT"
  | "CLOSED";

/** Why a connection reached CLOSED. */
export type TcpCloseReason = "closed" | "reset" | "refused" | "timeout" | "aborted";

/** What the application hears; every handler is optional and runs synchronously. */
export interface TcpConnectionEvents {
  /** The three-way handshake completed (ESTABLISHED). */
  onConnected?(): void;
  /** New in-order bytes can be taken with `read()`. */
  onReadable?(): void;
  /** The peer's FIN arrived: after the bytes still in `read()`, no more will come. */
  onReadableClosed?(): void;
  /** Send-buffer space was freed by ACKs: `write` accepts more. */
  onWritable?(): void;
  /** The peer reset the connection (just before `onClosed("reset")`). */
  onReset?(): void;
  /** The connection reached CLOSED; the Netstack may forget its 4-tuple now. */
  onClosed?(reason: TcpCloseReason): void;
}

export interface TcpKeepaliveOptions {
  /** Idle time before the first probe. */
  readonly idleMs: number;
  /** Time between unanswered probes. */
  readonly intervalMs: number;
  /** Unanswered probes before the connection is dropped with "timeout". */
  readonly probes: number;
}

export interface TcpConnectionOptions {
  readonly clock: Clock;
  /** Hands a segment to the Netstack, which encodes it and adds the IP header. */
  readonly send: (segment: TcpSegment) => void;
  /** A uniformly random unsigned 32-bit integer, for the initial sequence number. */
  readonly randomUint32: () => number;
  readonly localPort: number;
  readonly remotePort: number;
  /** The path MTU to the peer; our MSS is this minus the IP and TCP headers. */
  readonly pathMtuBytes?: number;
  readonly ipVersion?: 4 | 6;
  readonly sendBufferBytes?: number;
  readonly receiveBufferBytes?: number;
  /** Maximum segment lifetime; TIME-WAIT lasts twice this. */
  readonly mslMs?: number;
  /** Offer and accept SACK (RFC 2018); on by default. */
  readonly sack?: boolean;
  /** Off unless given. */
  readonly keepalive?: TcpKeepaliveOptions;
  readonly events?: TcpConnectionEvents;
  /**
   * The owner's hook (the Netstack's, to drop the 4-tuple) when the connection reaches
   * CLOSED, after the application's `onClosed`; `setEvents` does not replace it.
   */
  readonly onRelease?: (reason: TcpCloseReason) => void;
  /**
   * The payload of a segment handed to `send` may be a view into the send buffer, valid
   * only during the call (for an owner that encodes it at once, as TcpStack does); a
   * copy by default, so a `send` may keep the segment.
   */
  readonly sendPayloadViews?: boolean;
  /**
   * Received payloads are the caller's to give away (the Netstack copied the packet), so
   * in-order data is kept without another copy; copied by default.
   */
  readonly receivedPayloadsOwned?: boolean;
  /**
   * A limit shared with other connections (the stack's), asked after this connection's
   * own 10 a second before each challenge ACK (RFC 5961 §7); none by default.
   */
  readonly challengeAckLimit?: { take(nowMs: number): boolean };
}

/** Counters for what the connection did with odd input; all start at 0. */
export interface TcpConnectionStats {
  segmentsReceived: number;
  segmentsSent: number;
  retransmissions: number;
  fastRetransmits: number;
  timeouts: number;
  /** Segments outside the receive window (answered with an ACK unless RST). */
  outOfWindow: number;
  /** Segments dropped for a bad ACK, a missing ACK or an unexpected flag combination. */
  dropped: number;
  challengeAcks: number;
  /** RSTs ignored because their sequence number was not exactly RCV.NXT or out of window. */
  resetsIgnored: number;
  /** Out-of-order data dropped because the reassembly queue was full. */
  reassemblyDrops: number;
  /** Zero-window probes sent by the persist timer. */
  windowProbes: number;
  /** Tail loss probes sent (RFC 8985 §7) after a flight went unanswered for two RTTs. */
  lossProbes: number;
}

const SYNCHRONIZED: ReadonlySet<TcpState> = new Set([
  "ESTABLISHED",
  "FIN-WAIT-1",
  "FIN-WAIT-2",
  "CLOSE-WAIT",
  "CLOSING",
  "LAST-ACK",
  "TIME-WAIT",
]);

function flags(set: Partial<TcpFlags>): TcpFlags {
  return { ...NO_FLAGS, ...set };
}

// The flags of the segments sent most, made once: a bulk transfer sends them per segment.
const ACK_FLAGS = flags({ ack: true });
const ACK_PSH_FLAGS = flags({ ack: true, psh: true });
const RST_FLAGS = flags({ rst: true });
const NO_OPTIONS: TcpOptions = Object.freeze({});
const NO_PAYLOAD = new Uint8Array(0);

/** Our MSS for a path MTU: what fits after the IP and TCP headers. */
export function mssForPathMtu(pathMtuBytes: number, ipVersion: 4 | 6): number {
  const ip = ipVersion === 6 ? IPV6_HEADER_BYTES : IPV4_HEADER_BYTES;
  return Math.max(DEFAULT_SEND_MSS_BYTES, pathMtuBytes - ip - TCP_HEADER_BYTES);
}

/** The smallest window shift that lets `bufferBytes` fit the 16-bit window field. */
export function windowScaleFor(bufferBytes: number): number {
  let shift = 0;
  while (shift < MAX_WINDOW_SCALE && bufferBytes >>> shift > MAX_WINDOW_FIELD) shift++;
  return shift;
}

/**
 * A TCP connection. Make one with `TcpConnection.connect` (active open) or through a
 * `TcpListener` (passive open). After CLOSED it ignores everything and sends nothing.
 *
 * @example Two connections wired back to back
 * ```ts
 * const a = TcpConnection.connect({ clock, send: (s) => b.receive(s), ... });
 * a.write(new TextEncoder().encode("hello"));
 * a.close(); // FIN after the buffered bytes
 * ```
 */
export class TcpConnection {
  readonly #clock: Clock;
  readonly #send: (segment: TcpSegment) => void;
  readonly #localPort: number;
  readonly #remotePort: number;
  readonly #mslMs: number;
  readonly #keepalive: TcpKeepaliveOptions | undefined;
  readonly #ourMss: number;
  readonly #sackEnabled: boolean;
  readonly #sendPayloadViews: boolean;
  readonly #receivedPayloadsOwned: boolean;
  readonly #challengeAckLimit: { take(nowMs: number): boolean } | undefined;
  #events: TcpConnectionEvents;
  readonly #onRelease: ((reason: TcpCloseReason) => void) | undefined;
  #state: TcpState = "CLOSED";
  readonly stats: TcpConnectionStats = {
    segmentsReceived: 0,
    segmentsSent: 0,
    retransmissions: 0,
    fastRetransmits: 0,
    timeouts: 0,
    outOfWindow: 0,
    dropped: 0,
    challengeAcks: 0,
    resetsIgnored: 0,
    reassemblyDrops: 0,
    windowProbes: 0,
    lossProbes: 0,
  };

  // Send sequence space (RFC 9293 §3.3.1). SND.MAX is the highest SND.NXT reached, since
  // a timeout moves SND.NXT back to SND.UNA (go-back-N).
  readonly #iss: number;
  #sndUna: number;
  #sndNxt: number;
  #sndMax: number;
  #sndWnd = 0;
  #sndWl1 = 0;
  #sndWl2 = 0;
  #maxSndWnd = 0;
  #sndScale = 0;
  /** Both SYNs carried the window scale option (RFC 7323 §2.2). */
  #windowScaling = false;
  #sendMss = DEFAULT_SEND_MSS_BYTES;
  #sackPermitted = false;
  /** Bytes written and not yet acknowledged: [#sendHead, #sendHead + #sendLength). */
  /** Grows on demand up to #sendCapacity, so idle and half-open connections stay small. */
  #sendBuffer = new Uint8Array(0);
  readonly #sendCapacity: number;
  #sendHead = 0;
  #sendLength = 0;
  /** The sequence number of the first buffered byte. */
  #sendBufferSeq: number;
  #finQueued = false;
  #finAcked = false;

  // Receive sequence space.
  #irs = 0;
  #rcvNxt = 0;
  readonly #rcvScale: number;
  #rcvScaleInUse = 0;
  readonly #receiveCapacity: number;
  #readable: Uint8Array[] = [];
  #readableHead = 0;
  #readableBytes = 0;
  readonly #reassembly = new ReassemblyQueue(MAX_REASSEMBLY_SEGMENTS);
  /** Where the peer's FIN sits when it arrived ahead of missing data. */
  #pendingFinSeq: number | undefined;
  #finReceived = false;
  #lastAdvertisedWindow = 0;

  // Congestion control (NewReno).
  #cwnd = 0;
  #ssthresh = 0x7fffffff;
  #duplicateAcks = 0;
  #inRecovery = false;
  /** Retransmitting after a timeout, skipping what the peer SACKed (RFC 6675 §5.1). */
  #rtoRecovery = false;
  /** Extra window for limited transmit (RFC 3042) while duplicates are below three. */
  #limitedTransmit = 0;
  /** With SACK: how far holes were resent in this recovery. */
  #highRxt = 0;
  readonly #scoreboard = new SackScoreboard(MAX_SACK_SCOREBOARD_RANGES);
  #recover: number;

  // RTT measurement (one timed segment at a time, Karn's rule) and timers.
  readonly #rto: RtoEstimator = createRtoEstimator();
  #rttSeq: number | undefined;
  #rttStartMs = 0;
  #retransmissions = 0;
  readonly #retransmitTimer: LazyTimer;
  /** The tail loss probe's timer (RFC 8985 §7), due well before the RTO. */
  readonly #probeTimer: LazyTimer;
  #probeOutstanding = false;
  #cancelPersist: CancelTimer | undefined;
  readonly #delayedAckTimer: LazyTimer;
  #cancelTimeWait: CancelTimer | undefined;
  readonly #keepaliveTimer: LazyTimer;
  #keepaliveProbes = 0;
  #unansweredProbes = 0;
  #unackedSegments = 0;
  #challengeWindowStartMs = Number.NEGATIVE_INFINITY;
  #challengeCount = 0;

  private constructor(options: TcpConnectionOptions) {
    for (const [title, value, min] of [
      ["localPort", options.localPort, 0],
      ["remotePort", options.remotePort, 0],
      ["sendBufferBytes", options.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES, 1],
      ["receiveBufferBytes", options.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES, 1],
    ] as const) {
      if (!Number.isInteger(value) || value < min) {
        throw new RangeError(
          `Expected "${title}" to be an integer of ${min} or more, got ${value}`,
        );
      }
    }
    if ((options.receiveBufferBytes ?? 0) > MAX_WINDOW_FIELD << MAX_WINDOW_SCALE) {
      throw new RangeError(
        `Expected "receiveBufferBytes" to be at most ${MAX_WINDOW_FIELD << MAX_WINDOW_SCALE}, got ${options.receiveBufferBytes}`,
      );
    }
    this.#clock = options.clock;
    this.#send = options.send;
    this.#localPort = options.localPort;
    this.#remotePort = options.remotePort;
    this.#mslMs = options.mslMs ?? DEFAULT_MSL_MS;
    this.#keepalive = options.keepalive;
    this.#events = options.events ?? {};
    this.#onRelease = options.onRelease;
    this.#ourMss = mssForPathMtu(
      options.pathMtuBytes ?? DEFAULT_PATH_MTU_BYTES,
      options.ipVersion ?? 4,
    );
    this.#sackEnabled = options.sack ?? true;
    this.#sendPayloadViews = options.sendPayloadViews ?? false;
    this.#receivedPayloadsOwned = options.receivedPayloadsOwned ?? false;
    this.#challengeAckLimit = options.challengeAckLimit;
    this.#retransmitTimer = new LazyTimer(options.clock, () => this.#onRetransmitTimeout());
    this.#probeTimer = new LazyTimer(options.clock, () => this.#onProbeTimeout());
    this.#delayedAckTimer = new LazyTimer(options.clock, () => this.#sendAck());
    this.#keepaliveTimer = new LazyTimer(options.clock, () => this.#onKeepalive());
    this.#sendCapacity = options.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES;
    this.#receiveCapacity = options.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES;
    this.#rcvScale = windowScaleFor(this.#receiveCapacity);
    this.#iss = options.randomUint32() >>> 0;
    this.#sndUna = this.#iss;
    this.#sndNxt = this.#iss;
    this.#sndMax = this.#iss;
    this.#sendBufferSeq = seqAdd(this.#iss, 1);
    this.#recover = this.#iss;
  }

  /** Active open: sends a SYN and enters SYN-SENT. */
  static connect(options: TcpConnectionOptions): TcpConnection {
    const connection = new TcpConnection(options);
    connection.#state = "SYN-SENT";
    connection.#transmit();
    return connection;
  }

  /**
   * Passive open from a SYN that reached a listener: enters SYN-RECEIVED and answers
   * SYN+ACK. Returns undefined (sending nothing) when `syn` is not a plain SYN.
   * `TcpListener` calls this; a Netstack may too.
   */
  static accept(syn: TcpSegment, options: TcpConnectionOptions): TcpConnection | undefined {
    if (!syn.flags.syn || syn.flags.ack || syn.flags.rst || syn.flags.fin) return undefined;
    const connection = new TcpConnection(options);
    connection.#state = "SYN-RECEIVED";
    connection.#takeSynOptions(syn);
    connection.#sndWnd = syn.window; // never scaled on a SYN (RFC 7323 §2.2)
    connection.#maxSndWnd = syn.window;
    connection.#sndWl1 = syn.seq;
    connection.#sndWl2 = connection.#iss;
    connection.#transmit();
    return connection;
  }

  /**
   * Passive open from the ACK that returned a SYN cookie (tcp-syn-cookie.ts): the
   * connection is rebuilt in SYN-RECEIVED as if our SYN+ACK (ISS = `ack.ack - 1`, MSS
   * `mss` for the peer, no window scaling or SACK) had been sent, without sending
   * anything. Hand it `ack` with `receive` to complete the handshake (and take any data).
   */
  static acceptCookie(ack: TcpSegment, mss: number, options: TcpConnectionOptions): TcpConnection {
    const iss = seqAdd(ack.ack, -1);
    const connection = new TcpConnection({ ...options, randomUint32: () => iss, sack: false });
    connection.#state = "SYN-RECEIVED";
    const peerIsn = seqAdd(ack.seq, -1);
    connection.#takeSynOptions({ ...ack, seq: peerIsn, options: { mss } });
    connection.#sndWnd = ack.window;
    connection.#maxSndWnd = ack.window;
    connection.#sndWl1 = peerIsn;
    connection.#sndWl2 = iss;
    connection.#sndNxt = ack.ack;
    connection.#sndMax = ack.ack;
    return connection;
  }

  get state(): TcpState {
    return this.#state;
  }

  /** The MSS we send with: the peer's announced MSS (536 without one), capped by ours. */
  get sendMss(): number {
    return this.#sendMss;
  }

  /** Congestion window in bytes. */
  get congestionWindow(): number {
    return this.#cwnd;
  }

  /** The current retransmission timeout in ms. */
  get rtoMs(): number {
    return this.#rto.rtoMs;
  }

  /** Bytes that `write` would accept now. */
  get writableBytes(): number {
    if (!this.#canWrite()) return 0;
    return this.#sendCapacity - this.#sendLength;
  }

  /** Bytes waiting for `read`. */
  get readableBytes(): number {
    return this.#readableBytes;
  }

  /** True once the peer's FIN arrived and every byte before it was read. */
  get readableEnded(): boolean {
    return this.#finReceived && this.#readableBytes === 0;
  }

  /** Bytes held in the out-of-order queue (for tests and metrics). */
  get reassemblyBytes(): number {
    return this.#reassembly.bytes;
  }

  /**
   * Whether a SYN for this connection's 4-tuple may start a new connection although this
   * one is in TIME-WAIT: its sequence number is past everything this incarnation received
   * (RFC 9293 §3.10.7.4 note on TIME-WAIT; RFC 6191 without timestamps). The Netstack
   * then ends this connection with `abort()` and hands the SYN to the listener; otherwise
   * it passes the SYN to `receive`, which answers a challenge ACK.
   */
  acceptsNewSyn(syn: TcpSegment): boolean {
    return (
      this.#state === "TIME-WAIT" &&
      syn.flags.syn &&
      !syn.flags.ack &&
      !syn.flags.rst &&
      seqGt(syn.seq, this.#rcvNxt)
    );
  }

  /** Replaces the event handlers (a listener's connections get theirs after accept). */
  setEvents(events: TcpConnectionEvents): void {
    this.#events = events;
  }

  /**
   * Queues bytes for sending; returns how many fit in the send buffer (0 when it is full
   * or the connection can no longer send). Wait for `onWritable` to write the rest.
   */
  write(bytes: Uint8Array): number {
    const room = this.writableBytes;
    const n = Math.min(room, bytes.length);
    if (n === 0) return 0;
    let buffer = this.#sendBuffer;
    const needed = this.#sendLength + n;
    if (needed > buffer.length) {
      const grown = new Uint8Array(
        Math.min(this.#sendCapacity, Math.max(needed, 2 * buffer.length, 4096)),
      );
      grown.set(buffer.subarray(this.#sendHead, this.#sendHead + this.#sendLength));
      this.#sendBuffer = buffer = grown;
      this.#sendHead = 0;
    } else if (this.#sendHead + needed > buffer.length) {
      buffer.copyWithin(0, this.#sendHead, this.#sendHead + this.#sendLength);
      this.#sendHead = 0;
    }
    buffer.set(bytes.subarray(0, n), this.#sendHead + this.#sendLength);
    this.#sendLength += n;
    this.#transmit();
    return n;
  }

  /** Takes up to `maxBytes` in-order received bytes (all by default), opening the window. */
  read(maxBytes = Number.POSITIVE_INFINITY): Uint8Array {
    const n = Math.min(maxBytes, this.#readableBytes);
    const readable = this.#readable;
    let out: Uint8Array;
    if (n === readable[this.#readableHead]?.length) {
      // Exactly the first chunk (ours since delivery): no copy.
      out = readable[this.#readableHead++]!;
    } else {
      out = new Uint8Array(n);
      let filled = 0;
      while (filled < n) {
        const chunk = readable[this.#readableHead]!;
        const take = Math.min(chunk.length, n - filled);
        out.set(take === chunk.length ? chunk : chunk.subarray(0, take), filled);
        filled += take;
        if (take === chunk.length) this.#readableHead++;
        else readable[this.#readableHead] = chunk.subarray(take);
      }
    }
    // The queue is an array with a head index (shift() moves every element each time).
    if (this.#readableHead === readable.length) {
      readable.length = 0;
      this.#readableHead = 0;
    } else if (this.#readableHead > 1024) {
      readable.splice(0, this.#readableHead);
      this.#readableHead = 0;
    }
    this.#readableBytes -= n;
    // Receiver-side silly window avoidance (RFC 9293 §3.8.6.2.2): announce the opened
    // window only once it grew by a full segment or half the buffer.
    if (n > 0 && SYNCHRONIZED.has(this.#state) && !this.#finReceived) {
      const grown = this.#receiveWindow() - this.#lastAdvertisedWindow;
      if (grown >= Math.min(this.#receiveCapacity / 2, this.#ourMss)) this.#sendAck();
    }
    return out;
  }

  /** Sends FIN once the buffered bytes are out (RFC 9293 §3.10.4). */
  close(): void {
    switch (this.#state) {
      case "SYN-SENT":
        this.#enterClosed("closed");
        return;
      case "SYN-RECEIVED":
        this.#finQueued = true; // sent after the handshake completes
        return;
      case "ESTABLISHED":
        this.#finQueued = true;
        this.#state = "FIN-WAIT-1";
        this.#transmit();
        return;
      case "CLOSE-WAIT":
        this.#finQueued = true;
        this.#state = "LAST-ACK";
        this.#transmit();
        return;
      default:
        return;
    }
  }

  /** Resets the connection (RFC 9293 §3.10.5): RST to the peer where one is due, then CLOSED. */
  abort(): void {
    switch (this.#state) {
      case "SYN-RECEIVED":
      case "ESTABLISHED":
      case "FIN-WAIT-1":
      case "FIN-WAIT-2":
      case "CLOSE-WAIT":
        this.#emit({ seq: this.#sndNxt, ack: 0, flags: RST_FLAGS, window: 0 });
        break;
      default:
        break;
    }
    if (this.#state !== "CLOSED") this.#enterClosed("aborted");
  }

  /** Processes one segment addressed to this connection's 4-tuple (RFC 9293 §3.10.7). */
  receive(segment: TcpSegment): void {
    if (this.#state === "CLOSED" || this.#state === "LISTEN") return;
    this.stats.segmentsReceived++;
    this.#unansweredProbes = 0;
    if (this.#state === "SYN-SENT") {
      this.#receiveInSynSent(segment);
      return;
    }
    this.#receiveSynchronized(segment);
  }

  // ---- Segment arrival -------------------------------------------------------------

  #receiveInSynSent(seg: TcpSegment): void {
    const f = seg.flags;
    if (f.ack && (seqLe(seg.ack, this.#iss) || seqGt(seg.ack, this.#sndMax))) {
      this.stats.dropped++;
      if (!f.rst) this.#emitReset(seg.ack);
      return;
    }
    if (f.rst) {
      // RFC 5961 §3.2: only a RST that acknowledges our SYN refuses the connection.
      if (f.ack) this.#reset("refused");
      else this.stats.resetsIgnored++;
      return;
    }
    if (!f.syn) {
      this.stats.dropped++;
      return;
    }
    this.#irs = seg.seq;
    this.#rcvNxt = seqAdd(seg.seq, 1);
    this.#takeSynOptions(seg);
    if (f.ack) {
      this.#sndWnd = seg.window;
      this.#maxSndWnd = seg.window;
      this.#sndWl1 = seg.seq;
      this.#sndWl2 = seg.ack;
      this.#acknowledgeSyn(seg.ack);
      this.#establish();
      this.#sendAck();
      this.#transmit();
    } else {
      // Simultaneous open (RFC 9293 §3.5): answer SYN+ACK from our ISS.
      this.#state = "SYN-RECEIVED";
      this.#sndWnd = seg.window;
      this.#maxSndWnd = seg.window;
      this.#sndWl1 = seg.seq;
      this.#sndNxt = this.#iss;
      this.#transmit();
    }
  }

  #receiveSynchronized(segment: TcpSegment): void {
    let seg = segment;
    if (
      this.#state === "SYN-RECEIVED" &&
      seg.flags.syn &&
      !seg.flags.rst &&
      seg.seq === this.#irs
    ) {
      if (!seg.flags.ack) {
        // A retransmitted SYN: our SYN+ACK was lost.
        this.#sendSegmentAt(this.#iss);
        return;
      }
      // Simultaneous open (RFC 9293 Figure 7): the peer's SYN+ACK repeats the SYN we
      // took already; what is new is its ACK, so go on without the SYN.
      seg = { ...seg, seq: seqAdd(seg.seq, 1), flags: { ...seg.flags, syn: false } };
    }
    const f = seg.flags;
    // 1. Sequence number check (RFC 9293 §3.10.7.4, first).
    const window = this.#receiveWindow();
    const length = seg.payload.length + (f.syn ? 1 : 0) + (f.fin ? 1 : 0);
    let acceptable: boolean;
    if (length === 0) {
      acceptable =
        window === 0 ? seg.seq === this.#rcvNxt : seqInWindow(seg.seq, this.#rcvNxt, window);
    } else if (window === 0) {
      // Zero window: still take ACK, RST and FIN-free probes at RCV.NXT for their control fields.
      acceptable = seg.seq === this.#rcvNxt;
    } else {
      acceptable =
        seqInWindow(seg.seq, this.#rcvNxt, window) ||
        seqInWindow(seqAdd(seg.seq, length - 1), this.#rcvNxt, window);
    }
    if (!acceptable) {
      this.stats.outOfWindow++;
      if (!f.rst) {
        if (this.#state === "TIME-WAIT" && f.fin) this.#restartTimeWait();
        // A pure ACK answered by a pure ACK could ping-pong forever (an ACK storm, RFC
        // 5961 §5), and a SYN gets a challenge ACK whatever its number (RFC 5961 §4.2):
        // those answers share the challenge-ACK rate limit.
        if (length === 0 || f.syn) this.#challengeAck();
        else this.#sendAck();
      } else {
        this.stats.resetsIgnored++;
      }
      return;
    }
    // 2. RST (RFC 5961 §3.2): exact match resets, anything else in window is challenged.
    if (f.rst) {
      if (this.#state === "TIME-WAIT") {
        // RFC 1337: a RST must not cut TIME-WAIT short, or old duplicates could reach a
        // new incarnation of the connection.
        this.stats.resetsIgnored++;
      } else if (seg.seq === this.#rcvNxt) {
        this.#reset("reset");
      } else {
        this.stats.resetsIgnored++;
        this.#challengeAck();
      }
      return;
    }
    // 4. SYN in a synchronized state (RFC 5961 §4): challenge ACK, drop.
    if (f.syn) {
      this.#challengeAck();
      return;
    }
    // 5. ACK.
    if (!f.ack) {
      this.stats.dropped++;
      return;
    }
    if (this.#state === "SYN-RECEIVED") {
      if (seqGt(seg.ack, this.#sndUna) && seqLe(seg.ack, this.#sndMax)) {
        this.#sndWnd = seg.window << this.#sndScale;
        this.#maxSndWnd = Math.max(this.#maxSndWnd, this.#sndWnd);
        this.#sndWl1 = seg.seq;
        this.#sndWl2 = seg.ack;
        this.#acknowledgeSyn(seg.ack);
        this.#establish();
        if (this.#finQueued) this.#state = "FIN-WAIT-1";
      } else {
        this.stats.dropped++;
        this.#emitReset(seg.ack);
        return;
      }
    } else if (!this.#processAck(seg)) {
      return;
    }
    if (this.#state === "CLOSED") return;
    // 7. Segment text, 8. FIN.
    this.#processText(seg);
    this.#restartKeepalive();
    this.#transmit();
  }

  /** RFC 9293 §3.10.7.4 fifth step with RFC 5961 §5.2; false means drop the segment. */
  #processAck(seg: TcpSegment): boolean {
    const ack = seg.ack;
    if (seqGt(ack, this.#sndMax)) {
      this.stats.dropped++;
      this.#sendAck();
      return false;
    }
    if (seqLt(ack, seqAdd(this.#sndUna, -this.#maxSndWnd))) {
      this.stats.dropped++;
      this.#challengeAck();
      return false;
    }
    const window = seg.window << this.#sndScale;
    let sackedNew = false;
    if (this.#sackPermitted && seg.options.sack !== undefined) {
      sackedNew = this.#scoreboard.update(
        seg.options.sack,
        seqMax(ack, this.#sndUna),
        this.#sndMax,
      );
    }
    if (seqGt(ack, this.#sndUna)) {
      this.#onNewAck(ack);
      if (sackedNew) this.#detectSackLoss();
    } else if (
      ack === this.#sndUna &&
      seg.payload.length === 0 &&
      !seg.flags.fin &&
      // RFC 5681 asks for an unchanged window; with SACK, an ACK that SACKs new bytes is a
      // duplicate whatever its window (RFC 6675 §2): Linux receivers move theirs as they go.
      (window === this.#sndWnd || sackedNew) &&
      this.#sndMax !== this.#sndUna &&
      this.#sndWnd > 0
    ) {
      this.#onDuplicateAck();
    } else if (sackedNew) {
      this.#detectSackLoss();
    }
    if (seqLt(this.#sndWl1, seg.seq) || (this.#sndWl1 === seg.seq && seqLe(this.#sndWl2, ack))) {
      if (this.#sndWnd === 0 && window > 0) {
        // The window reopened: stop probing, resend from SND.UNA (the probe byte too).
        this.#stopPersistTimer();
        this.#sndNxt = this.#sndUna;
      }
      this.#sndWnd = window;
      this.#maxSndWnd = Math.max(this.#maxSndWnd, window);
      this.#sndWl1 = seg.seq;
      this.#sndWl2 = ack;
    }
    switch (this.#state) {
      case "FIN-WAIT-1":
        if (this.#finAcked) this.#state = "FIN-WAIT-2";
        break;
      case "CLOSING":
        if (this.#finAcked) this.#enterTimeWait();
        break;
      case "LAST-ACK":
        if (this.#finAcked) {
          this.#enterClosed("closed");
          return false;
        }
        break;
      default:
        break;
    }
    return true;
  }

  #onNewAck(ack: number): void {
    const acked = seqDiff(ack, this.#sndUna);
    this.#sampleRtt(ack);
    const freed = this.#acknowledge(ack);
    this.#retransmissions = 0;
    // Congestion control: NewReno (RFC 6582 §3.2) in recovery, else RFC 5681 §3.1.
    const mss = this.#sendMss;
    if (this.#inRecovery) {
      if (seqGe(ack, this.#recover)) {
        const flight = seqDiff(this.#sndMax, this.#sndUna);
        this.#cwnd = Math.min(this.#ssthresh, Math.max(flight, mss) + mss);
        this.#inRecovery = false;
        this.#duplicateAcks = 0;
      } else {
        // Partial ACK: retransmit the next hole (unless SACK recovery resent it already),
        // deflate by what was acknowledged.
        if (seqGe(this.#sndUna, this.#highRxt)) this.#retransmit(this.#sndUna);
        else this.#retransmitNextHole();
        this.#cwnd = Math.max(mss, this.#cwnd - acked + (acked >= mss ? mss : 0));
      }
    } else {
      this.#duplicateAcks = 0;
      this.#limitedTransmit = 0;
      if (this.#rtoRecovery && seqGe(ack, this.#recover)) this.#rtoRecovery = false;
      // Both phases count acknowledged bytes, not ACKs (RFC 3465; Linux gives stretch ACKs
      // full credit too): a receiver that acknowledges a burst at once must not slow us.
      if (this.#cwnd < this.#ssthresh) this.#cwnd += Math.min(acked, this.#ssthresh - this.#cwnd);
      else this.#cwnd += Math.max(1, Math.floor((mss * Math.min(acked, this.#cwnd)) / this.#cwnd));
    }
    this.#stopRetransmitTimer();
    if (this.#sndUna !== this.#sndMax) this.#startRetransmitTimer();
    this.#probeOutstanding = false;
    this.#armProbe();
    if (freed > 0 && this.#canWrite()) this.#events.onWritable?.();
  }

  #onDuplicateAck(): void {
    this.#duplicateAcks++;
    const mss = this.#sendMss;
    if (this.#inRecovery) {
      // Each duplicate ACK means a segment left the network: resend the next SACK hole
      // in its place, or else inflate the window for new data (RFC 6582 §3.2 step 4).
      if (!this.#retransmitNextHole()) this.#cwnd += mss;
      return;
    }
    if (this.#duplicateAcks === DUPLICATE_ACK_THRESHOLD) this.#enterRecovery();
    else if (this.#detectSackLoss()) return;
    else if (this.#duplicateAcks < DUPLICATE_ACK_THRESHOLD && !this.#rtoRecovery) {
      // Limited transmit (RFC 3042): each of the first two duplicates lets one new
      // segment out, so a small window still collects the three it needs.
      this.#limitedTransmit = this.#duplicateAcks * mss;
      this.#transmit();
    }
  }

  /**
   * SACK loss detection (RFC 6675 IsLost, with RFC 5827's early retransmit for small
   * flights): the segment at SND.UNA is lost once more than DupThresh-1 segments' worth
   * of bytes above it were SACKed, or all but one segment of a flight too small to
   * produce three duplicates. Enters recovery then; ACKs lost on the way back no longer
   * hold it off until the timeout. Returns whether it did.
   */
  #detectSackLoss(): boolean {
    if (this.#inRecovery || !this.#sackPermitted || this.#sndUna === this.#sndMax) return false;
    const mss = this.#sendMss;
    const flight = seqDiff(this.#sndMax, this.#sndUna);
    const threshold = Math.min((DUPLICATE_ACK_THRESHOLD - 1) * mss + 1, flight - mss);
    if (threshold <= 0 || this.#scoreboard.sackedBytes < threshold) return false;
    return this.#enterRecovery();
  }

  /** Fast retransmit and recovery (RFC 6582 §3.2, with SACK holes per RFC 6675). */
  #enterRecovery(): boolean {
    const mss = this.#sendMss;
    // Once per window: not for losses from before the last recovery or timeout.
    if (seqGt(this.#sndUna, this.#recover)) {
      this.#limitedTransmit = 0;
      this.#rtoRecovery = false;
      const flight = seqDiff(this.#sndMax, this.#sndUna);
      this.#ssthresh = Math.max(Math.floor(flight / 2), 2 * mss);
      this.#recover = this.#sndMax;
      this.#inRecovery = true;
      this.#rttSeq = undefined;
      this.#highRxt = this.#sndUna;
      this.#retransmit(this.#sndUna);
      this.stats.fastRetransmits++;
      this.#cwnd = this.#ssthresh + DUPLICATE_ACK_THRESHOLD * mss;
      this.#stopRetransmitTimer();
      this.#startRetransmitTimer();
      return true;
    }
    return false;
  }

  /** Resends up to one MSS at `seq`, not past `end` (a hole's end, or SND.MAX). */
  #retransmit(seq: number, end = this.#sndMax): void {
    // Never past SND.MAX: a window-limited segment may have been shorter than an MSS, and
    // bytes never sent must go out through #transmit, or the peer's ACK of them would be
    // refused as acknowledging something not yet sent.
    const room = Math.min(this.#sendMss, seqDiff(end, seq));
    this.#sendSegmentAt(seq, room);
    this.#highRxt = seqMax(this.#highRxt, seqAdd(seq, room));
    this.stats.retransmissions++;
  }

  /** Resends the next hole the SACK scoreboard shows below SACKed data; false if none. */
  #retransmitNextHole(): boolean {
    const hole = this.#scoreboard.nextHole(seqMax(this.#highRxt, this.#sndUna));
    if (hole === undefined) return false;
    this.#retransmit(hole[0], hole[1]);
    return true;
  }

  /** The handshake's ACK of our SYN: an RTT sample, and the SYN's timer stops. */
  #acknowledgeSyn(ack: number): void {
    this.#sampleRtt(ack);
    this.#acknowledge(ack);
    this.#retransmissions = 0;
    this.#stopRetransmitTimer();
  }

  #sampleRtt(ack: number): void {
    if (this.#rttSeq !== undefined && seqGe(ack, this.#rttSeq)) {
      addRttSample(this.#rto, this.#clock.now() - this.#rttStartMs);
      this.#rttSeq = undefined;
    }
  }

  /** Moves SND.UNA to `ack`, dropping acknowledged bytes; returns how many were freed. */
  #acknowledge(ack: number): number {
    const dataAcked = Math.max(0, Math.min(seqDiff(ack, this.#sendBufferSeq), this.#sendLength));
    this.#sendHead += dataAcked;
    this.#sendLength -= dataAcked;
    if (this.#sendLength === 0) this.#sendHead = 0;
    this.#sendBufferSeq = seqAdd(this.#sendBufferSeq, dataAcked);
    this.#sndUna = ack;
    this.#scoreboard.advance(ack);
    if (seqLt(this.#sndNxt, ack)) this.#sndNxt = ack;
    if (this.#finQueued && this.#sendLength === 0 && seqGt(ack, this.#finSeq()))
      this.#finAcked = true;
    return dataAcked;
  }

  #processText(seg: TcpSegment): void {
    const receiving =
      this.#state === "ESTABLISHED" || this.#state === "FIN-WAIT-1" || this.#state === "FIN-WAIT-2";
    let seq = seg.seq;
    let payload = seg.payload;
    let fin = seg.flags.fin;
    // Trim to the window: the part before RCV.NXT was seen, the part past the edge is not ours yet.
    const before = seqDiff(this.#rcvNxt, seq);
    if (before > 0) {
      payload = payload.subarray(Math.min(before, payload.length));
      seq = this.#rcvNxt;
      if (before > seg.payload.length) fin = false; // a FIN already counted
    }
    const window = this.#receiveWindow();
    const room = window - seqDiff(seq, this.#rcvNxt);
    if (payload.length > room) {
      payload = payload.subarray(0, Math.max(0, room));
      fin = false;
    }
    if (!receiving) {
      // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer's FIN came already.
      if (seg.payload.length > 0 || seg.flags.fin) {
        if (this.#state === "TIME-WAIT" && seg.flags.fin) this.#restartTimeWait();
        this.#sendAck();
      }
      return;
    }
    if (payload.length === 0 && !fin) {
      if (seg.payload.length > 0) this.#sendAck(); // all of it was old or beyond the window
      return;
    }
    if (seq !== this.#rcvNxt) {
      // Out of order: keep it, and tell the sender at once (a duplicate ACK, RFC 5681 §4.2).
      if (payload.length > 0 && !this.#reassembly.insert(seq, payload, this.#rcvNxt)) {
        this.stats.reassemblyDrops++;
      }
      if (fin) this.#pendingFinSeq = seqAdd(seq, payload.length);
      this.#ackSoon();
      return;
    }
    const hadGap = this.#reassembly.pieces > 0;
    if (payload.length > 0) this.#deliver(this.#receivedPayloadsOwned ? payload : payload.slice());
    for (const chunk of this.#reassembly.take(this.#rcvNxt)) this.#deliver(chunk);
    if (!fin && this.#pendingFinSeq !== undefined && this.#pendingFinSeq === this.#rcvNxt)
      fin = true;
    if (payload.length > 0 || hadGap) {
      this.#events.onReadable?.();
      if (this.#state === "CLOSED") return; // the application aborted from its handler
    }
    if (fin) {
      this.#receiveFin();
      return;
    }
    if (hadGap) {
      this.#ackSoon();
      return;
    }
    // Every second segment is acknowledged (RFC 5681 §4.2), but at the end of the batch of
    // packets being delivered now (a 0 ms timer) rather than at once: a burst read from
    // the socket in one go gets one ACK, as GRO gives a kernel receiver one. Each pure
    // ACK costs a seal and a send on the tunnel, about 40% of a download's CPU before.
    if (++this.#unackedSegments >= DELAYED_ACK_SEGMENTS) this.#ackSoon();
    else this.#startDelayedAck();
  }

  #deliver(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#readable.push(chunk);
    this.#readableBytes += chunk.length;
    this.#rcvNxt = seqAdd(this.#rcvNxt, chunk.length);
  }

  /** RFC 9293 §3.10.7.4 eighth step: the FIN is next in sequence. */
  #receiveFin(): void {
    this.#rcvNxt = seqAdd(this.#rcvNxt, 1);
    this.#finReceived = true;
    this.#pendingFinSeq = undefined;
    this.#reassembly.clear();
    switch (this.#state) {
      case "ESTABLISHED":
        this.#state = "CLOSE-WAIT";
        break;
      case "FIN-WAIT-1":
        if (this.#finAcked) this.#enterTimeWait();
        else this.#state = "CLOSING";
        break;
      case "FIN-WAIT-2":
        this.#enterTimeWait();
        break;
      default:
        break;
    }
    this.#sendAck();
    this.#events.onReadableClosed?.();
  }

  // ---- Sending ---------------------------------------------------------------------

  /** Sends what the windows allow: SYN, data, FIN (RFC 9293 §3.8.6, RFC 5681). */
  #transmit(): void {
    const state = this.#state;
    if (state === "CLOSED" || state === "LISTEN" || state === "TIME-WAIT") return;
    const handshaking = state === "SYN-SENT" || state === "SYN-RECEIVED";
    if (handshaking && this.#sndNxt === this.#iss) {
      this.#sendSegmentAt(this.#iss);
      this.#sndNxt = seqAdd(this.#iss, 1);
      this.#sndMax = seqMax(this.#sndMax, this.#sndNxt);
      if (this.#rttSeq === undefined && this.#retransmissions === 0)
        this.#startRttTiming(this.#sndNxt);
      this.#startRetransmitTimer();
      return;
    }
    if (handshaking) return;
    for (;;) {
      const offset = seqDiff(this.#sndNxt, this.#sendBufferSeq);
      const unsent = this.#sendLength - offset;
      const finPending = this.#finQueued && seqLe(this.#sndNxt, this.#finSeq());
      if (unsent <= 0 && !finPending) break;
      if (this.#rtoRecovery && seqLt(this.#sndNxt, this.#sndMax)) {
        // Resending after a timeout: what the peer SACKed needs no second copy.
        const sackedEnd = this.#scoreboard.sackedEnd(this.#sndNxt);
        if (sackedEnd !== undefined) {
          this.#sndNxt = seqLt(sackedEnd, this.#sndMax) ? sackedEnd : this.#sndMax;
          continue;
        }
      }
      const inFlight = seqDiff(this.#sndNxt, this.#sndUna);
      const usable =
        Math.min(this.#sndWnd, this.#cwnd + this.#limitedTransmit) -
        inFlight +
        (this.#rtoRecovery ? this.#scoreboard.sackedBelow(this.#sndNxt) : 0);
      let length = Math.max(0, Math.min(this.#sendMss, unsent, usable));
      if (this.#rtoRecovery && seqLt(this.#sndNxt, this.#sndMax)) {
        const nextSacked = this.#scoreboard.nextSackedAfter(this.#sndNxt);
        if (nextSacked !== undefined) length = Math.min(length, seqDiff(nextSacked, this.#sndNxt));
      }
      if (unsent > 0 && length === 0) {
        if (this.#sndWnd === 0 && inFlight === 0) this.#startPersistTimer();
        break;
      }
      // Sender-side silly window avoidance: no small segment while others are in flight.
      if (length < unsent && length < this.#sendMss && inFlight > 0) break;
      this.#sendSegmentAt(this.#sndNxt, length);
      const fin = finPending && length === Math.max(0, unsent);
      this.#sndNxt = seqAdd(this.#sndNxt, length + (fin ? 1 : 0));
      if (seqGt(this.#sndNxt, this.#sndMax)) {
        this.#sndMax = this.#sndNxt;
        if (this.#rttSeq === undefined) this.#startRttTiming(this.#sndNxt);
      }
      this.#startRetransmitTimer();
      if (!this.#probeTimer.running) this.#armProbe();
      if (fin) break;
    }
  }

  /**
   * Sends the segment that starts at `seq`: SYN (with ACK unless in SYN-SENT) at the
   * ISS, else up to one MSS of buffered data, with FIN when it reaches the end and a FIN
   * is queued. Within the send window except for the persist probe.
   */
  #sendSegmentAt(seq: number, maxBytes = this.#sendMss, finAllowed = true): void {
    if (seq === this.#iss && (this.#state === "SYN-SENT" || this.#state === "SYN-RECEIVED")) {
      const options: TcpOptions = {
        mss: this.#ourMss,
        ...(this.#state === "SYN-SENT" || this.#windowScaling
          ? { windowScale: this.#rcvScale }
          : {}),
        ...(this.#sackEnabled && (this.#state === "SYN-SENT" || this.#sackPermitted)
          ? { sackPermitted: true }
          : {}),
      };
      const synAck = this.#state !== "SYN-SENT";
      this.#emit({
        seq: this.#iss,
        ack: synAck ? this.#rcvNxt : 0,
        flags: flags({ syn: true, ack: synAck }),
        window: Math.min(MAX_WINDOW_FIELD, this.#receiveWindow()),
        options,
      });
      return;
    }
    const offset = Math.max(0, seqDiff(seq, this.#sendBufferSeq));
    const length = Math.max(0, Math.min(maxBytes, this.#sendLength - offset));
    const start = this.#sendHead + offset;
    const payload = this.#sendPayloadViews
      ? this.#sendBuffer.subarray(start, start + length)
      : this.#sendBuffer.slice(start, start + length);
    const fin =
      finAllowed &&
      this.#finQueued &&
      offset + length === this.#sendLength &&
      seqLe(seq, this.#finSeq());
    this.#emit({
      seq,
      ack: this.#rcvNxt,
      flags: fin
        ? flags({ ack: true, psh: length > 0 && offset + length === this.#sendLength, fin })
        : length > 0 && offset + length === this.#sendLength
          ? ACK_PSH_FLAGS
          : ACK_FLAGS,
      window: this.#scaledWindowField(),
      payload,
    });
  }

  #sendAck(): void {
    if (this.#state === "CLOSED" || this.#state === "SYN-SENT") return;
    if (this.#state === "SYN-RECEIVED") {
      this.#sendSegmentAt(this.#iss);
      return;
    }
    // SND.MAX, not SND.NXT: after a timeout rewinds SND.NXT, a pure ACK from there would
    // fall before the peer's RCV.NXT and be dropped with the news it carries.
    this.#emit({
      seq: this.#sndMax,
      ack: this.#rcvNxt,
      flags: ACK_FLAGS,
      window: this.#scaledWindowField(),
    });
  }

  /** RFC 5961 §7: an ACK that a legitimate peer answers and a blind attacker cannot use, rate limited. */
  #challengeAck(): void {
    const now = this.#clock.now();
    if (now - this.#challengeWindowStartMs >= 1000) {
      this.#challengeWindowStartMs = now;
      this.#challengeCount = 0;
    }
    if (this.#challengeCount >= CHALLENGE_ACKS_PER_SECOND) return;
    if (this.#challengeAckLimit !== undefined && !this.#challengeAckLimit.take(now)) return;
    this.#challengeCount++;
    this.stats.challengeAcks++;
    this.#sendAck();
  }

  /** A RST for an unacceptable segment (RFC 9293 §3.10.7.3 / §3.10.7.4). */
  #emitReset(seq: number): void {
    this.#emit({ seq, ack: 0, flags: RST_FLAGS, window: 0 });
  }

  #emit(parts: {
    seq: number;
    ack: number;
    flags: TcpFlags;
    window: number;
    options?: TcpOptions;
    payload?: Uint8Array;
  }): void {
    const withAck = parts.flags.ack;
    let options = parts.options ?? NO_OPTIONS;
    if (withAck && !parts.flags.syn && this.#sackPermitted && this.#reassembly.pieces > 0) {
      // Options count against the MSS (RFC 6691): a data segment carries only the SACK
      // blocks (4 bytes + 8 each) that still fit, none on a full-size one, or the IP
      // packet would outgrow the path MTU and never leave.
      const payloadBytes = parts.payload?.length ?? 0;
      const blocks =
        payloadBytes === 0
          ? MAX_SACK_BLOCKS
          : Math.min(MAX_SACK_BLOCKS, Math.floor((this.#sendMss - payloadBytes - 4) / 8));
      if (blocks > 0) options = { ...options, sack: this.#reassembly.sackBlocks(blocks) };
    }
    if (withAck) {
      this.#stopDelayedAck();
      this.#unackedSegments = 0;
      this.#lastAdvertisedWindow = this.#receiveWindow();
    }
    this.stats.segmentsSent++;
    this.#send({
      sourcePort: this.#localPort,
      destinationPort: this.#remotePort,
      seq: parts.seq >>> 0,
      ack: parts.ack >>> 0,
      flags: parts.flags,
      window: parts.window,
      urgentPointer: 0,
      options,
      payload: parts.payload ?? NO_PAYLOAD,
    });
  }

  // ---- Timers ----------------------------------------------------------------------

  #startRetransmitTimer(): void {
    if (!this.#retransmitTimer.running) this.#retransmitTimer.start(this.#rto.rtoMs);
  }

  #stopRetransmitTimer(): void {
    this.#retransmitTimer.stop();
  }

  /**
   * Tail loss probe (RFC 8985 §7): when a flight goes unanswered for two smoothed RTTs,
   * send one segment (new data if the peer's window allows, else the last one again) to
   * draw an ACK whose SACKs start fast recovery, instead of idling until the RTO (200 ms
   * at least, hundreds of RTTs on a fast path). Only with SACK, and not during recovery.
   */
  #armProbe(): void {
    const srtt = this.#rto.srttMs;
    const flight = seqDiff(this.#sndMax, this.#sndUna);
    if (
      !this.#sackPermitted ||
      this.#inRecovery ||
      this.#rtoRecovery ||
      this.#probeOutstanding ||
      this.#retransmissions > 0 || // after a timeout, the RTO's backoff rules until an ACK
      flight === 0 ||
      srtt === undefined ||
      !(this.#state === "ESTABLISHED" || this.#state === "CLOSE-WAIT")
    ) {
      this.#probeTimer.stop();
      return;
    }
    // A lone segment may wait out the receiver's delayed ACK (RFC 8985 §7.2: WCDelAckT).
    const pto =
      Math.max(2 * srtt, PROBE_MIN_MS) + (flight <= this.#sendMss ? DELAYED_ACK_WORST_MS : 0);
    if (pto >= this.#rto.rtoMs) this.#probeTimer.stop();
    else this.#probeTimer.start(pto);
  }

  #onProbeTimeout(): void {
    if (this.#sndUna === this.#sndMax || this.#inRecovery || this.#rtoRecovery) return;
    if (!(this.#state === "ESTABLISHED" || this.#state === "CLOSE-WAIT")) return;
    this.#probeOutstanding = true;
    this.stats.lossProbes++;
    const unsent = this.#sendLength - seqDiff(this.#sndNxt, this.#sendBufferSeq);
    const room = this.#sndWnd - seqDiff(this.#sndNxt, this.#sndUna);
    if (this.#sndNxt === this.#sndMax && unsent > 0 && room > 0) {
      const length = Math.min(this.#sendMss, unsent, room);
      this.#sendSegmentAt(this.#sndNxt, length, false);
      this.#sndNxt = seqAdd(this.#sndNxt, length);
      this.#sndMax = this.#sndNxt;
    } else {
      const length = Math.min(this.#sendMss, seqDiff(this.#sndMax, this.#sndUna));
      this.#sendSegmentAt(seqAdd(this.#sndMax, -length), length);
      this.stats.retransmissions++;
    }
    // RFC 8985 §7.3: the RTO, not another probe, follows a probe.
    this.#retransmitTimer.start(this.#rto.rtoMs);
  }

  /** RFC 6298 §5.4-5.7 and RFC 5681 §3.1: retransmit from SND.UNA with one segment of cwnd. */
  #onRetransmitTimeout(): void {
    if (this.#state === "CLOSED" || this.#state === "TIME-WAIT") return;
    if (this.#sndUna === this.#sndMax) return;
    const persist = this.#sndWnd === 0 && SYNCHRONIZED.has(this.#state);
    if (!persist) {
      this.#retransmissions++;
      this.stats.timeouts++;
      const limit = SYNCHRONIZED.has(this.#state)
        ? MAX_DATA_RETRANSMISSIONS
        : MAX_SYN_RETRANSMISSIONS;
      if (this.#retransmissions > limit) {
        this.#enterClosed("timeout");
        return;
      }
      const mss = this.#sendMss;
      if (this.#retransmissions === 1) {
        this.#ssthresh = Math.max(Math.floor(seqDiff(this.#sndMax, this.#sndUna) / 2), 2 * mss);
      }
      this.#cwnd = mss;
      this.#recover = this.#sndMax;
      this.#inRecovery = false;
      this.#duplicateAcks = 0;
      this.#limitedTransmit = 0;
      // RFC 6675 §5.1: resend what the SACKs say is missing. A second timeout in a row may
      // mean the receiver reneged on what it SACKed (RFC 2018 §8): then forget it all.
      this.#rtoRecovery = this.#retransmissions === 1 && this.#scoreboard.sackedBytes > 0;
      this.#probeTimer.stop();
      if (!this.#rtoRecovery) this.#scoreboard.clear();
    }
    backOff(this.#rto);
    this.#rttSeq = undefined; // Karn: no RTT sample from retransmitted data
    this.stats.retransmissions++;
    if (persist) {
      // A peer that answers probes may keep its window shut forever (RFC 9293 §3.8.6.1);
      // one that stopped answering altogether is gone.
      if (++this.#unansweredProbes > MAX_DATA_RETRANSMISSIONS) {
        this.#enterClosed("timeout");
        return;
      }
      this.#sendSegmentAt(this.#sndUna, 1, false);
      this.#startRetransmitTimer();
      return;
    }
    this.#sndNxt = this.#sndUna;
    this.#transmit();
    this.#startRetransmitTimer();
  }

  /** Zero window with data waiting: probe with one byte past the window (RFC 9293 §3.8.6.1). */
  #startPersistTimer(): void {
    if (this.#cancelPersist !== undefined || this.#retransmitTimer.running) return;
    this.#cancelPersist = this.#clock.setTimer(this.#rto.rtoMs, () => {
      this.#cancelPersist = undefined;
      if (!SYNCHRONIZED.has(this.#state) || this.#state === "TIME-WAIT") return;
      if (this.#sndWnd > 0 || this.#sndNxt !== this.#sndUna) {
        this.#transmit();
        return;
      }
      if (this.#sendLength - seqDiff(this.#sndNxt, this.#sendBufferSeq) <= 0) return;
      // The probe byte becomes outstanding; the retransmission timer (in persist mode,
      // which backs off without giving up) repeats it until the window opens.
      this.#sendSegmentAt(this.#sndNxt, 1, false);
      this.stats.windowProbes++;
      this.#sndNxt = seqAdd(this.#sndNxt, 1);
      this.#sndMax = seqMax(this.#sndMax, this.#sndNxt);
      backOff(this.#rto);
      this.#startRetransmitTimer();
    });
  }

  #stopPersistTimer(): void {
    this.#cancelPersist?.();
    this.#cancelPersist = undefined;
  }

  /**
   * An ACK at the end of the batch of packets being delivered now (a 0 ms timer): one for
   * a burst, carrying the newest SACK blocks, rather than one per segment.
   */
  #ackSoon(): void {
    this.#delayedAckTimer.start(0);
  }

  #startDelayedAck(): void {
    if (!this.#delayedAckTimer.running) this.#delayedAckTimer.start(DELAYED_ACK_MS);
  }

  #stopDelayedAck(): void {
    this.#delayedAckTimer.stop();
  }

  #enterTimeWait(): void {
    this.#state = "TIME-WAIT";
    this.#retransmitTimer.cancel();
    this.#probeTimer.cancel();
    this.#stopPersistTimer();
    this.#stopKeepalive();
    this.#restartTimeWait();
  }

  #restartTimeWait(): void {
    this.#cancelTimeWait?.();
    this.#cancelTimeWait = this.#clock.setTimer(2 * this.#mslMs, () => {
      this.#cancelTimeWait = undefined;
      this.#enterClosed("closed");
    });
  }

  /** Keepalive (RFC 9293 §3.8.4): after idleMs of silence, a probe at SND.NXT - 1. */
  #restartKeepalive(): void {
    const keepalive = this.#keepalive;
    if (keepalive === undefined || this.#state !== "ESTABLISHED") {
      this.#stopKeepalive();
      return;
    }
    this.#keepaliveProbes = 0;
    this.#keepaliveTimer.start(keepalive.idleMs);
  }

  #onKeepalive(): void {
    const keepalive = this.#keepalive;
    if (keepalive === undefined || this.#state !== "ESTABLISHED") return;
    if (this.#keepaliveProbes >= keepalive.probes) {
      this.#enterClosed("timeout");
      return;
    }
    this.#keepaliveProbes++;
    this.#emit({
      seq: seqAdd(this.#sndNxt, -1),
      ack: this.#rcvNxt,
      flags: ACK_FLAGS,
      window: this.#scaledWindowField(),
    });
    this.#keepaliveTimer.start(keepalive.intervalMs);
  }

  #stopKeepalive(): void {
    this.#keepaliveTimer.cancel();
  }

  // ---- Helpers ---------------------------------------------------------------------

  #takeSynOptions(syn: TcpSegment): void {
    const o = syn.options;
    const peerMss = typeof o.mss === "number" && o.mss > 0 ? o.mss : DEFAULT_SEND_MSS_BYTES;
    this.#sendMss = Math.max(1, Math.min(peerMss, this.#ourMss));
    // RFC 7323 §2.2: scaling only when both SYNs carry the option.
    if (typeof o.windowScale === "number") {
      this.#sndScale = Math.min(MAX_WINDOW_SCALE, Math.max(0, o.windowScale | 0));
      this.#rcvScaleInUse = this.#rcvScale;
      this.#windowScaling = true;
    } else {
      this.#windowScaling = false;
      this.#sndScale = 0;
      this.#rcvScaleInUse = 0;
    }
    this.#sackPermitted = this.#sackEnabled && o.sackPermitted === true;
    this.#irs = syn.seq;
    this.#rcvNxt = seqAdd(syn.seq, 1);
    // RFC 5681 §3.1 initial window (RFC 3390's formula).
    const mss = this.#sendMss;
    this.#cwnd = Math.min(4 * mss, Math.max(2 * mss, 4380));
  }

  #establish(): void {
    this.#state = "ESTABLISHED";
    this.#restartKeepalive();
    this.#events.onConnected?.();
  }

  #canWrite(): boolean {
    return (
      !this.#finQueued &&
      (this.#state === "SYN-SENT" ||
        this.#state === "SYN-RECEIVED" ||
        this.#state === "ESTABLISHED" ||
        this.#state === "CLOSE-WAIT")
    );
  }

  /** The FIN's sequence number: right after the last buffered byte. */
  #finSeq(): number {
    return seqAdd(this.#sendBufferSeq, this.#sendLength);
  }

  #receiveWindow(): number {
    return Math.max(0, this.#receiveCapacity - this.#readableBytes);
  }

  #scaledWindowField(): number {
    return Math.min(MAX_WINDOW_FIELD, this.#receiveWindow() >>> this.#rcvScaleInUse);
  }

  #startRttTiming(seq: number): void {
    this.#rttSeq = seq;
    this.#rttStartMs = this.#clock.now();
  }

  #reset(reason: TcpCloseReason): void {
    this.#events.onReset?.();
    this.#enterClosed(reason);
  }

  #enterClosed(reason: TcpCloseReason): void {
    if (this.#state === "CLOSED") return;
    this.#state = "CLOSED";
    this.#retransmitTimer.cancel();
    this.#probeTimer.cancel();
    this.#stopPersistTimer();
    this.#delayedAckTimer.cancel();
    this.#stopKeepalive();
    this.#cancelTimeWait?.();
    this.#cancelTimeWait = undefined;
    this.#reassembly.clear();
    this.#events.onClosed?.(reason);
    this.#onRelease?.(reason);
  }
}
