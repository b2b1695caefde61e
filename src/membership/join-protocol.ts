/**
 * The join exchange on the wire: four messages on the WireGuard UDP port, told apart from
 * WireGuard's own by their first byte ('W', 0x57: WireGuard's messages start with a type
 * of 1 to 4), then a kind byte.
 *
 *   joiner                                        inviter
 *   INIT  'W' 1 | invitation id (16) | WireGuard initiation (148)  ->
 *         (the joiner's real static key; Noise IKpsk2 to the inviter's key from the token)
 *                           <-  RESP 'W' 2 | WireGuard response (92), psk = invitationPsk
 *                           <-  NOT_FOUND 'W' 3 | sender index (4)   (unknown id: unauthenticated)
 *   REQ   'W' 4 | inviter's index (4) | sealed request             ->
 *                           <-  REPLY 'W' 5 | joiner's index (4) | sealed reply
 *
 * Only a holder of the token's secret can complete the handshake (the preshared key is a
 * hash of it), and only the holder of the inviter's private key can answer it, so a man
 * in the middle learns nothing and can change nothing. REQ and REPLY are sealed once with
 * the session's keys (ChaCha20-Poly1305, nonce 0: each key seals exactly one message) and
 * resent byte for byte until answered; the 6-byte header is the associated data.
 *
 * The sealed payloads are canonical CBOR:
 *   request: [1, meshId, signingKey (Ed25519, 32 B), nickname | null]
 *   reply:   [1, "accept", genesis, inviterAdmission, admission (signed record bytes),
 *             domain, range, inviterNickname, [[key (32 B), nickname, [[host, port]...]]...]]
 *          | [1, "refuse", code, message] | [1, "refuse", "wrong-mesh", message, meshId]
 *
 * Known peers are trimmed from the end until the REPLY datagram fits in 1400 bytes.
 */
import { decode as cborDecode } from "cborg";
import type { Crypto } from "../crypto/crypto.ts";
import { MESSAGE_INITIATION_SIZE, MESSAGE_RESPONSE_SIZE } from "../tunnel/constants.ts";
import { canonicalCbor, MESH_ID_BYTES, type Result, STRICT_CBOR } from "./records.ts";
import { INVITATION_ID_BYTES } from "./token.ts";

export const JOIN_MAGIC = 0x57;
export const KIND = { init: 1, resp: 2, notFound: 3, req: 4, reply: 5 } as const;
const HEADER_BYTES = 6;
const TAG_BYTES = 16;
/** A REQ or REPLY datagram stays unfragmented on any sane path (IPv6's 1280 minus headers is
 * the floor; 1400 is what WireGuard's own 1420 MTU leaves room for). */
export const MAX_DATAGRAM_BYTES = 1400;
export const MAX_SEALED_BYTES = MAX_DATAGRAM_BYTES - HEADER_BYTES;
const MAX_REFUSAL_CHARS = 300;
const MAX_TEXT_CHARS = 255;
const NONCE_ZERO = new Uint8Array(12);

export type RefusalCode = "expired" | "used" | "revoked" | "wrong-mesh" | "refused";

export interface JoinRequest {
  readonly meshId: Uint8Array;
  readonly signingKey: Uint8Array;
  readonly nickname: string | null;
}

export interface KnownPeer {
  readonly publicKey: Uint8Array;
  readonly nickname: string;
  readonly endpoints: readonly { readonly address: string; readonly port: number }[];
}

export interface JoinAcceptance {
  readonly kind: "accept";
  readonly genesis: Uint8Array;
  readonly inviterAdmission: Uint8Array;
  readonly admission: Uint8Array;
  readonly domain: string;
  readonly range: string;
  readonly inviterNickname: string;
  readonly peers: readonly KnownPeer[];
}

export interface JoinRefusal {
  readonly kind: "refuse";
  readonly code: RefusalCode;
  readonly message: string;
  /** For "wrong-mesh": the mesh the inviter is in. */
  readonly meshId?: Uint8Array;
}

export type JoinReply = JoinAcceptance | JoinRefusal;

/** Whether a datagram belongs to the join exchange (and not to WireGuard). */
export function isJoinMessage(data: Uint8Array): boolean {
  return data.length >= 2 && data[0] === JOIN_MAGIC && data[1]! >= 1 && data[1]! <= 5;
}

