/**
 * IPAM's errors. Domain errors carry a stable `code` that callers may switch on; gossip
 * refusals extend the mesh's `GossipRejected`, so the engine counts them like any other.
 */
import { GossipRejected, type PeerKey } from "../mesh/gossip-state.ts";

export type IpamErrorCode =
  | "NO_SPACE_TIMEOUT"
  | "NOT_SEEDED_TIMEOUT"
  | "OBSERVER"
  | "ADDRESS_OUTSIDE_RANGE"
  | "ADDRESS_OWNED_ELSEWHERE"
  | "ADDRESS_IN_USE"
  | "HANDLE_HAS_OTHER_ADDRESS"
  | "CLOSED"
  | "STATE_INVALID"
  | "REMOVED"
  | "CANNOT_REMOVE";

/** An allocation or claim that cannot be honoured; the message says what to do. */
export class IpamError extends Error {
  override readonly name = "IpamError";
  readonly code: IpamErrorCode;

  constructor(code: IpamErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Why a ring delta was refused; stable for counting. */
export type RingRejectionCode =
  | "MALFORMED"
  | "TOO_LARGE"
  | "OTHER_RANGE"
  | "OTHER_SEEDS"
  | "SAME_VERSION_DIFFERS"
  | "CHANGES_OUR_ENTRY"
  | "INSIDE_OUR_RANGE"
  | "END_GREW"
  | "OVERLAP";

/** A refused ring delta: nothing of it was applied. */
export class RingRejected extends GossipRejected {
  readonly code: RingRejectionCode;

  constructor(code: RingRejectionCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Two meshes met: their rings were seeded by different peers and must never merge. */
export class RingSeedMismatch extends RingRejected {
  readonly ourSeeds: readonly PeerKey[];
  readonly theirSeeds: readonly PeerKey[];

  constructor(ourSeeds: readonly PeerKey[], theirSeeds: readonly PeerKey[]) {
    super(
      "OTHER_SEEDS",
      `Refusing a ring seeded by [${theirSeeds.join(", ")}]: ours was seeded by ` +
        `[${ourSeeds.join(", ")}], so these are two separate meshes; ` +
        "reset IPAM on the peers of one of them before joining them",
    );
    this.ourSeeds = ourSeeds;
    this.theirSeeds = theirSeeds;
  }
}
