/**
 * The UdpConn every UDP adapter hands out, over the small `BoundSocket` each runtime's
 * adapter supplies (`udp.ts` on `node:dgram`, `deno-udp.ts` on `Deno.listenDatagram`).
 * The adapters only translate; what a weft socket does lives here, once:
 * - With no address, one IPv6 socket serves both families ("::"), or "0.0.0.0" when the
 *   host has no IPv6; an IPv4 address binds an IPv4 socket, an IPv6 address an IPv6 one.
 * - `from` addresses arrive IPv4-mapped on a dual-stack socket (::ffff:192.0.2.1); the
 *   handler sees plain IPv4 text, the form peers are configured with.
 * - IPv4 destinations go out IPv4-mapped from a dual-stack socket (Node's refuses plain
 *   IPv4 text there), and only IP text is accepted: no destination goes through DNS.
 * - `send` copies the data (runtimes keep a reference until an asynchronous send
 *   completes, and the caller may reuse its buffer at once), never throws, and counts
 *   what fails, synchronously or later.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { Endpoint, PacketConn, ReceiveHandler } from "../src/net/packet-conn.ts";
import type { ListenUdpOptions } from "../src/runtime.ts";

/** Running totals of one socket, for metrics and for debugging silent loss. */
export interface UdpCounters {
  /** Datagrams the system accepted for sending. */
  readonly sent: number;
  /** Sends dropped: a destination that is not IP text or not of a family this socket serves, or a system error. */
  readonly sendErrors: number;
  /** Datagrams handed to the receive handler. */
  readonly received: number;
  /** Errors the socket reported outside any send. */
  readonly socketErrors: number;
  /** The code (or message) of the latest send or socket error. */
  readonly lastError: string | undefined;
}

/** A PacketConn on a UDP socket, which also says where it is bound and what it counted. */
export interface UdpConn extends PacketConn {
  /** The bound local address as the system reports it ("::" for the dual-stack default). */
  readonly localAddress: string;
  /** True when one socket serves both IPv4 and IPv6. */
  readonly dualStack: boolean;
  /** A snapshot of the running totals. */
  counters(): UdpCounters;
}

/** Which address families a socket serves; "dual" is an IPv6 socket bound to "::". */
export type Families = "ipv4" | "ipv6" | "dual";

/** What a runtime's socket reports to the UdpConn built on it. */
export interface SocketEvents {
  /** A datagram arrived; `data` is only valid during the call. */
  received(data: Uint8Array, address: string, port: number): void;
  /** The system accepted a datagram for sending. */
  sent(): void;
  /** A send failed after `BoundSocket.send` returned. */
  sendFailed(error: unknown): void;
  /** The socket reported an error outside any send; it keeps receiving. */
  socketFailed(error: unknown): void;
}

/** A bound socket as a runtime adapter offers it: the runtime's API, translated. */
export interface BoundSocket {
  readonly localAddress: string;
  readonly localPort: number;
  /** Starts reporting to `events`; called once, right after binding. */
  start(events: SocketEvents): void;
  /**
   * Sends `data` (a copy the socket may keep) to IP text of a family it serves, reporting
   * the outcome to `events`; may instead throw for arguments the runtime rejects at once.
   */
  send(data: Uint8Array, address: string, port: number): void;
  /** Releases the socket; resolves, never rejects, once no datagram can be received. */
  close(): Promise<void>;
}

/** Binds a runtime's socket serving `families` at `address` ("::" for "dual"); rejects when binding fails. */
export type BindSocket = (
  families: Families,
  address: string,
  port: number,
) => Promise<BoundSocket>;

/** Codes meaning "this host has no IPv6": the dual-stack default then falls back to IPv4. */
const NO_IPV6_CODES = new Set(["EAFNOSUPPORT", "EADDRNOTAVAIL", "EPROTONOSUPPORT"]);
const IPV4_MAPPED_PREFIX = "::ffff:";

/**
 * Binds a UDP socket through `bind`, as `ListenUdpOptions` describes: with no address
 * "::" dual-stack, or "0.0.0.0" when the host has no IPv6; an IPv4 address binds an IPv4
 * socket, an IPv6 address an IPv6 one. Throws `RangeError` for a bad port and
 * `SyntaxError` for an address that is not IP text; rejects when binding fails
 * (EADDRINUSE, EADDRNOTAVAIL, ...).
 */
