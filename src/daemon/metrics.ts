/**
 * Prometheus text exposition (format 0.0.4) of a daemon's counters, served on a loopback
 * port (`--metrics 127.0.0.1:9586`): peers and paths, handshakes, bytes, drops by reason,
 * relaying, IPAM space and DNS queries.
 */
import { createServer, type Server } from "node:http";
import type { Daemon } from "./daemon.ts";

type Sample = readonly [labels: Record<string, string | number>, value: number];

class Exposition {
  readonly #lines: string[] = [];

  metric(name: string, type: "gauge" | "counter", help: string, samples: readonly Sample[]): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const text = Object.entries(labels)
        .map(
          ([k, v]) =>
            `${k}="${String(v).replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`,
        )
        .join(",");
      this.#lines.push(`${name}${text ? `{${text}}` : ""} ${Number.isFinite(value) ? value : 0}`);
    }
  }

  toString(): string {
    return `${this.#lines.join("\n")}\n`;
  }
}

/** The daemon's metrics now, as Prometheus text. */
export function renderMetrics(daemon: Daemon): string {
  const status = daemon.status();
  const mesh = daemon.mesh.status();
  const ipam = daemon.allocator.status();
  const dns = daemon.dnsCounters();
  const multicast = daemon.multicast.counters();
  const out = new Exposition();
  out.metric("weft_info", "gauge", "Constant 1, labelled with the version and runtime.", [
    [
      {
        version: status.self.version,
        runtime: status.self.runtime,
        public_key: status.self.publicKey,
      },
      1,
    ],
  ]);
  const paths = { direct: 0, punched: 0, relayed: 0, unreachable: 0 };
  for (const peer of status.peers) paths[peer.punched ? "punched" : peer.path]++;
  out.metric(
    "weft_peers",
    "gauge",
    "Members this peer knows, by how they are reached now (punched: direct through NATs).",
    Object.entries(paths).map(([path, n]) => [{ path }, n] as const),
  );
  out.metric("weft_members", "gauge", "Members of the mesh, and keys removed from it.", [
    [{ state: "member" }, daemon.members.members().length],
    [{ state: "removed" }, daemon.members.removed().length],
  ]);
  out.metric(
    "weft_joins_total",
    "counter",
    "Join exchanges answered by this peer as inviter, by outcome.",
    Object.entries(daemon.joinCounters()).map(([outcome, n]) => [{ outcome }, n] as const),
  );
  out.metric("weft_connections", "gauge", "Direct connections (confirmed path and hello).", [
    [{}, mesh.connections],
  ]);
  out.metric("weft_handshakes_total", "counter", "WireGuard handshakes completed, all peers.", [
    [{}, status.peers.reduce((sum, p) => sum + p.handshakes, 0)],
  ]);
  out.metric("weft_bytes_total", "counter", "WireGuard bytes of sessions with members.", [
    [{ direction: "rx" }, status.peers.reduce((sum, p) => sum + p.rxBytes, 0)],
    [{ direction: "tx" }, status.peers.reduce((sum, p) => sum + p.txBytes, 0)],
  ]);
  out.metric("weft_drops_total", "counter", "Messages dropped, by layer and reason.", [
    ...Object.entries(mesh.drops).map(([reason, n]) => [{ layer: "mesh", reason }, n] as const),
    ...Object.entries(mesh.deviceDrops).map(
      ([reason, n]) => [{ layer: "tunnel", reason }, n] as const,
    ),
    ...Object.entries(multicast.dropped).map(
      ([reason, n]) => [{ layer: "multicast", reason }, n ?? 0] as const,
    ),
    ...Object.entries(status.userspace?.drops ?? {}).map(
      ([reason, n]) => [{ layer: "userspace", reason }, n] as const,
    ),
  ]);
  if (status.userspace) {
    out.metric(
      "weft_userspace_packets_total",
      "counter",
      "IP packets through the userspace stack (weft up --userspace).",
      [
        [{ direction: "in" }, status.userspace.received],
        [{ direction: "out" }, status.userspace.sent],
      ],
    );
    out.metric(
      "weft_userspace_tcp_connections",
      "gauge",
      "TCP connections of the userspace stack, TIME-WAIT included.",
      [[{}, status.userspace.tcpConnections]],
    );
  }
  out.metric("weft_multicast_packets_total", "counter", "Multicast and broadcast packets.", [
    [{ event: "sent" }, multicast.sent],
    [{ event: "delivered" }, multicast.delivered],
    [{ event: "ignored-igmp" }, multicast.ignored.igmp],
    [{ event: "ignored-ipv6" }, multicast.ignored.ipv6],
  ]);
  out.metric("weft_relay_frames_total", "counter", "Relay frames by role.", [
    [{ role: "received" }, mesh.relayed.relayedIn],
    [{ role: "forwarded" }, mesh.relayed.relayedForwarded],
    [{ role: "sent" }, mesh.relayed.relayedOut],
  ]);
  out.metric("weft_ipam_addresses", "gauge", "Addresses this peer owns in the ring, by state.", [
    [{ state: "owned" }, ipam.owned],
    [{ state: "free" }, ipam.free],
    [{ state: "allocated" }, ipam.allocated],
  ]);
  out.metric("weft_ipam_waiting_requests", "gauge", "Allocations waiting for space.", [
    [{}, ipam.waiting],
  ]);
  if (dns) {
    out.metric(
      "weft_dns_queries_total",
      "counter",
      "DNS queries by outcome.",
      Object.entries(dns).map(([outcome, n]) => [{ outcome }, n] as const),
    );
  }
  return out.toString();
}

/** Serves `renderMetrics` at /metrics on `address:port`. */
export async function serveMetrics(daemon: Daemon, address: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.url !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" });
      response.end("metrics are at /metrics\n");
      return;
    }
    response.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
    response.end(renderMetrics(daemon));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}
