/**
 * WireGuard's constants, named as in the whitepaper (§5.4, §6.1) and wireguard-go's
 * device/constants.go, with units in the names. Spec values first, then our own tunables.
 */

// Protocol identity (whitepaper §5.4).
export const CONSTRUCTION = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
export const IDENTIFIER = "WireGuard v1 zx2c4 Jason@zx2c4.com";
export const LABEL_MAC1 = "mac1----";
export const LABEL_COOKIE = "cookie--";

// Message types and sizes in bytes (whitepaper §5.4.2-5.4.6).
export const MESSAGE_INITIATION_TYPE = 1;
export const MESSAGE_RESPONSE_TYPE = 2;
export const MESSAGE_COOKIE_REPLY_TYPE = 3;
export const MESSAGE_TRANSPORT_TYPE = 4;
export const MESSAGE_INITIATION_SIZE = 148;
export const MESSAGE_RESPONSE_SIZE = 92;
export const MESSAGE_COOKIE_REPLY_SIZE = 64;
export const MESSAGE_TRANSPORT_HEADER_SIZE = 16;
export const MESSAGE_TRANSPORT_MIN_SIZE = MESSAGE_TRANSPORT_HEADER_SIZE + 16; // header + tag
export const MESSAGE_KEEPALIVE_SIZE = MESSAGE_TRANSPORT_MIN_SIZE;

// Field offsets within messages.
export const INITIATION_SENDER_OFFSET = 4;
export const INITIATION_EPHEMERAL_OFFSET = 8;
export const INITIATION_STATIC_OFFSET = 40; // 32 + 16 tag
export const INITIATION_TIMESTAMP_OFFSET = 88; // 12 + 16 tag
export const INITIATION_MAC1_OFFSET = 116;
export const INITIATION_MAC2_OFFSET = 132;
export const RESPONSE_SENDER_OFFSET = 4;
export const RESPONSE_RECEIVER_OFFSET = 8;
export const RESPONSE_EPHEMERAL_OFFSET = 12;
export const RESPONSE_EMPTY_OFFSET = 44; // 0 + 16 tag
export const RESPONSE_MAC1_OFFSET = 60;
export const RESPONSE_MAC2_OFFSET = 76;
export const COOKIE_REPLY_RECEIVER_OFFSET = 4;
export const COOKIE_REPLY_NONCE_OFFSET = 8;
export const COOKIE_REPLY_COOKIE_OFFSET = 32; // 16 + 16 tag
export const TRANSPORT_RECEIVER_OFFSET = 4;
export const TRANSPORT_COUNTER_OFFSET = 8;
export const TRANSPORT_CONTENT_OFFSET = 16;

export const TAI64N_SIZE = 12;
export const COOKIE_SIZE = 16;
export const COOKIE_NONCE_SIZE = 24;
/** Plaintext of transport messages is zero-padded to a multiple of this (whitepaper §5.4.6). */
export const PADDING_MULTIPLE = 16;

// Timers and limits (whitepaper §6.1).
export const REKEY_AFTER_MESSAGES = 2n ** 60n;
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
export const REKEY_AFTER_TIME_MS = 120_000;
export const REJECT_AFTER_TIME_MS = 180_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
export const REKEY_TIMEOUT_MS = 5_000;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
export const COOKIE_REFRESH_TIME_MS = 120_000;
/** A peer's handshake initiations are consumed at most this often (whitepaper §5.1). */
export const HANDSHAKE_INITIATION_RATE_MS = 20;
/** Jitter added to each handshake retransmission, at most (whitepaper §6.1). */
export const REKEY_TIMEOUT_JITTER_MAX_MS = 333;

// Implementation constants (ours, after wireguard-go's where it has one).
/** Packets queued per peer while its handshake is in flight; older ones are dropped first. */
export const STAGED_PACKETS_PER_PEER = 128;
/** Handshake packets accepted per second per source address once under load (wireguard-go). */
export const HANDSHAKES_PER_SECOND_PER_SOURCE = 20;
/** Burst of handshake packets allowed per source address once under load (wireguard-go). */
export const HANDSHAKE_BURST_PER_SOURCE = 5;
/** Handshakes received per second above which the device counts as under load (tunable). */
export const DEFAULT_UNDER_LOAD_HANDSHAKES_PER_SECOND = 1000;
/** How long the device stays under load after the rate falls again (wireguard-go: 1 s). */
export const UNDER_LOAD_AFTER_MS = 1_000;
