/**
 * Answers a decoded query from the mesh's names, without touching the network: A and
 * AAAA in the mesh domain, PTR in the mesh's reverse zones, NXDOMAIN and NODATA with the
 * zone's SOA in the authority section (RFC 2308 §3, so resolvers cache the negative
 * answer for the SOA minimum), and every address of a name in a fresh random order. For
 * a name outside our zones it says "forward". Size limits and truncation are the
 * server's (`server.ts`).
 */
import { formatIp, type IpPrefix } from "../net/ip.ts";
import { foldName, isInZone } from "./names.ts";
import { addressOfReverseName, prefixContains, reverseZoneOf } from "./reverse-names.ts";
import type { DnsAnswer, DnsMessage } from "./wire.ts";

/** What the answerer reads of the mesh's names (the entry CRDT provides it). */
export interface NameSource {
  lookup(name: string): readonly { readonly address: string }[];
  reverseLookup(address: string): readonly { readonly name: string }[];
  hasNamesBelow(name: string): boolean;
  /** A number that changes whenever any answer would: lets the server cache encoded answers. */
  generation?(): number;
}

export interface AnswerConfig {
  /** The mesh domain, folded with trailing dot. */
  readonly domain: string;
  readonly ttlSeconds: number;
  /** The mesh's address ranges: PTR queries inside them are ours. */
  readonly reverseRanges: readonly IpPrefix[];
  /** A number in [0, 1) for shuffling. */
  readonly random: () => number;
}

export type Route =
  | { readonly kind: "answer"; readonly response: DnsMessage }
  | { readonly kind: "forward" }
  | { readonly kind: "drop" };

// RFC 1035 §4.1.1 and RFC 6895 flag bits and response codes.
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;
/** RFC 6891 §9: BADVERS is 16, the upper 8 bits of its 12-bit rcode go in the OPT record. */
const BADVERS_EXTENDED = 1;
const OPCODE_QUERY = 0;
const SOA_TIMERS = { refresh: 3600, retry: 600, expire: 86_400 };

/**
 * Decides what to do with a decoded message. Responses are dropped (answering them could
 * loop between two servers); other opcodes get NOTIMP; anything but one question FORMERR.
 */
export function answerQuery(query: DnsMessage, names: NameSource, config: AnswerConfig): Route {
  if (query.type === "response") return { kind: "drop" };
  const opcode = ((query.flags ?? 0) >> 11) & 0xf;
  if (opcode !== OPCODE_QUERY) return { kind: "answer", response: reply(query, RCODE.NOTIMP) };
  const opts = (query.additionals ?? []).filter((r) => r.type === "OPT");
  if (query.questions?.length !== 1 || opts.length > 1) {
    return { kind: "answer", response: reply(query, RCODE.FORMERR) };
  }
  const opt = opts[0] as { ednsVersion?: number } | undefined;
  if (opt !== undefined && (opt.ednsVersion ?? 0) !== 0) {
    return { kind: "answer", response: reply(query, RCODE.NOERROR, 0, BADVERS_EXTENDED) };
  }
  const question = query.questions[0]!;
  const name = foldName(question.name);
  const qclass = question.class ?? "IN";
  if (isInZone(name, config.domain)) {
    if (qclass !== "IN" && qclass !== "ANY")
      return { kind: "answer", response: reply(query, RCODE.REFUSED) };
    return { kind: "answer", response: answerForward(query, name, names, config) };
  }
  for (const range of config.reverseRanges) {
    const zone = reverseZoneOf(range);
    if (!isInZone(name, zone)) continue;
    const address = addressOfReverseName(name);
    // A reverse name of our zone but outside the range (a /12 in a /8 zone) is not ours.
    if (address !== undefined && !prefixContains(range, address)) continue;
    if (qclass !== "IN" && qclass !== "ANY")
      return { kind: "answer", response: reply(query, RCODE.REFUSED) };
    return { kind: "answer", response: answerReverse(query, name, zone, address, names, config) };
  }
  return { kind: "forward" };
}

