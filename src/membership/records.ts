/**
 * Membership records: who was admitted to a mesh, by whom, and who was removed. Each
 * record is signed with the Ed25519 key of its author, so a relay or a non-member cannot
 * forge one; `members.ts` decides which signers are authorised.
 *
 * What is signed: the canonical CBOR (cborg with RFC 8949 deterministic encoding:
 * shortest integer and length forms, definite lengths, no tags, no floats) of
 *
 *   ["weft membership v1", meshId, record]
 *
 * where `record` is a CBOR array (never a map, so no key-ordering question arises):
 *
 *   admission: [1, 1, member, signingKey, nickname, admittedBy | null, invitation | null, at]
 *   removal:   [2, 1, member, removedBy, at]
 *
 * (the first element is the kind, the second the record version). The context string and
 * the mesh id separate these signatures from any other use of the same Ed25519 key and
 * from other meshes. A signed record travels and is stored as the canonical CBOR of
 *
 *   [record, signer, signature]
 *
 * with `signer` the author's Ed25519 public key, so the signature is checked without
 * knowing anything else, and authorisation (is `signer` a signing key of the author
 * named in the record?) is a separate step. Decoding accepts only the canonical bytes
 * (it re-encodes and compares), and verification is strict RFC 8032 (no ZIP-215
 * leniency), so one record with one signature has exactly one encoding and one hash.
 *
 * `at` is the author's wall clock in ms: shown to people, never used to order anything.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { decode as cborDecode, encode as cborEncode, rfc8949EncodeOptions } from "cborg";
import { equalBytes, toBase64, toHex } from "../crypto/bytes.ts";

export const RECORD_VERSION = 1;
export const SIGNING_CONTEXT = "weft membership v1";
export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const MESH_ID_BYTES = 16;
export const MAX_NICKNAME_BYTES = 64;
export const MIN_INVITATION_BYTES = 8;
export const MAX_INVITATION_BYTES = 32;
/** cborg's strictest decoding: shortest forms only, no indefinite lengths, undefined, NaN or bigints. */
export const STRICT_CBOR = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
} as const;
/** No valid signed record is longer (an admission with the longest fields is about 250). */
export const MAX_SIGNED_RECORD_BYTES = 512;

const KIND_ADMISSION = 1;
const KIND_REMOVAL = 2;
const utf8 = new TextEncoder();
// C0 controls and DEL: a nickname is shown in terminals.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find them
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A member's admission: `member` may join the mesh and signs as `signingKey`. */
export interface Admission {
  readonly kind: "admission";
  readonly version: 1;
  /** The member's X25519 public key: its WireGuard identity. */
  readonly member: Uint8Array;
  /** The member's Ed25519 public key, with which it signs membership records. */
  readonly signingKey: Uint8Array;
  readonly nickname: string;
  /** The admitting member's X25519 key; null only for the founder's genesis admission. */
  readonly admittedBy: Uint8Array | null;
  /** The invitation used (e.g. a hash of the token's secret), or null. */
  readonly invitation: Uint8Array | null;
  /** The author's wall clock, ms since the epoch: informational only. */
  readonly at: number;
}

/** A member's removal: `member` is out of the mesh for good. */
export interface Removal {
  readonly kind: "removal";
  readonly version: 1;
  readonly member: Uint8Array;
  /** The removing member's X25519 key. */
  readonly removedBy: Uint8Array;
  readonly at: number;
}

export type MembershipRecord = Admission | Removal;

/** A record with its author's signature, its canonical bytes and their hash. */
export interface SignedRecord {
  readonly record: MembershipRecord;
  /** The Ed25519 public key that made `signature`. */
  readonly signer: Uint8Array;
  readonly signature: Uint8Array;
  /** The canonical CBOR of [record, signer, signature]: what travels and is stored. */
  readonly bytes: Uint8Array;
  /** BLAKE2s of `bytes`: the record's identity in the replicated set. */
  readonly hash: Uint8Array;
}

export type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: string };

const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const fail = <T>(error: string): Result<T> => ({ ok: false, error });

/** Canonical CBOR: RFC 8949 deterministic encoding (the records hold no maps or floats). */
export function canonicalCbor(value: unknown): Uint8Array {
  return cborEncode(value, rfc8949EncodeOptions);
}

