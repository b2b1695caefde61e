/**
 * TCP on a Netstack (#10 item 2): the 4-tuple table of `TcpConnection`s, the listeners per
 * local port, and the application API, `dial` and `listen`, on Web Streams with real
 * backpressure both ways.
 *
 * ```
 *  Netstack.onTcp(segment) ─► 4-tuple known? ─ yes ─► TIME-WAIT and a new SYN? ─ no ─► connection.receive
 *                                  │ no                       │ yes: abort it
 *                                  v                          v
 *                           listener on port? ─ yes ─► listener.receive ─► new connection filed
 *                                  │ no
 *                                  └─► RST (resetFor)
 * ```
 *
 * A connection leaves the table through its `onRelease` hook when it reaches CLOSED
 * (after TIME-WAIT for the side that closed first). Segments to one of our own addresses
 * never reach the mesh: they come back in through a 0 ms timer on the clock, so a
 * connection never hears from itself synchronously. Nothing here reads the wall clock or
 * global randomness; the clock and `randomUint32` are injected.
 */
import type { CancelTimer, Clock } from "../clock.ts";
import { formatIp, IPV4_BYTES, parseIp } from "../net/ip.ts";
import type { Netstack } from "./netstack.ts";
import {
  type TcpCloseReason,
  TcpConnection,
  type TcpConnectionOptions,
  type TcpKeepaliveOptions,
} from "./tcp-connection.ts";
import { resetFor, TcpListener } from "./tcp-listener.ts";
import { PerSecondLimit } from "./tcp-rate-limit.ts";
import type { TcpSegment } from "./tcp-segment.ts";
import { TupleTable } from "./tcp-tuple-table.ts";

/** Connections (all states, TIME-WAIT included) a TcpStack holds at once by default. */
export const DEFAULT_MAX_TCP_CONNECTIONS = 4096;
/** Established connections a server keeps for `accept` by default; more are reset. */
export const DEFAULT_ACCEPT_BACKLOG = 128;
/** Bytes a stream's readable side queues ahead of its reader by default. */
export const DEFAULT_READ_HIGH_WATER_BYTES = 64 * 1024;
/** Challenge ACKs a second for the whole stack by default (Linux's tcp_challenge_ack_limit). */
export const DEFAULT_CHALLENGE_ACKS_PER_SECOND = 1000;
/** RSTs a second for segments no connection owns, by default. */
export const DEFAULT_RESETS_PER_SECOND = 1000;
const EPHEMERAL_FIRST_PORT = 49152;
const EPHEMERAL_PORT_COUNT = 65536 - EPHEMERAL_FIRST_PORT;

/** Why a TCP operation failed, in the names applications know from BSD sockets. */
export type TcpErrorCode =
  | "ECONNREFUSED"
  | "ETIMEDOUT"
  | "ECONNRESET"
  | "ECONNABORTED"
  | "EADDRINUSE"
  | "EADDRNOTAVAIL"
  | "EMFILE"
  | "EINVAL"
  | "ENOTFOUND"
  | "ENETUNREACH";

export class TcpError extends Error {
  readonly code: TcpErrorCode;
  constructor(code: TcpErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "TcpError";
    this.code = code;
  }
}

export interface TcpStackOptions {
  readonly clock: Clock;
  /** A uniformly random unsigned 32-bit integer (ISNs and the ephemeral port cursor). */
  readonly randomUint32: () => number;
  /** Bound on connections in the table; dials beyond it reject, SYNs beyond it get a RST. */
  readonly maxConnections?: number;
  /** Passed to every connection. */
  readonly sendBufferBytes?: number;
  readonly receiveBufferBytes?: number;
  readonly mslMs?: number;
  readonly keepalive?: TcpKeepaliveOptions;
  /** Bytes a stream's readable side queues ahead of its reader. */
  readonly readHighWaterBytes?: number;
  /**
   * Challenge ACKs (RFC 5961 §7) all connections send together, a second on average
   * (randomised per second, see tcp-rate-limit.ts); 1000 by default, as Linux.
   */
  readonly challengeAcksPerSecond?: number;
  /** RSTs a second for segments no connection owns (same randomisation); 1000 by default. */
  readonly resetsPerSecond?: number;
  /** Turns a name that is not an IP address into one, for `dial`; none by default. */
  readonly resolve?: (name: string) => Promise<string>;
}

