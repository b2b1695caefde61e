/**
 * The DNS server on real loopback sockets of this runtime: every kind of answer, load
 * balancing, EDNS(0) sizes and TC with the TCP retry, forwarding to a fake upstream on
 * 127.0.0.1 (timeouts, TCP fallback), and fuzzing. Nothing leaves 127.0.0.1.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { after, before, describe, it } from "node:test";
import * as dnsPacket from "dns-packet";
import { loadRuntime } from "../../runtimes/index.ts";
import { parseResolvConf } from "../../src/dns/resolv-conf.ts";
import { DnsServer } from "../../src/dns/server.ts";
import { createTcpDeframer, frameForTcp } from "../../src/dns/wire.ts";
import type { PacketConn } from "../../src/net/packet-conn.ts";
import { createRandom } from "../../src/sim/index.ts";
import {
  type FakeUpstream,
  LOOPBACK,
  MANY,
  OTHER,
  startFakeUpstream,
  startServer,
  type TestServer,
  testEntries,
} from "./helpers.ts";

const runtime = await loadRuntime();
const WAIT_MS = 3000;
let upstream: FakeUpstream;
let server: TestServer;
let client: PacketConn;
let nextId = 1;

before(async () => {
  upstream = await startFakeUpstream(runtime);
  server = await startServer(runtime, testEntries(runtime), upstream.port);
  client = await runtime.listenUdp({ address: LOOPBACK });
});
after(async () => {
  await Promise.all([server.close(), upstream.close(), client.close()]);
});

interface Ask {
  name: string;
  type?: dnsPacket.RecordType;
  edns?: number;
  id?: number;
}

function queryBytes({ name, type = "A", edns, id }: Ask): Uint8Array {
  const packet: dnsPacket.Packet = {
    id: id ?? nextId++ & 0xffff,
    type: "query",
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: "IN" }],
    additionals:
      edns === undefined
        ? []
        : [{ type: "OPT", name: ".", udpPayloadSize: edns } as dnsPacket.Answer],
  };
  const out = dnsPacket.encode(packet);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Sends raw bytes over UDP; resolves with the answer's bytes, or undefined after `waitMs`. */
function udpExchange(bytes: Uint8Array, waitMs = WAIT_MS): Promise<Uint8Array | undefined> {
  const id = bytes.length >= 2 ? (bytes[0]! << 8) | bytes[1]! : -1;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), waitMs);
    client.onReceive((data) => {
      if (data.length >= 2 && ((data[0]! << 8) | data[1]!) !== id) return;
      clearTimeout(timer);
      resolve(data.slice());
    });
    client.send(bytes, { address: LOOPBACK, port: server.port });
  });
}

async function udpAsk(ask: Ask): Promise<Reply> {
  const bytes = await udpExchange(queryBytes(ask));
  assert.ok(bytes, `no answer for ${ask.name}`);
  return decode(bytes);
}

function tcpAsk(ask: Ask): Promise<Reply> {
  return tcpAskAt(server.port, ask);
}

async function tcpAskAt(port: number, ask: Ask): Promise<Reply> {
  const conn = await runtime.dialTcp({ address: LOOPBACK, port }, WAIT_MS);
  try {
    const bytes = await new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no TCP answer")), WAIT_MS);
      const deframe = createTcpDeframer();
      conn.onData((data) => {
        const [message] = deframe(data);
        if (message) {
          clearTimeout(timer);
          resolve(message);
        }
      });
      conn.write(frameForTcp(queryBytes(ask)));
    });
    return decode(bytes);
  } finally {
    conn.close();
  }
}

/** What dns-packet decodes, with the fields these tests read. */
type Reply = Required<
  Pick<dnsPacket.Packet, "id" | "questions" | "answers" | "authorities" | "additionals">
> & {
  rcode: string;
  flag_aa: boolean;
  flag_tc: boolean;
  flag_rd: boolean;
};

function decode(bytes: Uint8Array | undefined): Reply {
  assert.ok(bytes, "no answer");
  return dnsPacket.decode(
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  ) as unknown as Reply;
}

const data = (p: Reply) => p.answers.map((a) => (a as { data: unknown }).data);

