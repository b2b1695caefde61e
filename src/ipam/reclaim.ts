/**
 * Reclaim (`rmpeer`): a peer that is gone for good still owns its ranges in every
 * replica, and only an entry's owner changes it. A removal record hands them on:
 *
 * ```
 *  rmpeer D on any peer ─► record {dead D, heir H, by} ─gossip─► every replica
 *  H holds the record ─► H rewrites D's entries as its own, versions raised by
 *                        TAKEOVER_VERSION_STEP ─gossip─► the space is H's everywhere
 *  D comes back ─► sees the record naming it ─► refuses to allocate, says why
 * ```
 *
 * Partition safety rests on the heir not depending on who runs the command or where:
 * the heir is the lowest-keyed seed other than D (seeds are fixed at bootstrap, the same
 * in every replica). So two sides of a partition that both remove D name the same heir,
 * and only that heir, wherever it is, ever hands out D's addresses. Two records for one
 * dead peer that name different heirs (see `chooseHeir` for when that can happen) merge
 * to the lower-keyed heir, and the conflict is counted.
 */
import type { PeerKey } from "../mesh/gossip-state.ts";
import type { RingEntry } from "./ring-entries.ts";

/** A dead peer's ranges pass to its heir. */
export interface Removal {
  readonly dead: PeerKey;
  readonly heir: PeerKey;
  /** The peer where `rmpeer` ran, for the record's reader. */
  readonly by: PeerKey;
}

/**
 * A takeover raises versions this far above the dead peer's, so a change the dead peer
 * made that never reached the heir cannot carry the same version as the heir's.
 */
export const TAKEOVER_VERSION_STEP = 1 << 20;

/**
 * The heir of `dead`: the lowest-keyed seed that is neither `dead` nor removed. Rings
 * seeded by `dead` alone (a mesh begun by `weft up` on one peer) have no other seed:
 * then the lowest-keyed other owner of ring entries. That fallback is the one case where
 * the two sides of a partition can disagree: when a peer with a lower key gained space
 * on only one side, or a seed was removed on only one side.
 */
export function chooseHeir(
  dead: PeerKey,
  seeds: readonly PeerKey[],
  entries: readonly RingEntry[],
  removed: ReadonlySet<PeerKey>,
): PeerKey | undefined {
  const eligible = (peer: PeerKey) => peer !== dead && !removed.has(peer);
  const seed = [...seeds].sort().find(eligible);
  if (seed !== undefined) return seed;
  const owners = [...new Set(entries.map((entry) => entry.owner))].sort();
  return owners.find(eligible);
}

/** The record of two that wins: the lower-keyed heir (deterministic everywhere). */
export function preferredRemoval(a: Removal, b: Removal): Removal {
  if (a.heir !== b.heir) return a.heir < b.heir ? a : b;
  return a.by <= b.by ? a : b;
}
