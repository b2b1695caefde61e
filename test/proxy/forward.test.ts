/**
 * Port forwards: the spec parsers on a table of good and bad specs; `serveForward` (host
 * listener → mesh) and `serveExpose` (mesh listener → host) end to end through real
 * loopback sockets and two in-process stacks, byte-exact both ways with half-close; a
 * failed dial on the far side resets the connection that came in.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { loadRuntime } from "../../runtimes/index.ts";
import type { StreamConn, StreamListener } from "../../src/net/stream.ts";
import {
  type ExposeSpec,
  type ForwardSpec,
  parseExposeSpec,
  parseForwardSpec,
  serveExpose,
  serveForward,
} from "../../src/proxy/index.ts";
import type { Runtime } from "../../src/runtime.ts";
import {
  echo,
  FAR,
  LOOPBACK,
  type Mesh,
  meshPair,
  NEAR,
  pattern,
  RawClient,
  readAll,
  replyAfterFin,
  sameBytes,
  serveOn,
  waitFor,
} from "./helpers.ts";

describe("parseForwardSpec", () => {
  const good: [string, ForwardSpec][] = [
    [
      "8080:db.mesh:5432",
      { bindAddress: "127.0.0.1", localPort: 8080, host: "db.mesh", port: 5432 },
    ],
    ["0:10.40.0.2:80", { bindAddress: "127.0.0.1", localPort: 0, host: "10.40.0.2", port: 80 }],
    ["8080:[fd00::2]:80", { bindAddress: "127.0.0.1", localPort: 8080, host: "fd00::2", port: 80 }],
    ["[::1]:8080:web:80", { bindAddress: "::1", localPort: 8080, host: "web", port: 80 }],
    [
      "127.0.0.2:1:a-b.c_d.:65535",
      { bindAddress: "127.0.0.2", localPort: 1, host: "a-b.c_d.", port: 65535 },
    ],
    ["localhost:22:h:22", { bindAddress: "127.0.0.1", localPort: 22, host: "h", port: 22 }],
    ["*:22:h:22", { bindAddress: "::", localPort: 22, host: "h", port: 22 }],
    ["0.0.0.0:22:h:22", { bindAddress: "0.0.0.0", localPort: 22, host: "h", port: 22 }],
  ];
  for (const [text, spec] of good) {
    test(`"${text}"`, () => assert.deepEqual(parseForwardSpec(text), spec));
  }
  const bad: [string, RegExp][] = [
    ["", /empty/],
    ["8080", /\[ADDR:\]LOCALPORT:HOST:PORT/],
    ["8080:db", /\[ADDR:\]LOCALPORT:HOST:PORT/],
    ["a:b:c:d:e", /\[ADDR:\]LOCALPORT:HOST:PORT/],
    ["8080:fd00::2:80", /\[ADDR:\]LOCALPORT:HOST:PORT/],
    ["65536:h:80", /local port.*65536/],
    ["-1:h:80", /local port/],
    ["80:h:0", /port to be 1 to 65535, got "0"/],
    ["80:h:1e3", /port/],
    ["80:h: 80", /port/],
    ["80::80", /host/],
    ["80:bad host:80", /host/],
    ["80:-x.mesh:80", /host/],
    ["80:[10.0.0.1]:80", /IPv6 address in brackets/],
    ["80:[fd00::2:80", /Missing "\]"/],
    ["80:fd00::2]:80", /Unexpected "\]"/],
    ["80:x[::1]:80", /Unexpected "\["/],
    ["80:[::1]x:80", /Expected ":" after "\]"/],
    ["db.mesh:80:h:80", /bind address/],
    ["::1:80:h:80", /\[ADDR:\]LOCALPORT:HOST:PORT/],
  ];
  for (const [text, message] of bad) {
    test(`"${text}" is refused`, () =>
      assert.throws(
        () => parseForwardSpec(text),
        (e: Error) => {
          assert.ok(e instanceof SyntaxError);
          assert.match(e.message, message);
          return true;
        },
      ));
  }
});

describe("parseExposeSpec", () => {
  const good: [string, ExposeSpec][] = [
    ["8080", { meshPort: 8080, localHost: "127.0.0.1", localPort: 8080 }],
    ["80:8080", { meshPort: 80, localHost: "127.0.0.1", localPort: 8080 }],
    ["80:127.0.0.5:8080", { meshPort: 80, localHost: "127.0.0.5", localPort: 8080 }],
    ["80:[::1]:8080", { meshPort: 80, localHost: "::1", localPort: 8080 }],
    ["80:localhost:3000", { meshPort: 80, localHost: "127.0.0.1", localPort: 3000 }],
  ];
  for (const [text, spec] of good) {
    test(`"${text}"`, () => assert.deepEqual(parseExposeSpec(text), spec));
  }
  const bad: [string, RegExp][] = [
    ["", /empty/],
    ["0", /port to be 1 to 65535/],
    ["80:0", /local port/],
    ["http", /port/],
    ["80:192.168.1.5:80", /loopback/],
    ["80:[fd00::1]:80", /loopback/],
    ["80:web:80", /loopback/],
    ["1:2:3:4", /PORT, MESHPORT:LOCALPORT or MESHPORT:HOST:LOCALPORT/],
  ];
  for (const [text, message] of bad) {
    test(`"${text}" is refused`, () =>
      assert.throws(
        () => parseExposeSpec(text),
        (e: Error) => {
          assert.ok(e instanceof SyntaxError);
          assert.match(e.message, message);
          return true;
        },
      ));
  }
});

const ECHO = 7;
const UPPER = 5000;
let runtime: Runtime;
let mesh: Mesh;

before(async () => {
  runtime = await loadRuntime();
  mesh = meshPair();
  serveOn(mesh.far, ECHO, echo);
  serveOn(
    mesh.far,
    UPPER,
    replyAfterFin((r) => new TextEncoder().encode(new TextDecoder().decode(r).toUpperCase())),
  );
});

after(() => mesh.close());

describe("serveForward: host → mesh", () => {
  test("1 MiB echoed byte-exact; a request-then-FIN server answers", async () => {
    const listener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
    const forward = serveForward({ listener, dial: () => mesh.near.dial(FAR, ECHO) });
    const upperListener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
    const upper = serveForward({
      listener: upperListener,
      dial: () => mesh.near.dial("far.mesh", UPPER),
    });
    try {
      const client = await RawClient.dial(runtime, listener.localPort);
      const data = pattern(1024 * 1024, 3);
      // Written at once: the first bytes wait while the mesh connection opens.
      const writing = client.writeAll(data);
      const back = await client.read(data.length, 30_000);
      await writing;
      assert.ok(sameBytes(back, data), "echoed bytes differ");
      client.conn.end();
      await client.until(() => client.closed, 10_000, "the close");
      assert.equal(client.closeError, undefined);

      const asker = await RawClient.dial(runtime, upperListener.localPort);
      asker.write(new TextEncoder().encode("hello mesh"));
      asker.conn.end();
      assert.equal(new TextDecoder().decode(await asker.readToEnd()), "HELLO MESH");

      await waitFor(() => forward.counters().active + upper.counters().active === 0, 5000, "idle");
      const c = forward.counters();
      assert.equal(c.accepted, 1);
      assert.equal(c.closed, 1);
      assert.equal(c.bytesToMesh, data.length);
      assert.equal(c.bytesFromMesh, data.length);
    } finally {
      await forward.close();
      await upper.close();
    }
  });

  test("a mesh dial that fails resets the local connection", async () => {
    const listener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
    const forward = serveForward({ listener, dial: () => mesh.near.dial(FAR, 9) });
    try {
      const client = await RawClient.dial(runtime, listener.localPort);
      client.write(new TextEncoder().encode("anyone?"));
      await client.until(() => client.closed, 5000, "the reset");
      assert.ok(client.closeError !== undefined, "expected a reset, not a FIN");
      assert.equal(client.ended, false);
      assert.equal(forward.counters().dialFailures, 1);
    } finally {
      await forward.close();
    }
  });
});

/** A host echo server on the StreamConn seam (FIN answered after the echo). */
async function hostEcho(): Promise<StreamListener> {
  const listener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
  listener.onConnection((conn: StreamConn) => {
    conn.onData((data) => {
      if (!conn.write(data)) {
        conn.pause();
        conn.onDrain(() => conn.resume());
      }
    });
    conn.onEnd(() => conn.end());
  });
  return listener;
}

