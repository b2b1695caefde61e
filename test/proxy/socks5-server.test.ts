/**
 * The SOCKS5 server on a real loopback listener, dialling into an in-process userspace
 * stack: SOCKS5 spoken by hand from a raw host connection. Reply codes (refused, unknown
 * name, not on the mesh, unsupported command, bad address type, bad version, no
 * acceptable method), 1 MiB echoed byte-exact, a slow reader that bounds what is buffered,
 * half-close, garbage and timeouts that close only their own connection, the connection
 * bound, username/password, close().
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { loadRuntime } from "../../runtimes/index.ts";
import type { StreamConn } from "../../src/net/stream.ts";
import {
  encodeCredentials,
  encodeGreeting,
  encodeRequest,
  parseReply,
  SOCKS_REPLY,
  type SocksAddress,
  serveSocks5,
  socks5ReplyFor,
} from "../../src/proxy/index.ts";
import type { Runtime } from "../../src/runtime.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";
import {
  echo,
  FAR,
  FAR6,
  LOOPBACK,
  type Mesh,
  meshPair,
  notOnMesh,
  pattern,
  RawClient,
  replyAfterFin,
  sameBytes,
  serveOn,
  sleep,
  TcpError,
  watched,
} from "./helpers.ts";

let runtime: Runtime;
let mesh: Mesh;

const ECHO = 7;
const SOURCE = 19; // chargen-like: writes SOURCE_BYTES then FIN
const UPPER = 5000; // reads to FIN, answers in upper case
const SOURCE_BYTES = 24 * 1024 * 1024;
let sourceProduced = 0;

before(async () => {
  runtime = await loadRuntime();
  mesh = meshPair();
  serveOn(mesh.far, ECHO, echo);
  serveOn(
    mesh.far,
    UPPER,
    replyAfterFin((request) =>
      new TextEncoder().encode(new TextDecoder().decode(request).toUpperCase()),
    ),
  );
  serveOn(mesh.far, SOURCE, async (stream) => {
    const writer = stream.writable.getWriter();
    const chunk = pattern(64 * 1024, 19);
    for (let sent = 0; sent < SOURCE_BYTES; sent += chunk.length) {
      await writer.write(chunk);
      sourceProduced += chunk.length;
    }
    await writer.close();
  });
});

after(() => mesh.close());

interface Proxy {
  readonly port: number;
  readonly server: ReturnType<typeof serveSocks5>;
  readonly conns: StreamConn[];
}

async function startProxy(extra: Partial<Parameters<typeof serveSocks5>[0]> = {}): Promise<Proxy> {
  const listener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
  const conns: StreamConn[] = [];
  const server = serveSocks5({
    listener: watched(listener, conns),
    dial: (host, port) => mesh.near.dial(host, port, { timeoutMs: 5000 }),
    ...extra,
  });
  return { port: listener.localPort, server, conns };
}

/** Greets with no-auth and sends a request; returns the reply code and the client. */
async function request(
  proxy: Proxy,
  address: SocksAddress,
  command = 1,
): Promise<{ reply: number; client: RawClient }> {
  const client = await RawClient.dial(runtime, proxy.port);
  client.write(encodeGreeting([0]));
  assert.deepEqual(await client.read(2), Uint8Array.of(5, 0));
  client.write(encodeRequest({ command, address }));
  const head = await client.read(5);
  const rest = head[3] === 1 ? 5 : head[3] === 4 ? 17 : head[4]! + 2;
  const reply = parseReply(new Uint8Array([...head, ...(await client.read(rest))]));
  assert.equal(reply.status, "ok");
  return { reply: reply.status === "ok" ? reply.value.reply : -1, client };
}

const at = (host: string, port: number): SocksAddress => ({
  type: host.includes(":") ? "ipv6" : /^[0-9.]+$/.test(host) ? "ipv4" : "domain",
  host,
  port,
});

