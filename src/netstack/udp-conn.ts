/** A UDP port of the userspace stack behind the core's PacketConn seam. */
import { formatIp } from "../net/ip.ts";
import type { Endpoint, PacketConn } from "../net/packet-conn.ts";
import type { Netstack } from "./netstack.ts";

/**
 * A UDP port of a Netstack as a PacketConn (port 0: a free ephemeral one), for the
 * daemon's DNS server and SOCKS5 UDP ASSOCIATE. Sends that the Netstack refuses (too
 * large, no address of that family) are dropped, as a PacketConn's are.
 */
export function netstackUdpConn(netstack: Netstack, port = 0): PacketConn {
  let handler: ((data: Uint8Array, from: Endpoint) => void) | undefined;
  const binding = netstack.bindUdp(port, (datagram) =>
    handler?.(datagram.data, { address: formatIp(datagram.source), port: datagram.sourcePort }),
  );
  let closed = false;
  return {
    localPort: binding.port,
    send(data, to) {
      if (closed) return;
      try {
        netstack.sendUdp(binding.port, to.address, to.port, data);
      } catch {
        // Dropped, like any datagram.
      }
    },
    onReceive(h) {
      if (!closed) handler = h;
    },
    close() {
      closed = true;
      handler = undefined;
      binding.close();
      return Promise.resolve();
    },
  };
}