export interface DialOptions {
  /** Gives up (ETIMEDOUT) if the handshake has not completed by then; SYN retries otherwise. */
  readonly timeoutMs?: number;
}

export interface ListenOptions {
  /** Established connections waiting for `accept`; more are reset. */
  readonly backlog?: number;
  /** Half-open connections at once (see TcpListener). */
  readonly maxHalfOpen?: number;
}

/** What a TcpStack holds, for tests and status; a snapshot. */
export interface TcpStackCounters {
  readonly connections: number;
  readonly listeners: number;
  readonly resetsSent: number;
  /** SYNs and dials refused for `maxConnections`. */
  readonly refusedForLimit: number;
  readonly loopbackSegments: number;
  /** Segments the Netstack refused to send (a bug, counted rather than thrown). */
  readonly sendErrors: number;
  /** SYN+ACKs with a SYN cookie, by the listeners open now. */
  readonly synCookiesSent: number;
  /** Connections made from a returned SYN cookie, by the listeners open now. */
  readonly synCookiesAccepted: number;
  /** RSTs for segments nobody owns not sent for `resetsPerSecond`. */
  readonly resetsRateLimited: number;
  /** Challenge ACKs not sent for `challengeAcksPerSecond`. */
  readonly challengeAcksRateLimited: number;
}

function sum(listeners: Map<number, ListenerEntry>, of: (l: ListenerEntry) => number): number {
  let total = 0;
  for (const entry of listeners.values()) total += of(entry);
  return total;
}

