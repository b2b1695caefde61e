/**
 * TcpStack (#10 item 2): TCP plugged into the Netstack, with dial/listen as Web Streams.
 * Two Netstacks back to back on a virtual clock, through a link with seeded loss and
 * reordering: 1 MB both ways byte-exact, a refused dial, a reset mid-stream, a slow
 * reader bounding the sender, concurrent connections, the table emptied after TIME-WAIT,
 * loopback, the connection bound; and 256 KiB through a simulated mesh.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseIp } from "../../src/net/ip.ts";
import { Netstack, TcpError, TcpStack, type TcpStream } from "../../src/netstack/index.ts";
import { createRandom, type Random } from "../../src/sim/random.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";
import { createMeshSim } from "../helpers/mesh-sim.ts";
import { providers } from "../helpers/providers.ts";

const native = providers[1]![1];
const MSL_MS = 1_000;

interface LinkOptions {
  readonly delayMs: number;
  readonly jitterMs: number;
  readonly loss: number;
}

interface Pair {
  readonly clock: VirtualClock;
  readonly random: Random;
  readonly a: TcpStack;
  readonly b: TcpStack;
  readonly stackA: Netstack;
  readonly stackB: Netstack;
}

const A = "10.40.0.1";
const B = "10.40.0.2";

/** Two Netstacks whose packets cross a seeded lossy, reordering link on one clock. */
function pair(
  seed: number,
  link: LinkOptions,
  extra: Partial<ConstructorParameters<typeof TcpStack>[1]> = {},
): Pair {
  const clock = new VirtualClock();
  const random = createRandom(seed);
  const stackA = new Netstack({ addresses: [A, "fd00::1"], clock });
  const stackB = new Netstack({ addresses: [B, "fd00::2"], clock });
  const wire = (from: Netstack, to: Netstack) =>
    from.onPacket((packet) => {
      if (random.next() < link.loss) return;
      clock.setTimer(link.delayMs + random.next() * link.jitterMs, () => to.write(packet));
    });
  wire(stackA, stackB);
  wire(stackB, stackA);
  const options = {
    clock,
    randomUint32: () => random.int(0x1_0000_0000),
    mslMs: MSL_MS,
    ...extra,
  };
  return {
    clock,
    random,
    stackA,
    stackB,
    a: new TcpStack(stackA, options),
    b: new TcpStack(stackB, options),
  };
}

/** Lets promise chains (stream reads, writes, pipes) settle without real time passing. */
async function settle(): Promise<void> {
  for (let i = 0; i < 64; i++) await Promise.resolve();
}

/** Advances the virtual clock in steps, settling promises between, until `done()`. */
async function runUntil(
  clock: VirtualClock,
  done: () => boolean,
  limitMs: number,
  what: string,
  stepMs = 2,
): Promise<void> {
  const end = clock.now() + limitMs;
  await settle();
  while (!done()) {
    if (clock.now() >= end) assert.fail(`${what}: not done within ${limitMs} virtual ms`);
    clock.advance(stepMs);
    await settle();
  }
}

/** Tracks a promise's outcome so a virtual-time loop can wait on it. */
function track<T>(promise: Promise<T>): {
  done: () => boolean;
  value: () => T;
  error: () => unknown;
} {
  let state: "pending" | "ok" | "failed" = "pending";
  let value: T | undefined;
  let error: unknown;
  promise.then(
    (v) => {
      state = "ok";
      value = v;
    },
    (e: unknown) => {
      state = "failed";
      error = e;
    },
  );
  return {
    done: () => state !== "pending",
    value: () => {
      if (state !== "ok") throw new Error(`expected a value, got ${state}: ${String(error)}`);
      return value as T;
    },
    error: () => error,
  };
}

async function writeAll(stream: TcpStream, data: Uint8Array, random: Random): Promise<void> {
  const writer = stream.writable.getWriter();
  let at = 0;
  while (at < data.length) {
    const n = 1 + random.int(40_000);
    await writer.write(data.slice(at, at + n));
    at += n;
  }
  await writer.close();
}

async function readAll(stream: TcpStream): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = stream.readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return concat(chunks);
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function sameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const first = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.equal(first, -1, `${what}: first differing byte at ${first}`);
}

async function connected(p: Pair, port: number, address = B) {
  const server = p.b.listen(port);
  const accepted = track(server.accept());
  const dialed = track(p.a.dial(address, port));
  await runUntil(p.clock, () => accepted.done() && dialed.done(), 10_000, "handshake");
  return { server, client: dialed.value(), peer: accepted.value() };
}