describe("serveExpose: mesh → host", () => {
  test("1 MiB from a mesh peer echoed byte-exact by a host server", async () => {
    const local = await hostEcho();
    const expose = serveExpose({
      server: mesh.near.listen(8080),
      dialLocal: () => runtime.dialTcp({ address: LOOPBACK, port: local.localPort }, 5000),
    });
    try {
      const stream = await mesh.far.dial(NEAR, 8080);
      const data = pattern(1024 * 1024, 4);
      const reading = readAll(stream.readable);
      const writer = stream.writable.getWriter();
      await writer.write(data);
      await writer.close();
      const back = await reading;
      assert.ok(sameBytes(back, data), "echoed bytes differ");
      await waitFor(() => expose.counters().active === 0, 5000, "idle");
      const c = expose.counters();
      assert.equal(c.closed, 1);
      assert.equal(c.bytesFromMesh, data.length);
      assert.equal(c.bytesToMesh, data.length);
    } finally {
      await expose.close();
      await local.close();
    }
  });

  test("a local dial that fails resets the mesh connection", async () => {
    const gone = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
    const port = gone.localPort;
    await gone.close();
    const expose = serveExpose({
      server: mesh.near.listen(8081),
      dialLocal: () => runtime.dialTcp({ address: LOOPBACK, port }, 5000),
    });
    try {
      const stream = await mesh.far.dial(NEAR, 8081);
      await assert.rejects(readAll(stream.readable), (e: Error & { code?: string }) => {
        assert.equal(e.code, "ECONNRESET");
        return true;
      });
      assert.equal(expose.counters().dialFailures, 1);
    } finally {
      await expose.close();
    }
  });

  test("close() stops listening on the mesh and resets what is relayed", async () => {
    const local = await hostEcho();
    const expose = serveExpose({
      server: mesh.near.listen(8082),
      dialLocal: () => runtime.dialTcp({ address: LOOPBACK, port: local.localPort }, 5000),
    });
    try {
      const stream = await mesh.far.dial(NEAR, 8082);
      const writer = stream.writable.getWriter();
      await writer.write(new TextEncoder().encode("x"));
      const reader = stream.readable.getReader();
      assert.equal((await reader.read()).value?.length, 1);
      await expose.close();
      await assert.rejects(reader.read());
      await assert.rejects(mesh.far.dial(NEAR, 8082), (e: Error & { code?: string }) => {
        assert.equal(e.code, "ECONNREFUSED");
        return true;
      });
    } finally {
      await local.close();
    }
  });
});
