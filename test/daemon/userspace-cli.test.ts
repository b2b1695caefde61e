/**
 * `weft up --userspace` as users run it, with no root: two daemons on loopback. b serves
 * an HTTP server of this test (on 127.0.0.1) to the mesh with `--expose`; on a's side
 * `curl --socks5-hostname` fetches it by mesh name through a's SOCKS5 proxy, and plain
 * curl through a's `--forward` port. curl only ever connects to 127.0.0.1, with no proxy
 * variables in its environment.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { eventually, makeStateDir, type RunningDaemon, startDaemon } from "../helpers/daemon.ts";

const CURL = "/usr/bin/curl";
const missing = !existsSync(CURL);
if (missing && process.env.CI === "true") throw new Error(`${CURL} is required when CI=true`);
if (missing) console.log(`skipping the weft up --userspace curl tests: ${CURL} is missing`);

const LOOPBACK = ["--port", "0", "--listen", "127.0.0.1", "--userspace"];
const BODY = randomBytes(4 * 1024 * 1024);
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

interface CurlResult {
  readonly code: number;
  readonly body: Uint8Array;
  readonly stderr: string;
}

function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      CURL,
      ["--silent", "--show-error", "--max-time", "60", ...args],
      { encoding: "buffer", maxBuffer: 64 * 1024 * 1024, env: { PATH: process.env.PATH ?? "" } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, body: new Uint8Array(stdout), stderr: stderr.toString() });
      },
    );
  });
}

interface UserspaceJson {
  address: string;
  socks5?: { listen: string; counters: { accepted: number; bytesFromMesh: number } };
  forwards: { listen: string; target: string; counters: { accepted: number } }[];
  exposes: { meshPort: number; local: string; counters: { accepted: number } }[];
}

function userspaceOf(daemon: RunningDaemon): UserspaceJson | undefined {
  return (daemon.status() as unknown as { userspace?: UserspaceJson }).userspace;
}

describe("weft up --userspace with SOCKS5, --forward and --expose", {
  skip: missing ? `${CURL} is missing` : false,
}, () => {
  let server: Server;
  let a: RunningDaemon;
  let b: RunningDaemon;
  let socks = "";
  let forward = "";

  before(async () => {
    server = createServer((request, response) => {
      if (request.url === "/file") {
        response.writeHead(200, { "content-length": BODY.length });
        response.end(BODY);
      } else {
        response.writeHead(404);
        response.end("not here\n");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const httpPort = (server.address() as AddressInfo).port;
    a = await startDaemon(makeStateDir("us-a"), [
      ...LOOPBACK,
      "--name",
      "a",
      "--socks5",
      "127.0.0.1:0",
      "--forward",
      "127.0.0.1:0:b.weft.internal:8080",
    ]);
    const token = a.cli(["invite", "--name", "b"]).stdout.trim();
    b = await startDaemon(makeStateDir("us-b"), [
      ...LOOPBACK,
      "--socks5",
      "off",
      "--expose",
      `8080:${httpPort}`,
      "--join",
      token,
    ]);
    const ready = await eventually(() => {
      const ours = userspaceOf(a);
      const theirs = userspaceOf(b);
      if (!ours?.socks5 || ours.forwards.length !== 1 || theirs?.exposes.length !== 1) return false;
      socks = ours.socks5.listen;
      forward = ours.forwards[0]!.listen;
      return a.cli(["dns", "lookup", "b"]).status === 0;
    }, 30_000);
    assert.ok(ready, `both userspace peers up and b's name known:\n${a.log()}\n${b.log()}`);
  });

  after(async () => {
    await a?.cleanup();
    await b?.cleanup();
    await new Promise((resolve) => server?.close(resolve));
  });

  test("curl --socks5-hostname fetches 4 MiB from b by mesh name, byte-exact", async () => {
    const result = await curl(["--socks5-hostname", socks, "http://b.weft.internal:8080/file"]);
    assert.equal(result.code, 0, `curl succeeded: ${result.stderr}`);
    assert.equal(result.body.length, BODY.length, "every byte arrived");
    assert.equal(sha256(result.body), sha256(BODY), "the bytes are the server's");
    const status = userspaceOf(a)!;
    assert.ok(status.socks5!.counters.bytesFromMesh >= BODY.length, "counted by the proxy");
    assert.ok(userspaceOf(b)!.exposes[0]!.counters.accepted >= 1, "b's expose took it");
    const text = a.cli(["status"]).stdout;
    assert.match(text, /userspace stack \(no TUN\) on 10\.40\.\d+\.\d+/);
    assert.match(text, /SOCKS5 proxy on 127\.0\.0\.1:\d+: \d+ active, [1-9]\d* accepted/);
    assert.match(text, /forward 127\.0\.0\.1:\d+ -> b\.weft\.internal:8080/);
  });

  test("a bare name and the overlay address work too; a 404 comes through", async () => {
    const bAddress = b.status().self.address!;
    const byAddress = await curl(["--socks5-hostname", socks, `http://${bAddress}:8080/nope`]);
    assert.equal(byAddress.code, 0, byAddress.stderr);
    assert.equal(new TextDecoder().decode(byAddress.body), "not here\n");
    const bare = await curl([
      "--socks5-hostname",
      socks,
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "http://b:8080/nope",
    ]);
    assert.equal(new TextDecoder().decode(bare.body), "404", bare.stderr);
  });

  test("--forward carries plain HTTP to b's service", async () => {
    const result = await curl([`http://${forward}/file`]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(sha256(result.body), sha256(BODY), "the bytes are the server's");
  });

  test("unknown names, closed ports and addresses outside the mesh fail with SOCKS5 errors", async () => {
    for (const url of [
      "http://nosuch.weft.internal:80/",
      "http://b.weft.internal:9/",
      "http://192.0.2.1:80/",
    ]) {
      const result = await curl(["--socks5-hostname", socks, url]);
      // 97: "proxy handshake error" in curl 7.88; older curls say 7 (could not connect).
      assert.ok(result.code === 97 || result.code === 7, `${url}: curl exit ${result.code}`);
    }
  });
});
