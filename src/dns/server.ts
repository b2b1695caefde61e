/**
 * The DNS server: queries in over UDP (`PacketConn`) and TCP (`StreamListener`), answers
 * out. Mesh names are answered from memory at once (`answer.ts`); other names go to the
 * forwarder. What the server itself decides is transport: the UDP size the client can
 * take (512 bytes, or its EDNS(0) size up to our limit), TC with empty sections when an
 * answer does not fit (the client retries over TCP, where 64 KiB fits), FORMERR for bytes
 * that do not decode but have a header, silence for less, and never an exception out of
 * a handler:
 *
 *   datagram/stream -> decodeMessage -> answerQuery -> answer | forward -> fit -> send
 *                   \-> answer cache (same query bytes, same names) -----------/
 */
import type { CancelTimer, Clock } from "../clock.ts";
import type { IpPrefix } from "../net/ip.ts";
import type { PacketConn } from "../net/packet-conn.ts";
import type { StreamConn, StreamListener } from "../net/stream.ts";
import {
  type AnswerConfig,
  answerQuery,
  FLAG_RA,
  FLAG_TC,
  type NameSource,
  RCODE,
  reply,
} from "./answer.ts";
import {
  type AnswerCache,
  cachedAnswer,
  cacheKey,
  createAnswerCache,
  keepAnswer,
  replayAnswer,
} from "./answer-cache.ts";
import {
  CLASSIC_UDP_BYTES,
  DEFAULT_DOMAIN,
  DEFAULT_TTL_SECONDS,
  MAX_TCP_CLIENTS,
  MAX_TCP_MESSAGE_BYTES,
  MAX_TCP_QUERIES_IN_FLIGHT,
  MAX_UDP_ANSWER_BYTES,
  TCP_IDLE_TIMEOUT_MS,
} from "./constants.ts";
import type { Forwarder } from "./forwarder.ts";
import { normaliseName } from "./names.ts";
import {
  createTcpDeframer,
  type DnsMessage,
  decodeMessage,
  encodeMessage,
  frameForTcp,
  type RawHeader,
  withId,
} from "./wire.ts";

export interface DnsServerOptions {
  /** The UDP socket queries arrive on (the daemon binds it; port 53 on the overlay address). */
  readonly udp: PacketConn;
  /** The TCP listener on the same address and port, if any. */
  readonly tcp?: StreamListener;
  /** The mesh's names: a `DnsEntries` replica. */
  readonly names: NameSource;
  readonly clock: Clock;
  /** The mesh domain; `DEFAULT_DOMAIN` ("weft.internal.") when absent. */
  readonly domain?: string;
  /** TTL of mesh answers and of negative answers; `DEFAULT_TTL_SECONDS` (5) when absent. */
  readonly ttlSeconds?: number;
  /** The mesh's address ranges, whose PTR queries are ours. */
  readonly reverseRanges?: readonly IpPrefix[];
  /** Where other names go; without one they get REFUSED. */
  readonly forwarder?: Forwarder;
  /** For the order of addresses; `Math.random` when absent (load balancing, not security). */
  readonly random?: () => number;
  /**
   * Replays encoded answers to repeated queries until the names change (`answer-cache.ts`);
   * true by default, when `names` has `generation`. False answers each query afresh.
   */
  readonly cacheAnswers?: boolean;
}

/** Running totals, for metrics. */
export interface DnsServerCounters {
  readonly queries: number;
  readonly answered: number;
  readonly forwarded: number;
  readonly forwardFailures: number;
  readonly truncated: number;
  readonly malformed: number;
  readonly dropped: number;
}

/** Which transport a query came on: decides how large the answer may be. */
export type Transport = "udp" | "tcp";

type Outcome = Uint8Array | undefined;

