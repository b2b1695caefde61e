/**
 * TCP as the core's stream seam (`src/net/stream.ts`), over `node:net`, which Node, Deno
 * and Bun all provide. Only translation lives here: `Buffer`s become plain `Uint8Array`
 * views, IPv4-mapped peer addresses become plain IPv4 text, and socket errors (which
 * would crash the process without a listener) end the connection instead.
 */
import { createServer, isIP, type Server, type Socket, connect as tcpConnect } from "node:net";
import type { Endpoint } from "../src/net/packet-conn.ts";
import type { DialTcp, ListenTcpOptions, StreamConn, StreamListener } from "../src/net/stream.ts";

const IPV4_MAPPED_PREFIX = "::ffff:";

/** Listens for TCP connections; with no address on "::" (both families), else on the address given. */
export function listenTcp(options: ListenTcpOptions = {}): Promise<StreamListener> {
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return Promise.reject(new RangeError(`Expected "port" to be 0 to 65535, got ${port}`));
  }
  const address = options.address ?? "::";
  if (isIP(address) === 0) {
    return Promise.reject(
      new SyntaxError(`Expected "address" to be an IP address, got "${address}"`),
    );
  }
  return new Promise((resolve, reject) => {
    const server = createServer({ noDelay: true, allowHalfOpen: true });
    server.once("error", reject);
    server.listen({ port, host: address }, () => {
      server.off("error", reject);
      server.on("error", () => {
        // Accept errors (EMFILE) are transient: the server keeps listening.
      });
      resolve(new TcpListener(server));
    });
  });
}

/** Connects to `to` (IP text only: nothing goes through DNS). */
export const dialTcp: DialTcp = (to, timeoutMs) => {
  if (isIP(to.address) === 0) {
    return Promise.reject(new SyntaxError(`Expected an IP address, got "${to.address}"`));
  }
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({
      host: to.address,
      port: to.port,
      noDelay: true,
      allowHalfOpen: true,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`No TCP connection to ${to.address} port ${to.port} within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    socket.once("error", (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(wrap(socket));
    });
  });
};

class TcpListener implements StreamListener {
  readonly localPort: number;
  readonly #server: Server;
  #closed: Promise<void> | undefined;

  constructor(server: Server) {
    this.#server = server;
    const bound = server.address();
    this.localPort = typeof bound === "object" && bound !== null ? bound.port : 0;
  }

  onConnection(handler: (conn: StreamConn) => void): void {
    this.#server.removeAllListeners("connection");
    this.#server.on("connection", (socket: Socket) => handler(wrap(socket)));
  }

  close(): Promise<void> {
    this.#closed ??= new Promise((resolve) => this.#server.close(() => resolve()));
    return this.#closed;
  }
}

/**
 * A connected socket as a StreamConn. Sockets are made with `allowHalfOpen`, so the
 * peer's FIN does not end our side by itself: with an `onEnd` handler the user decides,
 * without one we answer the FIN with ours (the behaviour before half-close existed).
 */
function wrap(socket: Socket): StreamConn {
  let onData: ((data: Uint8Array) => void) | undefined;
  let onClose: ((error?: Error) => void) | undefined;
  let onEnd: (() => void) | undefined;
  let onDrain: (() => void) | undefined;
  let closed = false;
  let closing = false;
  let failure: Error | undefined;
  const remote: Endpoint = {
    address: unmapIPv4(socket.remoteAddress ?? ""),
    port: socket.remotePort ?? 0,
  };
  const finish = () => {
    if (closed) return;
    closed = true;
    onData = undefined;
    onEnd = undefined;
    onDrain = undefined;
    onClose?.(failure);
  };
  socket.on("data", (chunk: Uint8Array) => {
    onData?.(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  });
  socket.on("error", (error: Error) => {
    failure ??= error;
    socket.destroy();
  });
  socket.on("close", finish);
  socket.on("end", () => {
    const handler = onEnd;
    onEnd = undefined;
    if (handler !== undefined && !closing) handler();
    else socket.end();
  });
  socket.on("drain", () => onDrain?.());
  return {
    remote,
    get bufferedBytes() {
      return socket.writableLength;
    },
    onData(handler) {
      if (!closed && !closing) onData = handler;
    },
    onClose(handler) {
      onClose = handler;
    },
    onEnd(handler) {
      if (!closed) onEnd = handler;
    },
    onDrain(handler) {
      if (!closed) onDrain = handler;
    },
    write(data) {
      if (closed || socket.destroyed || !socket.writable) return true;
      return socket.write(data.slice());
    },
    pause() {
      if (!closed) socket.pause();
    },
    resume() {
      if (!closed) socket.resume();
    },
    end() {
      if (closed || closing || socket.writableEnded) return;
      socket.end();
    },
    close() {
      if (closed || closing) return;
      closing = true;
      onData = undefined;
      socket.end();
      // Unread bytes and the peer's FIN must still be taken in for the socket to finish.
      socket.resume();
      // A peer that never reads (or never sends its FIN) must not hold the socket open forever.
      setTimeout(() => socket.destroy(), 5000).unref?.();
    },
    abort() {
      if (closed) return;
      closing = true;
      onData = undefined;
      const reset = (socket as { resetAndDestroy?: () => void }).resetAndDestroy;
      try {
        if (typeof reset === "function") reset.call(socket);
        else socket.destroy();
      } catch {
        socket.destroy();
      }
    },
  };
}

function unmapIPv4(address: string): string {
  if (!address.toLowerCase().startsWith(IPV4_MAPPED_PREFIX)) return address;
  const rest = address.slice(IPV4_MAPPED_PREFIX.length);
  return isIP(rest) === 4 ? rest : address;
}