/** The record as the CBOR array that is signed and sent. */
export function recordToWire(record: MembershipRecord): unknown[] {
  if (record.kind === "admission") {
    return [
      KIND_ADMISSION,
      record.version,
      record.member,
      record.signingKey,
      record.nickname,
      record.admittedBy,
      record.invitation,
      record.at,
    ];
  }
  return [KIND_REMOVAL, record.version, record.member, record.removedBy, record.at];
}

/** The exact bytes a signature covers: context, mesh id and record, canonically encoded. */
export function signedMessage(meshId: Uint8Array, record: MembershipRecord): Uint8Array {
  return canonicalCbor([SIGNING_CONTEXT, meshId, recordToWire(record)]);
}

/** The reason `record` is not well-formed, or undefined when it is. */
export function checkRecord(record: MembershipRecord): string | undefined {
  if (record.version !== RECORD_VERSION) return `unknown record version ${String(record.version)}`;
  if (!isKey(record.member)) return "member is not a 32-byte key";
  if (!isTimestamp(record.at)) return "at is not a non-negative safe integer";
  if (record.kind === "removal") {
    return isKey(record.removedBy) ? undefined : "removedBy is not a 32-byte key";
  }
  if (!isKey(record.signingKey)) return "signingKey is not a 32-byte key";
  if (typeof record.nickname !== "string") return "nickname is not text";
  if (utf8.encode(record.nickname).length > MAX_NICKNAME_BYTES) {
    return `nickname is longer than ${MAX_NICKNAME_BYTES} bytes`;
  }
  if (CONTROL.test(record.nickname)) return "nickname has control characters";
  if (record.admittedBy !== null && !isKey(record.admittedBy)) {
    return "admittedBy is neither null nor a 32-byte key";
  }
  const invitation = record.invitation;
  if (
    invitation !== null &&
    !(
      invitation instanceof Uint8Array &&
      invitation.length >= MIN_INVITATION_BYTES &&
      invitation.length <= MAX_INVITATION_BYTES
    )
  ) {
    return `invitation is neither null nor ${MIN_INVITATION_BYTES} to ${MAX_INVITATION_BYTES} bytes`;
  }
  return undefined;
}

/**
 * Signs `record` for the mesh `meshId` with the author's Ed25519 secret key. Throws a
 * `RangeError` for a malformed record, mesh id or key (a programming error, not input).
 */
export function signRecord(
  meshId: Uint8Array,
  record: MembershipRecord,
  secretKey: Uint8Array,
): SignedRecord {
  if (!(meshId instanceof Uint8Array) || meshId.length !== MESH_ID_BYTES) {
    throw new RangeError(`Expected "meshId" to be ${MESH_ID_BYTES} bytes`);
  }
  const problem = checkRecord(record);
  if (problem !== undefined) throw new RangeError(`Cannot sign a bad record: ${problem}`);
  if (!isKey(secretKey)) throw new RangeError(`Expected "secretKey" to be ${KEY_BYTES} bytes`);
  const signer = ed25519.getPublicKey(secretKey);
  const signature = ed25519.sign(signedMessage(meshId, record), secretKey);
  return assemble(copyRecord(record), signer, signature);
}

/** Whether `signed.signature` is `signed.signer`'s signature of its record in mesh `meshId`. Never throws. */
export function verifyRecord(meshId: Uint8Array, signed: SignedRecord): boolean {
  try {
    return ed25519.verify(signed.signature, signedMessage(meshId, signed.record), signed.signer, {
      zip215: false,
    });
  } catch {
    return false;
  }
}

/** The canonical bytes of a signed record (the same as `signed.bytes`). */
export function encodeSignedRecord(signed: SignedRecord): Uint8Array {
  return canonicalCbor([recordToWire(signed.record), signed.signer, signed.signature]);
}

/**
 * Parses a signed record, checking every size, type and length, and that the bytes are
 * the canonical encoding. Does not check the signature (`verifyRecord`). Never throws.
 */
