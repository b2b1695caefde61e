/**
 * A real SOCKS5 client against the server: curl with --socks5-hostname (the name goes to
 * the proxy, which resolves it on the mesh) fetching from an HTTP/1.0 responder on the far
 * userspace stack. curl only ever connects to 127.0.0.1; it runs with no proxy variables
 * in its environment so nothing can send it elsewhere. Skipped when curl is missing,
 * unless CI=true.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { loadRuntime } from "../../runtimes/index.ts";
import { serveSocks5 } from "../../src/proxy/index.ts";
import { LOOPBACK, type Mesh, meshPair, pattern, serveOn } from "./helpers.ts";

const CURL = "/usr/bin/curl";
const missing = !existsSync(CURL);
if (missing && process.env.CI === "true") throw new Error(`${CURL} is required when CI=true`);
if (missing) console.log(`skipping the curl tests: ${CURL} is missing`);

const BODY = pattern(2 * 1024 * 1024, 80);

interface CurlResult {
  readonly code: number;
  readonly stdout: Uint8Array;
  readonly stderr: string;
}

function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      CURL,
      ["--silent", "--show-error", "--max-time", "30", ...args],
      { encoding: "buffer", maxBuffer: 64 * 1024 * 1024, env: { PATH: process.env.PATH ?? "" } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({
          code,
          stdout: new Uint8Array(stdout.buffer, stdout.byteOffset, stdout.byteLength),
          stderr: stderr.toString(),
        });
      },
    );
  });
}

/** An HTTP/1.0 server: reads the request head, answers with BODY for "/", 404 otherwise. */
function http(mesh: Mesh): void {
  serveOn(mesh.far, 80, async (stream) => {
    const reader = stream.readable.getReader();
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const { value, done } = await reader.read();
      if (done) return;
      head += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    const path = head.split(" ")[1];
    const body = path === "/" ? BODY : new TextEncoder().encode("not here\n");
    const status = path === "/" ? "200 OK" : "404 Not Found";
    const writer = stream.writable.getWriter();
    await writer.write(
      new TextEncoder().encode(
        `HTTP/1.0 ${status}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
      ),
    );
    await writer.write(body);
    await writer.close();
  });
}

describe("SOCKS5 server with curl", { skip: missing ? `${CURL} is missing` : false }, () => {
  let mesh: Mesh;
  let port: number;
  let server: ReturnType<typeof serveSocks5>;

  before(async () => {
    const runtime = await loadRuntime();
    mesh = meshPair();
    http(mesh);
    const listener = await runtime.listenTcp({ address: LOOPBACK, port: 0 });
    port = listener.localPort;
    server = serveSocks5({
      listener,
      dial: (host, p) => mesh.near.dial(host, p, { timeoutMs: 5000 }),
    });
  });

  after(async () => {
    await server.close();
    mesh.close();
  });

  test("--socks5-hostname fetches 2 MiB by mesh name, byte-exact", async () => {
    const result = await curl([
      "--socks5-hostname",
      `${LOOPBACK}:${port}`,
      "--output",
      "-",
      "http://some.name:80/",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.length, BODY.length);
    assert.ok(
      result.stdout.every((b, i) => b === BODY[i]),
      "the body differs",
    );
  });

  test("a 404 by mesh IP comes through as such", async () => {
    const result = await curl([
      "--socks5-hostname",
      `${LOOPBACK}:${port}`,
      "--write-out",
      "%{http_code}",
      "--output",
      "/dev/null",
      "http://10.40.0.2/missing",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(new TextDecoder().decode(result.stdout), "404");
  });

  // curl 7.88 prints the reply code: "Can't complete SOCKS5 connection to some.name. (5)".
  test("a refused port and an unknown name fail in curl with the proxy's reply code", async () => {
    const refused = await curl([
      "--socks5-hostname",
      `${LOOPBACK}:${port}`,
      "http://some.name:81/",
    ]);
    assert.equal(refused.code, 97, refused.stderr); // CURLE_PROXY
    assert.match(refused.stderr, /\(5\)|refused/i);
    const unknown = await curl(["--socks5-hostname", `${LOOPBACK}:${port}`, "http://no.such:80/"]);
    assert.equal(unknown.code, 97, unknown.stderr);
    assert.match(unknown.stderr, /\(4\)|unreachable/i);
  });
});
