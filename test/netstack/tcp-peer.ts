/**
 * Test helpers for the TCP state machine: segment construction, a connection driven by
 * hand into any RFC 9293 state (the test plays the peer), and a simulated link between
 * two connections on the virtual clock with seeded loss, reordering and duplication.
 */
import { TcpConnection, type TcpConnectionOptions } from "../../src/netstack/tcp-connection.ts";
import { resetFor, TcpListener } from "../../src/netstack/tcp-listener.ts";
import { NO_FLAGS, type TcpFlags, type TcpSegment } from "../../src/netstack/tcp-segment.ts";
import type { Random } from "../../src/sim/random.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";

export const OUR_ISS = 1000;
export const PEER_ISS = 5000;
export const MSL_MS = 1000;

export function segment(
  parts: Partial<Omit<TcpSegment, "flags">> & { flags?: Partial<TcpFlags> },
): TcpSegment {
  return {
    sourcePort: 80,
    destinationPort: 40000,
    seq: 0,
    ack: 0,
    window: 65535,
    urgentPointer: 0,
    options: {},
    payload: new Uint8Array(0),
    ...parts,
    flags: { ...NO_FLAGS, ...parts.flags },
  };
}

/** A compact name for a segment's flags, as the state table lists them: "SYN+ACK". */
export function flagNames(s: TcpSegment): string {
  const names: string[] = [];
  if (s.flags.syn) names.push("SYN");
  if (s.flags.fin) names.push("FIN");
  if (s.flags.rst) names.push("RST");
  if (s.flags.ack) names.push("ACK");
  return names.join("+");
}

export interface Driven {
  readonly clock: VirtualClock;
  readonly connection: TcpConnection;
  readonly sent: TcpSegment[];
  readonly closedReasons: string[];
}

/** Options for a connection whose output lands in `sent`, ISS fixed at OUR_ISS. */
export function driverOptions(
  clock: VirtualClock,
  sent: TcpSegment[],
  closedReasons: string[],
  extra: Partial<TcpConnectionOptions> = {},
): TcpConnectionOptions {
  return {
    clock,
    send: (s) => sent.push(s),
    randomUint32: () => OUR_ISS,
    localPort: 40000,
    remotePort: 80,
    mslMs: MSL_MS,
    events: { onClosed: (reason) => closedReasons.push(reason) },
    ...extra,
  };
}

export type DrivenState =
  | "SYN-SENT"
  | "SYN-RECEIVED"
  | "ESTABLISHED"
  | "FIN-WAIT-1"
  | "FIN-WAIT-2"
  | "CLOSE-WAIT"
  | "CLOSING"
  | "LAST-ACK"
  | "TIME-WAIT";

/**
 * A connection brought into `state` by the segments a peer with ISS PEER_ISS would send
 * (no data exchanged; our FIN, when sent, is at OUR_ISS + 1). `sent` is cleared after.
 */
export function drive(state: DrivenState, extra: Partial<TcpConnectionOptions> = {}): Driven {
  const clock = new VirtualClock();
  const sent: TcpSegment[] = [];
  const closedReasons: string[] = [];
  const options = driverOptions(clock, sent, closedReasons, extra);
  let connection: TcpConnection;
  if (state === "SYN-RECEIVED") {
    connection = TcpConnection.accept(segment({ seq: PEER_ISS, flags: { syn: true } }), options)!;
  } else {
    connection = TcpConnection.connect(options);
    if (state !== "SYN-SENT") {
      connection.receive(
        segment({ seq: PEER_ISS, ack: OUR_ISS + 1, flags: { syn: true, ack: true } }),
      );
    }
  }
  const ack = (n: number, more: Partial<TcpFlags> = {}) =>
    connection.receive(segment({ seq: PEER_ISS + 1, ack: n, flags: { ack: true, ...more } }));
  switch (state) {
    case "FIN-WAIT-1":
      connection.close();
      break;
    case "FIN-WAIT-2":
      connection.close();
      ack(OUR_ISS + 2);
      break;
    case "CLOSE-WAIT":
      ack(OUR_ISS + 1, { fin: true });
      break;
    case "CLOSING":
      connection.close();
      ack(OUR_ISS + 1, { fin: true });
      break;
    case "LAST-ACK":
      ack(OUR_ISS + 1, { fin: true });
      connection.close();
      break;
    case "TIME-WAIT":
      connection.close();
      ack(OUR_ISS + 2);
      connection.receive(
        segment({ seq: PEER_ISS + 1, ack: OUR_ISS + 2, flags: { ack: true, fin: true } }),
      );
      break;
    default:
      break;
  }
  if (connection.state !== state) {
    throw new Error(`drive: expected state "${state}", got "${connection.state}"`);
  }
  sent.length = 0;
  return { clock, connection, sent, closedReasons };
}

