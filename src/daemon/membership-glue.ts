/** What the daemon hands the join responder, and how it shows invitations. */
import { fromBase64, toBase64, toHex } from "../crypto/bytes.ts";
import { type Invitation, InvitationBook, invitationState } from "../membership/invitations.ts";
import type { KnownPeer } from "../membership/join-protocol.ts";
import type { AdmitRequest, AdmitResult } from "../membership/join-responder.ts";
import type { MembershipReplication } from "../membership/replicate.ts";
import type { Mesh } from "../mesh/mesh.ts";
import type { Runtime } from "../runtime.ts";
import type { Store } from "../store.ts";
import type { Logger } from "./log.ts";
import type { InvitationView } from "./views.ts";

const DEFAULT_JOINER_NAME = "peer";
const KNOWN_PEERS_HANDED = 4;

/** The book in the store; an unreadable one is set aside (logged) rather than stopping the peer. */
export function loadInvitations(store: Store, runtime: Runtime, log: Logger): InvitationBook {
  const random = (n: number) => runtime.crypto.randomBytes(n);
  const loaded = InvitationBook.load(store, random);
  if (loaded.ok) return loaded.value;
  log("error", "members", `${loaded.error}: starting with no invitations`);
  const fresh = InvitationBook.load(
    { load: () => undefined, save: store.save.bind(store) },
    random,
  );
  if (!fresh.ok) throw new Error(fresh.error);
  return fresh.value;
}

/**
 * Signs the joiner's admission (or finds the one it already has: a joiner whose answer
 * was lost asks again) and returns the records it needs to come up.
 */
export function admitJoiner(
  replication: MembershipReplication,
  self: Uint8Array,
  request: AdmitRequest,
): AdmitResult | { refused: string } {
  const members = replication.members;
  const own = admissionOf(replication, toBase64(self));
  if (!own) return { refused: "the inviter is not (yet) a member itself" };
  const joiner = toBase64(request.member);
  if (members.isRemoved(joiner)) {
    return { refused: "this key was removed from the mesh: join with a new identity" };
  }
  let admission = members.isMember(joiner) ? admissionOf(replication, joiner) : undefined;
  if (!admission) {
    try {
      admission = replication.admit({
        member: request.member,
        signingKey: request.signingKey,
        nickname: request.nickname ?? DEFAULT_JOINER_NAME,
        invitation: request.invitation,
      });
    } catch (error) {
      return { refused: (error as Error).message };
    }
  }
  return {
    genesis: members.genesis.bytes,
    inviterAdmission: own.bytes,
    admission: admission.bytes,
  };
}

function admissionOf(replication: MembershipReplication, key: string) {
  return replication.members
    .records()
    .find((r) => r.record.kind === "admission" && toBase64(r.record.member) === key);
}

/** A few members the joiner can try besides us: connected ones with endpoints first. */
export function knownPeersFor(mesh: Mesh): KnownPeer[] {
  const status = mesh.status();
  return status.peers
    .filter((p) => p.connected)
    .map((p) => ({
      publicKey: fromBase64(p.publicKey),
      nickname: p.nickname,
      endpoints: [...(mesh.topology.entry(p.publicKey)?.endpoints ?? [])].slice(0, 2),
    }))
    .filter((p) => p.endpoints.length > 0)
    .slice(0, KNOWN_PEERS_HANDED);
}

export function invitationView(invitation: Invitation, now: number): InvitationView {
  return {
    id: toHex(invitation.id),
    state: invitationState(invitation, now),
    uses: invitation.uses,
    usesLeft: Math.max(0, invitation.uses - invitation.usedBy.length),
    nickname: invitation.nickname,
    createdAt: new Date(invitation.createdAt).toISOString(),
    expiresAt: new Date(invitation.expiresAt).toISOString(),
    usedBy: invitation.usedBy,
    endpoints: invitation.endpoints,
  };
}
