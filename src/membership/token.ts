/**
 * Invite tokens: what `weft invite` prints and `weft join` takes. A token is the text
 * `weft1-` followed by base64url (no padding) of the canonical CBOR array
 *
 *   [1, meshId (16 B), inviterKey (32 B X25519), [[host, port], ...], secret (32 B),
 *    expiresAtMs, nickname | null, check (16 B)]
 *
 * `check` is BLAKE2s keyed with the secret over the canonical CBOR of everything before
 * it, cut to 16 bytes: a changed character (a copy-paste slip, or an edit) is caught
 * before any packet is sent. It is not what makes a token safe: the inviter's key in the
 * token authenticates the inviter during the join handshake (a man in the middle cannot
 * answer it), and the secret, which only the token holds, authenticates the joiner.
 *
 * The inviter keeps no secret: only `invitationId(secret)` (to find the invitation) and
 * `invitationPsk(secret)` (the handshake's preshared key), two one-way hashes of it.
 */
import { blake2s } from "@noble/hashes/blake2.js";
import { decode as cborDecode } from "cborg";
import { equalBytes, toBase64 } from "../crypto/bytes.ts";
import { parseIp } from "../net/ip.ts";
import { canonicalCbor, KEY_BYTES, MESH_ID_BYTES, type Result, STRICT_CBOR } from "./records.ts";

export const TOKEN_PREFIX = "weft1-";
export const TOKEN_VERSION = 1;
/** No token we make is longer (16 endpoints of long names stay under it). */
export const MAX_TOKEN_CHARS = 2048;
export const SECRET_BYTES = 32;
export const INVITATION_ID_BYTES = 16;
export const CHECK_BYTES = 16;
export const MAX_ENDPOINTS = 16;
const MAX_HOST_BYTES = 253;
const MAX_NICKNAME_BYTES = 63;
const HOST = /^[A-Za-z0-9.:_-]+$/;
const utf8 = new TextEncoder();

/** Where the joiner may reach the inviter: an IP literal or a DNS name, and a UDP port. */
export interface InviteEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface Invite {
  readonly meshId: Uint8Array;
  /** The inviter's X25519 public key: only its holder can answer the join handshake. */
  readonly inviterKey: Uint8Array;
  readonly endpoints: readonly InviteEndpoint[];
  readonly secret: Uint8Array;
  /** When the inviter stops honouring it, ms since the epoch (the inviter's clock decides). */
  readonly expiresAt: number;
  /** The nickname the joiner will be admitted under, or null to let it choose. */
  readonly nickname: string | null;
}

/** The invitation's id: what the joiner names and the inviter looks up. */
export function invitationId(secret: Uint8Array): Uint8Array {
  return blake2s(secret, { dkLen: INVITATION_ID_BYTES, personalization: utf8.encode("weftinid") });
}

/** The join handshake's preshared key: proves the joiner holds the secret. */
export function invitationPsk(secret: Uint8Array): Uint8Array {
  return blake2s(secret, { dkLen: 32, personalization: utf8.encode("weftinpk") });
}

function checkOf(body: unknown[], secret: Uint8Array): Uint8Array {
  return blake2s(canonicalCbor(body), { key: secret, dkLen: CHECK_BYTES });
}

function bodyOf(invite: Invite): unknown[] {
  return [
    TOKEN_VERSION,
    invite.meshId,
    invite.inviterKey,
    invite.endpoints.map((e) => [e.host, e.port]),
    invite.secret,
    invite.expiresAt,
    invite.nickname,
  ];
}

/** The reason `invite` cannot be a token, or undefined. */
function problemOf(invite: Invite): string | undefined {
  if (!isBytes(invite.meshId, MESH_ID_BYTES)) return "mesh id is not 16 bytes";
  if (!isBytes(invite.inviterKey, KEY_BYTES)) return "inviter key is not 32 bytes";
  if (!isBytes(invite.secret, SECRET_BYTES)) return "secret is not 32 bytes";
  if (!Number.isSafeInteger(invite.expiresAt) || invite.expiresAt < 0)
    return "expiry is not a time";
  if (!Array.isArray(invite.endpoints)) return "endpoints are not a list";
  if (invite.endpoints.length === 0) return "no endpoints";
  if (invite.endpoints.length > MAX_ENDPOINTS) return `more than ${MAX_ENDPOINTS} endpoints`;
  for (const endpoint of invite.endpoints) {
    const host = endpoint?.host;
    if (typeof host !== "string" || host.length === 0 || host.length > MAX_HOST_BYTES) {
      return "an endpoint host is not a name or address";
    }
    if (!HOST.test(host)) return `endpoint host "${host.slice(0, 40)}" has bad characters`;
    if (!Number.isInteger(endpoint.port) || endpoint.port < 1 || endpoint.port > 65535) {
      return "an endpoint port is not 1 to 65535";
    }
  }
  const nickname = invite.nickname;
  if (nickname !== null) {
    if (typeof nickname !== "string") return "nickname is not text";
    if (!/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/.test(nickname)) {
      return "nickname is not a DNS label";
    }
    if (utf8.encode(nickname).length > MAX_NICKNAME_BYTES) return "nickname is too long";
  }
  return undefined;
}

