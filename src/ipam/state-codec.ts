/**
 * What IPAM saves through the `Store` seam so that a restarted peer keeps its addresses:
 * the ring replica, the local allocations and the Paxos acceptor's promise (an acceptor
 * that forgot a promise could let two different seed sets be decided).
 *
 * ```
 * state = "WFTI" version:u8 cbor[me, rangeStart, rangeEnd, [ringItem...], [handle, address, ...],
 *                                promised: null | [round, proposer],
 *                                accepted: null | [round, proposer, [seed...]]]
 * ```
 *
 * Ring items are exactly gossip's (ring-codec.ts), so a saved ring passes the same checks
 * as a received one. `decodeIpamState` checks size, magic and version before decoding,
 * then every field and the consistency of the whole against the configured peer and
 * range; it returns an error string and never throws.
 */
import { decode as decodeCbor, encode as encodeCbor } from "cbor-x";
import type { PeerKey } from "../mesh/gossip-state.ts";
import { type Address, type AddressRange, formatAddress, formatRange } from "./address.ts";
import {
  IPAM_STATE_VERSION,
  MAX_HANDLE_LENGTH,
  MAX_RING_ENTRIES,
  MAX_STATE_BYTES,
} from "./constants.ts";
import { RingRejected } from "./errors.ts";
import { ballotFields, parseAccepted, parseBallot } from "./messages.ts";
import type { AcceptorState } from "./paxos.ts";
import { isPeerKey } from "./peer-key.ts";
import { decodeRingItems, encodeRingItems } from "./ring-codec.ts";
import { findInvariantViolation, type RingDelta } from "./ring-entries.ts";

/** One peer's IPAM state as saved. */
export interface IpamSnapshot {
  readonly me: PeerKey;
  readonly range: AddressRange;
  /** The ring replica; null while the ring is not seeded. */
  readonly ring: RingDelta | null;
  /** Handle to address, for addresses this peer handed out. */
  readonly allocations: ReadonlyMap<string, Address>;
  readonly acceptor: AcceptorState;
}

export type IpamStateDecode =
  | { readonly ok: true; readonly snapshot: IpamSnapshot }
  | { readonly ok: false; readonly error: string };

const MAGIC = [0x57, 0x46, 0x54, 0x49]; // "WFTI"
const HEADER_BYTES = MAGIC.length + 1;
const FIELDS = 7;
/** Ring items in the saved state are large: there is no datagram to fit. */
const SAVED_ITEM_BYTES = 1 << 20;

export function encodeIpamState(snapshot: IpamSnapshot): Uint8Array {
  const handles: unknown[] = [];
  for (const [handle, address] of snapshot.allocations) handles.push(handle, address);
  const { promised, accepted } = snapshot.acceptor;
  const body: Uint8Array = encodeCbor([
    snapshot.me,
    snapshot.range.start,
    snapshot.range.end,
    snapshot.ring === null ? [] : encodeRingItems(snapshot.ring, SAVED_ITEM_BYTES),
    handles,
    promised === null ? null : ballotFields(promised),
    accepted === null ? null : [...ballotFields(accepted.ballot), [...accepted.value]],
  ]);
  const out = new Uint8Array(HEADER_BYTES + body.length);
  out.set(MAGIC);
  out[MAGIC.length] = IPAM_STATE_VERSION;
  out.set(body, HEADER_BYTES);
  return out;
}

/**
 * The saved state in `bytes`, checked against the peer and range it must belong to, or
 * why it cannot be used (never a partial state).
 */
