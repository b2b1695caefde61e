/**
 * Shared by the DNS tests: a fake upstream resolver and a weft DNS server, both on
 * 127.0.0.1 through the runtime's real sockets. Nothing is sent anywhere but loopback.
 */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { DnsEntries } from "../../src/dns/entries.ts";
import { createForwarder } from "../../src/dns/forwarder.ts";
import { DnsServer } from "../../src/dns/server.ts";
import { createTcpDeframer, frameForTcp } from "../../src/dns/wire.ts";
import { parsePrefix } from "../../src/net/ip.ts";
import type { PacketConn } from "../../src/net/packet-conn.ts";
import type { StreamListener } from "../../src/net/stream.ts";
import type { Runtime } from "../../src/runtime.ts";

export const SELF = `${"S".repeat(42)}A=`;
export const OTHER = `${"O".repeat(42)}A=`;
export const LOOPBACK = "127.0.0.1";
/** Many addresses under one name: too many for 512 bytes, fine with EDNS 4096 or TCP. */
export const MANY = 60;

/**
 * What the fake upstream knows: `example.test.` A 192.0.2.1 (never contacted: it is
 * only data), `big.test.` truncated over UDP and whole over TCP, `slow.test.` never answered.
 */
export interface FakeUpstream {
  readonly port: number;
  readonly udpQueries: number;
  readonly tcpQueries: number;
  close(): Promise<void>;
}

export async function startFakeUpstream(runtime: Runtime): Promise<FakeUpstream> {
  // UDP and TCP on the same port, as a real resolver has; retry if TCP's is taken.
  for (let attempt = 0; ; attempt++) {
    const udp = await runtime.listenUdp({ address: LOOPBACK });
    let tcp: StreamListener;
    try {
      tcp = await runtime.listenTcp({ address: LOOPBACK, port: udp.localPort });
    } catch (error) {
      await udp.close();
      if (attempt < 5) continue;
      throw error;
    }
    return serveFake(udp, tcp);
  }
}

function serveFake(udp: PacketConn, tcp: StreamListener): FakeUpstream {
  const counts = { udp: 0, tcp: 0 };
  const answer = (bytes: Uint8Array, overTcp: boolean): Uint8Array | undefined => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch {
      return undefined;
    }
    const question = query.questions?.[0];
    if (!question || question.name.toLowerCase() === "slow.test") return undefined;
    const big = question.name.toLowerCase() === "big.test";
    const response: dnsPacket.Packet = {
      id: query.id,
      type: "response",
      flags:
        dnsPacket.RECURSION_DESIRED |
        dnsPacket.RECURSION_AVAILABLE |
        (big && !overTcp ? dnsPacket.TRUNCATED_RESPONSE : 0),
      questions: query.questions,
      answers:
        big && !overTcp
          ? []
          : [{ type: "A", name: question.name, ttl: 60, data: big ? "198.51.100.7" : "192.0.2.1" }],
    };
    const out = dnsPacket.encode(response);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  };
  udp.onReceive((data, from) => {
    counts.udp++;
    const out = answer(data.slice(), false);
    if (out) udp.send(out, from);
  });
  tcp.onConnection((conn) => {
    const deframe = createTcpDeframer();
    conn.onData((data) => {
      for (const message of deframe(data)) {
        counts.tcp++;
        const out = answer(message, true);
        if (out) conn.write(frameForTcp(out));
      }
    });
  });
  return {
    port: udp.localPort,
    get udpQueries() {
      return counts.udp;
    },
    get tcpQueries() {
      return counts.tcp;
    },
    close: async () => {
      await Promise.all([udp.close(), tcp.close()]);
    },
  };
}

/** Names the tests ask for, registered by two owners. */
export function testEntries(runtime: Runtime): DnsEntries {
  const entries = new DnsEntries({ self: SELF, clock: runtime.clock });
  const other = new DnsEntries({ self: OTHER, clock: runtime.clock });
  for (const address of ["10.40.0.1", "10.40.0.2", "fd00::1"])
    entries.add("web.weft.internal", address);
  entries.merge(other.add("Web.weft.internal", "10.40.0.3")!, OTHER);
  entries.add("v4only.weft.internal", "10.40.0.9");
  entries.add("a.deep.weft.internal", "10.40.0.10");
  for (let i = 0; i < MANY; i++) entries.add("many.weft.internal", `10.40.1.${i + 1}`);
  return entries;
}

export interface TestServer {
  readonly server: DnsServer;
  readonly port: number;
  close(): Promise<void>;
}

/** A weft DNS server on 127.0.0.1 (UDP and TCP on one port) forwarding to `upstreamPort`. */
export async function startServer(
  runtime: Runtime,
  entries: DnsEntries,
  upstreamPort: number,
  timeoutMs = 300,
): Promise<TestServer> {
  for (let attempt = 0; ; attempt++) {
    const udp = await runtime.listenUdp({ address: LOOPBACK });
    let tcp: StreamListener;
    try {
      tcp = await runtime.listenTcp({ address: LOOPBACK, port: udp.localPort });
    } catch (error) {
      await udp.close();
      if (attempt < 5) continue;
      throw error;
    }
    const forwarder = createForwarder({
      upstreams: [{ address: LOOPBACK, port: upstreamPort }],
      listenUdp: (options) =>
        runtime.listenUdp(options.address === "0.0.0.0" ? { address: LOOPBACK } : options),
      dialTcp: runtime.dialTcp,
      clock: runtime.clock,
      timeoutMs,
      randomBytes: (n) => runtime.crypto.randomBytes(n),
    });
    const server = new DnsServer({
      udp,
      tcp,
      names: entries,
      clock: runtime.clock,
      reverseRanges: [parsePrefix("10.40.0.0/16")!, parsePrefix("fd00::/64")!],
      forwarder,
    });
    return { server, port: udp.localPort, close: () => server.close() };
  }
}