describe(`DNS server on ${runtime.name}: mesh names`, () => {
  it("answers A with every address from every owner, authoritative, with the client's ID and question", async () => {
    const answer = await udpAsk({ name: "Web.Weft.Internal", id: 4242 });
    assert.equal(answer.id, 4242);
    assert.equal(answer.rcode, "NOERROR");
    assert.equal(answer.flag_aa, true);
    assert.equal(answer.flag_rd, true);
    assert.deepEqual(answer.questions, [{ name: "Web.Weft.Internal", type: "A", class: "IN" }]);
    assert.deepEqual(data(answer).sort(), ["10.40.0.1", "10.40.0.2", "10.40.0.3"]);
    assert.ok(
      answer.answers.every(
        (a) => a.name === "Web.Weft.Internal" && (a as { ttl: number }).ttl === 5,
      ),
    );
  });

  it("answers AAAA", async () => {
    assert.deepEqual(data(await udpAsk({ name: "web.weft.internal", type: "AAAA" })), ["fd00::1"]);
  });

  it("answers PTR for IPv4 and IPv6 in the mesh ranges", async () => {
    const v4 = await udpAsk({ name: "3.0.40.10.in-addr.arpa", type: "PTR" });
    assert.deepEqual(data(v4), ["web.weft.internal"]);
    const nibbles = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f";
    const v6 = await udpAsk({ name: `${nibbles}.ip6.arpa`, type: "PTR" });
    assert.deepEqual(data(v6), ["web.weft.internal"]);
    const none = await udpAsk({ name: "99.0.40.10.in-addr.arpa", type: "PTR" });
    assert.equal(none.rcode, "NXDOMAIN");
    assert.equal(none.authorities[0]?.type, "SOA");
    assert.equal(none.authorities[0]?.name, "40.10.in-addr.arpa");
  });

  it("answers NXDOMAIN with the SOA in authority for unknown names in the domain", async () => {
    const answer = await udpAsk({ name: "nobody.weft.internal" });
    assert.equal(answer.rcode, "NXDOMAIN");
    assert.equal(answer.flag_aa, true);
    assert.equal(answer.answers.length, 0);
    const soa = answer.authorities[0] as dnsPacket.SoaAnswer;
    assert.equal(soa.type, "SOA");
    assert.equal(soa.name, "weft.internal");
    assert.equal(soa.data.minimum, 5);
  });

  it("answers NODATA for a name without that type, and for empty non-terminals", async () => {
    for (const ask of [
      { name: "v4only.weft.internal", type: "AAAA" as const },
      { name: "web.weft.internal", type: "MX" as const },
      { name: "deep.weft.internal" },
      { name: "weft.internal" },
    ]) {
      const answer = await udpAsk(ask);
      assert.equal(answer.rcode, "NOERROR", ask.name);
      assert.equal(answer.answers.length, 0, ask.name);
      assert.equal(answer.authorities[0]?.type, "SOA", ask.name);
    }
  });

  it("shuffles the addresses afresh for each answer", async () => {
    const orders = new Set<string>();
    for (let i = 0; i < 20; i++)
      orders.add(data(await udpAsk({ name: "web.weft.internal" })).join(","));
    assert.ok(orders.size >= 3, `only ${orders.size} orders of 3 addresses in 20 answers`);
  });

  it("sets TC over 512 bytes without EDNS, fits EDNS sizes, and answers in full over TCP", async () => {
    const plain = await udpAsk({ name: "many.weft.internal" });
    assert.equal(plain.flag_tc, true);
    assert.equal(plain.answers.length, 0);
    assert.deepEqual(plain.questions[0]?.name, "many.weft.internal");
    const small = await udpAsk({ name: "many.weft.internal", edns: 600 });
    assert.equal(small.flag_tc, true);
    assert.equal(small.additionals[0]?.type, "OPT", "OPT echoed");
    const large = await udpAsk({ name: "many.weft.internal", edns: 4096 });
    assert.equal(large.flag_tc, false);
    assert.equal(large.answers.length, MANY);
    assert.equal(large.additionals[0]?.type, "OPT");
    const overTcp = await tcpAsk({ name: "many.weft.internal" });
    assert.equal(overTcp.flag_tc, false);
    assert.equal(overTcp.answers.length, MANY);
  });

  it("refuses EDNS versions other than 0 with BADVERS", async () => {
    const bytes = queryBytes({ name: "web.weft.internal", edns: 1232 });
    bytes[bytes.length - 5] = 1; // the OPT record's version byte
    const answer = decode(await udpExchange(bytes));
    const opt = answer.additionals[0] as { extendedRcode?: number };
    assert.equal(opt.extendedRcode, 1);
  });

  it("replays cached answers with the query's ID, in a fresh order, until the names change", async () => {
    const entries = testEntries(runtime);
    const local = await startServer(runtime, entries, upstream.port);
    try {
      const ask = (id: number) =>
        decode(
          local.server.handle(
            queryBytes({ name: "Many.weft.internal", edns: 4096, id }),
            "udp",
          ) as Uint8Array,
        );
      const first = ask(1);
      const orders = new Set<string>();
      for (let id = 2; id < 12; id++) {
        const again = ask(id);
        assert.equal(again.id, id, "the query's ID");
        assert.equal(again.questions[0]?.name, "Many.weft.internal", "the query's spelling");
        assert.deepEqual(data(again).sort(), data(first).sort(), "the same addresses");
        orders.add(data(again).join(","));
      }
      assert.ok(orders.size >= 9, `${orders.size} orders of ${MANY} addresses in 10 replays`);
      entries.add("many.weft.internal", "10.40.2.1");
      assert.equal(ask(12).answers.length, MANY + 1, "a new address shows at once");
      entries.remove("many.weft.internal", "10.40.2.1");
      assert.equal(ask(13).answers.length, MANY, "and a removed one goes at once");
    } finally {
      await local.close();
    }
  });

  it("sees a removed peer's names go", async () => {
    const entries = testEntries(runtime);
    const local = await startServer(runtime, entries, upstream.port);
    try {
      const ask = queryBytes({ name: "web.weft.internal" });
      const before = decode(local.server.handle(ask, "udp") as Uint8Array);
      assert.equal(before.answers.length, 3);
      entries.removePeer(OTHER);
      const afterRemoval = decode(local.server.handle(ask, "udp") as Uint8Array);
      assert.deepEqual(data(afterRemoval).sort(), ["10.40.0.1", "10.40.0.2"]);
    } finally {
      await local.close();
    }
  });
});