function sameAddress(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function errorForReason(reason: TcpCloseReason): TcpError {
  switch (reason) {
    case "refused":
      return new TcpError("ECONNREFUSED", "the peer refused the connection");
    case "timeout":
      return new TcpError("ETIMEDOUT", "the peer stopped answering");
    case "reset":
      return new TcpError("ECONNRESET", "the peer reset the connection");
    case "aborted":
      return new TcpError("ECONNABORTED", "the connection was aborted");
    default:
      return new TcpError("ECONNABORTED", "the connection closed");
  }
}

/** Where a connection goes: the facts TcpConnection does not keep. */
interface Endpoints {
  readonly remote: Uint8Array;
  readonly remotePort: number;
  readonly localPort: number;
}

interface ListenerEntry {
  readonly listener: TcpListener;
  readonly server: TcpServerImpl;
}

/**
 * TCP for one Netstack: plug it in once, then `dial` and `listen`.
 *
 * @example An echo server and a client on one stack
 * ```ts
 * const tcp = new TcpStack(netstack, { clock, randomUint32 });
 * const server = tcp.listen(7);
 * (async () => { for await (const s of server) s.readable.pipeTo(s.writable); })();
 * const stream = await tcp.dial("10.40.0.2", 7);
 * ```
 */
export class TcpStack {
  readonly #netstack: Netstack;
  readonly #clock: Clock;
  readonly #randomUint32: () => number;
  readonly #options: TcpStackOptions;
  readonly #maxConnections: number;
  readonly #table = new TupleTable<TcpConnection>();
  /** How many table entries and listeners use each local port (for ephemeral picks). */
  readonly #portUse = new Map<number, number>();
  readonly #listeners = new Map<number, ListenerEntry>();
  readonly #endpoints = new WeakMap<TcpConnection, Endpoints>();
  #portCursor: number;
  #closed = false;
  #resetsSent = 0;
  #refusedForLimit = 0;
  #loopbackSegments = 0;
  #sendErrors = 0;
  readonly #challengeAckLimit: PerSecondLimit;
  readonly #resetLimit: PerSecondLimit;

  constructor(netstack: Netstack, options: TcpStackOptions) {
    this.#netstack = netstack;
    this.#clock = options.clock;
    this.#randomUint32 = options.randomUint32;
    this.#options = options;
    const max = options.maxConnections ?? DEFAULT_MAX_TCP_CONNECTIONS;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Expected "maxConnections" to be a positive integer, got ${max}`);
    }
    this.#maxConnections = max;
    this.#challengeAckLimit = new PerSecondLimit(
      options.challengeAcksPerSecond ?? DEFAULT_CHALLENGE_ACKS_PER_SECOND,
      options.randomUint32,
    );
    this.#resetLimit = new PerSecondLimit(
      options.resetsPerSecond ?? DEFAULT_RESETS_PER_SECOND,
      options.randomUint32,
    );
    this.#portCursor = (options.randomUint32() >>> 0) % EPHEMERAL_PORT_COUNT;
    netstack.onTcp((segment, source, destination) => this.#receive(segment, source, destination));
  }

  /** Connections in the table now, TIME-WAIT included. */
  get connectionCount(): number {
    return this.#table.size;
  }

  counters(): TcpStackCounters {
    return {
      connections: this.#table.size,
      listeners: this.#listeners.size,
      resetsSent: this.#resetsSent,
      refusedForLimit: this.#refusedForLimit,
      loopbackSegments: this.#loopbackSegments,
      sendErrors: this.#sendErrors,
      synCookiesSent: sum(this.#listeners, (l) => l.listener.stats.cookiesSent),
      synCookiesAccepted: sum(this.#listeners, (l) => l.listener.stats.cookiesAccepted),
      resetsRateLimited: this.#resetLimit.refused,
      challengeAcksRateLimited: this.#challengeAckLimit.refused,
    };
  }

  /** The connections in the table and their states (for tests and status). */
  connections(): {
    readonly key: string;
    readonly state: string;
    readonly readableBytes: number;
    readonly writableBytes: number;
    readonly stats: object;
  }[] {
    return this.#table.entries().map(([key, c]) => ({
      key,
      state: c.state,
      readableBytes: c.readableBytes,
      writableBytes: c.writableBytes,
      stats: { ...c.stats },
    }));
  }

  /**
   * Opens a connection to `address` (an IP, or a name when `resolve` was given) and
   * `port`. Rejects with a TcpError: ECONNREFUSED (RST), ETIMEDOUT, EMFILE (too many
   * connections), EADDRNOTAVAIL (no address of ours of its version, no free port),
   * EINVAL (bad port), ENOTFOUND (a name that does not resolve).
   */
  async dial(
    address: string | Uint8Array,
    port: number,
    options: DialOptions = {},
  ): Promise<TcpStream> {
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) {
      throw new TcpError("EINVAL", `expected a port from 1 to 65535, got ${port}`);
    }
    const remote = await this.#resolve(address);
    if (this.#closed) throw new TcpError("ECONNABORTED", "the TCP stack is closed");
    if (this.#table.size >= this.#maxConnections) {
      this.#refusedForLimit++;
      throw new TcpError("EMFILE", `${this.#maxConnections} connections already`);
    }
    let local: Uint8Array;
    try {
      local = this.#netstack.sourceFor(remote);
    } catch (error) {
      throw new TcpError("EADDRNOTAVAIL", (error as Error).message);
    }
    const localPort = this.#pickPort((p) => !this.#table.has(remote, port, local, p));
    if (localPort === undefined) throw new TcpError("EADDRNOTAVAIL", "no free local port");
    return new Promise<TcpStream>((resolve, reject) => {
      let cancelTimeout: CancelTimer | undefined;
      let settled = false;
      const settle = () => {
        settled = true;
        cancelTimeout?.();
      };
      const connection = this.#open(remote, port, local, localPort, (options) =>
        TcpConnection.connect({
          ...options,
          events: {
            onConnected: () => {
              if (settled) return;
              settle();
              resolve(
                new TcpStream(
                  connection,
                  { remote, remotePort: port, localPort },
                  this.#readHighWater(),
                ),
              );
            },
            onClosed: (reason) => {
              if (settled) return;
              settle();
              reject(errorForReason(reason));
            },
          },
        }),
      );
      if (options.timeoutMs !== undefined && !settled) {
        cancelTimeout = this.#clock.setTimer(options.timeoutMs, () => {
          if (settled) return;
          settle();
          connection.abort();
          reject(new TcpError("ETIMEDOUT", `no answer within ${options.timeoutMs} ms`));
        });
      }
    });
  }

  /**
   * Listens on `port` of all our addresses (0 picks a free ephemeral port). Throws a
   * TcpError EADDRINUSE when the port already has a listener, EINVAL for a bad port.
   */
  listen(port: number, options: ListenOptions = {}): TcpServer {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
      throw new TcpError("EINVAL", `expected a port from 0 to 65535, got ${port}`);
    }
    if (this.#closed) throw new TcpError("ECONNABORTED", "the TCP stack is closed");
    let bound: number | undefined = port;
    if (bound === 0) bound = this.#pickPort(() => true);
    if (bound === undefined) throw new TcpError("EADDRNOTAVAIL", "no free local port");
    if (this.#listeners.has(bound)) throw new TcpError("EADDRINUSE", `port ${bound} is in use`);
    const localPort = bound;
    const server = new TcpServerImpl(localPort, options.backlog ?? DEFAULT_ACCEPT_BACKLOG, () => {
      if (this.#listeners.get(localPort)?.server === server) {
        this.#listeners.delete(localPort);
        this.#usePort(localPort, -1);
      }
    });
    const listener = new TcpListener({
      ...(options.maxHalfOpen === undefined ? {} : { maxHalfOpen: options.maxHalfOpen }),
      onConnection: (connection) => {
        const endpoints = this.#endpoints.get(connection);
        if (endpoints === undefined) connection.abort();
        else server.offer(connection, endpoints, this.#readHighWater());
      },
    });
    this.#listeners.set(localPort, { listener, server });
    this.#usePort(localPort, 1);
    return server;
  }

  /** Resets every connection and closes every listener; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const { server } of [...this.#listeners.values()]) server.close();
    for (const connection of this.#table.values()) connection.abort();
    this.#netstack.onTcp(undefined);
  }

  #readHighWater(): number {
    return this.#options.readHighWaterBytes ?? DEFAULT_READ_HIGH_WATER_BYTES;
  }

  async #resolve(address: string | Uint8Array): Promise<Uint8Array> {
    if (typeof address !== "string") {
      if (address.length !== 4 && address.length !== 16) {
        throw new TcpError("EINVAL", `expected an address of 4 or 16 bytes`);
      }
      return address;
    }
    const parsed = parseIp(address);
    if (parsed !== undefined) return parsed;
    const resolver = this.#options.resolve;
    if (resolver === undefined) {
      throw new TcpError("ENOTFOUND", `"${address}" is not an IP address and no resolver is set`);
    }
    let text: string;
    try {
      text = await resolver(address);
    } catch (error) {
      throw new TcpError("ENOTFOUND", `"${address}": ${(error as Error).message}`);
    }
    const resolved = parseIp(text);
    if (resolved === undefined) {
      throw new TcpError("ENOTFOUND", `"${address}" resolved to "${text}", not an IP address`);
    }
    return resolved;
  }

  /** The next ephemeral port after the cursor that no listener uses and `free` allows. */
  #pickPort(free: (port: number) => boolean): number | undefined {
    for (let i = 0; i < EPHEMERAL_PORT_COUNT; i++) {
      const port = EPHEMERAL_FIRST_PORT + ((this.#portCursor + i) % EPHEMERAL_PORT_COUNT);
      if ((this.#portUse.get(port) ?? 0) === 0 && free(port)) {
        this.#portCursor = (this.#portCursor + i + 1) % EPHEMERAL_PORT_COUNT;
        return port;
      }
    }
    return undefined;
  }

  #usePort(port: number, delta: number): void {
    const n = (this.#portUse.get(port) ?? 0) + delta;
    if (n <= 0) this.#portUse.delete(port);
    else this.#portUse.set(port, n);
  }

  /** Creates a connection with `make`, files it under its 4-tuple, and unfiles it on release. */
  #open(
    remote: Uint8Array,
    remotePort: number,
    local: Uint8Array,
    localPort: number,
    make: (options: TcpConnectionOptions) => TcpConnection | undefined,
  ): TcpConnection {
    let connection: TcpConnection | undefined;
    let released = false;
    const loopback = this.#netstack.addresses.some((ours) => sameAddress(ours, remote));
    const made = make({
      clock: this.#clock,
      send: (segment) => this.#send(segment, local, remote, loopback),
      // The Netstack encodes what we send at once and copies every packet it receives.
      sendPayloadViews: true,
      receivedPayloadsOwned: true,
      challengeAckLimit: this.#challengeAckLimit,
      randomUint32: this.#randomUint32,
      localPort,
      remotePort,
      pathMtuBytes: this.#netstack.mtuBytes,
      ipVersion: remote.length === IPV4_BYTES ? 4 : 6,
      ...(this.#options.sendBufferBytes === undefined
        ? {}
        : { sendBufferBytes: this.#options.sendBufferBytes }),
      ...(this.#options.receiveBufferBytes === undefined
        ? {}
        : { receiveBufferBytes: this.#options.receiveBufferBytes }),
      ...(this.#options.mslMs === undefined ? {} : { mslMs: this.#options.mslMs }),
      ...(this.#options.keepalive === undefined ? {} : { keepalive: this.#options.keepalive }),
      onRelease: () => {
        released = true;
        if (
          connection !== undefined &&
          this.#table.get(remote, remotePort, local, localPort) === connection
        ) {
          this.#table.delete(remote, remotePort, local, localPort);
          this.#usePort(localPort, -1);
        }
      },
    });
    connection = made;
    if (made !== undefined && !released) {
      this.#endpoints.set(made, { remote, remotePort, localPort });
      this.#table.set(remote, remotePort, local, localPort, made);
      this.#usePort(localPort, 1);
    }
    return made as TcpConnection;
  }

  #send(
    segment: TcpSegment,
    local: Uint8Array,
    remote: Uint8Array,
    loopback = this.#netstack.addresses.some((ours) => sameAddress(ours, remote)),
  ): void {
    if (loopback) {
      // Loopback: back in through the clock, never synchronously into the sender.
      this.#loopbackSegments++;
      const copy = { ...segment, payload: segment.payload.slice() };
      this.#clock.setTimer(0, () => {
        if (!this.#closed) this.#receive(copy, local, remote);
      });
      return;
    }
    try {
      this.#netstack.sendTcp(segment, local, remote);
    } catch {
      this.#sendErrors++;
    }
  }

  #sendReset(segment: TcpSegment, source: Uint8Array, destination: Uint8Array): void {
    const reset = resetFor(segment);
    if (reset === undefined) return;
    if (!this.#resetLimit.take(this.#clock.now())) return;
    this.#resetsSent++;
    this.#send(reset, destination, source);
  }

  /** A segment from `source` to our `destination` (the Netstack's onTcp contract). */
  #receive(segment: TcpSegment, source: Uint8Array, destination: Uint8Array): void {
    if (this.#closed) return;
    const existing = this.#table.get(
      source,
      segment.sourcePort,
      destination,
      segment.destinationPort,
    );
    const entry = this.#listeners.get(segment.destinationPort);
    if (existing !== undefined) {
      if (!(entry !== undefined && existing.acceptsNewSyn(segment))) {
        existing.receive(segment);
        return;
      }
      existing.abort(); // TIME-WAIT gives way to a new incarnation; onRelease unfiles it
    }
    if (entry === undefined) {
      this.#sendReset(segment, source, destination);
      return;
    }
    const f = segment.flags;
    const isSyn = f.syn && !f.ack && !f.rst && !f.fin;
    if ((isSyn || f.ack) && this.#table.size >= this.#maxConnections) {
      this.#refusedForLimit++;
      this.#sendReset(segment, source, destination);
      return;
    }
    let inListener = true;
    this.#open(source, segment.sourcePort, destination, segment.destinationPort, (options) => {
      const made = entry.listener.receive(
        segment,
        {
          ...options,
          // A RST the listener sends at once answers a stray segment nobody owns: it is
          // limited like ours; a connection's later RSTs are its own business.
          send: (s) => {
            if (!inListener || !s.flags.rst) options.send(s);
            else if (this.#resetLimit.take(this.#clock.now())) {
              this.#resetsSent++;
              options.send(s);
            }
          },
        },
        { remote: source, local: destination },
      );
      inListener = false;
      return made;
    });
    entry.listener.settle(); // a connection from a SYN cookie, filed now, takes its ACK
  }
}

/**
 * One TCP connection as Web Streams. `readable` pulls from the connection only while its
 * queue has room (`desiredSize > 0`), so a slow reader closes the TCP window; a write on
 * `writable` resolves once the connection took all its bytes into its send buffer.
 */
export class TcpStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  readonly connection: TcpConnection;
  #readController!: ReadableStreamDefaultController<Uint8Array>;
  #readDone = false;
  #writeWaiter: (() => void) | undefined;
  #closeError: TcpError | undefined;

  /** @internal Made by TcpStack.dial and TcpServer.accept. */
  constructor(connection: TcpConnection, endpoints: Endpoints, readHighWaterBytes: number) {
    this.connection = connection;
    this.remoteAddress = formatIp(endpoints.remote);
    this.remotePort = endpoints.remotePort;
    this.localPort = endpoints.localPort;
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#readController = controller;
        },
        pull: () => this.#pumpRead(),
        cancel: () => {
          this.#readDone = true;
          // Nobody reads any more: unread bytes would only hold the window shut.
          if (connection.state !== "CLOSED" && !connection.readableEnded) connection.abort();
        },
      },
      {
        highWaterMark: readHighWaterBytes,
        size: (chunk) => chunk.byteLength,
      },
    );
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.#write(chunk),
      close: () => connection.close(),
      abort: () => connection.abort(),
    });
    connection.setEvents({
      onReadable: () => this.#pumpRead(),
      onReadableClosed: () => this.#pumpRead(),
      onWritable: () => this.#wakeWriter(),
      onClosed: (reason) => {
        if (reason !== "closed") this.#closeError = errorForReason(reason);
        this.#pumpRead();
        if (!this.#readDone) {
          this.#readDone = true;
          if (this.#closeError !== undefined) this.#readController.error(this.#closeError);
          else this.#readController.close();
        }
        this.#wakeWriter();
      },
    });
    this.#pumpRead();
  }

  /** Graceful close of our direction (FIN after the bytes written); reading goes on. */
  async close(): Promise<void> {
    if (this.writable.locked) {
      this.connection.close();
      return;
    }
    try {
      await this.writable.close();
    } catch {
      this.connection.close();
    }
  }

  /** Resets the connection (RST); both streams error. */
  abort(): void {
    this.connection.abort();
  }

  #pumpRead(): void {
    if (this.#readDone) return;
    const controller = this.#readController;
    const connection = this.connection;
    while ((controller.desiredSize ?? 0) > 0 && connection.readableBytes > 0) {
      controller.enqueue(connection.read(controller.desiredSize ?? 0));
    }
    if (connection.readableEnded) {
      this.#readDone = true;
      controller.close();
    }
  }

  #wakeWriter(): void {
    const waiter = this.#writeWaiter;
    this.#writeWaiter = undefined;
    waiter?.();
  }

  async #write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const state = this.connection.state;
      if (state === "CLOSED") {
        throw this.#closeError ?? new TcpError("ECONNABORTED", "the connection is closed");
      }
      const n = this.connection.write(chunk.subarray(offset));
      offset += n;
      if (offset < chunk.length && n === 0) {
        if (this.connection.writableBytes === 0 && !canStillWrite(this.connection.state)) {
          throw new TcpError("ECONNABORTED", "the connection no longer sends");
        }
        await new Promise<void>((resolve) => {
          this.#writeWaiter = resolve;
        });
      }
    }
  }
}

