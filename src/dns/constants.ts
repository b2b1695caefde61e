/**
 * DNS constants: RFC values (RFC 1035, RFC 6891, RFC 2308) apart from weft's tunables.
 */

// RFC 1035 §2.3.4: labels of 1 to 63 octets, names of at most 255 octets on the wire
// (253 characters of text without the trailing dot).
export const MAX_LABEL_BYTES = 63;
export const MAX_NAME_WIRE_BYTES = 255;
/** RFC 1035 §4.2.1: a UDP message without EDNS holds at most 512 bytes. */
export const CLASSIC_UDP_BYTES = 512;
/** RFC 1035 §4.2.2: a TCP message is framed by a 16-bit length. */
export const MAX_TCP_MESSAGE_BYTES = 65535;
/** RFC 1035 §4.1.1: the header. */
export const HEADER_BYTES = 12;

// --- weft's tunables ---

/** The mesh domain when none is configured. */
export const DEFAULT_DOMAIN = "weft.internal.";
/**
 * TTL of answers for mesh names, in seconds. Short because containers come and go: a
 * client learns of a removed address within this long. Answers come from memory on the
 * same host, so re-asking is cheap. Also the SOA minimum, so negative answers (RFC 2308)
 * are cached no longer.
 */
export const DEFAULT_TTL_SECONDS = 5;
/**
 * The largest UDP answer we send, whatever the client advertises (RFC 6891 §6.2.5 lets a
 * server choose less): 4,096 avoids IP fragmentation on common paths, as BIND's default does.
 */
export const MAX_UDP_ANSWER_BYTES = 4096;
/** Encoded answers the server keeps for repeated queries (`answer-cache.ts`); full means emptied. */
export const MAX_CACHED_ANSWERS = 4096;
/** Queries larger than this are answered afresh: typical queries are well under 100 bytes. */
export const MAX_CACHED_QUERY_BYTES = 512;
/** How long the forwarder waits for one upstream before trying the next (per transport). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 2000;
/** Forwarded queries in flight at once; beyond that, queries get SERVFAIL at once. */
export const MAX_PENDING_FORWARDS = 512;
/** TCP clients at once; more are closed on accept. */
export const MAX_TCP_CLIENTS = 128;
/** A TCP client silent this long is closed (RFC 7766 §6.2.3 suggests seconds). */
export const TCP_IDLE_TIMEOUT_MS = 10_000;
/** Queries one TCP client may have waiting on upstreams at once. */
export const MAX_TCP_QUERIES_IN_FLIGHT = 16;

// --- the entry CRDT ---

/** The gossip channel the entries replicate on. */
export const DNS_CHANNEL = "dns";

/** How long a tombstone is kept after this replica learned of it (see entries.ts). */
export const TOMBSTONE_TTL_MS = 60 * 60_000;
/** Entries (live and tombstones) one owner may have; a local add beyond it throws. */
export const MAX_ENTRIES_PER_OWNER = 4096;
/** Version ranges kept per owner; a chunk that would fragment coverage further waits for anti-entropy. */
export const MAX_RANGES_PER_OWNER = 64;
/** Items one decoded delta may have. */
export const MAX_ITEMS_PER_DELTA = 4096;
/** Entries one item may have. */
export const MAX_ENTRIES_PER_ITEM = 1024;
