/**
 * WireGuard's handshake messages (whitepaper §5.4.2-5.4.3) on top of noise.ts: the
 * initiation carries a TAI64N timestamp and the sender index, the response carries both
 * indices and an empty payload, and a completed handshake yields one keypair's keys.
 * mac1/mac2 are added and checked by cookie.ts; indices are allocated by the device.
 *
 *   initiator                              responder
 *   createInitiation ---- initiation --->  consumeInitiation  (who is it? replayed?)
 *                                          createResponse -> keys (unconfirmed)
 *   consumeResponse  <---- response -----
 *     -> keys (confirmed)
 */
import { type Crypto, wipe } from "../crypto/index.ts";
import { CONSTRUCTION, IDENTIFIER, TAI64N_SIZE } from "./constants.ts";
import {
  readInitiationMessage,
  readResponseMessage,
  writeInitiationMessage,
  writeResponseMessage,
} from "./messages.ts";
import {
  type InitiatorState,
  initialState,
  type ReadInitiation,
  readInitiation,
  readResponse,
  type SymmetricState,
  split,
  writeInitiation,
  writeResponse,
} from "./noise.ts";
import { tai64n } from "./tai64n.ts";

const PROLOGUE = new TextEncoder().encode(IDENTIFIER);
const EMPTY = new Uint8Array(0);

/** The device's own static identity, with what can be computed once from it. */
export interface LocalIdentity {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  /** The handshake state before any message to us: depends only on our public key. */
  readonly responderStart: SymmetricState;
}

export function createLocalIdentity(crypto: Crypto, privateKey: Uint8Array): LocalIdentity {
  const publicKey = crypto.publicKey(privateKey);
  return {
    privateKey,
    publicKey,
    responderStart: initialState(crypto, CONSTRUCTION, PROLOGUE, publicKey),
  };
}

/** What we know of a remote peer for handshakes, precomputed once per peer. */
export interface RemoteIdentity {
  readonly publicKey: Uint8Array;
  readonly presharedKey: Uint8Array;
  /** The handshake state before our initiation to this peer. */
  readonly initiatorStart: SymmetricState;
  /** DH(our static, their static); null when their key is a low-order point. */
  readonly staticShared: Uint8Array | null;
}

export function createRemoteIdentity(
  crypto: Crypto,
  local: LocalIdentity,
  publicKey: Uint8Array,
  presharedKey?: Uint8Array,
): RemoteIdentity {
  return {
    publicKey,
    presharedKey: presharedKey ?? new Uint8Array(32),
    initiatorStart: initialState(crypto, CONSTRUCTION, PROLOGUE, publicKey),
    staticShared: crypto.dh(local.privateKey, publicKey),
  };
}

/** The transport keys of a completed handshake, and the indices that name them. */
export interface SessionKeys {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly isInitiator: boolean;
}

/** An initiation we sent and await the response to. */
export interface PendingInitiation {
  readonly localIndex: number;
  readonly state: InitiatorState;
}

/**
 * Builds an initiation (mac fields zero); null only if the peer's key is a low-order
 * point. The ephemeral key is fresh unless a test fixes it.
 */
export function createInitiation(
  crypto: Crypto,
  local: LocalIdentity,
  remote: RemoteIdentity,
  localIndex: number,
  wallMs: number,
  ephemeral: Uint8Array = crypto.generatePrivateKey(),
): { message: Uint8Array; pending: PendingInitiation } | null {
  if (!remote.staticShared) return null;
  const written = writeInitiation(
    crypto,
    remote.initiatorStart,
    local.privateKey,
    local.publicKey,
    remote.publicKey,
    ephemeral,
    tai64n(wallMs),
  );
  if (!written) return null;
  const { body, state } = written;
  const message = writeInitiationMessage({
    sender: localIndex,
    ephemeral: body.ephemeralPublic,
    encryptedStatic: body.encryptedStatic,
    encryptedTimestamp: body.encryptedPayload,
  });
  return { message, pending: { localIndex, state } };
}

