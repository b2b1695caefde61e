/**
 * The userspace TCP/IP stack against a real kernel TCP stack (#10): Debian's wireguard-go
 * in a network namespace, and on weft's side a Device on real UDP whose Tun is a
 * `Netstack` with weft's overlay address, plus a `TcpStack`. No TUN on weft's side.
 *
 *  - weft's `httpGet` downloads 50 MB of random bytes from Node's http server in the
 *    namespace, byte-exact (sha256);
 *  - `curl` in the namespace downloads 50 MB from weft's `serveHttp`, byte-exact (sha256);
 *  - both again with 1% of the packets lost each way on the veth (netem, or iptables'
 *    statistic match where the kernel has no netem).
 *
 * Throughput is printed, not asserted. Root only; under CI=true it must run. Traffic goes
 * only to the namespace the test creates.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, describe, test } from "node:test";
import { loadRuntime } from "../../runtimes/index.ts";
import { httpGet, serveHttp } from "../../src/netstack/http1.ts";
import { Netstack, TcpStack } from "../../src/netstack/index.ts";
import {
  addLoss,
  curlSha256,
  type RandomFile,
  randomFile,
  startFileServer,
  startWgPeer,
  type WgPeer,
} from "../helpers/netstack-wg.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";

const TOOLS = ["ip", "wireguard-go", "wg", "curl", "bash", "sha256sum", "tc", "iptables", "node"];
const runtime = await loadRuntime();
const SIZE = 50 * 1000 * 1000;
const HTTP_PORT = 8080;
const WEFT_PORT = 8081;
/** Generous but bounded: a transfer that stalls fails the test instead of hanging it. */
const TRANSFER_LIMIT_S = 120;

let payload: RandomFile | undefined;
function file(): RandomFile {
  payload ??= randomFile(SIZE);
  return payload;
}

interface Stack {
  peer: WgPeer;
  tcp: TcpStack;
}

async function withStack(body: (s: Stack) => Promise<void>): Promise<void> {
  let tcp: TcpStack | undefined;
  const peer = await startWgPeer(runtime, "nsw", (address) => {
    const netstack = new Netstack({ addresses: [address], name: "weft-netstack" });
    const random = new Uint32Array(1);
    tcp = new TcpStack(netstack, {
      clock: runtime.clock,
      randomUint32: () => crypto.getRandomValues(random)[0]!,
    });
    return netstack;
  });
  try {
    await body({ peer, tcp: tcp! });
  } finally {
    tcp?.close();
    await peer.close();
  }
}

function within<T>(promise: Promise<T>, what: string, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`${what}: not done within ${TRANSFER_LIMIT_S} s`));
    }, TRANSFER_LIMIT_S * 1000);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

function report(what: string, bytes: number, seconds: number): void {
  const mbytes = bytes / 1e6 / seconds;
  console.log(
    `[${runtime.name}] ${what}: ${(bytes / 1e6).toFixed(0)} MB in ${seconds.toFixed(2)} s, ${mbytes.toFixed(1)} MB/s (${(mbytes * 8).toFixed(0)} Mbit/s)`,
  );
}

/** weft's stack fetches the file from the namespace's http server; sha256 compared. */
async function download(s: Stack, what: string): Promise<void> {
  const f = file();
  const server = await startFileServer(runtime, s.peer.host, s.peer.wgOverlay, HTTP_PORT, f.path);
  try {
    const start = performance.now();
    const hash = createHash("sha256");
    let bytes = 0;
    let stream: Awaited<ReturnType<TcpStack["dial"]>> | undefined;
    await within(
      (async () => {
        stream = await s.tcp.dial(s.peer.wgOverlay, HTTP_PORT, { timeoutMs: 20_000 });
        const response = await httpGet(stream, {
          host: `${s.peer.wgOverlay}:${HTTP_PORT}`,
          path: "/payload.bin",
        });
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("content-length"), String(SIZE));
        for await (const chunk of response.body) {
          hash.update(chunk);
          bytes += chunk.length;
        }
      })(),
      what,
      () => stream?.abort(),
    );
    const seconds = (performance.now() - start) / 1000;
    assert.equal(bytes, SIZE, `${what}: bytes received`);
    assert.equal(hash.digest("hex"), f.sha256, `${what}: sha256`);
    report(what, bytes, seconds);
  } finally {
    server.stop();
  }
}

/** curl in the namespace fetches the file from weft's serveHttp; sha256 compared. */
async function upload(s: Stack, what: string): Promise<void> {
  const f = file();
  const listener = s.tcp.listen(WEFT_PORT);
  const errors: unknown[] = [];
  const serving = serveHttp(
    listener,
    () => ({ status: 200, headers: { "Content-Type": "application/octet-stream" }, body: f.bytes }),
    { onError: (e) => errors.push(e) },
  );
  try {
    const url = `http://${s.peer.weftOverlay}:${WEFT_PORT}/payload.bin`;
    const result = await within(
      curlSha256(url, s.peer.host.namespace, TRANSFER_LIMIT_S),
      what,
      () => {},
    );
    assert.equal(result.bytes, SIZE, `${what}: bytes curl received`);
    assert.equal(result.sha256, f.sha256, `${what}: sha256`);
    assert.deepEqual(errors, [], `${what}: server errors`);
    report(what, result.bytes, result.seconds);
    // The sender's side of loss recovery, for the log (the connection is in TIME-WAIT).
    for (const c of s.tcp.connections())
      console.log(`[${runtime.name}] ${what}: ${JSON.stringify(c.stats)}`);
  } finally {
    listener.close();
    await Promise.race([serving.done, new Promise((r) => setTimeout(r, 5_000))]);
  }
}

/** A root-only test that must run under CI. */
function rootTest(name: string, body: () => Promise<void>): void {
  test(name, { ...rootOnly(...TOOLS), timeout: 6 * TRANSFER_LIMIT_S * 1000 }, async () => {
    assertCanRun(...TOOLS);
    await body();
  });
}

after(() => payload?.remove());

describe(`the userspace TCP/IP stack against wireguard-go and a kernel TCP (${runtime.name})`, () => {
  rootTest("50 MB each way over HTTP, byte-exact", () =>
    withStack(async (s) => {
      try {
        await download(s, "download from the kernel's server");
        await upload(s, "curl from weft's server");
      } catch (error) {
        console.log(s.peer.logs.slice(-20).join("\n"));
        throw error;
      }
    }),
  );

  rootTest("50 MB each way over HTTP with 1% packet loss each way, byte-exact", () =>
    withStack(async (s) => {
      console.log(`[${runtime.name}] loss: ${addLoss(s.peer.host, 1)}`);
      try {
        await download(s, "download from the kernel's server, 1% loss");
        await upload(s, "curl from weft's server, 1% loss");
      } catch (error) {
        console.log(s.peer.logs.slice(-20).join("\n"));
        throw error;
      }
    }),
  );
});