describe(`DNS server on ${runtime.name}: forwarding`, () => {
  it("forwards other names to the upstream, with the client's ID and question", async () => {
    const answer = await udpAsk({ name: "Example.Test", id: 777 });
    assert.equal(answer.id, 777);
    assert.equal(answer.rcode, "NOERROR");
    assert.deepEqual(answer.questions[0], { name: "Example.Test", type: "A", class: "IN" });
    assert.deepEqual(data(answer), ["192.0.2.1"]);
  });

  it("retries over TCP when the upstream truncates", async () => {
    const tcpBefore = upstream.tcpQueries;
    const answer = await udpAsk({ name: "big.test" });
    assert.deepEqual(data(answer), ["198.51.100.7"]);
    assert.equal(upstream.tcpQueries, tcpBefore + 1);
  });

  it("answers SERVFAIL when the upstream times out", async () => {
    const started = performance.now();
    const answer = await udpAsk({ name: "slow.test", id: 999 });
    assert.equal(answer.rcode, "SERVFAIL");
    assert.equal(answer.id, 999);
    assert.ok(performance.now() - started >= 250, "waited for the timeout");
  });

  it("forwards queries that came over TCP", async () => {
    assert.deepEqual(data(await tcpAsk({ name: "example.test" })), ["192.0.2.1"]);
  });

  it("parses resolv.conf nameservers", () => {
    const text =
      "# comment\nsearch example.com\nnameserver 10.0.0.53\nnameserver fd00::0053 # x\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\n";
    assert.deepEqual(parseResolvConf(text), [
      { address: "10.0.0.53", port: 53 },
      { address: "fd00::53", port: 53 },
    ]);
  });
});

