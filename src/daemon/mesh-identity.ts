/**
 * Which mesh this peer belongs to, kept in the state directory: the mesh id, its genesis
 * (the founder's self-admission, which defines the mesh), the settings every member shares
 * (address range, DNS domain), and the member that let us in. Also this peer's Ed25519
 * signing key, with which it signs the membership records it authors, and the saved
 * replica of the membership set.
 *
 * A peer's first `weft up` without an invitation founds a new mesh; `weft join TOKEN`
 * takes the mesh of the token instead. Either way the choice is saved once and every
 * later start uses it: a peer belongs to exactly one mesh per state directory.
 */
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { decode as cborDecode } from "cborg";
import { fromBase64, toBase64, toHex } from "../crypto/bytes.ts";
import { Members } from "../membership/members.ts";
import {
  canonicalCbor,
  decodeSignedRecord,
  MESH_ID_BYTES,
  type SignedRecord,
  signRecord,
} from "../membership/records.ts";
import type { PeerKey } from "../mesh/gossip-state.ts";
import type { Store } from "../store.ts";
import type { Logger } from "./log.ts";
import { loadOrCreateKeyFile } from "./state-dir.ts";

const IDENTITY_BLOB = "mesh";
const MEMBERS_BLOB = "members";
const IDENTITY_FORMAT = 1;

export interface MeshIdentity {
  readonly meshId: Uint8Array;
  readonly genesis: SignedRecord;
  /** The mesh's address range (CIDR), the same on every member. */
  readonly range: string;
  /** The mesh's DNS domain, the same on every member. */
  readonly domain: string;
  /**
   * The member that admitted us: trusted as a member before the records that prove it
   * reach us by gossip (unless removed). Null for the founder.
   */
  readonly inviter: PeerKey | null;
}

/** The mesh id as people see it: 32 hex digits. */
export function meshIdText(meshId: Uint8Array): string {
  return toHex(meshId);
}

/** The saved identity, or undefined on a peer that has none yet. Throws an Error if unreadable. */
export function loadMeshIdentity(store: Store): MeshIdentity | undefined {
  const bytes = store.load(IDENTITY_BLOB);
  if (bytes === undefined) return undefined;
  const bad = (why: string) =>
    new Error(`The saved mesh identity is unreadable (${why}): restore it or use a new state dir`);
  let value: unknown;
  try {
    value = cborDecode(bytes, { strict: true, rejectDuplicateMapKeys: true });
  } catch (error) {
    throw bad((error as Error).message);
  }
  if (!Array.isArray(value) || value.length !== 6 || value[0] !== IDENTITY_FORMAT) {
    throw bad("not [format 1, meshId, genesis, range, domain, inviter]");
  }
  const [, meshId, genesisBytes, range, domain, inviter] = value as unknown[];
  if (!(meshId instanceof Uint8Array) || meshId.length !== MESH_ID_BYTES) throw bad("mesh id");
  const genesis = decodeSignedRecord(genesisBytes);
  if (!genesis.ok) throw bad(`genesis: ${genesis.error}`);
  if (typeof range !== "string" || typeof domain !== "string") throw bad("range or domain");
  if (inviter !== null && !(inviter instanceof Uint8Array && inviter.length === 32)) {
    throw bad("inviter");
  }
  return {
    meshId: Uint8Array.from(meshId),
    genesis: genesis.value,
    range,
    domain,
    inviter: inviter === null ? null : toBase64(inviter),
  };
}

export function saveMeshIdentity(store: Store, identity: MeshIdentity): void {
  store.save(
    IDENTITY_BLOB,
    canonicalCbor([
      IDENTITY_FORMAT,
      identity.meshId,
      identity.genesis.bytes,
      identity.range,
      identity.domain,
      identity.inviter === null ? null : fromBase64(identity.inviter),
    ]),
  );
}

/** This peer's Ed25519 signing key (`signing.key`, 0600), created on first use. */
export function loadOrCreateSigningKey(stateDir: string, log: Logger): Uint8Array {
  const path = join(stateDir, "signing.key");
  return loadOrCreateKeyFile(
    path,
    () => ed25519.utils.randomSecretKey(),
    () => log("info", "members", `created a new signing key in ${path}`),
  );
}

/** A new mesh with this peer as its founder: a random id and a self-signed genesis. */
export function foundMesh(options: {
  publicKey: Uint8Array;
  signingSecret: Uint8Array;
  nickname: string;
  range: string;
  domain: string;
  random: (bytes: number) => Uint8Array;
  now: number;
}): MeshIdentity {
  const meshId = options.random(MESH_ID_BYTES);
  const genesis = signRecord(
    meshId,
    {
      kind: "admission",
      version: 1,
      member: options.publicKey,
      signingKey: ed25519.getPublicKey(options.signingSecret),
      nickname: options.nickname,
      admittedBy: null,
      invitation: null,
      at: options.now,
    },
    options.signingSecret,
  );
  return { meshId, genesis, range: options.range, domain: options.domain, inviter: null };
}

/** The saved membership replica, or a new one holding only the genesis. */
export function loadMembers(store: Store, identity: MeshIdentity, log: Logger): Members {
  const bytes = store.load(MEMBERS_BLOB);
  if (bytes !== undefined) {
    const restored = Members.restore(bytes);
    if (restored.ok && toHex(restored.value.meshId) === toHex(identity.meshId)) {
      return restored.value;
    }
    log(
      "warn",
      "members",
      `saved member records unreadable (${restored.ok ? "another mesh" : restored.error}); gossip will bring them back`,
    );
  }
  return new Members({ meshId: identity.meshId, genesis: identity.genesis });
}

export function saveMembers(store: Store, members: Members): void {
  store.save(MEMBERS_BLOB, members.snapshot());
}