function canStillWrite(state: string): boolean {
  return (
    state === "SYN-SENT" ||
    state === "SYN-RECEIVED" ||
    state === "ESTABLISHED" ||
    state === "CLOSE-WAIT"
  );
}

/** A listening port: take connections with `accept()` or `for await`. */
export interface TcpServer extends AsyncIterable<TcpStream> {
  readonly port: number;
  /** The next established connection; rejects with ECONNABORTED once the server is closed. */
  accept(): Promise<TcpStream>;
  /** Stops listening and resets connections not yet accepted; accepted ones go on. */
  close(): void;
}

class TcpServerImpl implements TcpServer {
  readonly port: number;
  readonly #backlog: number;
  readonly #onClose: () => void;
  readonly #queue: TcpStream[] = [];
  readonly #waiters: { resolve: (s: TcpStream) => void; reject: (e: Error) => void }[] = [];
  #closed = false;

  constructor(port: number, backlog: number, onClose: () => void) {
    this.port = port;
    this.#backlog = backlog;
    this.#onClose = onClose;
  }

  offer(connection: TcpConnection, endpoints: Endpoints, readHighWaterBytes: number): void {
    if (this.#closed || (this.#waiters.length === 0 && this.#queue.length >= this.#backlog)) {
      connection.abort();
      return;
    }
    const stream = new TcpStream(connection, endpoints, readHighWaterBytes);
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter.resolve(stream);
    else this.#queue.push(stream);
  }

  accept(): Promise<TcpStream> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#closed) {
      return Promise.reject(new TcpError("ECONNABORTED", `the server on ${this.port} is closed`));
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    for (const stream of this.#queue.splice(0)) stream.abort();
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new TcpError("ECONNABORTED", `the server on ${this.port} is closed`));
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TcpStream> {
    for (;;) {
      try {
        yield await this.accept();
      } catch {
        return;
      }
    }
  }
}