describe("SOCKS5 server", () => {
  let proxy: Proxy;
  before(async () => {
    proxy = await startProxy();
  });
  after(() => proxy.server.close());

  test("CONNECT by IPv4: 1 MiB echoed byte-exact, then FIN both ways", async () => {
    const { reply, client } = await request(proxy, at(FAR, ECHO));
    assert.equal(reply, SOCKS_REPLY.SUCCEEDED);
    const data = pattern(1024 * 1024, 7);
    const writing = client.writeAll(data);
    const back = await client.read(data.length, 30_000);
    await writing;
    assert.equal(back.length, data.length);
    assert.ok(sameBytes(back, data), "echoed bytes differ");
    client.conn.end();
    await client.until(() => client.ended && client.closed, 10_000, "FIN from the proxy");
    assert.equal(client.closeError, undefined);
  });

  test("CONNECT by name and by IPv6", async () => {
    for (const address of [at("far.mesh", ECHO), at(FAR6, ECHO)]) {
      const { reply, client } = await request(proxy, address);
      assert.equal(reply, SOCKS_REPLY.SUCCEEDED, address.host);
      client.write(new TextEncoder().encode("ping"));
      assert.equal(new TextDecoder().decode(await client.read(4)), "ping");
      client.conn.close();
    }
  });

  test("request bytes pipelined before the reply are carried", async () => {
    const client = await RawClient.dial(runtime, proxy.port);
    client.write(
      new Uint8Array([
        ...encodeGreeting([0]),
        ...encodeRequest({ command: 1, address: at(FAR, ECHO) }),
        ...new TextEncoder().encode("early"),
      ]),
    );
    const head = await client.read(2 + 10);
    assert.equal(head[3], SOCKS_REPLY.SUCCEEDED);
    assert.equal(new TextDecoder().decode(await client.read(5)), "early");
    client.conn.close();
  });

  test("a handshake arriving one byte at a time", async () => {
    const client = await RawClient.dial(runtime, proxy.port);
    const bytes = new Uint8Array([
      ...encodeGreeting([0]),
      ...encodeRequest({ command: 1, address: at("far.mesh", ECHO) }),
    ]);
    for (const byte of bytes) {
      client.write(Uint8Array.of(byte));
      await sleep(2);
    }
    assert.deepEqual(await client.read(2), Uint8Array.of(5, 0));
    assert.equal((await client.read(10))[1], SOCKS_REPLY.SUCCEEDED);
    client.write(new TextEncoder().encode("slowly"));
    assert.equal(new TextDecoder().decode(await client.read(6)), "slowly");
    client.conn.close();
  });

  test("50 connections at once, 64 KiB each, all byte-exact", async () => {
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const { reply, client } = await request(proxy, at(i % 2 === 0 ? FAR : "far.mesh", ECHO));
        assert.equal(reply, SOCKS_REPLY.SUCCEEDED);
        const data = pattern(64 * 1024, 1000 + i);
        await client.writeAll(data);
        assert.ok(sameBytes(await client.read(data.length, 30_000), data), `connection ${i}`);
        client.conn.end();
        await client.until(() => client.closed, 10_000, `connection ${i} to close`);
      }),
    );
  });

  test("half-close: the client's FIN reaches the server, whose answer still comes back", async () => {
    const { reply, client } = await request(proxy, at(FAR, UPPER));
    assert.equal(reply, SOCKS_REPLY.SUCCEEDED);
    client.write(new TextEncoder().encode("get / http/1.0\r\n\r\n"));
    client.conn.end();
    const answer = await client.readToEnd();
    assert.equal(new TextDecoder().decode(answer), "GET / HTTP/1.0\r\n\r\n");
    await client.until(() => client.closed, 5000, "close");
    assert.equal(client.closeError, undefined);
  });

  test("reply codes: refused 0x05, unknown name 0x04, unsupported commands 0x07", async () => {
    assert.equal((await request(proxy, at(FAR, 9))).reply, SOCKS_REPLY.CONNECTION_REFUSED);
    assert.equal(
      (await request(proxy, at("nowhere.mesh", 80))).reply,
      SOCKS_REPLY.HOST_UNREACHABLE,
    );
    for (const command of [2, 3, 0x42]) {
      const { reply, client } = await request(proxy, at(FAR, ECHO), command);
      assert.equal(reply, SOCKS_REPLY.COMMAND_NOT_SUPPORTED, `command ${command}`);
      await client.until(() => client.ended, 5000, "FIN after 0x07");
    }
  });

  test("a bad address type is answered 0x08 and closed", async () => {
    const client = await RawClient.dial(runtime, proxy.port);
    client.write(Uint8Array.of(5, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0));
    assert.deepEqual(await client.read(2), Uint8Array.of(5, 0));
    const reply = await client.readToEnd();
    assert.equal(reply[1], SOCKS_REPLY.ADDRESS_TYPE_NOT_SUPPORTED);
  });

  test("a bad version closes with nothing sent; no acceptable method gets 0xFF", async () => {
    const v4 = await RawClient.dial(runtime, proxy.port);
    v4.write(Uint8Array.of(4, 1, 0, 80, 10, 40, 0, 2, 0));
    assert.equal((await v4.readToEnd()).length, 0);
    const gssapiOnly = await RawClient.dial(runtime, proxy.port);
    gssapiOnly.write(encodeGreeting([1, 2]));
    assert.deepEqual(await gssapiOnly.readToEnd(), Uint8Array.of(5, 0xff));
  });

  test("garbage on one connection leaves another one working", async () => {
    const good = await request(proxy, at(FAR, ECHO));
    const bad = await RawClient.dial(runtime, proxy.port);
    bad.write(pattern(4000, 99));
    await bad.until(() => bad.ended || bad.closed, 5000, "the garbage connection to close");
    good.client.write(new TextEncoder().encode("still here"));
    assert.equal(new TextDecoder().decode(await good.client.read(10)), "still here");
    good.client.conn.close();
    assert.ok(proxy.server.counters().badHandshakes >= 1);
  });

  test("a slow reader bounds what is buffered, and every byte arrives once it reads", async () => {
    const { reply, client } = await request(proxy, at(FAR, SOURCE));
    assert.equal(reply, SOCKS_REPLY.SUCCEEDED);
    const proxySide = proxy.conns.at(-1)!;
    client.conn.pause();
    // Let the chain fill until the source has made no progress for 1 s (sampled every
    // 100 ms), watching the largest send queue the proxy had meanwhile.
    let maxQueue = 0;
    let last = -1;
    let still = 0;
    for (let i = 0; i < 600 && still < 10; i++) {
      still = sourceProduced === last ? still + 1 : 0;
      last = sourceProduced;
      maxQueue = Math.max(maxQueue, proxySide.bufferedBytes);
      await sleep(100);
    }
    const stalledAt = sourceProduced;
    assert.equal(still, 10, "the source never stopped while nobody read");
    assert.ok(stalledAt < SOURCE_BYTES, `the source sent all ${SOURCE_BYTES} bytes unread`);
    // What the process holds: the proxy's send queue and the near stack's buffers (the
    // rest sits in the kernel's socket buffers, whose size is the system's business).
    assert.ok(maxQueue <= 256 * 1024, `the proxy queued up to ${maxQueue} bytes`);
    const nearHeld = mesh.near
      .connections()
      .reduce((n, c) => n + c.readableBytes + c.writableBytes, 0);
    assert.ok(nearHeld <= 1024 * 1024, `near stack holds ${nearHeld}`);
    client.conn.resume();
    await client.until(() => client.ended, 60_000, "all the bytes");
    assert.equal(client.total, 2 + 10 + SOURCE_BYTES); // method selection, reply, data
    const bytes = await client.readToEnd();
    const chunk = pattern(64 * 1024, 19);
    for (let offset = 0; offset < bytes.length; offset += chunk.length) {
      if (!sameBytes(bytes.subarray(offset, offset + chunk.length), chunk)) {
        assert.fail(`bytes differ in the chunk at ${offset}`);
      }
    }
    console.log(
      `slow reader: source stalled at ${stalledAt} of ${SOURCE_BYTES} bytes; proxy queue at most ${maxQueue}, near stack ${nearHeld}`,
    );
  });

  test("counters add up", () => {
    const c = proxy.server.counters();
    assert.ok(c.accepted >= 10);
    assert.ok(c.dialFailures >= 2);
    assert.ok(c.bytesToMesh >= 1024 * 1024);
    assert.ok(c.bytesFromMesh >= 1024 * 1024 + SOURCE_BYTES);
    assert.ok(c.unsupported >= 4);
    assert.ok(c.noAcceptableMethod >= 1);
  });
});

