/** `weft status` for people: this peer, then one line per member, like `wg show` meets `tailscale status`. */
import type { DaemonStatus } from "./daemon.ts";
import { formatMulticast } from "./multicast-glue.ts";
import { formatUserspace } from "./userspace.ts";

export function formatDaemonStatus(status: DaemonStatus): string {
  const self = status.self;
  const lines = [
    `${self.nickname} ${self.address ?? "(no address yet)"} ${self.publicKey}`,
    `  reachable at ${self.endpoints?.join(", ") || "(no endpoint known)"}`,
    `  weft ${self.version} on ${self.runtime}, UDP port ${self.port}, TUN ${self.tun ?? "none"}, DNS ${self.dns ?? "not served"} (${self.domain}), range ${self.range}, mesh ${self.meshId}`,
  ];
  if (status.userspace) lines.push(formatUserspace(status.userspace));
  if (status.multicast) lines.push(formatMulticast(status.multicast));
  if (status.peers.length === 0) lines.push("  no peers yet");
  for (const p of status.peers) {
    const path =
      p.path === "direct"
        ? `${p.punched ? "punched" : "direct"} ${p.endpoint}${p.rttMs === undefined ? "" : ` (${p.rttMs.toFixed(1)} ms)`}`
        : p.path === "relayed"
          ? `relayed via ${p.viaNicknames.join(" > ")}`
          : "unreachable";
    const mtu = p.pathMtu === undefined ? "" : `, mtu ${p.pathMtu}`;
    const handshake =
      p.handshakeAgeMs === undefined ? "no handshake" : `handshake ${ago(p.handshakeAgeMs)}`;
    lines.push(
      `${(p.address ?? "-").padEnd(16)} ${(p.nickname || "?").padEnd(16)} ${p.publicKey.slice(0, 12)}  ${path}${mtu}, ${handshake}, rx ${bytes(p.rxBytes)}, tx ${bytes(p.txBytes)}`,
    );
  }
  for (const leaf of status.leaves ?? []) {
    lines.push(
      `${leaf.address.padEnd(16)} ${leaf.name.padEnd(16)} ${leaf.publicKey.slice(0, 12)}  WireGuard leaf through this peer`,
    );
  }
  return lines.join("\n");
}

function ago(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120
    ? `${s} s ago`
    : s < 7200
      ? `${Math.round(s / 60)} min ago`
      : `${Math.round(s / 3600)} h ago`;
}

function bytes(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1024 ** 2
      ? `${(n / 1024).toFixed(1)} KiB`
      : n < 1024 ** 3
        ? `${(n / 1024 ** 2).toFixed(1)} MiB`
        : `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
