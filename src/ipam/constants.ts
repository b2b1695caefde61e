/**
 * IPAM's tunables and wire limits in one place, units in the names. None of these come
 * from a spec; they are our choices, with the reason beside each.
 */

/** The mesh's address range when none is configured (the default). */
export const DEFAULT_RANGE = "10.40.0.0/16";

/** Format version carried by every ring gossip item and unicast message; bump on change. */
export const IPAM_WIRE_VERSION = 1;

/** At most this many entries in one decoded ring delta: a /16 split to single hosts is 65,536. */
export const MAX_RING_ENTRIES = 65_536;
/** At most this many gossip items in one delta handed to `decode`. */
export const MAX_DELTA_ITEMS = 4_096;
/** At most this many entries in one gossip item, so one item stays small. */
export const MAX_ENTRIES_PER_ITEM = 1_024;
/** At most this many seeds: consensus among more static peers than this is not a bootstrap. */
export const MAX_SEEDS = 64;
/** At most this many distinct owners named in one gossip item. */
export const MAX_OWNERS_PER_ITEM = 1_024;
/** Unicast IPAM messages are tiny; anything longer is refused before decoding. */
export const MAX_UNICAST_BYTES = 16_384;

/** How long `allocate` and `claim` wait for space (donation or bootstrap) before failing. */
export const ALLOCATE_TIMEOUT_MS = 30_000;
/** How often a peer without space asks again, perhaps another donor. */
export const DONATION_RETRY_MS = 2_000;
/** A donor that gave nothing is skipped for this long when choosing whom to ask. */
export const DONOR_BACKOFF_MS = 6_000;
/**
 * Free counts in ring entries are reports for choosing donors, not the truth (the owner's
 * space is): batch them so a burst of allocations costs one gossip update, not one each.
 */
export const FREE_REPORT_DELAY_MS = 1_000;

/** A Paxos proposer that heard nothing decisive retries after this, plus jitter. */
export const PAXOS_RETRY_MS = 1_000;
/** Upper bound of the random extra delay before a retry, so duelling proposers separate. */
export const PAXOS_JITTER_MS = 1_000;

/** The Store blob IPAM saves its state under. */
export const IPAM_STORE_NAME = "ipam";
/** Format version of the saved state (state-codec.ts); bump on change. */
export const IPAM_STATE_VERSION = 1;
/**
 * A saved state larger than this is refused before decoding: a /16 split to single hosts
 * (65,536 entries and owners) with 65,536 allocations of long handles stays well below.
 */
export const MAX_STATE_BYTES = 64 * 1024 * 1024;
/** Longest allocation handle (a container id is 64, a DNS name 253). */
export const MAX_HANDLE_LENGTH = 256;