/** A/AAAA (and ANY) for a name in the mesh domain. */
function answerForward(
  query: DnsMessage,
  name: string,
  names: NameSource,
  config: AnswerConfig,
): DnsMessage {
  const question = query.questions![0]!;
  const addresses = [...new Set(names.lookup(name).map((r) => r.address))];
  const soa = () => soaRecord(config.domain, config.ttlSeconds);
  if (question.type === "SOA" && name === config.domain) {
    return reply(query, RCODE.NOERROR, FLAG_AA, 0, [soa()]);
  }
  if (addresses.length === 0 && name !== config.domain && !names.hasNamesBelow(name)) {
    return reply(query, RCODE.NXDOMAIN, FLAG_AA, 0, [], [soa()]);
  }
  const wanted = (address: string) => {
    const isV6 = address.includes(":");
    if (question.type === "A") return !isV6;
    if (question.type === "AAAA") return isV6;
    return (question.type as string) === "ANY";
  };
  const records: DnsAnswer[] = shuffle(addresses.filter(wanted), config.random).map((address) => ({
    type: address.includes(":") ? "AAAA" : "A",
    name: question.name,
    class: "IN",
    ttl: config.ttlSeconds,
    data: address,
  }));
  if (records.length === 0) return reply(query, RCODE.NOERROR, FLAG_AA, 0, [], [soa()]);
  return reply(query, RCODE.NOERROR, FLAG_AA, 0, records);
}

/** PTR for a reverse name in one of the mesh's reverse zones. */
function answerReverse(
  query: DnsMessage,
  name: string,
  zone: string,
  address: Uint8Array | undefined,
  names: NameSource,
  config: AnswerConfig,
): DnsMessage {
  const question = query.questions![0]!;
  const soa = () => soaRecord(zone, config.ttlSeconds);
  if (question.type === "SOA" && name === zone)
    return reply(query, RCODE.NOERROR, FLAG_AA, 0, [soa()]);
  const owners = address === undefined ? [] : names.reverseLookup(formatIp(address));
  const targets = [...new Set(owners.map((r) => r.name))];
  if (targets.length === 0) {
    // Names above full reverse names (the apex, "40.10.in-addr.arpa.") are empty
    // non-terminals: NODATA, since NXDOMAIN would deny everything below (RFC 8020).
    return address === undefined
      ? reply(query, RCODE.NOERROR, FLAG_AA, 0, [], [soa()])
      : reply(query, RCODE.NXDOMAIN, FLAG_AA, 0, [], [soa()]);
  }
  if (question.type !== "PTR" && (question.type as string) !== "ANY") {
    return reply(query, RCODE.NOERROR, FLAG_AA, 0, [], [soa()]);
  }
  const records: DnsAnswer[] = shuffle(targets, config.random).map((target) => ({
    type: "PTR",
    name: question.name,
    class: "IN",
    ttl: config.ttlSeconds,
    data: target,
  }));
  return reply(query, RCODE.NOERROR, FLAG_AA, 0, records);
}

/**
 * A response to `query`: its ID and question, RD copied, RA set (we recurse by
 * forwarding), and an OPT record when the query had one (RFC 6891 §7).
 */
export function reply(
  query: DnsMessage,
  rcode: number,
  flags = 0,
  extendedRcode = 0,
  answers: DnsAnswer[] = [],
  authorities: DnsAnswer[] = [],
): DnsMessage {
  const rd = (query.flags ?? 0) & FLAG_RD;
  const hasOpt = (query.additionals ?? []).some((r) => r.type === "OPT");
  const questions = (query.questions ?? []).length === 1 ? query.questions! : [];
  return {
    id: query.id ?? 0,
    type: "response",
    flags: flags | rd | FLAG_RA | (rcode & 0xf),
    questions,
    answers,
    authorities,
    additionals: hasOpt ? [optRecord(extendedRcode)] : [],
  };
}

/** The OPT record we send: our UDP size limit, EDNS version 0. */
export function optRecord(extendedRcode = 0): DnsAnswer {
  return {
    type: "OPT",
    name: ".",
    udpPayloadSize: 4096,
    extendedRcode,
    ednsVersion: 0,
    flags: 0,
    options: [],
  } as unknown as DnsAnswer;
}

function soaRecord(zone: string, ttlSeconds: number): DnsAnswer {
  return {
    type: "SOA",
    name: zone,
    class: "IN",
    ttl: ttlSeconds,
    data: {
      mname: zone,
      rname: `hostmaster.${zone}`,
      serial: 1,
      ...SOA_TIMERS,
      minimum: ttlSeconds,
    },
  };
}

/** Fisher-Yates: every order equally likely. */
function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
