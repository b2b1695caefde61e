/**
 * Port forwards between the host and the mesh, as `ssh -L` and `ssh -R` do:
 *
 * - forward (`--forward [ADDR:]LOCALPORT:HOST:PORT`): a host listener; each local
 *   connection is dialled to HOST:PORT on the mesh and piped.
 * - expose (`--expose PORT`, `MESHPORT:LOCALPORT`, `MESHPORT:HOST:LOCALPORT`): a listener
 *   on the userspace stack; each mesh connection is piped to a fresh host connection to
 *   HOST:LOCALPORT, where HOST is a loopback address (127.0.0.1 by default): exposing
 *   another machine of the host's LAN to the mesh is not something a typo should do.
 *
 * A failed dial on the far side resets the connection that came in (RST), so the client
 * sees "connection reset" rather than an empty answer.
 */
import { parseIp } from "../net/ip.ts";
import { endpointKey } from "../net/packet-conn.ts";
import type { StreamConn, StreamListener } from "../net/stream.ts";
import type { TcpServer, TcpStream } from "../netstack/tcp-stack.ts";
import { pipe } from "./pipe.ts";
import { type ProxyLog, type RelayCounters, type Session, Sessions } from "./sessions.ts";

/** Where `--forward` listens and what it dials. */
export interface ForwardSpec {
  /** The host address to listen on: an IP ("::" or "0.0.0.0" for all); 127.0.0.1 by default. */
  readonly bindAddress: string;
  /** The host port; 0 lets the system pick one. */
  readonly localPort: number;
  /** The mesh target: an IP (text, IPv6 without brackets) or a name. */
  readonly host: string;
  readonly port: number;
}

/** What `--expose` listens on and where it connects. */
export interface ExposeSpec {
  /** The port on the userspace stack's addresses. */
  readonly meshPort: number;
  /** A loopback IP of the host (127.0.0.1 by default). */
  readonly localHost: string;
  readonly localPort: number;
}

export const DEFAULT_FORWARD_BIND = "127.0.0.1";
export const DEFAULT_EXPOSE_HOST = "127.0.0.1";

/**
 * Parses `LOCALPORT:HOST:PORT` or `ADDR:LOCALPORT:HOST:PORT`. ADDR is an IP (IPv6 in
 * brackets), "localhost" (127.0.0.1) or "*" (every address, "::"); HOST an IP (IPv6 in
 * brackets) or a DNS name. Throws a SyntaxError that says what is wrong.
 */
export function parseForwardSpec(text: string): ForwardSpec {
  const parts = splitSpec(text, "forward");
  let bind = DEFAULT_FORWARD_BIND;
  let rest = parts;
  if (parts.length === 4) {
    bind = bindAddress(parts[0]!, text);
    rest = parts.slice(1);
  } else if (parts.length !== 3) {
    throw new SyntaxError(
      `Expected a forward as [ADDR:]LOCALPORT:HOST:PORT (IPv6 in brackets), got "${text}"`,
    );
  }
  return {
    bindAddress: bind,
    localPort: port(rest[0]!, "local port", text, true),
    host: targetHost(rest[1]!, text),
    port: port(rest[2]!, "port", text, false),
  };
}

/**
 * Parses `PORT` (the same port on the mesh and on 127.0.0.1), `MESHPORT:LOCALPORT`, or
 * `MESHPORT:HOST:LOCALPORT` where HOST is a loopback IP (IPv6 in brackets) or
 * "localhost". Throws a SyntaxError that says what is wrong.
 */
export function parseExposeSpec(text: string): ExposeSpec {
  const parts = splitSpec(text, "expose");
  if (parts.length === 1) {
    const p = port(parts[0]!, "port", text, false);
    return { meshPort: p, localHost: DEFAULT_EXPOSE_HOST, localPort: p };
  }
  if (parts.length === 2) {
    return {
      meshPort: port(parts[0]!, "mesh port", text, false),
      localHost: DEFAULT_EXPOSE_HOST,
      localPort: port(parts[1]!, "local port", text, false),
    };
  }
  if (parts.length === 3) {
    return {
      meshPort: port(parts[0]!, "mesh port", text, false),
      localHost: loopbackHost(parts[1]!, text),
      localPort: port(parts[2]!, "local port", text, false),
    };
  }
  throw new SyntaxError(
    `Expected an expose as PORT, MESHPORT:LOCALPORT or MESHPORT:HOST:LOCALPORT, got "${text}"`,
  );
}