export async function listenUdpWith(
  bind: BindSocket,
  options: ListenUdpOptions = {},
): Promise<UdpConn> {
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Expected "port" to be an integer from 0 to 65535, got ${port}`);
  }
  const requested = options.address ?? "";
  const address = unmapIPv4(requested);
  if (address === "" || address === "::") {
    try {
      return new SocketConn(await bind("dual", "::", port), "dual");
    } catch (error) {
      if (address !== "" || !NO_IPV6_CODES.has(errorCode(error))) throw error;
      return new SocketConn(await bind("ipv4", "0.0.0.0", port), "ipv4");
    }
  }
  if (isIPv4(address)) return new SocketConn(await bind("ipv4", address, port), "ipv4");
  if (isIPv6(address)) return new SocketConn(await bind("ipv6", address, port), "ipv6");
  throw new SyntaxError(`Expected "address" to be an IPv4 or IPv6 address, got "${requested}"`);
}

/** One bound socket; a class because its closed state and counters must stay consistent. */
class SocketConn implements UdpConn {
  readonly localPort: number;
  readonly localAddress: string;
  readonly #socket: BoundSocket;
  readonly #families: Families;
  #handler: ReceiveHandler | undefined;
  #closed: Promise<void> | undefined;
  #sent = 0;
  #sendErrors = 0;
  #received = 0;
  #socketErrors = 0;
  #lastError: string | undefined;

  constructor(socket: BoundSocket, families: Families) {
    this.#socket = socket;
    this.#families = families;
    this.localPort = socket.localPort;
    this.localAddress = socket.localAddress;
    socket.start({
      received: (data, address, port) => {
        const handler = this.#handler;
        if (handler === undefined) return;
        this.#received++;
        handler(data, { address: unmapIPv4(address), port });
      },
      sent: () => {
        this.#sent++;
      },
      sendFailed: (error) => this.#sendFailed(describeError(error)),
      socketFailed: (error) => {
        this.#socketErrors++;
        this.#lastError = describeError(error);
      },
    });
  }

  get dualStack(): boolean {
    return this.#families === "dual";
  }

  send(data: Uint8Array, to: Endpoint): void {
    if (this.#closed !== undefined) return;
    const address = this.#destination(to?.address);
    const port = to?.port;
    if (address === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
      this.#sendFailed(`Cannot send to "${to?.address}" port ${port} from this socket`);
      return;
    }
    try {
      this.#socket.send(data.slice(), address, port);
    } catch (error) {
      this.#sendFailed(describeError(error));
    }
  }

  onReceive(handler: ReceiveHandler): void {
    if (this.#closed === undefined) this.#handler = handler;
  }

  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#handler = undefined;
      this.#closed = this.#socket.close();
    }
    return this.#closed;
  }

  counters(): UdpCounters {
    return {
      sent: this.#sent,
      sendErrors: this.#sendErrors,
      received: this.#received,
      socketErrors: this.#socketErrors,
      lastError: this.#lastError,
    };
  }

  #sendFailed(reason: string): void {
    this.#sendErrors++;
    this.#lastError = reason;
  }

  /** The address text to hand the socket for `text`, or `undefined` when it cannot reach it. */
  #destination(text: unknown): string | undefined {
    if (typeof text !== "string") return undefined;
    const address = unmapIPv4(text);
    if (isIPv4(address)) {
      if (this.#families === "ipv4") return address;
      if (this.#families === "dual") return IPV4_MAPPED_PREFIX + address;
      return undefined;
    }
    return isIPv6(address) && this.#families !== "ipv4" ? address : undefined;
  }
}

/** "::ffff:192.0.2.1" as "192.0.2.1"; any other text unchanged. */
function unmapIPv4(address: string): string {
  if (address.slice(0, IPV4_MAPPED_PREFIX.length).toLowerCase() !== IPV4_MAPPED_PREFIX) {
    return address;
  }
  const rest = address.slice(IPV4_MAPPED_PREFIX.length);
  return isIPv4(rest) ? rest : address;
}

/** The `code` of a system error ("EADDRINUSE"), or "" when it has none. */
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

function describeError(error: unknown): string {
  return errorCode(error) || (error instanceof Error ? error.message : String(error));
}
