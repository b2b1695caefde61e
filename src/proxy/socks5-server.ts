/**
 * A SOCKS5 server (RFC 1928) on a host listener whose CONNECTs go out through the
 * userspace stack: `weft up --userspace` gives applications the mesh this way.
 *
 * ```
 *  client ─► greeting ─► (username/password, RFC 1929, when `authenticate` is set)
 *         ─► request ─► CONNECT ─► dial(host, port) ─► reply 0x00 ─► pipe both ways
 *                    │                             └─► reply from the error (below), close
 *                    ├─► UDP ASSOCIATE (with `udp`) ─► relay socket, reply 0x00 (socks5-udp.ts)
 *                    └─► BIND, other ─► reply 0x07, close
 * ```
 *
 * Failed dials are answered from the error's `code` (TcpError or any error with one):
 *
 * | code                          | REP  | meaning                                  |
 * |-------------------------------|------|------------------------------------------|
 * | ECONNREFUSED                  | 0x05 | connection refused                       |
 * | ETIMEDOUT                     | 0x04 | host unreachable (no answer in time) (1) |
 * | ENOTFOUND, EHOSTUNREACH       | 0x04 | host unreachable                         |
 * | ENETUNREACH, EADDRNOTAVAIL    | 0x03 | network unreachable (not on the mesh) (2)|
 * | EACCES, EPERM                 | 0x02 | connection not allowed by ruleset        |
 * | anything else                 | 0x01 | general SOCKS server failure             |
 *
 * (1) Not 0x06 "TTL expired", which speaks of IP hop limits, not of a peer that is silent.
 * (2) EADDRNOTAVAIL is what TcpStack says when we have no address of the target's family.
 *
 * Bounds: `maxConnections` sessions at once (more are closed at once), the client's
 * greeting, authentication and request within `handshakeTimeoutMs`, the dial within
 * `dialTimeoutMs`; bytes that are not SOCKS5 close that one connection. UDP ASSOCIATE
 * works when the `udp` hooks are given (`socks5-udp.ts`), and is answered 0x07 otherwise;
 * BIND is always 0x07.
 */
import { type CancelTimer, type Clock, systemClock } from "../clock.ts";
import { endpointKey } from "../net/packet-conn.ts";
import type { StreamConn, StreamListener } from "../net/stream.ts";
import type { TcpStream } from "../netstack/tcp-stack.ts";
import { pipe } from "./pipe.ts";
import { type ProxyLog, type RelayCounters, type Session, Sessions } from "./sessions.ts";
import {
  encodeAuthStatus,
  encodeMethodSelection,
  encodeReply,
  parseCredentials,
  parseGreeting,
  parseRequest,
  SOCKS_COMMAND,
  SOCKS_METHOD,
  SOCKS_REPLY,
  type SocksAddress,
} from "./socks5-codec.ts";
import {
  openUdpAssociation,
  type Socks5UdpOptions,
  type UdpAssociation,
  type UdpCounts,
} from "./socks5-udp.ts";

export const DEFAULT_SOCKS_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_SOCKS_DIAL_TIMEOUT_MS = 30_000;
/** No handshake message is longer (a greeting is at most 257 bytes, credentials 513). */
const MAX_HANDSHAKE_BYTES = 1024;
/**
 * Bytes kept from a client that sends on while its CONNECT is dialled (the connection is
 * paused then, so only what the runtime had already read can come): more is garbage.
 */
const MAX_EARLY_BYTES = 256 * 1024;

