/**
 * UDP sockets as `PacketConn`s on Deno, over `Deno.listenDatagram`. That API is unstable:
 * weft's deno.json enables it (`"unstable": ["net"]`); elsewhere run Deno with
 * `--unstable-net`. What every weft socket does is in `udp-shared.ts`; this file only
 * translates.
 *
 * Why not `node:dgram` (`udp.ts`, as on Node and Bun): Deno's (2.9.6) allocates a fresh
 * read buffer for every datagram, 64 KiB, or twice what `setRecvBufferSize` asked for
 * (the size never reaches the kernel), and wraps it in a Buffer. Datagrams received on
 * loopback, 1,100 B each from another process, by a handler doing one ChaCha20-Poly1305
 * seal each (the test: ~5 µs of hashing):
 *
 * | sent                          | node:dgram on Deno        | this adapter       |
 * | ----------------------------- | ------------------------- | ------------------ |
 * | 20,000 at 10k/s               | 2,500 (asked for 7 MiB)   | 19,997 to 20,000   |
 * |                               | 20,000 (default buffer)   |                    |
 * | 60,000 at 30k/s               | 52,000                    | 55,000 to 59,000   |
 * | 2,000 at 10k/s, the test      | 1,440 to 1,936            | 2,000 (idle host)  |
 *
 * What is particular to Deno's datagram API:
 * - Receiving is one awaited `receive()` per datagram. Each goes into the same buffer of
 *   the UDP maximum: without one Deno allocates a fresh buffer per datagram, and a smaller
 *   one would truncate. Handlers may use `data` only during the call, so reuse is safe.
 * - Sending is asynchronous: the outcome arrives in a promise, and Deno may read the
 *   bytes after `send` has returned (when the socket was busy), so it gets a copy.
 * - Socket buffer sizes cannot be set through Deno's API (no SO_RCVBUF/SO_SNDBUF), so the
 *   kernel default applies (net.core.rmem_default, often 208 KiB: about 90 datagrams of
 *   1,100 B) where `udp.ts` asks for 7 MiB; a receiver stalled for ~10 ms in a burst at
 *   full rate loses datagrams that `udp.ts` on Node would have kept.
 * - Deno neither sets nor clears IPV6_V6ONLY (it has no option for it), so "::" is
 *   dual-stack exactly when the host's sysctl `net.ipv6.bindv6only` is 0, the Linux
 *   default (checked: an IPv4 socket's datagrams arrive from ::ffff:127.0.0.1). Where it
 *   is 1 the default socket is IPv6-only, as with `dgram` on Node: bind "0.0.0.0" there.
 * - Errors carry Node's `code` ("EADDRINUSE"), which the shared code reads.
 */
/// <reference path="./deno.d.ts" />
import type { ListenUdpOptions } from "../src/runtime.ts";
import {
  type BoundSocket,
  type Families,
  listenUdpWith,
  type SocketEvents,
  type UdpConn,
} from "./udp-shared.ts";

/** The largest UDP payload (IPv6 without jumbograms: 65,535 minus the 8-byte UDP header). */
const MAX_DATAGRAM_BYTES = 65_527;

/**
 * Binds a UDP socket on `Deno.listenDatagram`. With no address it binds "::" dual-stack,
 * or "0.0.0.0" when the host has no IPv6; an IPv4 address binds an IPv4 socket, an IPv6
 * address an IPv6 one. Rejects when binding fails (EADDRINUSE, EADDRNOTAVAIL, ...).
 *
 * @example Echo
 * ```ts
 * const conn = await listenUdp({ address: "127.0.0.1" });
 * conn.onReceive((data, from) => conn.send(data, from));
 * ```
 */
export function listenUdp(options: ListenUdpOptions = {}): Promise<UdpConn> {
  return listenUdpWith(bindDatagram, options);
}

async function bindDatagram(_: Families, address: string, port: number): Promise<BoundSocket> {
  return datagramSocket(Deno.listenDatagram({ transport: "udp", hostname: address, port }));
}

/** `conn` as the shared UdpConn wants it. */
function datagramSocket(conn: Deno.DatagramConn): BoundSocket {
  let events: SocketEvents | undefined;
  let closing = false;
  let receiving = Promise.resolve();
  const sent = () => events?.sent();
  const sendFailed = (error: unknown) => events?.sendFailed(error);
  return {
    localAddress: conn.addr.hostname,
    localPort: conn.addr.port,
    start(to) {
      events = to;
      receiving = receiveAll(conn, to, () => closing);
    },
    send(data, address, port) {
      conn.send(data, { transport: "udp", hostname: address, port }).then(sent, sendFailed);
    },
    async close() {
      if (!closing) {
        closing = true;
        try {
          conn.close();
        } catch {
          // Already closed underneath: nothing to release.
        }
      }
      await receiving; // the pending receive ends with the socket
    },
  };
}

/** Hands each datagram to `events` until the socket is closed. */
async function receiveAll(
  conn: Deno.DatagramConn,
  events: SocketEvents,
  closing: () => boolean,
): Promise<void> {
  const buffer = new Uint8Array(MAX_DATAGRAM_BYTES);
  for (;;) {
    let datagram: [Uint8Array, Deno.NetAddr];
    try {
      datagram = await conn.receive(buffer);
    } catch (error) {
      if (closing()) return;
      events.socketFailed(error);
      if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
        return; // the socket is gone
      }
      continue;
    }
    try {
      events.received(datagram[0], datagram[1].hostname, datagram[1].port);
    } catch (error) {
      // A throwing handler is a bug: report it uncaught, as dgram's emitter would, and
      // keep receiving.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}