describe(`DNS server on ${runtime.name}: bad input`, () => {
  it("answers FORMERR to bytes with a header, drops shorter ones and responses", async () => {
    const garbage = Uint8Array.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    const answer = decode(await udpExchange(garbage));
    assert.equal(answer.id, 0x1234);
    assert.equal(answer.rcode, "FORMERR");
    assert.equal(await udpExchange(Uint8Array.from([1, 2, 3]), 300), undefined);
    const response = queryBytes({ name: "web.weft.internal" });
    response[2]! |= 0x80;
    assert.equal(await udpExchange(response, 300), undefined);
  });

  // The 100,000 bad packets: 80,000 through the handler (synchronous, so seconds),
  // 20,000 over real sockets: 16,000 datagrams and 4,000 framed TCP messages.
  it("survives 80,000 random and mutated packets through its handler", async () => {
    const random = createRandom(6);
    const quiet = new DnsServer({
      udp: await runtime.listenUdp({ address: LOOPBACK }),
      names: testEntries(runtime),
      clock: runtime.clock,
    });
    try {
      const seeds = [
        "web.weft.internal",
        "many.weft.internal",
        "3.0.40.10.in-addr.arpa",
        "x.test",
      ].map((name) => queryBytes({ name, edns: 1232 }));
      let answered = 0;
      for (let i = 0; i < 80_000; i++) {
        const packet = fuzzPacket(random, seeds);
        const outcome = await quiet.handle(packet, i % 2 === 0 ? "udp" : "tcp");
        if (outcome !== undefined) answered++;
      }
      assert.ok(answered > 10_000, `answered ${answered} of 80,000`);
      assert.equal(quiet.counters().queries, 80_000, "every packet reached the handler");
      const check = quiet.handle(queryBytes({ name: "web.weft.internal" }), "udp") as Uint8Array;
      assert.equal(decode(check).answers.length, 3);
    } finally {
      await quiet.close();
    }
  });

  it("survives 16,000 random and mutated datagrams over UDP and keeps answering", async () => {
    const random = createRandom(7);
    const seeds = ["web.weft.internal", "nobody.weft.internal", "x.test"].map((name) =>
      queryBytes({ name }),
    );
    client.onReceive(() => {});
    const before = server.server.counters().queries;
    const total = 16_000;
    // In batches the socket buffers hold, waiting for the server to read each one, so
    // the kernel drops none and every datagram is really parsed.
    for (let sent = 0; sent < total; ) {
      for (let i = 0; i < 250; i++, sent++)
        client.send(fuzzPacket(random, seeds), { address: LOOPBACK, port: server.port });
      await until(() => server.server.counters().queries - before >= sent, 1000);
    }
    const received = server.server.counters().queries - before;
    assert.ok(received >= total * 0.99, `the server read ${received} of ${total} datagrams`);
    const answer = await udpAsk({ name: "web.weft.internal" });
    assert.equal(answer.answers.length, 3);
    assert.ok(server.server.counters().malformed > 1000, "many were malformed");
  });

  it("survives 4,000 framed bad messages and a stream of garbage over TCP", async () => {
    const random = createRandom(8);
    const seeds = ["web.weft.internal", "many.weft.internal", "x.test"].map((name) =>
      queryBytes({ name }),
    );
    // Without a forwarder every frame is answered at once: with one, mutated names outside
    // the domain would fill the 16 forwards a TCP client may have in flight, and the
    // frames after them would be dropped unread (the UDP test covers forwarding).
    const tcp = await runtime.listenTcp({ address: LOOPBACK });
    const quiet = new DnsServer({
      udp: await runtime.listenUdp({ address: LOOPBACK }),
      tcp,
      names: testEntries(runtime),
      clock: runtime.clock,
    });
    const conn = await runtime.dialTcp({ address: LOOPBACK, port: tcp.localPort }, WAIT_MS);
    const garbage = await runtime.dialTcp({ address: LOOPBACK, port: tcp.localPort }, WAIT_MS);
    try {
      conn.onData(() => {});
      garbage.onData(() => {});
      for (let sent = 0; sent < 4000; ) {
        const frames: Uint8Array[] = [];
        for (let i = 0; i < 100; i++, sent++) frames.push(frameForTcp(fuzzPacket(random, seeds)));
        conn.write(concat(frames));
        // Unframed noise: the declared lengths are random, so messages appear at random.
        garbage.write(Uint8Array.from({ length: 200 }, () => Math.floor(random.next() * 256)));
        await until(() => quiet.counters().queries >= sent, 1000);
      }
      const read = quiet.counters().queries;
      assert.ok(read >= 4000, `the server read ${read} of 4,000 frames`);
      assert.ok(quiet.counters().malformed > 200, "many were malformed");
      const check = await tcpAskAt(tcp.localPort, { name: "v4only.weft.internal" });
      assert.deepEqual(data(check), ["10.40.0.9"]);
    } finally {
      conn.close();
      garbage.close();
      await quiet.close();
    }
  });
});

/** Resolves once `done()` holds (checked every millisecond or so), or after `limitMs`. */
async function until(done: () => boolean, limitMs: number): Promise<void> {
  const end = performance.now() + limitMs;
  while (!done() && performance.now() < end) await new Promise((r) => setTimeout(r, 1));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A random packet, or a valid query with a few bytes flipped, cut or added. */
function fuzzPacket(random: ReturnType<typeof createRandom>, seeds: Uint8Array[]): Uint8Array {
  const int = (n: number) => Math.floor(random.next() * n);
  if (int(4) === 0) return Uint8Array.from({ length: int(80) }, () => int(256));
  const packet = seeds[int(seeds.length)]!.slice();
  const flips = 1 + int(4);
  for (let f = 0; f < flips; f++) packet[int(packet.length)] = int(256);
  if (int(4) === 0) return packet.slice(0, int(packet.length));
  if (int(8) === 0)
    return Uint8Array.from([...packet, ...Array.from({ length: int(20) }, () => int(256))]);
  return packet;
}