export interface Socks5ServerOptions {
  /** Where clients connect (the daemon listens on loopback). */
  readonly listener: StreamListener;
  /** Opens a connection on the mesh; `host` is IP text or a domain name as the client sent it. */
  readonly dial: (host: string, port: number) => Promise<TcpStream>;
  /** Timers for the handshake and dial timeouts; the system clock by default. */
  readonly clock?: Clock;
  readonly log?: ProxyLog;
  /** See DEFAULT_MAX_PROXY_CONNECTIONS. */
  readonly maxConnections?: number;
  readonly handshakeTimeoutMs?: number;
  readonly dialTimeoutMs?: number;
  /**
   * Requires username/password authentication (RFC 1929) when set; otherwise only "no
   * authentication" is offered. Never sent over anything but loopback: it is cleartext.
   */
  readonly authenticate?: (username: string, password: string) => boolean | Promise<boolean>;
  /** Enables UDP ASSOCIATE (see `socks5-udp.ts`); without it the command gets 0x07. */
  readonly udp?: Socks5UdpOptions;
}

export interface Socks5Counters extends RelayCounters, Readonly<UdpCounts> {
  /** Connections closed for bytes that are not SOCKS5 (bad version, garbage, too long). */
  readonly badHandshakes: number;
  readonly handshakeTimeouts: number;
  /** Clients that offered no method we accept (answered 0xFF). */
  readonly noAcceptableMethod: number;
  readonly authFailures: number;
  /** Requests answered with 0x07 (BIND, UDP ASSOCIATE, unknown) or 0x08. */
  readonly unsupported: number;
}

export interface Socks5Server {
  /** Stops accepting and resets every session; idempotent. */
  close(): Promise<void>;
  counters(): Socks5Counters;
}

/** The SOCKS5 reply code for a failed dial (see the table at the top of this file). */
export function socks5ReplyFor(error: unknown): number {
  const code =
    typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  switch (code) {
    case "ECONNREFUSED":
      return SOCKS_REPLY.CONNECTION_REFUSED;
    case "ETIMEDOUT":
    case "ENOTFOUND":
    case "EHOSTUNREACH":
      return SOCKS_REPLY.HOST_UNREACHABLE;
    case "ENETUNREACH":
    case "EADDRNOTAVAIL":
      return SOCKS_REPLY.NETWORK_UNREACHABLE;
    case "EACCES":
    case "EPERM":
      return SOCKS_REPLY.NOT_ALLOWED;
    default:
      return SOCKS_REPLY.GENERAL_FAILURE;
  }
}

const ZERO_ADDRESS: SocksAddress = { type: "ipv4", host: "0.0.0.0", port: 0 };