describe("SOCKS5 server: dial errors map to reply codes", () => {
  test("socks5ReplyFor", () => {
    const code = (c: string) => Object.assign(new Error(c), { code: c });
    assert.equal(socks5ReplyFor(new TcpError("ECONNREFUSED", "x")), 0x05);
    assert.equal(socks5ReplyFor(new TcpError("ETIMEDOUT", "x")), 0x04);
    assert.equal(socks5ReplyFor(new TcpError("ENOTFOUND", "x")), 0x04);
    assert.equal(socks5ReplyFor(new TcpError("EADDRNOTAVAIL", "x")), 0x03);
    assert.equal(socks5ReplyFor(new TcpError("EMFILE", "x")), 0x01);
    assert.equal(socks5ReplyFor(code("ENETUNREACH")), 0x03);
    assert.equal(socks5ReplyFor(code("EHOSTUNREACH")), 0x04);
    assert.equal(socks5ReplyFor(code("EACCES")), 0x02);
    assert.equal(socks5ReplyFor(new Error("?")), 0x01);
    assert.equal(socks5ReplyFor("a string"), 0x01);
  });

  test("a destination not on the mesh gets 0x03", async () => {
    const proxy = await startProxy({ dial: () => Promise.reject(notOnMesh()) });
    try {
      assert.equal((await request(proxy, at("192.0.2.1", 80))).reply, 0x03);
    } finally {
      await proxy.server.close();
    }
  });
});