/** Splits on ":" outside brackets; a bracketed part must be a whole part. */
function splitSpec(text: string, what: string): string[] {
  if (text.length === 0) throw new SyntaxError(`Expected a ${what} spec, got an empty string`);
  const parts: string[] = [];
  let current = "";
  let inBrackets = false;
  for (const char of text) {
    if (char === "[") {
      if (inBrackets || current.length > 0) {
        throw new SyntaxError(`Unexpected "[" in ${what} "${text}"`);
      }
      inBrackets = true;
      current = char;
    } else if (char === "]") {
      if (!inBrackets) throw new SyntaxError(`Unexpected "]" in ${what} "${text}"`);
      inBrackets = false;
      current += char;
    } else if (char === ":" && !inBrackets) {
      parts.push(current);
      current = "";
    } else {
      if (!inBrackets && current.endsWith("]")) {
        throw new SyntaxError(`Expected ":" after "]" in ${what} "${text}"`);
      }
      current += char;
    }
  }
  if (inBrackets) throw new SyntaxError(`Missing "]" in ${what} "${text}"`);
  parts.push(current);
  return parts;
}

function port(part: string, name: string, text: string, zeroAllowed: boolean): number {
  const value = /^[0-9]{1,5}$/.test(part) ? Number(part) : Number.NaN;
  const low = zeroAllowed ? 0 : 1;
  if (!(value >= low && value <= 65535)) {
    throw new SyntaxError(`Expected the ${name} to be ${low} to 65535, got "${part}" in "${text}"`);
  }
  return value;
}

/** "[v6]" → "v6"; a bare IPv4 as is; anything else undefined. */
function ipPart(part: string): string | undefined {
  if (part.startsWith("[")) {
    const inner = part.slice(1, -1);
    const ip = parseIp(inner);
    return ip !== undefined && ip.length === 16 ? inner : undefined;
  }
  const ip = parseIp(part);
  return ip !== undefined && ip.length === 4 ? part : undefined;
}

function bindAddress(part: string, text: string): string {
  if (part === "localhost") return "127.0.0.1";
  if (part === "*") return "::";
  const ip = ipPart(part);
  if (ip === undefined) {
    throw new SyntaxError(
      `Expected the bind address to be an IP (IPv6 in brackets), "localhost" or "*", got "${part}" in "${text}"`,
    );
  }
  return ip;
}

const LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/;

function targetHost(part: string, text: string): string {
  if (part.startsWith("[")) {
    const ip = ipPart(part);
    if (ip === undefined) {
      throw new SyntaxError(`Expected an IPv6 address in brackets, got "${part}" in "${text}"`);
    }
    return ip;
  }
  if (parseIp(part) !== undefined) return part;
  const name = part.endsWith(".") ? part.slice(0, -1) : part;
  if (name.length === 0 || name.length > 253 || !name.split(".").every((l) => LABEL.test(l))) {
    throw new SyntaxError(
      `Expected the host to be an IP (IPv6 in brackets) or a DNS name, got "${part}" in "${text}"`,
    );
  }
  return part;
}

function loopbackHost(part: string, text: string): string {
  if (part === "localhost") return "127.0.0.1";
  const ip = ipPart(part);
  const bytes = ip === undefined ? undefined : parseIp(ip);
  const loopback =
    bytes !== undefined &&
    ((bytes.length === 4 && bytes[0] === 127) ||
      (bytes.length === 16 && bytes.every((b, i) => b === (i === 15 ? 1 : 0))));
  if (!loopback) {
    throw new SyntaxError(
      `Expected the local host to be a loopback address (127.0.0.0/8, [::1] or localhost), got "${part}" in "${text}"`,
    );
  }
  return ip!;
}

export interface ForwardOptions {
  /** The host listener (from `ForwardSpec.bindAddress` and `localPort`). */
  readonly listener: StreamListener;
  /** Opens the mesh connection to the spec's target. */
  readonly dial: () => Promise<TcpStream>;
  readonly log?: ProxyLog;
  /** A label for log lines, such as the spec text. */
  readonly name?: string;
  /** See DEFAULT_MAX_PROXY_CONNECTIONS. */
  readonly maxConnections?: number;
}