/** The token text. Throws a RangeError for an invite that cannot be one (a programming error). */
export function encodeToken(invite: Invite): string {
  const problem = problemOf(invite);
  if (problem !== undefined) throw new RangeError(`Cannot make a token: ${problem}`);
  const body = bodyOf(invite);
  const text = TOKEN_PREFIX + toBase64Url(canonicalCbor([...body, checkOf(body, invite.secret)]));
  if (text.length > MAX_TOKEN_CHARS) throw new RangeError("Cannot make a token: too long");
  return text;
}

/** Parses a token; never throws. The error says what is wrong, in words for people. */
export function decodeToken(input: unknown): Result<Invite> {
  if (typeof input !== "string") return fail("not text");
  const text = input.trim();
  if (text.length > MAX_TOKEN_CHARS) {
    return fail(`too long (${text.length} characters; a token has at most ${MAX_TOKEN_CHARS})`);
  }
  if (!text.startsWith(TOKEN_PREFIX)) {
    return fail(`not a weft invite token (a token starts with "${TOKEN_PREFIX}")`);
  }
  const encoded = text.slice(TOKEN_PREFIX.length);
  if (!/^[A-Za-z0-9_-]*$/.test(encoded)) {
    return fail("has characters a token never has (was it wrapped or quoted?)");
  }
  if (encoded.length % 4 === 1) return fail("truncated (its length is impossible)");
  const bytes = fromBase64Url(encoded);
  let value: unknown;
  try {
    value = cborDecode(bytes, STRICT_CBOR);
  } catch (error) {
    const message = (error as Error).message;
    return /insufficient|unexpected end|not enough/i.test(message)
      ? fail("truncated (it ends early)")
      : fail("damaged or altered (its contents do not parse)");
  }
  // Stray bits in the last character: a second spelling of the same bytes, so an edit.
  if (toBase64Url(bytes) !== encoded) return fail("damaged or altered (its last character)");
  if (!Array.isArray(value) || value.length < 2) return fail("damaged or altered (not a token)");
  if (value[0] !== TOKEN_VERSION) {
    // A version-1 token whose version character was mistyped still passes the check of
    // version 1: it is damaged, and upgrading would not help.
    if (value.length === 8 && isBytes(value[4], SECRET_BYTES) && isBytes(value[7], CHECK_BYTES)) {
      const asVersion1 = checkOf([TOKEN_VERSION, ...value.slice(1, 7)], value[4]);
      if (equalBytes(value[7], asVersion1)) return fail("damaged or altered (its version)");
    }
    // A later version may have other fields: its version is all this weft can read.
    return Number.isSafeInteger(value[0]) && (value[0] as number) > TOKEN_VERSION
      ? fail(
          `unsupported version ${value[0]} (this weft reads version ${TOKEN_VERSION}: upgrade it)`,
        )
      : fail("damaged or altered (not a token)");
  }
  if (value.length !== 8) return fail("damaged or altered (wrong number of fields)");
  const [, meshId, inviterKey, endpoints, secret, expiresAt, nickname, check] = value;
  if (!isBytes(secret, SECRET_BYTES) || !isBytes(check, CHECK_BYTES)) {
    return fail("damaged or altered (secret or check field)");
  }
  if (!equalBytes(check, checkOf(value.slice(0, 7), secret))) {
    return fail("damaged or altered (its check does not match: copy it again)");
  }
  if (!Array.isArray(endpoints)) return fail("malformed: endpoints are not a list");
  const invite: Invite = {
    meshId: meshId as Uint8Array,
    inviterKey: inviterKey as Uint8Array,
    endpoints: endpoints.map((e: unknown) =>
      Array.isArray(e) && e.length === 2
        ? { host: e[0] as string, port: e[1] as number }
        : { host: "", port: 0 },
    ),
    secret: Uint8Array.from(secret),
    expiresAt: expiresAt as number,
    nickname: nickname as string | null,
  };
  const problem = problemOf(invite);
  if (problem !== undefined) return fail(`malformed: ${problem}`);
  return {
    ok: true,
    value: {
      ...invite,
      meshId: Uint8Array.from(invite.meshId),
      inviterKey: Uint8Array.from(invite.inviterKey),
    },
  };
}

/** Whether `host` is an IP address literal (else a name the caller resolves). */
export function isIpLiteral(host: string): boolean {
  return parseIp(host) !== undefined;
}

function fail<T>(error: string): Result<T> {
  return { ok: false, error };
}

function isBytes(value: unknown, length: number): value is Uint8Array {
  return value instanceof Uint8Array && value.length === length;
}

function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Bytes of base64url without padding (checked for the alphabet and length already). */
function fromBase64Url(text: string): Uint8Array {
  const binary = atob(
    text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4),
  );
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
