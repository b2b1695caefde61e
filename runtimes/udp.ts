/**
 * UDP sockets as `PacketConn`s, over `node:dgram`, which Node, Deno and Bun all provide.
 *
 * By default one IPv6 socket with IPV6_V6ONLY off serves both families: peers may sit
 * behind either. The adapter evens out what differs between runtimes and families:
 * - `from` addresses arrive IPv4-mapped on that socket (::ffff:192.0.2.1) on all three
 *   runtimes; the handler sees plain IPv4 text, the form peers are configured with.
 * - Node's dual-stack socket refuses to send to IPv4 text (EINVAL) where Deno and Bun
 *   map it themselves, so the adapter maps IPv4 destinations itself.
 * - `dgram` would resolve a host name through DNS; only IP text is accepted here.
 * - `dgram` throws synchronously for some bad arguments (port 0) and reports others to
 *   the send callback; either way `send` swallows the error and counts it.
 * - Data is copied before sending: `dgram` keeps a reference until the send completes,
 *   after `send` has returned, and the caller may already be reusing its buffer.
 * On a host whose sysctl `net.ipv6.bindv6only` is 1, Node and Deno leave that socket
 * IPv6-only (they set IPV6_V6ONLY when asked but never clear it; Bun clears it), and
 * `dgram` cannot set the option: bind "0.0.0.0" there to reach IPv4 peers.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
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

/** Codes meaning "this host has no IPv6": the dual-stack default then falls back to IPv4. */
const NO_IPV6_CODES = new Set(["EAFNOSUPPORT", "EADDRNOTAVAIL", "EPROTONOSUPPORT"]);
const IPV4_MAPPED_PREFIX = "::ffff:";

/**
 * Binds a UDP socket. With no address it binds "::" dual-stack, or "0.0.0.0" when the
 * host has no IPv6; an IPv4 address binds an IPv4 socket, an IPv6 address an IPv6-only
 * one. Rejects when binding fails (EADDRINUSE, EADDRNOTAVAIL, ...).
 *
 * @example Echo
 * ```ts
 * const conn = await listenUdp({ address: "127.0.0.1" });
 * conn.onReceive((data, from) => conn.send(data, from));
 * ```
 */
export async function listenUdp(options: ListenUdpOptions = {}): Promise<UdpConn> {
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Expected "port" to be an integer from 0 to 65535, got ${port}`);
  }
  const requested = options.address ?? "";
  const address = unmapIPv4(requested);
  if (address === "" || address === "::") {
    try {
      return new UdpSocketConn(await bind("udp6", false, "::", port), "dual");
    } catch (error) {
      if (address !== "" || !NO_IPV6_CODES.has(errorCode(error))) throw error;
      return new UdpSocketConn(await bind("udp4", false, "0.0.0.0", port), "ipv4");
    }
  }
  if (isIPv4(address)) return new UdpSocketConn(await bind("udp4", false, address, port), "ipv4");
  if (isIPv6(address)) return new UdpSocketConn(await bind("udp6", true, address, port), "ipv6");
  throw new SyntaxError(`Expected "address" to be an IPv4 or IPv6 address, got "${requested}"`);
}

type Families = "ipv4" | "ipv6" | "dual";

/** One bound socket; a class because its closed state and counters must stay consistent. */
class UdpSocketConn implements UdpConn {
  readonly localPort: number;
  readonly localAddress: string;
  readonly #socket: Socket;
  readonly #families: Families;
  #handler: ReceiveHandler | undefined;
  #closed: Promise<void> | undefined;
  #sent = 0;
  #sendErrors = 0;
  #received = 0;
  #socketErrors = 0;
  #lastError: string | undefined;

  constructor(socket: Socket, families: Families) {
    this.#socket = socket;
    this.#families = families;
    const bound = socket.address();
    this.localPort = bound.port;
    this.localAddress = bound.address;
    socket.on("message", (message: Uint8Array, remote: RemoteInfo) => {
      const handler = this.#handler;
      if (handler === undefined) return;
      this.#received++;
      // A plain view, not a Buffer: the core sees only Uint8Array.
      const data = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
      handler(data, { address: unmapIPv4(remote.address), port: remote.port });
    });
    // Without a listener an 'error' event would crash the process.
    socket.on("error", (error: Error) => {
      this.#socketErrors++;
      this.#lastError = errorCode(error) || error.message;
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
      this.#socket.send(data.slice(), port, address, this.#afterSend);
    } catch (error) {
      this.#sendFailed(errorCode(error) || String(error));
    }
  }

  onReceive(handler: ReceiveHandler): void {
    if (this.#closed === undefined) this.#handler = handler;
  }

  close(): Promise<void> {
    this.#closed ??= new Promise((resolve) => {
      this.#handler = undefined;
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve(); // already closed underneath (e.g. after a fatal socket error)
      }
    });
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

  readonly #afterSend = (error: Error | null): void => {
    if (error) this.#sendFailed(errorCode(error) || error.message);
    else this.#sent++;
  };

  #sendFailed(reason: string): void {
    this.#sendErrors++;
    this.#lastError = reason;
  }

  /** The address text to hand `dgram` for `text`, or `undefined` when this socket cannot reach it. */
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

/** Binds a fresh socket, closing it again when binding fails. */
function bind(type: "udp4" | "udp6", ipv6Only: boolean, address: string, port: number) {
  return new Promise<Socket>((resolve, reject) => {
    const socket = createSocket({ type, ipv6Only });
    const onError = (error: Error) => {
      try {
        socket.close();
      } catch {
        // Not running: nothing to release.
      }
      reject(error);
    };
    socket.once("error", onError);
    socket.bind({ port, address }, () => {
      socket.off("error", onError);
      growBuffers(socket);
      resolve(socket);
    });
  });
}

/**
 * Asks for socket buffers as large as wireguard-go's (7 MiB): the default 208 KiB holds
 * about 140 full-size datagrams, which a burst overruns while the event loop decrypts,
 * and UDP then drops silently. The kernel caps the request at net.core.[rw]mem_max, and
 * a runtime that cannot set it keeps its default; both are fine, so errors are ignored.
 */
const SOCKET_BUFFER_BYTES = 7 << 20;

function growBuffers(socket: Socket): void {
  try {
    socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
    socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
  } catch {
    // Capped or unsupported: the default buffers still work, with more loss in bursts.
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

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}