describe("TcpStack between two Netstacks", () => {
  for (const [seed, link] of [
    [1, { delayMs: 5, jitterMs: 0, loss: 0 }],
    [20261128, { delayMs: 5, jitterMs: 4, loss: 0.02 }],
  ] as const) {
    test(`1 MB each way byte-exact, then the table empties after TIME-WAIT (seed ${seed}, loss ${link.loss})`, async () => {
      const p = pair(seed, link);
      const { client, peer } = await connected(p, 8080);
      assert.equal(client.remoteAddress, B, "the client's remote address");
      assert.equal(client.remotePort, 8080, "the client's remote port");
      assert.ok(client.localPort >= 49152, `an ephemeral local port, got ${client.localPort}`);
      assert.equal(peer.remoteAddress, A, "the server's view of the client");
      assert.equal(peer.remotePort, client.localPort, "the server sees the client's port");
      const up = p.random.bytes(1 << 20);
      const down = p.random.bytes(1 << 20);
      const tasks = [track(writeAll(client, up, p.random)), track(writeAll(peer, down, p.random))];
      const atServer = track(readAll(peer));
      const atClient = track(readAll(client));
      await runUntil(
        p.clock,
        () => atServer.done() && atClient.done() && tasks.every((t) => t.done()),
        600_000,
        "transfer",
      );
      for (const t of tasks) assert.equal(t.error(), undefined, "writes succeeded");
      sameBytes(atServer.value(), up, "client to server");
      sameBytes(atClient.value(), down, "server to client");
      assert.equal(p.a.counters().sendErrors + p.b.counters().sendErrors, 0, "every segment fit");
      assert.ok(
        p.a.connectionCount + p.b.connectionCount > 0,
        "a side that closed first lingers in TIME-WAIT",
      );
      await runUntil(
        p.clock,
        () => p.a.connectionCount === 0 && p.b.connectionCount === 0,
        4 * MSL_MS,
        "TIME-WAIT ends",
      );
    });
  }

  test("a dial to a port without a listener is refused by a RST", async () => {
    const p = pair(2, { delayMs: 3, jitterMs: 0, loss: 0 });
    const dialed = track(p.a.dial(B, 9999));
    await runUntil(p.clock, dialed.done, 5_000, "refusal");
    const error = dialed.error();
    assert.ok(error instanceof TcpError, `a TcpError, got ${String(error)}`);
    assert.equal(error.code, "ECONNREFUSED");
    assert.equal(p.b.counters().resetsSent, 1, "the listener-less side sent one RST");
    assert.equal(p.a.connectionCount, 0, "the refused connection left the table");
  });

  test("a dial into silence times out", async () => {
    const p = pair(3, { delayMs: 3, jitterMs: 0, loss: 1 });
    const dialed = track(p.a.dial(B, 80, { timeoutMs: 5_000 }));
    await runUntil(p.clock, dialed.done, 10_000, "timeout", 50);
    const error = dialed.error();
    assert.ok(error instanceof TcpError, `a TcpError, got ${String(error)}`);
    assert.equal(error.code, "ETIMEDOUT");
    assert.equal(p.a.connectionCount, 0, "the abandoned connection left the table");
  });

  test("a reset mid-stream errors the peer's readable with ECONNRESET", async () => {
    const p = pair(4, { delayMs: 3, jitterMs: 0, loss: 0 });
    const { client, peer } = await connected(p, 80);
    const writer = client.writable.getWriter();
    await writer.write(new Uint8Array(1000).fill(7));
    const reader = peer.readable.getReader();
    const first = track(reader.read());
    await runUntil(p.clock, first.done, 1_000, "first bytes");
    assert.equal(first.value().value?.length, 1000, "the first 1000 bytes arrived");
    const clientRead = track(client.readable.getReader().read());
    peer.abort();
    await runUntil(p.clock, clientRead.done, 1_000, "reset reaches the client");
    const error = clientRead.error();
    assert.ok(error instanceof TcpError, `the client's read failed with a TcpError: ${error}`);
    assert.equal(error.code, "ECONNRESET");
    const late = track(writer.write(new Uint8Array(10)));
    await runUntil(p.clock, late.done, 100, "write after reset");
    assert.ok(late.error() !== undefined, "a write after the reset fails");
    assert.equal(p.a.connectionCount + p.b.connectionCount, 0, "both connections left the tables");
  });

  test("a slow reader bounds what the writer gets rid of, then everything arrives", async () => {
    const sendBufferBytes = 64 * 1024;
    const receiveBufferBytes = 64 * 1024;
    const readHighWaterBytes = 16 * 1024;
    const p = pair(
      5,
      { delayMs: 2, jitterMs: 1, loss: 0 },
      { sendBufferBytes, receiveBufferBytes, readHighWaterBytes },
    );
    const { client, peer } = await connected(p, 80);
    const data = p.random.bytes(1 << 20);
    let accepted = 0;
    const writer = client.writable.getWriter();
    const writing = track(
      (async () => {
        for (let at = 0; at < data.length; at += 8192) {
          await writer.write(data.slice(at, at + 8192));
          accepted = at + 8192;
        }
        await writer.close();
      })(),
    );
    // Nobody reads at the server for 5 virtual seconds.
    await runUntil(p.clock, () => p.clock.now() > 5_000, 6_000, "stall", 10);
    const bound = sendBufferBytes + receiveBufferBytes + readHighWaterBytes + 8192;
    assert.ok(!writing.done(), "the writer is still blocked");
    assert.ok(accepted <= bound, `the writer got rid of ${accepted} bytes, bound ${bound}`);
    assert.ok(accepted >= sendBufferBytes, `the pipe filled up: ${accepted} bytes`);
    assert.ok(
      peer.connection.readableBytes <= receiveBufferBytes,
      "the receiver holds at most its buffer",
    );
    const received = track(readAll(peer));
    await runUntil(p.clock, () => received.done() && writing.done(), 120_000, "drain");
    sameBytes(received.value(), data, "after the reader caught up");
  });

  test("eight concurrent connections to one echo server, each byte-exact", async () => {
    const p = pair(6, { delayMs: 4, jitterMs: 3, loss: 0.01 });
    const server = p.b.listen(7);
    const echoes: Promise<void>[] = [];
    const serving = track(
      (async () => {
        for await (const stream of server) echoes.push(stream.readable.pipeTo(stream.writable));
      })(),
    );
    const runs = Array.from({ length: 8 }, (_, i) =>
      track(
        (async () => {
          const stream = await p.a.dial(B, 7);
          const data = p.random.bytes(20_000 + i * 7_000);
          const [, echoed] = await Promise.all([writeAll(stream, data, p.random), readAll(stream)]);
          return { data, echoed, port: stream.localPort };
        })(),
      ),
    );
    await runUntil(p.clock, () => runs.every((r) => r.done()), 120_000, "echoes");
    // A full-size data segment that also carried SACK blocks once outgrew the MTU here.
    assert.equal(p.a.counters().sendErrors + p.b.counters().sendErrors, 0, "every segment fit");
    const ports = new Set<number>();
    for (const [i, run] of runs.entries()) {
      const { data, echoed, port } = run.value();
      sameBytes(echoed, data, `connection ${i}`);
      ports.add(port);
    }
    assert.equal(ports.size, 8, "eight distinct ephemeral ports");
    server.close();
    await runUntil(p.clock, serving.done, 100, "the accept loop ends");
    await runUntil(
      p.clock,
      () => p.a.connectionCount === 0 && p.b.connectionCount === 0,
      10 * MSL_MS,
      "tables empty",
      20,
    );
    assert.equal(p.b.counters().listeners, 0, "the listener is gone");
  });

  test("a dial to our own address loops back through the clock", async () => {
    const p = pair(7, { delayMs: 3, jitterMs: 0, loss: 0 });
    const sentBefore = p.stackA.counters().sent;
    const server = p.a.listen(0);
    assert.ok(server.port >= 49152, `listen(0) picked an ephemeral port: ${server.port}`);
    const accepted = track(server.accept());
    const dialed = track(p.a.dial("fd00::1", server.port));
    await runUntil(p.clock, () => accepted.done() && dialed.done(), 1_000, "loopback handshake");
    const data = p.random.bytes(100_000);
    const writing = track(writeAll(dialed.value(), data, p.random));
    const received = track(readAll(accepted.value()));
    await runUntil(p.clock, () => received.done() && writing.done(), 10_000, "loopback transfer");
    sameBytes(received.value(), data, "over loopback");
    assert.equal(p.stackA.counters().sent, sentBefore, "nothing left for the mesh");
    assert.ok(p.a.counters().loopbackSegments > 0, "segments looped back");
  });

  test("a bound on connections refuses dials beyond it", async () => {
    const p = pair(8, { delayMs: 3, jitterMs: 0, loss: 0 }, { maxConnections: 2 });
    p.b.listen(80);
    const first = track(p.a.dial(B, 80));
    const second = track(p.a.dial(B, 80));
    const third = track(p.a.dial(B, 80));
    await runUntil(p.clock, () => first.done() && second.done() && third.done(), 1_000, "dials");
    assert.ok(first.error() === undefined && second.error() === undefined, "two connected");
    const error = third.error();
    assert.ok(error instanceof TcpError, `the third dial failed with a TcpError: ${error}`);
    assert.equal(error.code, "EMFILE");
    assert.equal(p.a.counters().refusedForLimit, 1, "counted");
    assert.throws(() => p.b.listen(80), /EADDRINUSE/, "a second listener on a port");
  });
});