export interface LinkOptions {
  readonly delayMs: number;
  /** Extra random delay up to this, which reorders segments. */
  readonly jitterMs: number;
  readonly loss: number;
  readonly duplicate: number;
  /**
   * Time each segment occupies the link (its serialization at the link's rate): segments
   * sent together arrive this far apart instead of all at once. 0 by default.
   */
  readonly spacingMs?: number;
}

export interface PairOptions {
  readonly link: LinkOptions;
  readonly client?: Partial<TcpConnectionOptions>;
  readonly server?: Partial<TcpConnectionOptions>;
  /** Drops the segments for which it returns true (on top of random loss). */
  readonly drop?: (segment: TcpSegment, toServer: boolean) => boolean;
  /** Gets a line per segment carried, for debugging a failing seed. */
  readonly trace?: (line: string) => void;
}

export interface Pair {
  readonly clock: VirtualClock;
  readonly client: TcpConnection;
  /** Set once the listener accepted the SYN. */
  server(): TcpConnection | undefined;
  readonly listener: TcpListener;
  /** Segments carried each way, drops included. */
  readonly carried: { toServer: number; toClient: number };
}

/**
 * A client and a listening server joined by a lossy link on one virtual clock. A
 * segment for a CLOSED connection is answered with a RST, as a Netstack would.
 */
export function connectPair(random: Random, options: PairOptions): Pair {
  const clock = new VirtualClock();
  const link = options.link;
  const carried = { toServer: 0, toClient: 0 };
  let server: TcpConnection | undefined;
  let client: TcpConnection | undefined;
  const listener = new TcpListener({ onConnection: () => {} });

  // When each direction's link is next free (for spacingMs).
  const linkFreeAt = new Map<(s: TcpSegment) => void, number>();
  function carry(s: TcpSegment, deliver: (s: TcpSegment) => void): void {
    const lost = random.next() < link.loss || (options.drop?.(s, deliver === atServer) ?? false);
    options.trace?.(
      `${clock.now().toFixed(1)} ${s.sourcePort}>${s.destinationPort} ${flagNames(s)} seq=${s.seq} ack=${s.ack} win=${s.window} len=${s.payload.length}${lost ? " LOST" : ""}`,
    );
    if (lost) return;
    const copies = random.next() < link.duplicate ? 2 : 1;
    const departs = Math.max(clock.now(), linkFreeAt.get(deliver) ?? 0);
    linkFreeAt.set(deliver, departs + (link.spacingMs ?? 0));
    for (let i = 0; i < copies; i++) {
      const delay = departs - clock.now() + link.delayMs + random.next() * link.jitterMs;
      clock.setTimer(delay, () => deliver(s));
    }
  }
  function atServer(s: TcpSegment): void {
    if (server === undefined || server.state === "CLOSED") {
      if (server === undefined && s.flags.syn && !s.flags.ack) {
        server = listener.receive(s, serverOptions);
        return;
      }
      const reset = resetFor(s);
      if (reset !== undefined) toClient(reset);
      return;
    }
    server.receive(s);
  }
  function atClient(s: TcpSegment): void {
    if (client === undefined) return;
    if (client.state === "CLOSED") {
      const reset = resetFor(s);
      if (reset !== undefined) toServer(reset);
      return;
    }
    client.receive(s);
  }
  function toServer(s: TcpSegment): void {
    carried.toServer++;
    carry(s, atServer);
  }
  function toClient(s: TcpSegment): void {
    carried.toClient++;
    carry(s, atClient);
  }
  const serverOptions = {
    clock,
    send: toClient,
    randomUint32: () => random.int(0x1_0000_0000),
    localPort: 80,
    remotePort: 40000,
    mslMs: MSL_MS,
    ...options.server,
  };
  client = TcpConnection.connect({
    clock,
    send: toServer,
    randomUint32: () => random.int(0x1_0000_0000),
    localPort: 40000,
    remotePort: 80,
    mslMs: MSL_MS,
    ...options.client,
  });
  return { clock, client, server: () => server, listener, carried };
}

export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
