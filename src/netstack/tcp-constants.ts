/**
 * TCP constants: values the RFCs fix first (with their names), then our own tunables,
 * each with the reason for its value. Units are in the names.
 */

// RFC 9293 §3.7.1: the MSS a peer is assumed to accept when its SYN carries none (IPv4).
export const DEFAULT_SEND_MSS_BYTES = 536;
export const TCP_HEADER_BYTES = 20;
export const IPV4_HEADER_BYTES = 20;
export const IPV6_HEADER_BYTES = 40;
/** RFC 7323 §2.3: the largest window shift. */
export const MAX_WINDOW_SCALE = 14;
/** The 16-bit window field's largest value. */
export const MAX_WINDOW_FIELD = 0xffff;
/** RFC 2018 §3: at most 4 SACK blocks fit in 40 option bytes (3 with timestamps; we send none). */
export const MAX_SACK_BLOCKS = 4;

// RFC 6298 §2: the initial RTO, and the upper bound it allows (at least 60 s).
export const INITIAL_RTO_MS = 1000;
export const MAX_RTO_MS = 60_000;
/**
 * RFC 6298 §2.4 asks for a 1 s minimum; like Linux we use 200 ms, because mesh paths are
 * often a few milliseconds long and a lost segment at the tail would otherwise stall the
 * stream for a full second. It stays safely above our delayed-ACK time (40 ms), so a
 * delayed ACK alone never causes a spurious retransmission.
 */
export const MIN_RTO_MS = 200;
/** RFC 6298 §2: the clock granularity G used in RTO = SRTT + max(G, 4 * RTTVAR). */
export const RTO_CLOCK_GRANULARITY_MS = 1;

/**
 * RFC 9293 §3.8.6.3 allows up to 500 ms; 40 ms (Linux's minimum) keeps request/response
 * latency low and sits well under MIN_RTO_MS.
 */
export const DELAYED_ACK_MS = 40;
/** Acknowledge at least every second data segment (RFC 5681 §4.2). */
export const DELAYED_ACK_SEGMENTS = 2;
/** RFC 5681 §3.2: fast retransmit after this many duplicate ACKs. */
export const DUPLICATE_ACK_THRESHOLD = 3;
/** The shortest tail loss probe timeout: two RTTs on loopback would be far below timer resolution. */
export const PROBE_MIN_MS = 10;
/** RFC 8985 §7.2's WCDelAckT: how long a receiver may hold the ACK of one lone segment. */
export const DELAYED_ACK_WORST_MS = 200;

/** RFC 9293 §3.4.1 suggests 2 minutes; 30 s (as Linux's 60 s TIME-WAIT implies) is common. */
export const DEFAULT_MSL_MS = 30_000;
/** Give up after this many retransmissions of data or FIN (RFC 9293 R2: at least 100 s). */
export const MAX_DATA_RETRANSMISSIONS = 15;
/** Give up after this many retransmissions of a SYN (R2 for SYN: at least 3 minutes with backoff). */
export const MAX_SYN_RETRANSMISSIONS = 6;

/** Send and receive buffers: 256 KiB fills a 20 ms path at 100 Mbit/s, at bounded memory. */
export const DEFAULT_SEND_BUFFER_BYTES = 256 * 1024;
export const DEFAULT_RECEIVE_BUFFER_BYTES = 256 * 1024;
/** Out-of-order segments kept per connection (bytes are bounded by the window already). */
export const MAX_REASSEMBLY_SEGMENTS = 256;
/** SACK ranges the sender remembers per connection (4 blocks per ACK, merged as they come). */
export const MAX_SACK_SCOREBOARD_RANGES = 32;
/** RFC 5961 §7: challenge ACKs per connection per second, so they cannot be amplified. */
export const CHALLENGE_ACKS_PER_SECOND = 10;
/** The path MTU assumed when none is configured: weft's TUN MTU. */
export const DEFAULT_PATH_MTU_BYTES = 1420;
