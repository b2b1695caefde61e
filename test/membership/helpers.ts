/** Identities and records for the membership tests: fixed keys, so results are reproducible. */
import { ed25519 } from "@noble/curves/ed25519.js";
import {
  type Admission,
  type Removal,
  type SignedRecord,
  signRecord,
} from "../../src/membership/records.ts";

export const MESH_ID = Uint8Array.from({ length: 16 }, (_, i) => i);
export const OTHER_MESH_ID = Uint8Array.from({ length: 16 }, (_, i) => 100 + i);

export interface Identity {
  /** X25519 public key (any 32 bytes will do here: nothing checks it is on the curve). */
  readonly key: Uint8Array;
  readonly signingSecret: Uint8Array;
  readonly signingKey: Uint8Array;
  readonly nickname: string;
}

export function identity(n: number): Identity {
  const signingSecret = new Uint8Array(32).fill(200 - n);
  return {
    key: new Uint8Array(32).fill(n + 1),
    signingSecret,
    signingKey: ed25519.getPublicKey(signingSecret),
    nickname: `node-${n}`,
  };
}

export function admission(
  member: Identity,
  by: Identity | null,
  at = 1_700_000_000_000,
): Admission {
  return {
    kind: "admission",
    version: 1,
    member: member.key,
    signingKey: member.signingKey,
    nickname: member.nickname,
    admittedBy: by === null ? null : by.key,
    invitation: by === null ? null : new Uint8Array(16).fill(7),
    at,
  };
}

export function removal(member: Identity, by: Identity, at = 1_700_000_000_001): Removal {
  return { kind: "removal", version: 1, member: member.key, removedBy: by.key, at };
}

export function genesis(founder: Identity, meshId = MESH_ID): SignedRecord {
  return signRecord(meshId, admission(founder, null), founder.signingSecret);
}

export function admit(member: Identity, by: Identity, meshId = MESH_ID): SignedRecord {
  return signRecord(meshId, admission(member, by), by.signingSecret);
}

export function remove(member: Identity, by: Identity, meshId = MESH_ID): SignedRecord {
  return signRecord(meshId, removal(member, by), by.signingSecret);
}