describe("SOCKS5 server: bounds", () => {
  test("the handshake times out on the server's clock; other connections go on", async () => {
    const clock = new VirtualClock();
    const proxy = await startProxy({ clock, handshakeTimeoutMs: 10_000 });
    try {
      const silent = await RawClient.dial(runtime, proxy.port);
      const slow = await RawClient.dial(runtime, proxy.port);
      slow.write(Uint8Array.of(5)); // half a greeting
      await silent.until(() => proxy.server.counters().active === 2, 5000, "two sessions");
      const connected = await request(proxy, at(FAR, ECHO));
      clock.advance(10_000);
      await silent.until(() => silent.ended && slow.ended, 5000, "the timeouts");
      assert.equal(proxy.server.counters().handshakeTimeouts, 2);
      connected.client.write(new TextEncoder().encode("ok"));
      assert.equal(new TextDecoder().decode(await connected.client.read(2)), "ok");
      connected.client.conn.close();
    } finally {
      await proxy.server.close();
    }
  });

  test("connections beyond maxConnections are closed at once", async () => {
    const proxy = await startProxy({ maxConnections: 2 });
    try {
      const a = await request(proxy, at(FAR, ECHO));
      const b = await request(proxy, at(FAR, ECHO));
      const c = await RawClient.dial(runtime, proxy.port);
      c.write(encodeGreeting([0]));
      assert.equal((await c.readToEnd()).length, 0);
      assert.equal(proxy.server.counters().refusedForLimit, 1);
      a.client.conn.end();
      await a.client.until(() => a.client.closed, 5000, "a to close");
      await a.client.until(() => proxy.server.counters().active === 1, 5000, "a to leave");
      const d = await request(proxy, at(FAR, ECHO));
      assert.equal(d.reply, 0);
      b.client.conn.close();
      d.client.conn.close();
    } finally {
      await proxy.server.close();
    }
  });

  test("close() resets the sessions still relaying", async () => {
    const proxy = await startProxy();
    const { client } = await request(proxy, at(FAR, ECHO));
    await proxy.server.close();
    await client.until(() => client.closed, 5000, "the reset");
    assert.ok(client.closeError !== undefined, "expected a reset, not a FIN");
    await client.until(() => proxy.server.counters().active === 0, 5000, "no sessions");
  });
});

describe("SOCKS5 server: username/password (RFC 1929)", () => {
  test("good credentials connect, bad ones get status 1 and a close", async () => {
    const proxy = await startProxy({
      authenticate: (user, pass) => user === "weft" && pass === "s3cret",
    });
    try {
      const noAuth = await RawClient.dial(runtime, proxy.port);
      noAuth.write(encodeGreeting([0]));
      assert.deepEqual(await noAuth.readToEnd(), Uint8Array.of(5, 0xff));

      const bad = await RawClient.dial(runtime, proxy.port);
      bad.write(encodeGreeting([0, 2]));
      assert.deepEqual(await bad.read(2), Uint8Array.of(5, 2));
      bad.write(encodeCredentials({ username: "weft", password: "nope" }));
      assert.deepEqual(await bad.readToEnd(), Uint8Array.of(1, 1));

      const good = await RawClient.dial(runtime, proxy.port);
      good.write(encodeGreeting([2]));
      assert.deepEqual(await good.read(2), Uint8Array.of(5, 2));
      good.write(encodeCredentials({ username: "weft", password: "s3cret" }));
      assert.deepEqual(await good.read(2), Uint8Array.of(1, 0));
      good.write(encodeRequest({ command: 1, address: at(FAR, ECHO) }));
      assert.equal((await good.read(10))[1], 0);
      good.write(new TextEncoder().encode("hi"));
      assert.equal(new TextDecoder().decode(await good.read(2)), "hi");
      good.conn.close();
      assert.equal(proxy.server.counters().authFailures, 1);
    } finally {
      await proxy.server.close();
    }
  });
});
