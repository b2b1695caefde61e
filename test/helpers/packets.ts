/**
 * Hand-built IPv4 packets for tests that push traffic through a tunnel without a TUN:
 * ICMP echo and UDP, with real checksums so a kernel on the far side accepts them.
 */

/** The Internet checksum (RFC 1071) of `data`, optionally continuing a partial sum. */
export function internetChecksum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < data.length; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length % 2) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipv4Bytes(address: string): number[] {
  return address.split(".").map(Number);
}

/** An IPv4 header plus `payload`, protocol `protocol`, TTL 64, DF set. */
export function ipv4Packet(
  source: string,
  destination: string,
  protocol: number,
  payload: Uint8Array,
): Uint8Array {
  const packet = new Uint8Array(20 + payload.length);
  const view = new DataView(packet.buffer);
  packet[0] = 0x45;
  view.setUint16(2, packet.length);
  view.setUint16(4, Math.floor(Math.random() * 0xffff));
  view.setUint16(6, 0x4000);
  packet[8] = 64;
  packet[9] = protocol;
  packet.set(ipv4Bytes(source), 12);
  packet.set(ipv4Bytes(destination), 16);
  view.setUint16(10, internetChecksum(packet.subarray(0, 20)));
  packet.set(payload, 20);
  return packet;
}

/** An ICMP echo request (type 8) from `source` to `destination`. */
export function icmpEchoRequest(
  source: string,
  destination: string,
  id: number,
  sequence: number,
  data: Uint8Array,
): Uint8Array {
  const icmp = new Uint8Array(8 + data.length);
  const view = new DataView(icmp.buffer);
  icmp[0] = 8;
  view.setUint16(4, id);
  view.setUint16(6, sequence);
  icmp.set(data, 8);
  view.setUint16(2, internetChecksum(icmp));
  return ipv4Packet(source, destination, 1, icmp);
}

/** An ICMP echo reply answering `request` (an IPv4 ICMP echo request), as a host would. */
export function icmpEchoReplyTo(request: Uint8Array): Uint8Array {
  const parsed = parseIpv4(request)!;
  const icmp = parsed.payload.slice();
  icmp[0] = 0;
  icmp[2] = 0;
  icmp[3] = 0;
  new DataView(icmp.buffer).setUint16(2, internetChecksum(icmp));
  return ipv4Packet(parsed.destination, parsed.source, 1, icmp);
}

/** A UDP datagram in an IPv4 packet, with the pseudo-header checksum. */
export function udpPacket(
  source: string,
  destination: string,
  sourcePort: number,
  destinationPort: number,
  data: Uint8Array,
): Uint8Array {
  const udp = new Uint8Array(8 + data.length);
  const view = new DataView(udp.buffer);
  view.setUint16(0, sourcePort);
  view.setUint16(2, destinationPort);
  view.setUint16(4, udp.length);
  udp.set(data, 8);
  const pseudo = new Uint8Array(12);
  pseudo.set(ipv4Bytes(source), 0);
  pseudo.set(ipv4Bytes(destination), 4);
  pseudo[9] = 17;
  new DataView(pseudo.buffer).setUint16(10, udp.length);
  const partial = ~internetChecksum(pseudo) & 0xffff;
  view.setUint16(6, internetChecksum(udp, partial) || 0xffff);
  return ipv4Packet(source, destination, 17, udp);
}

export interface ParsedIpv4 {
  source: string;
  destination: string;
  protocol: number;
  payload: Uint8Array;
}

/** The fields of an IPv4 packet, or undefined when it is not one. */
export function parseIpv4(packet: Uint8Array): ParsedIpv4 | undefined {
  if (packet.length < 20 || packet[0]! >> 4 !== 4) return undefined;
  const headerLength = (packet[0]! & 15) * 4;
  const total = (packet[2]! << 8) | packet[3]!;
  if (total > packet.length || headerLength < 20) return undefined;
  return {
    source: [...packet.subarray(12, 16)].join("."),
    destination: [...packet.subarray(16, 20)].join("."),
    protocol: packet[9]!,
    payload: packet.subarray(headerLength, total),
  };
}