/** A running server; a class because it owns sockets, TCP clients and counters. */
export class DnsServer {
  readonly #udp: PacketConn;
  readonly #tcp: StreamListener | undefined;
  readonly #names: NameSource;
  readonly #clock: Clock;
  readonly #config: AnswerConfig;
  readonly #forwarder: Forwarder | undefined;
  readonly #clients = new Set<StreamConn>();
  readonly #cache: AnswerCache | undefined;
  #closed = false;
  #counters = {
    queries: 0,
    answered: 0,
    forwarded: 0,
    forwardFailures: 0,
    truncated: 0,
    malformed: 0,
    dropped: 0,
  };

  constructor(options: DnsServerOptions) {
    const domain = normaliseName(options.domain ?? DEFAULT_DOMAIN);
    if (domain === undefined)
      throw new RangeError(`Expected "domain" to be a DNS name, got "${options.domain}"`);
    const ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0 || ttlSeconds > 0x7fffffff) {
      throw new RangeError(
        `Expected "ttlSeconds" to be an integer from 0 to 2^31-1, got ${ttlSeconds}`,
      );
    }
    this.#udp = options.udp;
    this.#tcp = options.tcp;
    this.#names = options.names;
    this.#clock = options.clock;
    this.#forwarder = options.forwarder;
    this.#config = {
      domain,
      ttlSeconds,
      reverseRanges: options.reverseRanges ?? [],
      random: options.random ?? Math.random,
    };
    const cacheable = options.cacheAnswers !== false && options.names.generation !== undefined;
    this.#cache = cacheable ? createAnswerCache() : undefined;
    this.#udp.onReceive((data, from) => {
      const outcome = this.#safeHandle(data.slice(), "udp");
      if (outcome instanceof Promise)
        void outcome.then((bytes) => bytes && this.#udp.send(bytes, from));
      else if (outcome !== undefined) this.#udp.send(outcome, from);
    });
    this.#tcp?.onConnection((conn) => this.#accept(conn));
  }

  /**
   * The answer to one message as it arrived on `transport`, or undefined to send nothing.
   * Synchronous for mesh names; a Promise only when the query is forwarded. Never throws.
   */
  handle(bytes: Uint8Array, transport: Transport): Outcome | Promise<Outcome> {
    return this.#safeHandle(bytes, transport);
  }

  counters(): DnsServerCounters {
    return { ...this.#counters };
  }

  /** Stops serving: closes the sockets and every TCP client. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const client of this.#clients) client.close();
    this.#clients.clear();
    await Promise.all([this.#udp.close(), this.#tcp?.close()]);
  }

  #safeHandle(bytes: Uint8Array, transport: Transport): Outcome | Promise<Outcome> {
    try {
      const outcome = this.#handle(bytes, transport);
      if (!(outcome instanceof Promise)) return outcome;
      return outcome.catch(() => this.#dropped());
    } catch {
      // A bug must cost one query, not the server.
      return this.#dropped();
    }
  }

  #dropped(): undefined {
    this.#counters.dropped++;
    return undefined;
  }

  #handle(bytes: Uint8Array, transport: Transport): Outcome | Promise<Outcome> {
    this.#counters.queries++;
    const generation = this.#names.generation?.() ?? 0;
    const key = this.#cache && cacheKey(bytes, transport);
    if (key !== undefined) {
      const cached = cachedAnswer(this.#cache!, key, generation);
      if (cached !== undefined) {
        this.#counters.answered++;
        if (cached.truncated) this.#counters.truncated++;
        return replayAnswer(cached, (bytes[0]! << 8) | bytes[1]!, this.#config.random);
      }
    }
    const decoded = decodeMessage(bytes);
    if (!decoded.ok) {
      this.#counters.malformed++;
      return decoded.header === undefined || decoded.header.isResponse
        ? this.#dropped()
        : formErr(decoded.header);
    }
    const query = decoded.message;
    const limit = transport === "tcp" ? MAX_TCP_MESSAGE_BYTES : udpLimit(query);
    const route = answerQuery(query, this.#names, this.#config);
    if (route.kind === "drop") return this.#dropped();
    if (route.kind === "answer") {
      this.#counters.answered++;
      const answer = this.#fit(route.response, query, limit);
      if (key !== undefined && answer !== undefined)
        keepAnswer(this.#cache!, key, generation, answer);
      return answer;
    }
    if (this.#forwarder === undefined) return this.#fit(reply(query, RCODE.REFUSED), query, limit);
    this.#counters.forwarded++;
    return this.#forwarder.forward(bytes, query).then((answer) => {
      if (answer === undefined) {
        this.#counters.forwardFailures++;
        return this.#fit(reply(query, RCODE.SERVFAIL), query, limit);
      }
      if (answer.length <= limit) return withId(answer, query.id ?? 0);
      return this.#fit(truncated(reply(query, RCODE.NOERROR)), query, limit);
    });
  }

  /** `response` encoded, or with empty sections and TC when it is over `limit`. */
  #fit(response: DnsMessage, query: DnsMessage, limit: number): Outcome {
    const bytes = encodeMessage(response);
    if (bytes === undefined) return encodeMessage(reply(query, RCODE.SERVFAIL)) ?? this.#dropped();
    if (bytes.length <= limit) return bytes;
    this.#counters.truncated++;
    return encodeMessage(truncated(response)) ?? this.#dropped();
  }

  #accept(conn: StreamConn): void {
    if (this.#closed || this.#clients.size >= MAX_TCP_CLIENTS) {
      conn.close();
      return;
    }
    this.#clients.add(conn);
    const deframe = createTcpDeframer();
    let inFlight = 0;
    let idle: CancelTimer = () => {};
    const rearm = () => {
      idle();
      idle = this.#clock.setTimer(TCP_IDLE_TIMEOUT_MS, () => conn.close());
    };
    rearm();
    conn.onClose(() => {
      idle();
      this.#clients.delete(conn);
    });
    conn.onData((data) => {
      rearm();
      for (const message of deframe(data)) {
        if (inFlight >= MAX_TCP_QUERIES_IN_FLIGHT) {
          this.#dropped();
          continue;
        }
        const outcome = this.#safeHandle(message, "tcp");
        if (!(outcome instanceof Promise)) {
          if (outcome !== undefined) conn.write(frameForTcp(outcome));
          continue;
        }
        inFlight++;
        void outcome.then((bytes) => {
          inFlight--;
          if (bytes !== undefined) conn.write(frameForTcp(bytes));
        });
      }
    });
  }
}

/** How large a UDP answer may be: 512, or the client's EDNS(0) size (RFC 6891 §6.2.5), capped. */
function udpLimit(query: DnsMessage): number {
  const opt = (query.additionals ?? []).find((r) => r.type === "OPT") as
    | { udpPayloadSize?: number }
    | undefined;
  if (opt === undefined) return CLASSIC_UDP_BYTES;
  return Math.min(Math.max(opt.udpPayloadSize ?? 0, CLASSIC_UDP_BYTES), MAX_UDP_ANSWER_BYTES);
}

/** `response` with TC set and nothing but the question and OPT. */
function truncated(response: DnsMessage): DnsMessage {
  return { ...response, flags: (response.flags ?? 0) | FLAG_TC, answers: [], authorities: [] };
}

/** FORMERR for bytes with a readable header but no valid message: ID and opcode kept, no question. */
function formErr(header: RawHeader): Uint8Array | undefined {
  return encodeMessage({
    id: header.id,
    type: "response",
    flags: (header.opcode << 11) | FLAG_RA | RCODE.FORMERR,
    questions: [],
    answers: [],
    authorities: [],
    additionals: [],
  });
}