export function decodeIpamState(
  bytes: Uint8Array,
  expected: { readonly me: PeerKey; readonly range: AddressRange },
): IpamStateDecode {
  if (bytes.length > MAX_STATE_BYTES) {
    return fail(`it is ${bytes.length} bytes, over the limit of ${MAX_STATE_BYTES}`);
  }
  if (bytes.length < HEADER_BYTES || MAGIC.some((byte, i) => bytes[i] !== byte)) {
    return fail("it does not start with the IPAM state marker (not an IPAM state, or truncated)");
  }
  const version = bytes[MAGIC.length];
  if (version !== IPAM_STATE_VERSION) {
    return fail(`its format version is ${version}; this weft reads ${IPAM_STATE_VERSION}`);
  }
  let fields: unknown;
  try {
    fields = decodeCbor(bytes.subarray(HEADER_BYTES));
  } catch (error) {
    return fail(`its body is not valid CBOR (truncated?): ${(error as Error).message}`);
  }
  if (!Array.isArray(fields) || fields.length !== FIELDS) {
    return fail(`expected an array of ${FIELDS} fields`);
  }
  const [me, start, end, items, handles, promised, accepted] = fields as unknown[];
  if (!isPeerKey(me)) return fail("it names no valid peer key");
  if (me !== expected.me) {
    return fail(`it belongs to peer ${me}, not to this peer ${expected.me}`);
  }
  if (start !== expected.range.start || end !== expected.range.end) {
    const saved =
      typeof start === "number" && typeof end === "number"
        ? formatRange({ start, end })
        : "an invalid range";
    return fail(`it is for ${saved}, but the mesh range is ${formatRange(expected.range)}`);
  }
  const range = expected.range;
  const ring = decodeRing(items, range, me);
  if (typeof ring === "string") return fail(ring);
  const allocations = decodeAllocations(handles, range, ring, me);
  if (typeof allocations === "string") return fail(allocations);
  const acceptor = decodeAcceptor(promised, accepted);
  if (typeof acceptor === "string") return fail(acceptor);
  return { ok: true, snapshot: { me, range, ring, allocations, acceptor } };
}

function decodeRing(items: unknown, range: AddressRange, me: PeerKey): RingDelta | null | string {
  if (!Array.isArray(items)) return "its ring is not a list of items";
  if (items.length === 0) return null;
  let ring: RingDelta;
  try {
    ring = decodeRingItems(items);
  } catch (error) {
    if (error instanceof RingRejected) return `its ring is invalid: ${error.message}`;
    throw error;
  }
  if (ring.range.start !== range.start || ring.range.end !== range.end) {
    return `its ring is for ${formatRange(ring.range)}, not ${formatRange(range)}`;
  }
  if (ring.entries.length > MAX_RING_ENTRIES) return "its ring has too many entries";
  const violation = findInvariantViolation(ring.entries, range, me);
  return violation === undefined ? ring : `its ring is inconsistent: ${violation}`;
}

/** Handle/address pairs: distinct, inside the ranges `me` owns, not the range's ends. */
function decodeAllocations(
  flat: unknown,
  range: AddressRange,
  ring: RingDelta | null,
  me: PeerKey,
): Map<string, Address> | string {
  if (!Array.isArray(flat) || flat.length % 2 !== 0) return "its allocations are not pairs";
  const owned = (ring?.entries ?? []).filter((entry) => entry.owner === me);
  const allocations = new Map<string, Address>();
  const used = new Set<Address>();
  for (let i = 0; i < flat.length; i += 2) {
    const handle: unknown = flat[i];
    const address: unknown = flat[i + 1];
    if (typeof handle !== "string" || handle.length === 0 || handle.length > MAX_HANDLE_LENGTH) {
      return `allocation ${i / 2} has an invalid handle`;
    }
    if (typeof address !== "number" || !Number.isInteger(address)) {
      return `the address of "${handle}" is not an integer`;
    }
    if (address <= range.start || address >= range.end - 1) {
      return `"${handle}" holds ${address}, outside the usable addresses of ${formatRange(range)}`;
    }
    // A removed peer keeps the record of what it had (it refuses to allocate anyway).
    const removed = ring?.removals?.some((removal) => removal.dead === me) ?? false;
    if (!removed && !owned.some((entry) => entry.token <= address && address < entry.end)) {
      return `"${handle}" holds ${formatAddress(address)}, which this peer's saved ring does not give it`;
    }
    if (allocations.has(handle) || used.has(address)) {
      return `"${handle}" or ${formatAddress(address)} appears twice`;
    }
    allocations.set(handle, address);
    used.add(address);
  }
  return allocations;
}

function decodeAcceptor(promised: unknown, accepted: unknown): AcceptorState | string {
  let promise = null;
  if (promised !== null) {
    promise = Array.isArray(promised) ? parseBallot(promised[0], promised[1]) : undefined;
    if (promise === undefined || (promised as unknown[]).length !== 2) {
      return "its Paxos promise is malformed";
    }
  }
  const proposal = accepted === null ? null : parseAccepted(accepted);
  if (proposal === undefined) return "its Paxos acceptance is malformed";
  return { promised: promise, accepted: proposal };
}

function fail(reason: string): IpamStateDecode {
  return { ok: false, error: reason };
}
