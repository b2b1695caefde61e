/**
 * Which mesh `weft up` runs in: the one saved in the state directory, the one an invite
 * token leads to (`--join TOKEN`: the join exchange runs before the mesh starts), or a
 * new one founded here.
 */
import { lookup } from "node:dns/promises";
import { ed25519 } from "@noble/curves/ed25519.js";
import { toBase64, toHex } from "../crypto/bytes.ts";
import { JoinError, joinMesh } from "../membership/join-client.ts";
import type { Members } from "../membership/members.ts";
import { decodeToken } from "../membership/token.ts";
import type { PacketConn } from "../net/packet-conn.ts";
import type { Runtime } from "../runtime.ts";
import type { Store } from "../store.ts";
import type { DaemonConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import {
  foundMesh,
  loadMembers,
  loadMeshIdentity,
  type MeshIdentity,
  meshIdText,
  saveMembers,
  saveMeshIdentity,
} from "./mesh-identity.ts";

/** Peers to reconnect to on start, as the daemon saves them in peers.json. */
export interface SavedPeerLists {
  static: { publicKey: string; endpoint: { address: string; port: number } }[];
  known: { publicKey: string; endpoints: { address: string; port: number }[] }[];
}

export async function establishMembership(options: {
  config: DaemonConfig;
  runtime: Runtime;
  log: Logger;
  store: Store;
  saved: SavedPeerLists;
  conn: PacketConn;
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  signingSecret: Uint8Array;
}): Promise<{ identity: MeshIdentity; members: Members; nickname: string }> {
  const { config, runtime, log, store } = options;
  let identity = loadMeshIdentity(store);
  if (config.join !== undefined) {
    const token = decodeToken(config.join);
    if (!token.ok) throw new Error(`Invalid invite token: ${token.error}`);
    const wanted = meshIdText(token.value.meshId);
    if (identity !== undefined) {
      const ours = meshIdText(identity.meshId);
      if (ours !== wanted) {
        throw new Error(
          `This peer is a member of mesh ${ours}; the token is for mesh ${wanted} (use a new --state-dir to join another mesh)`,
        );
      }
      log("info", "members", `already a member of mesh ${ours}: the token is not needed`);
    } else {
      log(
        "info",
        "members",
        `joining mesh ${wanted} through ${token.value.endpoints.map((e) => `${e.host}:${e.port}`).join(", ")}`,
      );
      let accepted: Awaited<ReturnType<typeof joinMesh>>;
      try {
        accepted = await joinMesh({
          crypto: runtime.crypto,
          clock: runtime.clock,
          conn: options.conn,
          token: token.value,
          privateKey: options.privateKey,
          signingPublicKey: ed25519.getPublicKey(options.signingSecret),
          nickname: config.nameGiven ? config.nickname : undefined,
          resolve: async (host) => (await lookup(host, { all: true })).map((a) => a.address),
        });
      } catch (error) {
        if (error instanceof JoinError) throw new Error(`Cannot join: ${error.message}`);
        throw error;
      }
      identity = {
        meshId: token.value.meshId,
        genesis: accepted.genesis,
        range: accepted.settings.range,
        domain: accepted.settings.domain,
        inviter: toBase64(token.value.inviterKey),
      };
      const members = loadMembers(store, identity, log);
      members.receive(accepted.inviterAdmission);
      members.receive(accepted.admission);
      saveMeshIdentity(store, identity);
      saveMembers(store, members);
      // The inviter is who we know; the rest of the mesh comes by gossip.
      const inviterKey = identity.inviter!;
      options.saved.static = [
        ...options.saved.static.filter((p) => p.publicKey !== inviterKey),
        { publicKey: inviterKey, endpoint: accepted.endpoint },
      ];
      for (const peer of accepted.peers) {
        if (peer.endpoints.length === 0) continue;
        options.saved.known.push({ publicKey: peer.publicKey, endpoints: [...peer.endpoints] });
      }
      log(
        "info",
        "members",
        `joined mesh ${wanted}: admitted by ${accepted.inviterNickname || inviterKey} at ${accepted.endpoint.address}:${accepted.endpoint.port}`,
      );
      const admitted = accepted.admission.record;
      const nickname =
        config.nameGiven || admitted.kind !== "admission" || !isLabel(admitted.nickname)
          ? config.nickname
          : admitted.nickname;
      return { identity, members, nickname };
    }
  }
  if (identity === undefined) {
    identity = foundMesh({
      publicKey: options.publicKey,
      signingSecret: options.signingSecret,
      nickname: config.nickname,
      range: config.range,
      domain: config.domain,
      random: (n) => runtime.crypto.randomBytes(n),
      now: runtime.clock.wallNow(),
    });
    saveMeshIdentity(store, identity);
    log(
      "info",
      "members",
      `founded mesh ${meshIdText(identity.meshId)} (range ${identity.range}, domain ${identity.domain}); add peers with weft invite`,
    );
  } else if (config.rangeGiven && config.range !== identity.range) {
    log(
      "warn",
      "members",
      `--range ${config.range} ignored: the mesh's range is ${identity.range}`,
    );
  }
  const members = loadMembers(store, identity, log);
  if (members.isRemoved(options.publicKey)) {
    throw new Error(
      `This peer was removed from mesh ${meshIdText(identity.meshId)}: it needs a new invitation and a new --state-dir`,
    );
  }
  if (!members.isMember(options.publicKey) && identity.inviter === null) {
    log("warn", "members", `this peer is not a member of mesh ${toHex(identity.meshId)}`);
  }
  return { identity, members, nickname: nicknameOf(members, options.publicKey, config) };
}

/** --name when given, else the name this peer was admitted under. */
function nicknameOf(members: Members, publicKey: Uint8Array, config: DaemonConfig): string {
  if (config.nameGiven) return config.nickname;
  const key = toBase64(publicKey);
  const admission = members
    .records()
    .find((r) => r.record.kind === "admission" && toBase64(r.record.member) === key);
  return admission?.record.kind === "admission" && isLabel(admission.record.nickname)
    ? admission.record.nickname
    : config.nickname;
}

function isLabel(name: string): boolean {
  return /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(name);
}
