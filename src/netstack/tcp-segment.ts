/**
 * A TCP segment as the userspace stack (#10) handles it: the header fields and options
 * decoded, the payload a view. `tcp-header.ts` turns bytes into segments and back; the
 * connection state machine (`tcp-connection.ts`) works on segments only, so it can be
 * tested without bytes.
 *
 * Sequence and acknowledgment numbers are unsigned 32-bit values (compare them with
 * modular arithmetic, RFC 9293 §3.4); the window is the raw 16-bit field (scale it with
 * the shift the peer announced).
 */
export interface TcpFlags {
  readonly fin: boolean;
  readonly syn: boolean;
  readonly rst: boolean;
  readonly psh: boolean;
  readonly ack: boolean;
  readonly urg: boolean;
  readonly ece: boolean;
  readonly cwr: boolean;
}

/** Options this stack understands; others are skipped when decoding. */
export interface TcpOptions {
  /** Maximum segment size (kind 2), only on SYN. */
  readonly mss?: number;
  /** Window scale shift (kind 3, RFC 7323), only on SYN; at most 14. */
  readonly windowScale?: number;
  /** SACK permitted (kind 4, RFC 2018), only on SYN. */
  readonly sackPermitted?: boolean;
  /** SACK blocks (kind 5): [left, right) sequence ranges, at most 4. */
  readonly sack?: readonly (readonly [number, number])[];
  /** Timestamps (kind 8, RFC 7323): value and echo reply. */
  readonly timestamp?: { readonly value: number; readonly echo: number };
}

export interface TcpSegment {
  readonly sourcePort: number;
  readonly destinationPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: TcpFlags;
  readonly window: number;
  readonly urgentPointer: number;
  readonly options: TcpOptions;
  readonly payload: Uint8Array;
}

export const NO_FLAGS: TcpFlags = Object.freeze({
  fin: false,
  syn: false,
  rst: false,
  psh: false,
  ack: false,
  urg: false,
  ece: false,
  cwr: false,
});