export function decodeSignedRecord(bytes: unknown): Result<SignedRecord> {
  if (!(bytes instanceof Uint8Array)) return fail("signed record is not bytes");
  if (bytes.length > MAX_SIGNED_RECORD_BYTES) {
    return fail(`signed record is ${bytes.length} bytes, more than ${MAX_SIGNED_RECORD_BYTES}`);
  }
  let value: unknown;
  try {
    value = cborDecode(bytes, STRICT_CBOR);
  } catch (error) {
    return fail(`signed record is not CBOR: ${error instanceof Error ? error.message : "?"}`);
  }
  if (!Array.isArray(value) || value.length !== 3)
    return fail("signed record is not a 3-element list");
  const [wire, signer, signature] = value as unknown[];
  if (!isKey(signer)) return fail("signer is not a 32-byte key");
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) {
    return fail(`signature is not ${SIGNATURE_BYTES} bytes`);
  }
  const record = recordFromWire(wire);
  if (!record.ok) return record;
  const signed = assemble(record.value, Uint8Array.from(signer), Uint8Array.from(signature));
  if (!equalBytes(signed.bytes, bytes)) return fail("signed record is not canonically encoded");
  return ok(signed);
}

function recordFromWire(wire: unknown): Result<MembershipRecord> {
  if (!Array.isArray(wire) || wire.length < 2) return fail("record is not a list");
  const [kind, version] = wire as unknown[];
  if (version !== RECORD_VERSION) return fail(`unknown record version ${String(version)}`);
  let record: MembershipRecord;
  if (kind === KIND_ADMISSION) {
    if (wire.length !== 8) return fail("admission is not an 8-element list");
    const [, , member, signingKey, nickname, admittedBy, invitation, at] = wire as unknown[];
    if (!isKey(member) || !isKey(signingKey)) return fail("admission keys are not 32 bytes");
    if (typeof nickname !== "string") return fail("nickname is not text");
    if (admittedBy !== null && !isKey(admittedBy)) return fail("admittedBy is not a key or null");
    if (invitation !== null && !(invitation instanceof Uint8Array)) {
      return fail("invitation is not bytes or null");
    }
    if (!isTimestamp(at)) return fail("at is not a non-negative safe integer");
    record = {
      kind: "admission",
      version: RECORD_VERSION,
      member: Uint8Array.from(member),
      signingKey: Uint8Array.from(signingKey),
      nickname,
      admittedBy: admittedBy === null ? null : Uint8Array.from(admittedBy),
      invitation: invitation === null ? null : Uint8Array.from(invitation),
      at,
    };
  } else if (kind === KIND_REMOVAL) {
    if (wire.length !== 5) return fail("removal is not a 5-element list");
    const [, , member, removedBy, at] = wire as unknown[];
    if (!isKey(member) || !isKey(removedBy)) return fail("removal keys are not 32 bytes");
    if (!isTimestamp(at)) return fail("at is not a non-negative safe integer");
    record = {
      kind: "removal",
      version: RECORD_VERSION,
      member: Uint8Array.from(member),
      removedBy: Uint8Array.from(removedBy),
      at,
    };
  } else {
    return fail(`unknown record kind ${String(kind)}`);
  }
  const problem = checkRecord(record);
  return problem === undefined ? ok(record) : fail(problem);
}

/** The X25519 key of the member whose signing key must have made this record (null: genesis). */
export function authorOf(record: MembershipRecord): Uint8Array | null {
  return record.kind === "admission" ? record.admittedBy : record.removedBy;
}

/** A record's hash as text, for maps and summaries. */
export function hashKey(signed: SignedRecord): string {
  return toBase64(signed.hash);
}

/** A record in one line, for logs. */
export function describeRecord(record: MembershipRecord): string {
  if (record.kind === "removal") {
    return `removal of ${toBase64(record.member)} by ${toBase64(record.removedBy)}`;
  }
  const by = record.admittedBy === null ? "itself (genesis)" : toBase64(record.admittedBy);
  const via = record.invitation === null ? "" : ` via invitation ${toHex(record.invitation)}`;
  return `admission of ${toBase64(record.member)} (${record.nickname}) by ${by}${via}`;
}

function assemble(
  record: MembershipRecord,
  signer: Uint8Array,
  signature: Uint8Array,
): SignedRecord {
  const bytes = canonicalCbor([recordToWire(record), signer, signature]);
  return { record, signer, signature, bytes, hash: blake2s(bytes) };
}

function copyRecord(record: MembershipRecord): MembershipRecord {
  if (record.kind === "removal") {
    return { ...record, member: record.member.slice(), removedBy: record.removedBy.slice() };
  }
  return {
    ...record,
    member: record.member.slice(),
    signingKey: record.signingKey.slice(),
    admittedBy: record.admittedBy?.slice() ?? null,
    invitation: record.invitation?.slice() ?? null,
  };
}

function isKey(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === KEY_BYTES;
}

function isTimestamp(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