export type ParsedMessage =
  | { kind: "init"; invitationId: Uint8Array; initiation: Uint8Array }
  | { kind: "resp"; response: Uint8Array }
  | { kind: "notFound"; index: number }
  | { kind: "req" | "reply"; index: number; header: Uint8Array; sealed: Uint8Array };

/** Splits a join datagram into its fields (views into `data`); undefined if malformed. */
export function parseMessage(data: Uint8Array): ParsedMessage | undefined {
  if (!isJoinMessage(data)) return undefined;
  switch (data[1]) {
    case KIND.init:
      if (data.length !== 2 + INVITATION_ID_BYTES + MESSAGE_INITIATION_SIZE) return undefined;
      return {
        kind: "init",
        invitationId: data.subarray(2, 2 + INVITATION_ID_BYTES),
        initiation: data.subarray(2 + INVITATION_ID_BYTES),
      };
    case KIND.resp:
      if (data.length !== 2 + MESSAGE_RESPONSE_SIZE) return undefined;
      return { kind: "resp", response: data.subarray(2) };
    case KIND.notFound:
      if (data.length !== HEADER_BYTES) return undefined;
      return { kind: "notFound", index: readIndex(data) };
    default: {
      if (data.length < HEADER_BYTES + TAG_BYTES || data.length > HEADER_BYTES + MAX_SEALED_BYTES) {
        return undefined;
      }
      return {
        kind: data[1] === KIND.req ? "req" : "reply",
        index: readIndex(data),
        header: data.subarray(0, HEADER_BYTES),
        sealed: data.subarray(HEADER_BYTES),
      };
    }
  }
}

export function initMessage(invitationId: Uint8Array, initiation: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + INVITATION_ID_BYTES + MESSAGE_INITIATION_SIZE);
  out[0] = JOIN_MAGIC;
  out[1] = KIND.init;
  out.set(invitationId, 2);
  out.set(initiation, 2 + INVITATION_ID_BYTES);
  return out;
}

export function respMessage(response: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + MESSAGE_RESPONSE_SIZE);
  out[0] = JOIN_MAGIC;
  out[1] = KIND.resp;
  out.set(response, 2);
  return out;
}

export function notFoundMessage(senderIndex: number): Uint8Array {
  return header(KIND.notFound, senderIndex);
}

/** A sealed REQ or REPLY: `payload` encrypted with `key`, nonce 0, the header as AAD. */
export function sealedMessage(
  crypto: Crypto,
  kind: typeof KIND.req | typeof KIND.reply,
  index: number,
  key: Uint8Array,
  payload: Uint8Array,
): Uint8Array {
  const head = header(kind, index);
  const sealed = crypto.aeadSeal(key, NONCE_ZERO, payload, head);
  const out = new Uint8Array(HEADER_BYTES + sealed.length);
  out.set(head);
  out.set(sealed, HEADER_BYTES);
  return out;
}

/** The plaintext of a sealed REQ or REPLY, or null when it does not authenticate. */
export function openSealed(
  crypto: Crypto,
  key: Uint8Array,
  message: { header: Uint8Array; sealed: Uint8Array },
): Uint8Array | null {
  return crypto.aeadOpen(key, NONCE_ZERO, message.sealed, message.header);
}

export function encodeRequest(request: JoinRequest): Uint8Array {
  return canonicalCbor([1, request.meshId, request.signingKey, request.nickname]);
}

export function decodeRequest(bytes: Uint8Array): Result<JoinRequest> {
  const value = decode(bytes);
  if (!Array.isArray(value) || value.length !== 4 || value[0] !== 1) {
    return { ok: false, error: "request is not [1, meshId, signingKey, nickname]" };
  }
  const [, meshId, signingKey, nickname] = value;
  if (!(meshId instanceof Uint8Array) || meshId.length !== MESH_ID_BYTES) {
    return { ok: false, error: "request mesh id is not 16 bytes" };
  }
  if (!(signingKey instanceof Uint8Array) || signingKey.length !== 32) {
    return { ok: false, error: "request signing key is not 32 bytes" };
  }
  if (!(nickname === null || (typeof nickname === "string" && nickname.length <= 63))) {
    return { ok: false, error: "request nickname is not a name" };
  }
  return {
    ok: true,
    value: { meshId: Uint8Array.from(meshId), signingKey: Uint8Array.from(signingKey), nickname },
  };
}

/**
 * The reply's bytes; an acceptance drops known peers from the end until it fits in
 * `MAX_SEALED_BYTES` with its tag (the joiner learns them by gossip anyway).
 */
