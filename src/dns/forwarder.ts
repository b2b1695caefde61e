/**
 * Forwards queries for names outside the mesh to upstream resolvers: UDP first, over TCP
 * when the UDP answer comes back truncated (RFC 7766 §5), each upstream in turn until one
 * answers within the timeout. Each query goes out from a fresh socket (a random source
 * port) with a fresh random ID, and only an answer from the upstream asked, with that ID
 * and the same question, is taken: the usual defence against spoofed answers. The caller
 * turns "no answer" into SERVFAIL and puts back the client's ID.
 */
import type { Clock } from "../clock.ts";
import type { Endpoint, PacketConn } from "../net/packet-conn.ts";
import type { DialTcp, StreamConn } from "../net/stream.ts";
import type { ListenUdpOptions } from "../runtime.ts";
import { DEFAULT_UPSTREAM_TIMEOUT_MS, MAX_PENDING_FORWARDS } from "./constants.ts";
import { foldName } from "./names.ts";
import { createTcpDeframer, type DnsMessage, decodeMessage, frameForTcp, withId } from "./wire.ts";

export interface ForwarderOptions {
  /** Where to forward, tried in order (see `parseResolvConf`). */
  readonly upstreams: readonly Endpoint[];
  readonly listenUdp: (options: ListenUdpOptions) => Promise<PacketConn>;
  readonly dialTcp: DialTcp;
  readonly clock: Clock;
  /** How long to wait for one upstream, per transport. */
  readonly timeoutMs?: number;
  /** Random bytes for query IDs (the Crypto seam's `randomBytes`, or `crypto.getRandomValues`). */
  readonly randomBytes: (length: number) => Uint8Array;
}

export interface Forwarder {
  /**
   * The upstream's answer to `query` (bytes of a decoded query, sent as they are but for
   * the ID), with the upstream's ID still in it; undefined when no upstream answered.
   */
  forward(query: Uint8Array, decoded: DnsMessage): Promise<Uint8Array | undefined>;
  /** Queries waiting on upstreams now. */
  readonly pending: number;
}

/** A Forwarder over the given seams. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const timeoutMs = options.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  let pending = 0;

  async function forward(query: Uint8Array, decoded: DnsMessage): Promise<Uint8Array | undefined> {
    if (pending >= MAX_PENDING_FORWARDS || options.upstreams.length === 0) return undefined;
    pending++;
    try {
      for (const upstream of options.upstreams) {
        const id = randomId(options.randomBytes);
        const outgoing = withId(query, id);
        const viaUdp = await askUdp(options, upstream, outgoing, decoded, id, timeoutMs);
        if (viaUdp === undefined) continue;
        if (!viaUdp.truncated) return viaUdp.bytes;
        const viaTcp = await askTcp(options, upstream, outgoing, decoded, id, timeoutMs);
        if (viaTcp !== undefined) return viaTcp;
      }
      return undefined;
    } finally {
      pending--;
    }
  }

  return {
    forward,
    get pending() {
      return pending;
    },
  };
}

function randomId(randomBytes: (length: number) => Uint8Array): number {
  const bytes = randomBytes(2);
  return (bytes[0]! << 8) | bytes[1]!;
}

/** Whether `bytes` answer our query: a response with our ID and the same question. */
function matches(
  bytes: Uint8Array,
  decoded: DnsMessage,
  id: number,
): { truncated: boolean } | undefined {
  const result = decodeMessage(bytes);
  if (!result.ok) return undefined;
  const answer = result.message;
  if (answer.type !== "response" || answer.id !== id) return undefined;
  const asked = decoded.questions?.[0];
  const got = answer.questions?.[0];
  if (asked === undefined || got === undefined || answer.questions?.length !== 1) return undefined;
  if (foldName(asked.name) !== foldName(got.name) || asked.type !== got.type) return undefined;
  if ((asked.class ?? "IN") !== (got.class ?? "IN")) return undefined;
  return { truncated: ((answer.flags ?? 0) & 0x0200) !== 0 };
}

async function askUdp(
  options: ForwarderOptions,
  upstream: Endpoint,
  query: Uint8Array,
  decoded: DnsMessage,
  id: number,
  timeoutMs: number,
): Promise<{ bytes: Uint8Array; truncated: boolean } | undefined> {
  let conn: PacketConn;
  try {
    conn = await options.listenUdp({ address: upstream.address.includes(":") ? "::" : "0.0.0.0" });
  } catch {
    return undefined;
  }
  try {
    return await new Promise((resolve) => {
      const cancel = options.clock.setTimer(timeoutMs, () => resolve(undefined));
      conn.onReceive((data, from) => {
        if (from.address !== upstream.address || from.port !== upstream.port) return;
        const match = matches(data, decoded, id);
        if (match === undefined) return;
        cancel();
        resolve({ bytes: data.slice(), truncated: match.truncated });
      });
      conn.send(query, upstream);
    });
  } finally {
    await conn.close();
  }
}

async function askTcp(
  options: ForwarderOptions,
  upstream: Endpoint,
  query: Uint8Array,
  decoded: DnsMessage,
  id: number,
  timeoutMs: number,
): Promise<Uint8Array | undefined> {
  const deadline = options.clock.now() + timeoutMs;
  let conn: StreamConn;
  try {
    conn = await options.dialTcp(upstream, timeoutMs);
  } catch {
    return undefined;
  }
  try {
    return await new Promise((resolve) => {
      const cancel = options.clock.setTimer(Math.max(0, deadline - options.clock.now()), () =>
        resolve(undefined),
      );
      const deframe = createTcpDeframer();
      conn.onData((data) => {
        for (const message of deframe(data)) {
          if (matches(message, decoded, id) === undefined) continue;
          cancel();
          resolve(message);
          return;
        }
      });
      conn.onClose(() => {
        cancel();
        resolve(undefined);
      });
      conn.write(frameForTcp(query));
    });
  } finally {
    conn.close();
  }
}