describe("TcpStack limits and names", () => {
  test("a stack at its bound answers further SYNs with a RST", async () => {
    const p = pair(9, { delayMs: 3, jitterMs: 0, loss: 0 });
    // A second TcpStack takes over stackB's TCP seam, with room for one connection.
    const limited = new TcpStack(p.stackB, {
      clock: p.clock,
      randomUint32: () => p.random.int(0x1_0000_0000),
      maxConnections: 1,
    });
    const server = limited.listen(80);
    const first = track(p.a.dial(B, 80));
    await runUntil(p.clock, first.done, 1_000, "first dial");
    assert.equal(first.error(), undefined, "the first connection is made");
    const second = track(p.a.dial(B, 80));
    await runUntil(p.clock, second.done, 1_000, "second dial");
    const error = second.error();
    assert.ok(error instanceof TcpError, `the second dial failed with a TcpError: ${error}`);
    assert.equal(error.code, "ECONNREFUSED");
    assert.equal(limited.counters().refusedForLimit, 1, "the refusal is counted");
    assert.equal(limited.connectionCount, 1, "the first connection stays");
    server.close();
  });

  test("names go through the resolve hook; without one they fail with ENOTFOUND", async () => {
    const p = pair(10, { delayMs: 3, jitterMs: 0, loss: 0 });
    const asked: string[] = [];
    const named = new TcpStack(p.stackA, {
      clock: p.clock,
      randomUint32: () => p.random.int(0x1_0000_0000),
      resolve: async (name) => {
        asked.push(name);
        if (name === "b.weft") return B;
        throw new Error("no such name");
      },
    });
    p.b.listen(80);
    const dialed = track(named.dial("b.weft", 80));
    const unknown = track(named.dial("c.weft", 80));
    const bare = track(p.a.dial("b.weft", 80));
    const badPort = track(named.dial(B, 70_000));
    await runUntil(
      p.clock,
      () => dialed.done() && unknown.done() && bare.done() && badPort.done(),
      1_000,
      "dials by name",
    );
    assert.equal(dialed.error(), undefined, "b.weft resolved and connected");
    assert.equal(dialed.value().remoteAddress, B, "to the resolved address");
    assert.deepEqual(asked, ["b.weft", "c.weft"], "the hook was asked for both names");
    for (const [outcome, code] of [
      [unknown, "ENOTFOUND"],
      [bare, "ENOTFOUND"],
      [badPort, "EINVAL"],
    ] as const) {
      const error = outcome.error();
      assert.ok(error instanceof TcpError, `a TcpError, got ${String(error)}`);
      assert.equal(error.code, code);
    }
  });
});

