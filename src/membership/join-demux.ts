/**
 * One UDP socket, two users: the join exchange (`join-protocol.ts`) and everything else
 * (WireGuard, which the mesh owns). A join message never reaches the mesh, and the join
 * side never sees WireGuard traffic; both send on the same socket, so a joiner's first
 * packets come from the port its tunnels will use.
 */
import type { PacketConn, ReceiveHandler } from "../net/packet-conn.ts";
import { isJoinMessage } from "./join-protocol.ts";

export function splitJoinTraffic(conn: PacketConn): { mesh: PacketConn; join: PacketConn } {
  let meshHandler: ReceiveHandler = () => {};
  let joinHandler: ReceiveHandler = () => {};
  conn.onReceive((data, from) => {
    if (isJoinMessage(data)) joinHandler(data, from);
    else meshHandler(data, from);
  });
  const side = (setHandler: (handler: ReceiveHandler) => void, close: () => Promise<void>) => ({
    get localPort() {
      return conn.localPort;
    },
    send: (data: Uint8Array, to: Parameters<PacketConn["send"]>[1]) => conn.send(data, to),
    onReceive: setHandler,
    close,
  });
  return {
    // Closing the mesh's side closes the socket; the join side only stops listening.
    mesh: side(
      (handler) => {
        meshHandler = handler;
      },
      () => conn.close(),
    ),
    join: side(
      (handler) => {
        joinHandler = handler;
      },
      async () => {
        joinHandler = () => {};
      },
    ),
  };
}
