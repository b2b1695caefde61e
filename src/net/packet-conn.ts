/**
 * The PacketConn seam: datagrams to and from endpoints. Real UDP sockets in `runtimes/`,
 * a simulated network in `src/sim/`. A tunnel device sees only this.
 */

/** Where a datagram goes or came from: an IP address in text form and a UDP port. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** Called for each datagram received; `data` is only valid during the call unless copied. */
export type ReceiveHandler = (data: Uint8Array, from: Endpoint) => void;

export interface PacketConn {
  /** The local port datagrams are received on. */
  readonly localPort: number;
  /**
   * Sends one datagram. Never throws for network conditions (unreachable, buffer full):
   * UDP may drop, and the protocol recovers. After `close()` sends are dropped.
   * The caller may reuse `data` as soon as `send` returns.
   */
  send(data: Uint8Array, to: Endpoint): void;
  /** Sets the one handler for received datagrams (replacing any earlier one). */
  onReceive(handler: ReceiveHandler): void;
  /** Stops receiving and releases the socket; idempotent. No handler call follows it. */
  close(): Promise<void>;
}

/** A stable string key for an endpoint, for maps. */
export function endpointKey(endpoint: Endpoint): string {
  return endpoint.address.includes(":")
    ? `[${endpoint.address}]:${endpoint.port}`
    : `${endpoint.address}:${endpoint.port}`;
}