describe("TcpStack through a simulated mesh", () => {
  test("two peers with Netstacks exchange 256 KiB over TCP, byte-exact", async () => {
    const stackA = new Netstack({ addresses: ["10.0.0.1"] });
    const stackB = new Netstack({ addresses: ["10.0.0.2"] });
    const sim = createMeshSim({
      crypto: native,
      seed: 20261129,
      count: 2,
      tunFor: (index) => (index === 0 ? stackA : stackB),
    });
    const [peerA, peerB] = sim.peers as [(typeof sim.peers)[0], (typeof sim.peers)[0]];
    peerA.mesh.addPeer({
      publicKey: peerB.publicKey,
      allowedIps: [{ address: parseIp("10.0.0.2")!, prefixLength: 32 }],
    });
    peerB.mesh.addPeer({
      publicKey: peerA.publicKey,
      allowedIps: [{ address: parseIp("10.0.0.1")!, prefixLength: 32 }],
    });
    sim.run(3_000);
    const random = createRandom(99);
    const options = {
      clock: sim.clock,
      randomUint32: () => random.int(0x1_0000_0000),
      mslMs: MSL_MS,
    };
    const a = new TcpStack(stackA, options);
    const b = new TcpStack(stackB, options);
    const server = b.listen(443);
    const accepted = track(server.accept());
    const dialed = track(a.dial("10.0.0.2", 443, { timeoutMs: 10_000 }));
    await runUntil(sim.clock, () => accepted.done() && dialed.done(), 20_000, "mesh handshake");
    assert.equal(dialed.error(), undefined, `dialed: ${JSON.stringify(stackA.counters())}`);
    const up = random.bytes(256 * 1024);
    const down = random.bytes(256 * 1024);
    const writes = [
      track(writeAll(dialed.value(), up, random)),
      track(writeAll(accepted.value(), down, random)),
    ];
    const atB = track(readAll(accepted.value()));
    const atA = track(readAll(dialed.value()));
    await runUntil(
      sim.clock,
      () => atA.done() && atB.done() && writes.every((w) => w.done()),
      120_000,
      "mesh transfer",
    );
    sameBytes(atB.value(), up, "A to B through the mesh");
    sameBytes(atA.value(), down, "B to A through the mesh");
    a.close();
    b.close();
    await sim.close();
  });
});
