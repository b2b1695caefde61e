/** The shape of a peer's key in IPAM's wire data: what `wg` prints for a 32-byte public key. */
import type { PeerKey } from "../mesh/gossip-state.ts";

// 32 bytes are 43 base64 digits, the last carrying 2 padding bits (so one of 16), then "=".
const PEER_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** True when `value` is a canonical base64 WireGuard public key. */
export function isPeerKey(value: unknown): value is PeerKey {
  return typeof value === "string" && PEER_KEY.test(value);
}
