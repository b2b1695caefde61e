/**
 * UDP sockets as `PacketConn`s, over `node:dgram`, which Node, Deno and Bun all provide;
 * what every weft socket does (dual-stack default, address forms, copying, counting) is
 * in `udp-shared.ts`. The Runtimes of Node and Bun use this one, Deno's `deno-udp.ts`
 * (see there why); this one still works on Deno when imported directly.
 *
 * What is particular to `dgram`:
 * - It throws synchronously for some bad arguments (port 0) and reports others to the
 *   send callback; `udp-shared.ts` counts both.
 * - It keeps a reference to the data until the send completes, after `send` returned;
 *   `udp-shared.ts` hands it a copy.
 * - It hands out `Buffer`s; the handler gets a plain `Uint8Array` view of the same bytes.
 * - An 'error' event without a listener would crash the process; errors are counted.
 * On a host whose sysctl `net.ipv6.bindv6only` is 1, Node and Deno leave the "::" socket
 * IPv6-only (they set IPV6_V6ONLY when asked but never clear it; Bun clears it), and
 * `dgram` cannot set the option: bind "0.0.0.0" there to reach IPv4 peers.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { ListenUdpOptions } from "../src/runtime.ts";
import { detectRuntime } from "./detect.ts";
import {
  type BoundSocket,
  type Families,
  listenUdpWith,
  type SocketEvents,
  type UdpConn,
} from "./udp-shared.ts";

export type { UdpConn, UdpCounters } from "./udp-shared.ts";

/**
 * Binds a UDP socket on `node:dgram`. With no address it binds "::" dual-stack, or
 * "0.0.0.0" when the host has no IPv6; an IPv4 address binds an IPv4 socket, an IPv6
 * address an IPv6-only one. Rejects when binding fails (EADDRINUSE, EADDRNOTAVAIL, ...).
 *
 * @example Echo
 * ```ts
 * const conn = await listenUdp({ address: "127.0.0.1" });
 * conn.onReceive((data, from) => conn.send(data, from));
 * ```
 */
export function listenUdp(options: ListenUdpOptions = {}): Promise<UdpConn> {
  return listenUdpWith(bindDgram, options);
}

async function bindDgram(families: Families, address: string, port: number): Promise<BoundSocket> {
  const type = families === "ipv4" ? "udp4" : "udp6";
  const socket = await bind(type, families === "ipv6", address, port);
  growBuffers(socket);
  return dgramSocket(socket);
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
      resolve(socket);
    });
  });
}

/** `socket` as the shared UdpConn wants it. */
function dgramSocket(socket: Socket): BoundSocket {
  const bound = socket.address();
  let events: SocketEvents | undefined;
  const afterSend = (error: Error | null) => {
    if (error) events?.sendFailed(error);
    else events?.sent();
  };
  return {
    localAddress: bound.address,
    localPort: bound.port,
    start(to) {
      events = to;
      socket.on("message", (message: Uint8Array, remote: RemoteInfo) => {
        // A plain view, not a Buffer: the core sees only Uint8Array.
        const data = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
        to.received(data, remote.address, remote.port);
      });
      socket.on("error", to.socketFailed);
    },
    send(data, address, port) {
      socket.send(data, port, address, afterSend);
    },
    close() {
      return new Promise((resolve) => {
        try {
          socket.close(() => resolve());
        } catch {
          resolve(); // already closed underneath (e.g. after a fatal socket error)
        }
      });
    },
  };
}

/**
 * Asks for socket buffers as large as wireguard-go's (7 MiB): the default 208 KiB holds
 * about 140 full-size datagrams, which a burst overruns while the event loop decrypts,
 * and UDP then drops silently. The kernel caps the request at net.core.[rw]mem_max, and
 * a runtime that cannot set it keeps its default; both are fine, so errors are ignored.
 *
 * Not on Deno: its `node:dgram` (2.9.6) never passes the size to the kernel but allocates
 * a read buffer of twice that size for every datagram, so 7 MiB cut it from keeping up
 * with 10k datagrams/s to about 1,000/s. Deno keeps the kernel's default buffers.
 */
const SOCKET_BUFFER_BYTES = 7 << 20;

function growBuffers(socket: Socket): void {
  if (detectRuntime() === "deno") return;
  try {
    socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
    socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
  } catch {
    // Capped or unsupported: the default buffers still work, with more loss in bursts.
  }
}
