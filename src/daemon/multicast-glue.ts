/**
 * The daemon's multicast: a carrier between the mesh and the TUN, set from `weft up
 * --multicast on|off --multicast-rate N`, with the mesh range's directed broadcast, and
 * the view of its counters that `weft status` and the metrics show.
 */
import type { Clock } from "../clock.ts";
import type { Mesh } from "../mesh/mesh.ts";
import {
  attachMulticast,
  type MulticastCarrier,
  type MulticastCounters,
} from "../mesh/multicast.ts";
import { parsePrefix } from "../net/ip.ts";
import { directedBroadcast } from "../net/multicast.ts";
import type { Tun } from "../net/tun.ts";
import type { DaemonConfig } from "./config.ts";

/** What `weft status` reports about multicast. */
export interface MulticastStatus extends MulticastCounters {
  readonly enabled: boolean;
  readonly packetsPerSecond: number;
  readonly burst: number;
}

/** Receiver burst over sender rate: a member may send twice its per-second rate at once. */
const BURST_SECONDS = 2;

export function startMulticast(
  mesh: Mesh,
  tun: Tun,
  config: Pick<DaemonConfig, "multicast" | "range">,
  clock: Clock,
): MulticastCarrier {
  const range = parsePrefix(config.range);
  const broadcast = range && directedBroadcast(range);
  return attachMulticast(mesh, (packet) => tun.write(packet), {
    clock,
    enabled: config.multicast.enabled,
    packetsPerSecond: config.multicast.packetsPerSecond,
    burst: config.multicast.packetsPerSecond * BURST_SECONDS,
    broadcasts: broadcast ? [broadcast] : [],
  });
}

export function multicastStatus(carrier: MulticastCarrier): MulticastStatus {
  return {
    enabled: carrier.enabled,
    packetsPerSecond: carrier.packetsPerSecond,
    burst: carrier.burst,
    ...carrier.counters(),
  };
}

/**
 * `ranges` (start inclusive, end exclusive) without `address`: no member owns the mesh
 * range's broadcast address (IPAM never hands it out), so taking it out of the routes
 * sends packets to it to the multicast carrier (the Device's `onNoRoute`) instead of to
 * the owner of the top of the range.
 */
export function withoutAddress<R extends { start: number; end: number }>(
  ranges: readonly R[],
  address: number,
): { start: number; end: number }[] {
  return ranges.flatMap((r) =>
    address < r.start || address >= r.end
      ? [r]
      : [
          { start: r.start, end: address },
          { start: address + 1, end: r.end },
        ].filter((part) => part.start < part.end),
  );
}

/** One line for `weft status`. */
export function formatMulticast(status: MulticastStatus): string {
  if (!status.enabled) return "  multicast off";
  const dropped = Object.entries(status.dropped)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(", ");
  return `  multicast on (${status.packetsPerSecond}/s, burst ${status.burst}): sent ${status.sent}, delivered ${status.delivered}${dropped ? `, dropped ${dropped}` : ""}`;
}
