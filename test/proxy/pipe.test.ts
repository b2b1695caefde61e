/**
 * `pipe` on its own: a real loopback connection piped to a mesh connection on in-process
 * stacks. FIN passes through in each direction independently (either side first), a
 * reset on either side resets the other, `initial` bytes go first, counts are exact.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { loadRuntime } from "../../runtimes/index.ts";
import type { StreamConn } from "../../src/net/stream.ts";
import type { TcpStream } from "../../src/netstack/index.ts";
import { type PipeResult, pipe } from "../../src/proxy/index.ts";
import type { Runtime } from "../../src/runtime.ts";
import { FAR, LOOPBACK, type Mesh, meshPair, RawClient, readAll } from "./helpers.ts";

let runtime: Runtime;
let mesh: Mesh;
let nextPort = 6000;

before(async () => {
  runtime = await loadRuntime();
  mesh = meshPair();
});
after(() => mesh.close());

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

interface Fixture {
  readonly client: RawClient;
  /** The far end of the mesh connection. */
  readonly far: TcpStream;
  readonly result: Promise<PipeResult>;
}

/** client ⇄ (loopback) ⇄ conn ═pipe═ stream ⇄ (mesh) ⇄ far. */
async function fixture(initial?: Uint8Array, autoEnd = true): Promise<Fixture> {
  const port = nextPort++;
  const server = mesh.far.listen(port);
  const listener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
  const accepted = new Promise<StreamConn>((resolve) => listener.onConnection(resolve));
  const client = await RawClient.dial(runtime, listener.localPort, true, autoEnd);
  const conn = await accepted;
  const stream = await mesh.near.dial(FAR, port);
  const far = await server.accept();
  server.close();
  void listener.close(); // settles only once its connections are gone
  const relay = pipe(conn, stream, initial === undefined ? {} : { initial });
  return { client, far, result: relay.done };
}

describe("pipe", () => {
  test("initial bytes go first; the client's FIN first, the far side answers after it", async () => {
    const { client, far, result } = await fixture(text("0:"));
    client.write(text("request"));
    client.conn.end();
    assert.equal(str(await readAll(far.readable)), "0:request");
    const writer = far.writable.getWriter();
    await writer.write(text("answer"));
    await writer.close();
    assert.equal(str(await client.readToEnd()), "answer");
    const r = await result;
    assert.deepEqual(r, { bytesToStream: 9, bytesToConn: 6, outcome: "closed" });
  });

  test("the far side's FIN first; the client still sends after it", async () => {
    const { client, far, result } = await fixture(undefined, false);
    const writer = far.writable.getWriter();
    await writer.write(text("bye"));
    await writer.close();
    await client.until(() => client.ended, 5000, "FIN at the client");
    assert.equal(str(await client.read(3)), "bye");
    client.write(text("after your FIN"));
    client.conn.end();
    assert.equal(str(await readAll(far.readable)), "after your FIN");
    const r = await result;
    assert.deepEqual(r, { bytesToStream: 14, bytesToConn: 3, outcome: "closed" });
  });

  test("a reset on the mesh side resets the client", async () => {
    const { client, far, result } = await fixture();
    client.write(text("x"));
    const reader = far.readable.getReader();
    assert.equal((await reader.read()).value?.length, 1);
    far.abort();
    await client.until(() => client.closed, 5000, "the reset");
    assert.ok(client.closeError !== undefined, "expected a reset at the client");
    assert.equal(client.ended, false);
    assert.equal((await result).outcome, "aborted");
  });

  test("a reset by the client resets the mesh side", async () => {
    const { client, far, result } = await fixture();
    client.write(text("y"));
    const reader = far.readable.getReader();
    assert.equal((await reader.read()).value?.length, 1);
    client.conn.abort();
    await assert.rejects(reader.read(), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ECONNRESET");
      return true;
    });
    const r = await result;
    assert.equal(r.outcome, "aborted");
    assert.ok(r.error !== undefined);
  });

  test("abort() resets both sides", async () => {
    const port = nextPort++;
    const server = mesh.far.listen(port);
    const listener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
    const accepted = new Promise<StreamConn>((resolve) => listener.onConnection(resolve));
    const client = await RawClient.dial(runtime, listener.localPort);
    const conn = await accepted;
    const stream = await mesh.near.dial(FAR, port);
    const far = await server.accept();
    server.close();
    void listener.close();
    const relay = pipe(conn, stream);
    relay.abort();
    assert.equal((await relay.done).outcome, "aborted");
    await client.until(() => client.closed, 5000, "the reset");
    assert.ok(client.closeError !== undefined);
    await assert.rejects(readAll(far.readable));
  });
});
