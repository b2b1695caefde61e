/**
 * SOCKS5 UDP ASSOCIATE: a real loopback UDP client and relay socket, the mesh side on an
 * in-process Netstack with a UDP echo. Datagrams by IP and by name come back with the
 * sender in the header; FRAG ≠ 0, strangers on the mesh, and other local senders are
 * dropped; the association ends with its control connection.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { loadRuntime } from "../../runtimes/index.ts";
import type { Endpoint, PacketConn } from "../../src/net/packet-conn.ts";
import { netstackUdpConn } from "../../src/netstack/index.ts";
import {
  encodeGreeting,
  encodeRequest,
  encodeUdpDatagram,
  parseReply,
  parseUdpDatagram,
  SOCKS_REPLY,
  type SocksAddress,
  serveSocks5,
  socksAddress,
} from "../../src/proxy/index.ts";
import type { Runtime } from "../../src/runtime.ts";
import { FAR, LOOPBACK, type Mesh, meshPair, NAMES, RawClient, sleep, waitFor } from "./helpers.ts";

let runtime: Runtime;
let mesh: Mesh;
let server: ReturnType<typeof serveSocks5>;
let port: number;
/** The mesh-side ports the far echo has heard from. */
const heardFrom: number[] = [];

before(async () => {
  runtime = await loadRuntime();
  mesh = meshPair();
  const far = mesh.farStack;
  far.bindUdp(53, (d) => {
    heardFrom.push(d.sourcePort);
    far.sendUdp(53, d.source, d.sourcePort, d.data);
  });
  const listener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
  port = listener.localPort;
  server = serveSocks5({
    listener,
    dial: (host, p) => mesh.near.dial(host, p),
    udp: {
      listenUdp: (options) => runtime.listenUdp(options),
      bindMesh: () => netstackUdpConn(mesh.nearStack),
      resolve: async (name) => {
        const ip = NAMES[name];
        if (ip === undefined) throw new Error("no such name");
        return ip;
      },
    },
  });
});

after(async () => {
  await server.close();
  mesh.close();
});

interface Datagram {
  readonly data: Uint8Array;
  readonly from: Endpoint;
}

/** A local UDP socket that keeps what it receives. */
async function udpClient(): Promise<{ conn: PacketConn; got: Datagram[] }> {
  const conn = await runtime.listenUdp({ address: LOOPBACK, port: 0 });
  const got: Datagram[] = [];
  conn.onReceive((data, from) => got.push({ data: data.slice(), from }));
  return { conn, got };
}

async function associate(
  requested: SocksAddress,
): Promise<{ control: RawClient; relay: Endpoint }> {
  const control = await RawClient.dial(runtime, port);
  control.write(encodeGreeting([0]));
  assert.deepEqual(await control.read(2), Uint8Array.of(5, 0));
  control.write(encodeRequest({ command: 3, address: requested }));
  const reply = parseReply(await control.read(10));
  assert.equal(reply.status, "ok");
  if (reply.status !== "ok") throw new Error("no reply");
  assert.equal(reply.value.reply, SOCKS_REPLY.SUCCEEDED);
  assert.equal(reply.value.address.host, LOOPBACK);
  return { control, relay: { address: reply.value.address.host, port: reply.value.address.port } };
}

const text = (s: string) => new TextEncoder().encode(s);

describe("SOCKS5 UDP ASSOCIATE", () => {
  test("datagrams by IP and by name come back with the sender in the header", async () => {
    const { conn, got } = await udpClient();
    const { control, relay } = await associate(socksAddress("0.0.0.0", 0));
    try {
      conn.send(
        encodeUdpDatagram({ fragment: 0, address: socksAddress(FAR, 53), data: text("by ip") }),
        relay,
      );
      conn.send(
        encodeUdpDatagram({
          fragment: 0,
          address: { type: "domain", host: "far.mesh", port: 53 },
          data: text("by name"),
        }),
        relay,
      );
      await waitFor(() => got.length >= 2, 5000, "two answers");
      const answers = got.map((d) => parseUdpDatagram(d.data));
      const bodies = answers.map((a) =>
        a.status === "ok" ? new TextDecoder().decode(a.value.data) : "?",
      );
      assert.deepEqual(bodies.sort(), ["by ip", "by name"]);
      for (const a of answers) {
        assert.equal(a.status, "ok");
        if (a.status === "ok")
          assert.deepEqual(a.value.address, { type: "ipv4", host: FAR, port: 53 });
      }
      for (const d of got) assert.deepEqual(d.from, relay);
      assert.ok(server.counters().datagramsToMesh >= 2);
      assert.ok(server.counters().datagramsFromMesh >= 2);
    } finally {
      control.conn.close();
      await conn.close();
    }
  });

  test("FRAG ≠ 0, strangers on the mesh and a second local sender are dropped", async () => {
    const { conn, got } = await udpClient();
    const other = await udpClient();
    const { control, relay } = await associate(socksAddress("0.0.0.0", 0));
    try {
      const before = server.counters().datagramsDropped;
      conn.send(
        encodeUdpDatagram({ fragment: 0, address: socksAddress(FAR, 53), data: text("first") }),
        relay,
      );
      await waitFor(() => got.length === 1, 5000, "the first answer");
      conn.send(
        encodeUdpDatagram({ fragment: 1, address: socksAddress(FAR, 53), data: text("frag") }),
        relay,
      );
      conn.send(text("not a socks datagram"), relay);
      other.conn.send(
        encodeUdpDatagram({ fragment: 0, address: socksAddress(FAR, 53), data: text("other") }),
        relay,
      );
      // A mesh peer the client never wrote to (port 54) sends to the association's port.
      mesh.farStack.sendUdp(54, "10.40.0.1", heardFrom.at(-1)!, text("spam"));
      await waitFor(() => server.counters().datagramsDropped >= before + 4, 5000, "four drops");
      await sleep(100);
      assert.equal(got.length, 1);
      assert.equal(other.got.length, 0);
    } finally {
      control.conn.close();
      await conn.close();
      await other.conn.close();
    }
  });

  test("the association ends with its control connection", async () => {
    const { conn, got } = await udpClient();
    const { control, relay } = await associate(socksAddress(LOOPBACK, conn.localPort));
    conn.send(
      encodeUdpDatagram({ fragment: 0, address: socksAddress(FAR, 53), data: text("1") }),
      relay,
    );
    await waitFor(() => got.length === 1, 5000, "an answer");
    control.conn.end();
    await control.until(() => control.closed, 5000, "the control connection to close");
    await waitFor(() => server.counters().active === 0, 5000, "no sessions");
    conn.send(
      encodeUdpDatagram({ fragment: 0, address: socksAddress(FAR, 53), data: text("2") }),
      relay,
    );
    await sleep(200);
    assert.equal(got.length, 1);
    await conn.close();
  });

  test("without the udp hooks, UDP ASSOCIATE is answered 0x07", async () => {
    const listener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
    const plain = serveSocks5({ listener, dial: (host, p) => mesh.near.dial(host, p) });
    try {
      const client = await RawClient.dial(runtime, listener.localPort);
      client.write(encodeGreeting([0]));
      await client.read(2);
      client.write(encodeRequest({ command: 3, address: socksAddress("0.0.0.0", 0) }));
      assert.equal((await client.read(10))[1], SOCKS_REPLY.COMMAND_NOT_SUPPORTED);
    } finally {
      await plain.close();
    }
  });
});
