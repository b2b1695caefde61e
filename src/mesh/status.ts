/**
 * What a mesh peer reports about itself and every member it knows: the data structure the
 * CLI's `status` prints and the metrics endpoint exports.
 */
import type { PeerKey } from "./gossip-state.ts";

export interface MeshPeerStatus {
  readonly publicKey: PeerKey;
  readonly nickname: string;
  /** How messages reach it now: a confirmed direct path, through relays, or not at all. */
  readonly path: "direct" | "relayed" | "unreachable";
  /** The address of the direct path. */
  readonly endpoint: string | undefined;
  /** The direct path was found by hole punching (through NATs, arranged over a relay). */
  readonly punched: boolean;
  /** The relays in order, for a relayed path. */
  readonly via: readonly PeerKey[];
  /** Hops to reach it: 1 direct, 2 through one relay, ... */
  readonly hops: number | undefined;
  /** A topology edge: direct path plus hello. */
  readonly connected: boolean;
  readonly rttMs: number | undefined;
  /** Since the last completed WireGuard handshake with it, if any. */
  readonly handshakeAgeMs: number | undefined;
  /** WireGuard bytes of its session (relayed traffic counts at both ends, not at relays). */
  readonly rxBytes: number;
  readonly txBytes: number;
  /**
   * The largest IP packet its path carries in one datagram (see `path-mtu.ts`): probed
   * for a direct path, the first hop's less the relay overhead for a relayed one.
   */
  readonly pathMtu: number | undefined;
}

export interface MeshStatus {
  readonly publicKey: PeerKey;
  readonly nickname: string;
  readonly protocolVersion: number;
  /** Where others may reach this peer: listen addresses, then addresses peers saw it at. */
  readonly endpoints: readonly string[];
  readonly peers: readonly MeshPeerStatus[];
  readonly connections: number;
  readonly relayed: {
    readonly relayedIn: number;
    readonly relayedForwarded: number;
    readonly relayedOut: number;
    readonly broadcastsIn: number;
    /** Frames put back together from pieces (a relay should see none: senders cut small). */
    readonly reassembled: number;
  };
  readonly drops: Readonly<Record<string, number>>;
  readonly deviceDrops: Readonly<Record<string, number>>;
}

/** A human-readable table of the status, one line per member. */
export function formatStatus(status: MeshStatus): string {
  const lines = [
    `${status.nickname} ${status.publicKey} (mesh protocol ${status.protocolVersion}, ${status.connections} connections)`,
  ];
  const name = (key: PeerKey) =>
    status.peers.find((p) => p.publicKey === key)?.nickname || key.slice(0, 8);
  for (const p of status.peers) {
    const path =
      p.path === "direct"
        ? `${p.punched ? "punched" : "direct"} ${p.endpoint}${p.rttMs === undefined ? "" : ` rtt ${p.rttMs.toFixed(1)} ms`}`
        : p.path === "relayed"
          ? `relayed via ${p.via.map(name).join(" > ")} (${p.hops} hops)`
          : "unreachable";
    const mtu = p.pathMtu === undefined ? "" : `, mtu ${p.pathMtu}`;
    const handshake =
      p.handshakeAgeMs === undefined
        ? "no handshake"
        : `handshake ${Math.round(p.handshakeAgeMs / 1000)} s ago`;
    lines.push(
      `  ${(p.nickname || "?").padEnd(16)} ${p.publicKey.slice(0, 12)}  ${path}${mtu}, ${handshake}, rx ${p.rxBytes} B, tx ${p.txBytes} B`,
    );
  }
  return lines.join("\n");
}
