/**
 * IPAM's unicast messages on its gossip channel (ring changes travel as gossip instead):
 *
 * ```
 * message       = version:u8 kind:u8 body
 * space-request = (empty body)                "please donate me some of your free space"
 * paxos         = cbor[type, ...fields]       bootstrap consensus, see paxos.ts
 *   prepare  [1, round, proposer]             promise [2, round, proposer, null | [round, proposer, seeds]]
 *   nack     [3, round, proposer, promisedRound, promisedProposer]
 *   accept   [4, round, proposer, seeds]      accepted [5, round, proposer, seeds]
 *   decided  [6, seeds]
 * ```
 *
 * `decodeIpamMessage` returns an error string for anything malformed; it never throws.
 */
import { decode as decodeCbor, encode as encodeCbor } from "cbor-x";
import { IPAM_WIRE_VERSION, MAX_SEEDS, MAX_UNICAST_BYTES } from "./constants.ts";
import type { AcceptedProposal, Ballot, PaxosMessage, SeedSet } from "./paxos.ts";
import { isPeerKey } from "./peer-key.ts";

export type IpamMessage =
  | { readonly kind: "space-request" }
  | { readonly kind: "paxos"; readonly paxos: PaxosMessage };

export type IpamMessageDecode =
  | { readonly ok: true; readonly message: IpamMessage }
  | { readonly ok: false; readonly error: string };

const KIND = { spaceRequest: 1, paxos: 2 } as const;
const PAXOS_TYPE = { prepare: 1, promise: 2, nack: 3, accept: 4, accepted: 5, decided: 6 } as const;

export function encodeIpamMessage(message: IpamMessage): Uint8Array {
  if (message.kind === "space-request")
    return new Uint8Array([IPAM_WIRE_VERSION, KIND.spaceRequest]);
  const body: Uint8Array = encodeCbor(paxosFields(message.paxos));
  const out = new Uint8Array(2 + body.length);
  out.set([IPAM_WIRE_VERSION, KIND.paxos]);
  out.set(body, 2);
  return out;
}

export function decodeIpamMessage(bytes: Uint8Array): IpamMessageDecode {
  if (!(bytes instanceof Uint8Array) || bytes.length < 2)
    return fail("IPAM message shorter than 2 bytes");
  if (bytes.length > MAX_UNICAST_BYTES)
    return fail(`IPAM message of ${bytes.length} bytes exceeds ${MAX_UNICAST_BYTES}`);
  if (bytes[0] !== IPAM_WIRE_VERSION) return fail(`Unsupported IPAM message version ${bytes[0]}`);
  if (bytes[1] === KIND.spaceRequest) {
    return bytes.length === 2
      ? { ok: true, message: { kind: "space-request" } }
      : fail("Space request with a body");
  }
  if (bytes[1] !== KIND.paxos) return fail(`Unknown IPAM message kind ${bytes[1]}`);
  let fields: unknown;
  try {
    fields = decodeCbor(bytes.subarray(2));
  } catch (error) {
    return fail(`Paxos message is not CBOR: ${(error as Error).message}`);
  }
  const paxos = parsePaxos(fields);
  return typeof paxos === "string" ? fail(paxos) : { ok: true, message: { kind: "paxos", paxos } };
}

function paxosFields(message: PaxosMessage): unknown[] {
  switch (message.type) {
    case "prepare":
      return [PAXOS_TYPE.prepare, ...ballotFields(message.ballot)];
    case "promise": {
      const { accepted } = message;
      const previous =
        accepted === null ? null : [...ballotFields(accepted.ballot), [...accepted.value]];
      return [PAXOS_TYPE.promise, ...ballotFields(message.ballot), previous];
    }
    case "nack":
      return [PAXOS_TYPE.nack, ...ballotFields(message.ballot), ...ballotFields(message.promised)];
    case "accept":
      return [PAXOS_TYPE.accept, ...ballotFields(message.ballot), [...message.value]];
    case "accepted":
      return [PAXOS_TYPE.accepted, ...ballotFields(message.ballot), [...message.value]];
    case "decided":
      return [PAXOS_TYPE.decided, [...message.value]];
  }
}

/** A ballot as two CBOR fields (also the saved acceptor state's form, see state-codec.ts). */
export function ballotFields(ballot: Ballot): [number, string] {
  return [ballot.round, ballot.proposer];
}

/** The message, or why the fields are not one. */
function parsePaxos(fields: unknown): PaxosMessage | string {
  if (!Array.isArray(fields) || fields.length < 2) return "Paxos message is not an array";
  const [type, ...rest] = fields as unknown[];
  if (type === PAXOS_TYPE.decided) {
    const value = parseSeeds(rest[0]);
    return rest.length === 1 && value !== undefined
      ? { type: "decided", value }
      : "Malformed decided message";
  }
  const ballot = parseBallot(rest[0], rest[1]);
  if (ballot === undefined) return "Paxos message has an invalid ballot";
  switch (type) {
    case PAXOS_TYPE.prepare:
      return rest.length === 2 ? { type: "prepare", ballot } : "Malformed prepare message";
    case PAXOS_TYPE.promise: {
      if (rest.length !== 3) return "Malformed promise message";
      if (rest[2] === null) return { type: "promise", ballot, accepted: null };
      const accepted = parseAccepted(rest[2]);
      return accepted === undefined
        ? "Malformed promise message"
        : { type: "promise", ballot, accepted };
    }
    case PAXOS_TYPE.nack: {
      const promised = parseBallot(rest[2], rest[3]);
      return rest.length === 4 && promised !== undefined
        ? { type: "nack", ballot, promised }
        : "Malformed nack message";
    }
    case PAXOS_TYPE.accept:
    case PAXOS_TYPE.accepted: {
      const value = parseSeeds(rest[2]);
      if (rest.length !== 3 || value === undefined) return "Malformed accept message";
      return type === PAXOS_TYPE.accept
        ? { type: "accept", ballot, value }
        : { type: "accepted", ballot, value };
    }
    default:
      return `Unknown paxos message type ${String(type)}`;
  }
}

/** The ballot of two fields, or undefined when they are not one. */
export function parseBallot(round: unknown, proposer: unknown): Ballot | undefined {
  if (!Number.isSafeInteger(round) || (round as number) < 1 || !isPeerKey(proposer))
    return undefined;
  return { round: round as number, proposer };
}

/** An accepted proposal of `[round, proposer, seeds]`, or undefined. */
export function parseAccepted(fields: unknown): AcceptedProposal | undefined {
  if (!Array.isArray(fields) || fields.length !== 3) return undefined;
  const ballot = parseBallot(fields[0], fields[1]);
  const value = parseSeeds(fields[2]);
  return ballot === undefined || value === undefined ? undefined : { ballot, value };
}

/** A sorted, distinct, non-empty list of at most MAX_SEEDS peer keys. */
function parseSeeds(value: unknown): SeedSet | undefined {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_SEEDS) return undefined;
  for (const [i, seed] of value.entries()) {
    if (!isPeerKey(seed) || (i > 0 && value[i - 1] >= seed)) return undefined;
  }
  return value as SeedSet;
}

function fail(error: string): IpamMessageDecode {
  return { ok: false, error };
}