export function encodeReply(reply: JoinReply): Uint8Array {
  if (reply.kind === "refuse") {
    const fields = [1, "refuse", reply.code, reply.message.slice(0, MAX_REFUSAL_CHARS)];
    return canonicalCbor(reply.meshId === undefined ? fields : [...fields, reply.meshId]);
  }
  let peers = [...reply.peers];
  for (;;) {
    const bytes = canonicalCbor([
      1,
      "accept",
      reply.genesis,
      reply.inviterAdmission,
      reply.admission,
      reply.domain,
      reply.range,
      reply.inviterNickname,
      peers.map((p) => [p.publicKey, p.nickname, p.endpoints.map((e) => [e.address, e.port])]),
    ]);
    if (bytes.length + TAG_BYTES <= MAX_SEALED_BYTES || peers.length === 0) return bytes;
    peers = peers.slice(0, -1);
  }
}

export function decodeReply(bytes: Uint8Array): Result<JoinReply> {
  const value = decode(bytes);
  if (!Array.isArray(value) || value[0] !== 1) return { ok: false, error: "reply is not a reply" };
  if (value[1] === "refuse" && (value.length === 4 || value.length === 5)) {
    const [, , code, message, meshId] = value;
    const codes: RefusalCode[] = ["expired", "used", "revoked", "wrong-mesh", "refused"];
    if (
      !codes.includes(code as RefusalCode) ||
      typeof message !== "string" ||
      message.length > MAX_REFUSAL_CHARS
    ) {
      return { ok: false, error: "refusal is malformed" };
    }
    if (value.length === 5 && !(meshId instanceof Uint8Array && meshId.length === MESH_ID_BYTES)) {
      return { ok: false, error: "refusal mesh id is not 16 bytes" };
    }
    const refusal: JoinRefusal = { kind: "refuse", code: code as RefusalCode, message };
    return {
      ok: true,
      value: value.length === 5 ? { ...refusal, meshId: Uint8Array.from(meshId) } : refusal,
    };
  }
  if (value[1] !== "accept" || value.length !== 9)
    return { ok: false, error: "reply is malformed" };
  const [, , genesis, inviterAdmission, admission, domain, range, inviterNickname, peers] = value;
  if (
    !(genesis instanceof Uint8Array) ||
    !(inviterAdmission instanceof Uint8Array) ||
    !(admission instanceof Uint8Array) ||
    !isText(domain) ||
    !isText(range) ||
    !isText(inviterNickname) ||
    !Array.isArray(peers)
  ) {
    return { ok: false, error: "acceptance has a bad field" };
  }
  const known: KnownPeer[] = [];
  for (const peer of peers) {
    if (!Array.isArray(peer) || peer.length !== 3) return { ok: false, error: "bad known peer" };
    const [key, nickname, endpoints] = peer;
    if (!(key instanceof Uint8Array) || key.length !== 32 || !isText(nickname)) {
      return { ok: false, error: "bad known peer" };
    }
    if (!Array.isArray(endpoints)) return { ok: false, error: "bad known peer endpoints" };
    const list: { address: string; port: number }[] = [];
    for (const e of endpoints) {
      if (
        !Array.isArray(e) ||
        e.length !== 2 ||
        !isText(e[0]) ||
        !Number.isInteger(e[1]) ||
        e[1] < 1 ||
        e[1] > 65535
      ) {
        return { ok: false, error: "bad known peer endpoint" };
      }
      list.push({ address: e[0], port: e[1] });
    }
    known.push({ publicKey: Uint8Array.from(key), nickname, endpoints: list });
  }
  return {
    ok: true,
    value: {
      kind: "accept",
      genesis: Uint8Array.from(genesis),
      inviterAdmission: Uint8Array.from(inviterAdmission),
      admission: Uint8Array.from(admission),
      domain,
      range,
      inviterNickname,
      peers: known,
    },
  };
}

function isText(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_TEXT_CHARS;
}

/** Strict CBOR, undefined for anything else; the caller has capped the size. */
function decode(bytes: Uint8Array): unknown {
  try {
    return cborDecode(bytes, STRICT_CBOR);
  } catch {
    return undefined;
  }
}

function header(kind: number, index: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  out[0] = JOIN_MAGIC;
  out[1] = kind;
  new DataView(out.buffer).setUint32(2, index >>> 0, true);
  return out;
}

function readIndex(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset + 2, 4).getUint32(0, true);
}