export function serveSocks5(options: Socks5ServerOptions): Socks5Server {
  const clock = options.clock ?? systemClock;
  const log: ProxyLog = options.log ?? (() => {});
  const handshakeMs = options.handshakeTimeoutMs ?? DEFAULT_SOCKS_HANDSHAKE_TIMEOUT_MS;
  const dialMs = options.dialTimeoutMs ?? DEFAULT_SOCKS_DIAL_TIMEOUT_MS;
  const sessions = new Sessions(options.maxConnections);
  const counts = {
    badHandshakes: 0,
    handshakeTimeouts: 0,
    noAcceptableMethod: 0,
    authFailures: 0,
    unsupported: 0,
  };
  const udpCounts: UdpCounts = {
    udpAssociations: 0,
    datagramsToMesh: 0,
    datagramsFromMesh: 0,
    datagramsDropped: 0,
  };
  let closed: Promise<void> | undefined;

  const handle = (conn: StreamConn): void => {
    type Stage =
      | "greeting"
      | "auth"
      | "authing"
      | "request"
      | "dialing"
      | "relaying"
      | "associated"
      | "done";
    let stage: Stage = "greeting";
    let association: UdpAssociation | undefined;
    let buffer = new Uint8Array(0);
    let cancelTimer: CancelTimer = () => {};
    const session: Session = {
      connIsLocal: true,
      abort: () => {
        stop();
        conn.abort();
      },
    };
    if (closed !== undefined || !sessions.admit(session)) {
      conn.close();
      return;
    }
    const who = endpointKey(conn.remote);
    const stop = () => {
      if (stage === "relaying") {
        session.pipe?.abort();
        return;
      }
      stage = "done";
      cancelTimer();
      void association?.close();
      association = undefined;
      sessions.release(session);
    };
    /** Ends the handshake: `bytes` (a reply) are sent, then FIN. */
    const refuse = (bytes?: Uint8Array) => {
      stop();
      if (bytes !== undefined) conn.write(bytes);
      conn.close();
    };
    const garbage = (why: string) => {
      counts.badHandshakes++;
      log("debug", `socks5 ${who}: ${why}`);
      refuse();
    };
    const failReply = (reply: number) => encodeReply({ reply, address: ZERO_ADDRESS });

    cancelTimer = clock.setTimer(handshakeMs, () => {
      if (stage !== "greeting" && stage !== "auth" && stage !== "authing" && stage !== "request") {
        return;
      }
      counts.handshakeTimeouts++;
      log("debug", `socks5 ${who}: no request within ${handshakeMs} ms`);
      refuse();
    });
    conn.onClose(() => {
      if (stage !== "relaying") stop();
    });
    conn.onData((data) => {
      if (stage === "done" || stage === "relaying" || stage === "associated") return;
      const joined = new Uint8Array(buffer.length + data.length);
      joined.set(buffer);
      joined.set(data, buffer.length);
      buffer = joined;
      if (stage === "dialing" || stage === "authing") {
        // Kept for later (the conn is paused): pipelined after the request, or after auth.
        if (buffer.length > MAX_EARLY_BYTES) garbage("too many bytes before the reply");
        return;
      }
      if (buffer.length > MAX_HANDSHAKE_BYTES) {
        garbage("handshake too long");
        return;
      }
      advance();
    });

    const advance = (): void => {
      for (;;) {
        if (stage === "greeting") {
          const greeting = parseGreeting(buffer);
          if (greeting.status === "more") return;
          if (greeting.status === "error") {
            garbage(greeting.error);
            return;
          }
          buffer = buffer.subarray(greeting.length);
          const wanted =
            options.authenticate === undefined
              ? SOCKS_METHOD.NO_AUTH
              : SOCKS_METHOD.USERNAME_PASSWORD;
          if (!greeting.value.methods.includes(wanted)) {
            counts.noAcceptableMethod++;
            log("debug", `socks5 ${who}: no acceptable method`);
            refuse(encodeMethodSelection(SOCKS_METHOD.NO_ACCEPTABLE));
            return;
          }
          conn.write(encodeMethodSelection(wanted));
          stage = wanted === SOCKS_METHOD.NO_AUTH ? "request" : "auth";
        } else if (stage === "auth") {
          const credentials = parseCredentials(buffer);
          if (credentials.status === "more") return;
          if (credentials.status === "error") {
            garbage(credentials.error);
            return;
          }
          buffer = buffer.subarray(credentials.length);
          stage = "authing";
          conn.pause();
          const { username, password } = credentials.value;
          void (async () => {
            let allowed = false;
            try {
              allowed = (await options.authenticate?.(username, password)) === true;
            } catch {
              allowed = false;
            }
            if (stage !== "authing") return;
            if (!allowed) {
              counts.authFailures++;
              log("info", `socks5 ${who}: authentication failed for ${JSON.stringify(username)}`);
              refuse(encodeAuthStatus(1));
              return;
            }
            conn.write(encodeAuthStatus(0));
            stage = "request";
            conn.resume();
            if (buffer.length > MAX_HANDSHAKE_BYTES) {
              garbage("handshake too long");
              return;
            }
            advance();
          })();
          return;
        } else if (stage === "request") {
          const request = parseRequest(buffer);
          if (request.status === "more") return;
          if (request.status === "error") {
            if (request.reply === undefined) {
              garbage(request.error);
              return;
            }
            counts.unsupported++;
            log("debug", `socks5 ${who}: ${request.error}`);
            refuse(failReply(request.reply));
            return;
          }
          buffer = buffer.subarray(request.length);
          const { command, address } = request.value;
          if (command === SOCKS_COMMAND.UDP_ASSOCIATE && options.udp !== undefined) {
            associate(options.udp, address);
            return;
          }
          if (command !== SOCKS_COMMAND.CONNECT) {
            counts.unsupported++;
            log("debug", `socks5 ${who}: command ${command} is not supported`);
            refuse(failReply(SOCKS_REPLY.COMMAND_NOT_SUPPORTED));
            return;
          }
          connect(address);
          return;
        } else {
          return;
        }
      }
    };

    const associate = (udp: Socks5UdpOptions, requested: SocksAddress): void => {
      stage = "dialing";
      cancelTimer();
      conn.pause();
      openUdpAssociation(udp, conn.remote, requested, udpCounts).then(
        (opened) => {
          if (stage !== "dialing") {
            void opened.close();
            return;
          }
          association = opened;
          stage = "associated";
          conn.write(encodeReply({ reply: SOCKS_REPLY.SUCCEEDED, address: opened.relay }));
          log(
            "info",
            `socks5 ${who}: UDP relay on ${endpointKey({ address: opened.relay.host, port: opened.relay.port })}`,
          );
          // The control connection only says how long the association lives: bytes on it
          // are dropped, and its end (FIN answered by ours, or a reset) ends the association.
          buffer = new Uint8Array(0);
          conn.resume();
        },
        (error: unknown) => {
          log("warn", `socks5 ${who}: no UDP relay: ${(error as Error)?.message ?? error}`);
          if (stage === "dialing") refuse(failReply(SOCKS_REPLY.GENERAL_FAILURE));
        },
      );
    };

    const connect = (address: SocksAddress): void => {
      stage = "dialing";
      cancelTimer();
      conn.pause();
      const target = endpointKey({ address: address.host, port: address.port });
      let settled = false;
      const cancelDial = clock.setTimer(dialMs, () => {
        if (settled) return;
        settled = true;
        sessions.dialFailures++;
        log("info", `socks5 ${who} → ${target}: no connection within ${dialMs} ms`);
        if (stage === "dialing") refuse(failReply(SOCKS_REPLY.HOST_UNREACHABLE));
      });
      let dialing: Promise<TcpStream>;
      try {
        dialing = options.dial(address.host, address.port);
      } catch (error) {
        dialing = Promise.reject(error);
      }
      dialing.then(
        (stream) => {
          if (settled || stage !== "dialing") {
            stream.abort();
            return;
          }
          settled = true;
          cancelDial();
          // BND: a TcpStream knows its local port but not its address, so 0.0.0.0.
          conn.write(
            encodeReply({
              reply: SOCKS_REPLY.SUCCEEDED,
              address: { ...ZERO_ADDRESS, port: stream.localPort },
            }),
          );
          stage = "relaying";
          log("info", `socks5 ${who} → ${target}: connected`);
          const relay = pipe(conn, stream, { initial: buffer });
          buffer = new Uint8Array(0);
          void sessions.relay(session, relay).then((result) => {
            log(
              "debug",
              `socks5 ${who} → ${target}: ${result.outcome}, ${result.bytesToStream} bytes up, ${result.bytesToConn} down`,
            );
          });
          conn.resume();
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          cancelDial();
          sessions.dialFailures++;
          const reply = socks5ReplyFor(error);
          log("info", `socks5 ${who} → ${target}: ${(error as Error)?.message ?? error}`);
          if (stage === "dialing") refuse(failReply(reply));
        },
      );
    };
  };

  options.listener.onConnection(handle);

  return {
    close() {
      closed ??= (async () => {
        const stopped = options.listener.close();
        sessions.abortAll();
        await stopped;
      })();
      return closed;
    },
    counters: () => ({ ...sessions.counters(), ...counts, ...udpCounts }),
  };
}