export interface ExposeOptions {
  /** The listener on the userspace stack (`TcpStack.listen(spec.meshPort)`). */
  readonly server: TcpServer;
  /** Opens the host connection to the spec's local host and port. */
  readonly dialLocal: () => Promise<StreamConn>;
  readonly log?: ProxyLog;
  readonly name?: string;
  readonly maxConnections?: number;
}

export interface ProxyService {
  /** Stops accepting and resets every connection still relayed; idempotent. */
  close(): Promise<void>;
  counters(): RelayCounters;
}

/** Relays each connection on `listener` to a new mesh connection from `dial`. */
export function serveForward(options: ForwardOptions): ProxyService {
  const log: ProxyLog = options.log ?? (() => {});
  const name = options.name ?? `forward :${options.listener.localPort}`;
  const sessions = new Sessions(options.maxConnections);
  let closed: Promise<void> | undefined;

  options.listener.onConnection((conn) => {
    let gone = false;
    const session: Session = {
      connIsLocal: true,
      abort: () => {
        gone = true;
        sessions.release(session);
        conn.abort();
      },
    };
    if (closed !== undefined || !sessions.admit(session)) {
      conn.close();
      return;
    }
    const who = endpointKey(conn.remote);
    // Bytes the client sends while the mesh connection opens wait here (the conn is paused).
    const early: Uint8Array[] = [];
    conn.pause();
    conn.onData((data) => early.push(data.slice()));
    conn.onClose(() => {
      gone = true;
      sessions.release(session);
    });
    let dialing: Promise<TcpStream>;
    try {
      dialing = options.dial();
    } catch (error) {
      dialing = Promise.reject(error);
    }
    dialing.then(
      (stream) => {
        if (gone) {
          stream.abort();
          return;
        }
        const relay = pipe(conn, stream, { initial: concat(early) });
        void sessions.relay(session, relay).then((result) => {
          log("debug", `${name}: ${who} ${result.outcome}`);
        });
        conn.resume();
      },
      (error: unknown) => {
        sessions.dialFailures++;
        log("info", `${name}: ${who}: ${(error as Error)?.message ?? error}`);
        if (gone) return;
        sessions.release(session);
        conn.abort();
      },
    );
  });

  return {
    close() {
      closed ??= (async () => {
        const stopped = options.listener.close();
        sessions.abortAll();
        await stopped;
      })();
      return closed;
    },
    counters: () => sessions.counters(),
  };
}

/** Relays each connection accepted on `server` to a new host connection from `dialLocal`. */
export function serveExpose(options: ExposeOptions): ProxyService {
  const log: ProxyLog = options.log ?? (() => {});
  const name = options.name ?? `expose :${options.server.port}`;
  const sessions = new Sessions(options.maxConnections);
  let closed: Promise<void> | undefined;

  const handle = (stream: TcpStream): void => {
    let gone = false;
    const session: Session = {
      connIsLocal: false,
      abort: () => {
        gone = true;
        sessions.release(session);
        stream.abort();
      },
    };
    if (!sessions.admit(session)) {
      stream.abort();
      return;
    }
    const who = endpointKey({ address: stream.remoteAddress, port: stream.remotePort });
    let dialing: Promise<StreamConn>;
    try {
      dialing = options.dialLocal();
    } catch (error) {
      dialing = Promise.reject(error);
    }
    dialing.then(
      (conn) => {
        if (gone) {
          conn.abort();
          return;
        }
        const relay = pipe(conn, stream);
        void sessions.relay(session, relay).then((result) => {
          log("debug", `${name}: ${who} ${result.outcome}`);
        });
      },
      (error: unknown) => {
        sessions.dialFailures++;
        log("info", `${name}: ${who}: ${(error as Error)?.message ?? error}`);
        if (gone) return;
        sessions.release(session);
        stream.abort();
      },
    );
  };

  void (async () => {
    for await (const stream of options.server) {
      if (closed !== undefined) {
        stream.abort();
        break;
      }
      handle(stream);
    }
  })();

  return {
    close() {
      closed ??= (async () => {
        options.server.close();
        sessions.abortAll();
      })();
      return closed;
    },
    counters: () => sessions.counters(),
  };
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