/** A decrypted initiation: who sent it, when, and what the response needs. */
export interface ConsumedInitiation {
  readonly initiatorPublic: Uint8Array;
  readonly timestamp: Uint8Array;
  readonly senderIndex: number;
  readonly read: ReadInitiation;
}

/**
 * Decrypts an initiation addressed to us (mac1 already checked). `staticSharedFor` returns
 * the precomputed DH with a known peer's key, or undefined for a key we do not know (then
 * the message is refused: we never do the static DH for strangers). Returns a reason when
 * refused.
 */
export function consumeInitiation(
  crypto: Crypto,
  local: LocalIdentity,
  message: Uint8Array,
  staticSharedFor: (initiatorPublic: Uint8Array) => Uint8Array | null | undefined,
): ConsumedInitiation | { refused: string } {
  const fields = readInitiationMessage(message);
  if (!fields) return { refused: "not an initiation" };
  let unknown = false;
  const read = readInitiation(
    crypto,
    local.responderStart,
    local.privateKey,
    {
      ephemeralPublic: fields.ephemeral,
      encryptedStatic: fields.encryptedStatic,
      encryptedPayload: fields.encryptedTimestamp,
    },
    (initiatorPublic) => {
      const shared = staticSharedFor(initiatorPublic);
      if (shared === undefined) unknown = true;
      return shared ?? null;
    },
  );
  if (unknown) return { refused: "initiation from a public key that is not a configured peer" };
  if (!read) return { refused: "initiation failed to authenticate" };
  if (read.payload.length !== TAI64N_SIZE)
    return { refused: "initiation timestamp has the wrong size" };
  return {
    initiatorPublic: read.initiatorStatic,
    timestamp: read.payload,
    senderIndex: fields.sender,
    read: { ...read, initiatorEphemeral: fields.ephemeral.slice() },
  };
}

/**
 * Builds the response (mac fields zero) and the responder's keys, unconfirmed until data
 * arrives. The ephemeral key is fresh unless a test fixes it; it is wiped after use.
 */
export function createResponse(
  crypto: Crypto,
  remote: RemoteIdentity,
  consumed: ConsumedInitiation,
  localIndex: number,
  ephemeral: Uint8Array = crypto.generatePrivateKey(),
): { message: Uint8Array; keys: SessionKeys } | null {
  const written = writeResponse(crypto, consumed.read, remote.presharedKey, ephemeral, EMPTY);
  wipe(ephemeral);
  if (!written) return null;
  const message = writeResponseMessage({
    sender: localIndex,
    receiver: consumed.senderIndex,
    ephemeral: written.body.ephemeralPublic,
    encryptedNothing: written.body.encryptedPayload,
  });
  const [receiveKey, sendKey] = split(crypto, written.state);
  return {
    message,
    keys: {
      sendKey,
      receiveKey,
      localIndex,
      remoteIndex: consumed.senderIndex,
      isInitiator: false,
    },
  };
}

/** Completes our handshake from a response (mac1 already checked); null if it does not authenticate. */
export function consumeResponse(
  crypto: Crypto,
  local: LocalIdentity,
  remote: RemoteIdentity,
  pending: PendingInitiation,
  message: Uint8Array,
): SessionKeys | null {
  const fields = readResponseMessage(message);
  if (!fields || fields.receiver !== pending.localIndex) return null;
  const read = readResponse(crypto, pending.state, local.privateKey, remote.presharedKey, {
    ephemeralPublic: fields.ephemeral,
    encryptedPayload: fields.encryptedNothing,
  });
  if (read?.payload.length !== 0) return null;
  wipe(pending.state.ephemeralPrivate);
  const [sendKey, receiveKey] = split(crypto, read.state);
  return {
    sendKey,
    receiveKey,
    localIndex: pending.localIndex,
    remoteIndex: fields.sender,
    isInitiator: true,
  };
}
