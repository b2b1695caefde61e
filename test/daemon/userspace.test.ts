/**
 * `weft up --userspace` in one process: two daemons on loopback UDP whose overlay
 * addresses live on userspace stacks. TCP by mesh name both ways, DNS answered on the
 * overlay address, and the dial rules (mesh range only, names through weft's DNS).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as dnsPacket from "dns-packet";
import { loadRuntime } from "../../runtimes/index.ts";
import { buildConfig } from "../../src/daemon/config.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import { formatDaemonStatus } from "../../src/daemon/format.ts";
import { createLogger } from "../../src/daemon/log.ts";
import { renderMetrics } from "../../src/daemon/metrics.ts";
import { TcpError } from "../../src/netstack/index.ts";

const runtime = await loadRuntime();
const log = createLogger("error");

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of readable) chunks.push(chunk);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

describe("weft up --userspace", () => {
  const root = mkdtempSync(join(tmpdir(), "weft-userspace-"));
  const daemons: Daemon[] = [];
  let a: Daemon;
  let b: Daemon;

  const start = async (name: string, token?: string) => {
    const config = buildConfig({
      stateDir: join(root, name),
      port: "0",
      listen: "127.0.0.1",
      name,
      userspace: true,
      socks5: "off",
      logLevel: "error",
      join: token,
    });
    const daemon = await Daemon.start(config, runtime, log);
    daemons.push(daemon);
    return daemon;
  };

  before(async () => {
    a = await start("a");
    const token = a.invite({ ttlMs: 600_000, uses: 1, nickname: "b", endpoints: [] }).token;
    b = await start("b", token);
    await until("both have addresses, stacks and each other's names", () =>
      [a, b].every(
        (d) =>
          d.userspace !== undefined &&
          d.dnsLookup("a").addresses.length > 0 &&
          d.dnsLookup("b").addresses.length > 0,
      ),
    );
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop("test done")));
    rmSync(root, { recursive: true, force: true });
  });

  test("the config: no TUN, and the proxy options need --userspace", () => {
    assert.equal(a.config.tun, undefined, "no kernel TUN in userspace mode");
    assert.deepEqual(a.config.userspace?.socks5, undefined, "--socks5 off");
    const dir = join(root, "cfg");
    assert.deepEqual(
      buildConfig({ stateDir: dir, userspace: true }).userspace?.socks5,
      { address: "127.0.0.1", port: 1080 },
      "SOCKS5 on 127.0.0.1:1080 by default",
    );
    assert.throws(() => buildConfig({ stateDir: dir, socks5: "127.0.0.1:1080" }), /--userspace/);
    assert.throws(() => buildConfig({ stateDir: dir, forward: ["8080:b:80"] }), /--userspace/);
    assert.throws(() => buildConfig({ stateDir: dir, expose: ["80"] }), /--userspace/);
    assert.throws(
      () => buildConfig({ stateDir: dir, userspace: true, socks5: "localhost:1080" }),
      /Invalid --socks5/,
    );
    assert.deepEqual(
      buildConfig({ stateDir: dir, userspace: true, socks5: "[::1]:0" }).userspace?.socks5,
      { address: "::1", port: 0 },
    );
    const forward = buildConfig({ stateDir: dir, userspace: true, forward: ["5432:db:5432"] });
    assert.deepEqual(forward.userspace?.forwards, [
      { bindAddress: "127.0.0.1", localPort: 5432, host: "db", port: 5432 },
    ]);
    assert.throws(
      () => buildConfig({ stateDir: dir, userspace: true, forward: ["5432:db"] }),
      /^Error: Invalid --forward "5432:db": /,
    );
    assert.throws(
      () => buildConfig({ stateDir: dir, userspace: true, expose: ["80", "80:8080"] }),
      /mesh port 80 given twice/,
    );
    assert.throws(
      () => buildConfig({ stateDir: dir, userspace: true, expose: ["80:192.168.1.5:80"] }),
      /^Error: Invalid --expose "80:192\.168\.1\.5:80": .*loopback/,
    );
  });

  test("TCP by mesh name, 256 KiB each way byte-exact", async () => {
    const server = b.userspace!.tcp.listen(7);
    const echoed = (async () => {
      const stream = await server.accept();
      await stream.readable.pipeTo(stream.writable);
    })();
    const stream = await a.userspace!.dial("b.weft.internal", 7);
    const sent = new Uint8Array(256 * 1024);
    for (let i = 0; i < sent.length; i += 65536) sent.set(runtime.crypto.randomBytes(65536), i);
    const writer = stream.writable.getWriter();
    const received = readAll(stream.readable);
    await writer.write(sent);
    await writer.close();
    const back = await received;
    await echoed;
    server.close();
    assert.equal(back.length, sent.length, "every byte came back");
    assert.ok(
      back.every((byte, i) => byte === sent[i]),
      "the bytes came back unchanged",
    );
    const status = a.status();
    assert.equal(status.userspace?.address, status.self.address);
    assert.match(formatDaemonStatus(status), /userspace stack \(no TUN\) on 10\.40\.\d+\.\d+/);
    const metrics = renderMetrics(a);
    assert.match(metrics, /^weft_userspace_tcp_connections \d+$/m);
    const packetsIn = /^weft_userspace_packets_total\{direction="in"\} (\d+)$/m.exec(metrics);
    assert.ok(Number(packetsIn?.[1]) > 100, `packets counted in the metrics: ${packetsIn?.[1]}`);
  });

  test("dials outside the mesh, to unknown names and to closed ports fail cleanly", async () => {
    const code = (promise: Promise<unknown>) =>
      promise.then(
        () => "connected",
        (error) => (error instanceof TcpError ? error.code : String(error)),
      );
    assert.equal(await code(a.userspace!.dial("192.0.2.1", 80)), "ENETUNREACH");
    assert.equal(await code(a.userspace!.dial("nosuch.weft.internal", 80)), "ENOTFOUND");
    assert.equal(await code(a.userspace!.dial("b", 9)), "ECONNREFUSED");
  });

  test("DNS is answered on the overlay address of a userspace peer", async () => {
    const bAddress = b.status().self.address!;
    const stack = a.userspace!.netstack;
    const answer = new Promise<dnsPacket.Packet>((resolve) => {
      const binding = stack.bindUdp(0, (datagram) => {
        binding.close();
        resolve(dnsPacket.decode(Buffer.from(datagram.data)));
      });
      const query = dnsPacket.encode({
        type: "query",
        id: 4242,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: "A", name: "a.weft.internal" }],
      });
      stack.sendUdp(binding.port, bAddress, 53, new Uint8Array(query));
    });
    const packet = await answer;
    assert.equal(packet.id, 4242);
    const addresses = (packet.answers ?? []).map((r) => (r as { data: string }).data);
    assert.deepEqual(addresses, [a.status().self.address], "b's DNS names a's address");
    assert.match(b.status().self.dns ?? "", /:53$/, "status names the DNS endpoint");
  });
});
