/**
 * The UDP adapters on real loopback sockets, on every runtime: the one the Runtime hands
 * out (`deno-udp.ts` on Deno, `udp.ts` on `node:dgram` elsewhere) and, on Deno, `udp.ts`
 * as well, which still runs there when imported directly. Sends go only to 127.0.0.0/8
 * and ::1; nothing here leaves the machine.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { listenUdp as listenDeno } from "../runtimes/deno-udp.ts";
import { detectRuntime, loadRuntime } from "../runtimes/index.ts";
import { listenUdp as listenDgram, type UdpConn } from "../runtimes/udp.ts";
import type { Endpoint, PacketConn } from "../src/net/packet-conn.ts";
import type { ListenUdpOptions } from "../src/runtime.ts";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..");
const WAIT_MS = 2000;

interface Datagram {
  data: Uint8Array;
  from: Endpoint;
}

/** The next datagram `conn` receives (its handler is replaced), or a rejection after `WAIT_MS`. */
function nextDatagram(conn: PacketConn): Promise<Datagram> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`No datagram within ${WAIT_MS} ms`)), WAIT_MS);
    conn.onReceive((data, from) => {
      clearTimeout(timer);
      resolve({ data: data.slice(), from });
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type ListenUdp = (options: ListenUdpOptions) => Promise<UdpConn>;

const runtime = await loadRuntime();
// Both adapters hand out UdpConns; the Runtime's type promises only a PacketConn.
const listenRuntime = runtime.listenUdp as ListenUdp;
const ADAPTERS: { name: string; listenUdp: ListenUdp; skipBurst: string | false }[] = [
  { name: `the ${runtime.name} Runtime's listenUdp`, listenUdp: listenRuntime, skipBurst: false },
];
if (listenRuntime !== listenDgram) {
  ADAPTERS.push({
    name: "runtimes/udp.ts (node:dgram)",
    listenUdp: listenDgram,
    // Why the Runtime does not use it there: it lost 3% to 28% of the burst.
    skipBurst: `${runtime.name}'s node:dgram allocates a 64 KiB buffer for every read`,
  });
}

const open: PacketConn[] = [];
after(() => Promise.all(open.map((conn) => conn.close())));

/** Whether this host can bind ::1 (containers often lack IPv6). */
async function hasIPv6Loopback(): Promise<boolean> {
  try {
    await (await listenRuntime({ address: "::1" })).close();
    return true;
  } catch {
    return false;
  }
}
const IPV6 = await hasIPv6Loopback();
const NO_IPV6 = !IPV6 && "no IPv6 loopback on this host";
if (!IPV6) console.log("skipping IPv6 UDP tests: cannot bind ::1");

for (const { name, listenUdp, skipBurst } of ADAPTERS) {
  /** Opens a socket that is closed after the suite, whatever happens. */
  async function listen(options: ListenUdpOptions): Promise<UdpConn> {
    const conn = await listenUdp(options);
    open.push(conn);
    return conn;
  }

  describe(name, () => {
    test("two IPv4 loopback sockets exchange datagrams both ways", async () => {
      const a = await listen({ address: "127.0.0.1" });
      const b = await listen({ address: "127.0.0.1" });
      assert.ok(a.localPort > 0 && b.localPort > 0 && a.localPort !== b.localPort);
      assert.equal(a.localAddress, "127.0.0.1");
      assert.equal(a.dualStack, false);

      const atB = nextDatagram(b);
      a.send(new Uint8Array([1, 2, 3]), { address: "127.0.0.1", port: b.localPort });
      const got = await atB;
      assert.deepEqual(got.data, new Uint8Array([1, 2, 3]));
      assert.deepEqual(got.from, { address: "127.0.0.1", port: a.localPort });

      const atA = nextDatagram(a);
      b.send(new Uint8Array([4, 5]), got.from);
      assert.deepEqual((await atA).data, new Uint8Array([4, 5]));
      assert.equal(b.counters().received, 1);
    });

    test("the handler gets a plain Uint8Array, not a Buffer", async () => {
      const a = await listen({ address: "127.0.0.1" });
      const b = await listen({ address: "127.0.0.1" });
      let prototype: unknown;
      const arrived = new Promise<void>((resolve) =>
        b.onReceive((data) => {
          prototype = Object.getPrototypeOf(data);
          resolve();
        }),
      );
      a.send(new Uint8Array([9]), { address: "127.0.0.1", port: b.localPort });
      await arrived;
      assert.equal(prototype, Uint8Array.prototype);
    });

    test("the sender may reuse its buffer as soon as send returns", async () => {
      const a = await listen({ address: "127.0.0.1" });
      const b = await listen({ address: "127.0.0.1" });
      const atB = nextDatagram(b);
      const buffer = new Uint8Array([7, 7, 7, 7]);
      a.send(buffer, { address: "127.0.0.1", port: b.localPort });
      buffer.fill(0);
      assert.deepEqual((await atB).data, new Uint8Array([7, 7, 7, 7]));
    });

    test("datagrams of every size up to the UDP maximum arrive whole", async () => {
      const a = await listen({ address: "127.0.0.1" });
      const b = await listen({ address: "127.0.0.1" });
      for (const size of [0, 1, 1100, 1500, 9000, 65_507]) {
        const data = new Uint8Array(size).map((_, i) => i * 7);
        const atB = nextDatagram(b);
        a.send(data, { address: "127.0.0.1", port: b.localPort });
        assert.deepEqual((await atB).data, data, `${size} bytes`);
      }
    });

    test("two IPv6 loopback sockets exchange datagrams both ways", { skip: NO_IPV6 }, async () => {
      const a = await listen({ address: "::1" });
      const b = await listen({ address: "::1" });
      const atB = nextDatagram(b);
      a.send(new Uint8Array([6]), { address: "::1", port: b.localPort });
      const got = await atB;
      assert.deepEqual(got.from, { address: "::1", port: a.localPort });
      const atA = nextDatagram(a);
      b.send(new Uint8Array([7]), got.from);
      assert.deepEqual((await atA).data, new Uint8Array([7]));
    });

    test("the default socket serves IPv4 and IPv6, reporting IPv4 peers as plain IPv4", {
      skip: NO_IPV6,
    }, async () => {
      const dual = await listen({});
      assert.equal(dual.dualStack, true);
      assert.equal(dual.localAddress, "::");
      const v4 = await listen({ address: "127.0.0.1" });
      const v6 = await listen({ address: "::1" });

      const fromV4 = nextDatagram(dual);
      v4.send(new Uint8Array([4]), { address: "127.0.0.1", port: dual.localPort });
      assert.deepEqual((await fromV4).from, { address: "127.0.0.1", port: v4.localPort });
      const fromV6 = nextDatagram(dual);
      v6.send(new Uint8Array([6]), { address: "::1", port: dual.localPort });
      assert.deepEqual((await fromV6).from, { address: "::1", port: v6.localPort });

      // Node refuses IPv4 text on a dual-stack socket; the adapter maps it.
      const atV4 = nextDatagram(v4);
      dual.send(new Uint8Array([40]), { address: "127.0.0.1", port: v4.localPort });
      assert.deepEqual((await atV4).from.port, dual.localPort);
      const atV4Mapped = nextDatagram(v4);
      dual.send(new Uint8Array([41]), { address: "::ffff:127.0.0.1", port: v4.localPort });
      assert.deepEqual((await atV4Mapped).data, new Uint8Array([41]));
      const atV6 = nextDatagram(v6);
      dual.send(new Uint8Array([60]), { address: "::1", port: v6.localPort });
      assert.deepEqual((await atV6).data, new Uint8Array([60]));
      assert.equal(dual.counters().sendErrors, 0);
    });

    test("close is idempotent and stops delivery", async () => {
      const a = await listen({ address: "127.0.0.1" });
      const b = await listen({ address: "127.0.0.1" });
      let received = 0;
      b.onReceive(() => received++);
      const closing = b.close();
      assert.equal(b.close(), closing);
      await closing;
      await b.close();
      b.onReceive(() => received++);
      a.send(new Uint8Array([1]), { address: "127.0.0.1", port: b.localPort });
      b.send(new Uint8Array([2]), { address: "127.0.0.1", port: a.localPort });
      await sleep(100);
      assert.equal(received, 0);
      assert.equal(b.counters().sent, 0);
    });

    test("send never throws: bad destinations and system errors are counted", async () => {
      const a = await listen({ address: "127.0.0.1" });
      const to = (address: string, port: number) => ({ address, port });
      a.send(new Uint8Array([1]), to("localhost", 9)); // a name, not an address: no DNS
      a.send(new Uint8Array([1]), to("127.0.0.1", 0));
      a.send(new Uint8Array([1]), to("127.0.0.1", 65536));
      a.send(new Uint8Array([1]), to("::1", 9)); // IPv6 from an IPv4 socket
      a.send(new Uint8Array(70_000), to("127.0.0.1", a.localPort)); // over the UDP maximum
      await sleep(100);
      const counters = a.counters();
      assert.equal(counters.sendErrors, 5);
      assert.equal(counters.sent, 0);
      assert.equal(typeof counters.lastError, "string");
    });

    test("rejects a taken port, and bad addresses or ports", async () => {
      const a = await listen({ address: "127.0.0.1" });
      await assert.rejects(listenUdp({ address: "127.0.0.1", port: a.localPort }), {
        code: "EADDRINUSE",
      });
      await assert.rejects(listenUdp({ address: "localhost" }), SyntaxError);
      await assert.rejects(listenUdp({ address: "127.0.0.1", port: 65536 }), RangeError);
      await assert.rejects(listenUdp({ address: "127.0.0.1", port: -1 }), RangeError);
    });

    test("binds the port it is given, again once closed", async () => {
      const probe = await listenUdp({ address: "127.0.0.1" });
      const port = probe.localPort;
      await probe.close();
      const conn = await listen({ address: "127.0.0.1", port });
      assert.equal(conn.localPort, port);
    });

    // What broke Deno's node:dgram: asked for 7 MiB socket buffers, it allocated 14 MiB
    // for every read and received ~7% of a paced flood. The handler's work stands in for
    // decryption; the sender is another process, as a peer is, so a slow receiver cannot
    // slow it down.
    test("receives a paced burst whole while the handler works", { skip: skipBurst }, async () => {
      const count = 2000;
      const conn = await listen({ address: "127.0.0.1" });
      const seen = new Uint8Array(count);
      let unique = 0;
      conn.onReceive((data) => {
        work(data);
        const number = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
        if (number < count && seen[number] === 0) {
          seen[number] = 1;
          unique++;
        }
      });
      const accepted = await sendFromAnotherProcess(conn.localPort, count, 1100, 10_000);
      assert.equal(accepted, count, "the sender could not send them all");
      for (let waited = 0; unique < count && waited < WAIT_MS; waited += 10) await sleep(10);
      // Deno cannot enlarge the socket buffer: the kernel's default 208 KiB holds ~90 of
      // these datagrams, 9 ms at this rate, and on 2 cores both busy elsewhere a stall
      // that long drops a few (4 in 3 runs of 30; none idle or with one core busy), so
      // Deno may lose 1%. Node and Bun (4 MiB) lost none even with 3 busy loops; the
      // failure this guards against lost 93%.
      const lossAllowed = detectRuntime() === "deno" ? count / 100 : 0;
      const lost = count - unique;
      assert.ok(lost <= lossAllowed, `lost ${lost}: ${JSON.stringify(conn.counters())}`);
    });
  });
}

describe("the Runtime's UDP", () => {
  test("is deno-udp.ts on Deno and node:dgram elsewhere, and talks to the other", async () => {
    assert.equal(listenRuntime, detectRuntime() === "deno" ? listenDeno : listenDgram);
    const a = await listenRuntime({ address: "127.0.0.1" });
    const b = await listenDgram({ address: "127.0.0.1" });
    open.push(a, b);
    const atB = nextDatagram(b);
    a.send(new TextEncoder().encode(runtime.name), { address: "127.0.0.1", port: b.localPort });
    const got = await atB;
    assert.equal(new TextDecoder().decode(got.data), runtime.name);
    const atA = nextDatagram(a);
    b.send(new Uint8Array([1]), got.from);
    assert.deepEqual((await atA).from, { address: "127.0.0.1", port: b.localPort });
  });
});

/** About 5 µs of synchronous work: two SHA-256 digests of a full-size datagram. */
function work(data: Uint8Array): void {
  createHash("sha256").update(createHash("sha256").update(data).digest()).update(data).digest();
}

/** Runs test/helpers/udp-sender.ts on this runtime; resolves with how many it sent. */
function sendFromAnotherProcess(
  port: number,
  count: number,
  bytes: number,
  perSecond: number,
): Promise<number> {
  const script = join(ROOT, "test", "helpers", "udp-sender.ts");
  const runtimeArgs = {
    node: ["--import", "tsx", script],
    deno: ["run", "--allow-net", script],
    bun: [script],
  }[detectRuntime()];
  const args = [...runtimeArgs, String(port), String(count), String(bytes), String(perSecond)];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { cwd: ROOT, timeout: 30_000 }, (error, stdout) => {
      if (error) reject(error);
      else resolve(Number(stdout.trim()));
    });
  });
}
