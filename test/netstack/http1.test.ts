/**
 * HTTP/1.1 over the userspace TCP stack (#10): `httpGet` against `serveHttp` between two
 * in-process Netstacks wired back to back (each one's onPacket into the other's write),
 * on the system clock. Bodies byte-exact (fixed length, streamed, close-delimited,
 * chunked), HEAD, handler failures, and malformed input both ways, which must give a
 * clear error and leave the server serving.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { systemClock } from "../../src/clock.ts";
import { type HttpError, type HttpRequest, httpGet, serveHttp } from "../../src/netstack/http1.ts";
import { Netstack, TcpStack, type TcpStream } from "../../src/netstack/index.ts";
import { createRandom } from "../../src/sim/random.ts";

const A = "10.40.0.1";
const B = "10.40.0.2";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Pair {
  readonly client: TcpStack;
  readonly server: TcpStack;
  close(): void;
}

/** Two Netstacks whose packets go straight across, each in its own task. */
function pair(): Pair {
  const random = createRandom(10);
  const stackA = new Netstack({ addresses: [A] });
  const stackB = new Netstack({ addresses: [B] });
  let open = true;
  const wire = (from: Netstack, to: Netstack) =>
    from.onPacket((packet) => {
      const copy = packet.slice();
      queueMicrotask(() => {
        if (open) to.write(copy);
      });
    });
  wire(stackA, stackB);
  wire(stackB, stackA);
  const options = {
    clock: systemClock,
    randomUint32: () => random.int(0x1_0000_0000),
    mslMs: 50,
  };
  const client = new TcpStack(stackA, options);
  const server = new TcpStack(stackB, options);
  return {
    client,
    server,
    close() {
      open = false;
      client.close();
      server.close();
    },
  };
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const reader = readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
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

/** A body that arrives in uneven pieces, to exercise the streamed path. */
function piecewise(data: Uint8Array): ReadableStream<Uint8Array> {
  let at = 0;
  let step = 1;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= data.length) return controller.close();
      step = (step * 7 + 13) % 50_000;
      controller.enqueue(data.slice(at, at + 1 + step));
      at += 1 + step;
    },
  });
}

/** Runs `body` with a fresh pair and an HTTP server on B:80, then closes everything. */
async function withServer(
  handler: Parameters<typeof serveHttp>[1],
  body: (p: Pair, errors: unknown[]) => Promise<void>,
): Promise<void> {
  const p = pair();
  const listener = p.server.listen(80);
  const errors: unknown[] = [];
  const serving = serveHttp(listener, handler, { onError: (e) => errors.push(e) });
  try {
    await body(p, errors);
  } finally {
    listener.close();
    p.close();
    await serving.done;
  }
}

/** Sends raw bytes to B:80 and returns everything the server sends until it closes. */
async function rawExchange(p: Pair, request: Uint8Array | string): Promise<string> {
  const stream = await p.client.dial(B, 80);
  const writer = stream.writable.getWriter();
  await writer.write(typeof request === "string" ? encoder.encode(request) : request);
  const response = decoder.decode(await readAll(stream.readable));
  await writer.close().catch(() => {});
  return response;
}

/** A raw server on B:81 that answers any connection with `response`, then closes. */
function rawServer(p: Pair, response: string | Uint8Array): void {
  const listener = p.server.listen(81);
  void (async () => {
    for await (const stream of listener) {
      const writer = stream.writable.getWriter();
      await writer.write(typeof response === "string" ? encoder.encode(response) : response);
      await writer.close();
      void readAll(stream.readable).catch(() => {});
    }
  })();
}

async function getFromRaw(p: Pair, response: string | Uint8Array) {
  rawServer(p, response);
  const stream = await p.client.dial(B, 81);
  return httpGet(stream, { host: B, path: "/" });
}

async function rejectsWith(promise: Promise<unknown>, code: string, what: RegExp): Promise<void> {
  await assert.rejects(promise, (error: HttpError) => {
    assert.equal(error.name, "HttpError", String(error));
    assert.equal(error.code, code, String(error));
    assert.match(error.message, what);
    return true;
  });
}

describe("HTTP/1.1 over the netstack", () => {
  test("a 1 MiB body with Content-Length arrives byte-exact, with status and headers", async () => {
    const data = createRandom(1).bytes(1 << 20);
    const seen: HttpRequest[] = [];
    await withServer(
      (request) => {
        seen.push(request);
        return { status: 200, headers: { "Content-Type": "application/octet-stream" }, body: data };
      },
      async (p, errors) => {
        const stream = await p.client.dial(B, 80);
        const response = await httpGet(stream, { host: "b.test", path: "/file?x=1" });
        assert.equal(response.status, 200);
        assert.equal(response.statusText, "OK");
        assert.equal(response.headers.get("content-length"), String(data.length));
        assert.equal(response.headers.get("content-type"), "application/octet-stream");
        assert.equal(response.headers.get("connection"), "close");
        sameBytes(await readAll(response.body), data, "the body");
        assert.equal(seen.length, 1);
        assert.equal(seen[0]!.method, "GET");
        assert.equal(seen[0]!.path, "/file?x=1");
        assert.equal(seen[0]!.version, "HTTP/1.1");
        assert.equal(seen[0]!.headers.get("host"), "b.test");
        assert.equal(seen[0]!.headers.get("connection"), "close");
        assert.deepEqual(errors, []);
      },
    );
  });

  test("streamed bodies: with a content length, and delimited by the close", async () => {
    const data = createRandom(2).bytes(300_000);
    await withServer(
      (request) =>
        request.path === "/sized"
          ? { status: 200, body: piecewise(data), contentLength: data.length }
          : { status: 200, body: piecewise(data) },
      async (p, errors) => {
        const sized = await httpGet(await p.client.dial(B, 80), { host: B, path: "/sized" });
        assert.equal(sized.headers.get("content-length"), String(data.length));
        sameBytes(await readAll(sized.body), data, "the sized body");
        const open = await httpGet(await p.client.dial(B, 80), { host: B, path: "/open" });
        assert.equal(open.headers.get("content-length"), undefined);
        sameBytes(await readAll(open.body), data, "the close-delimited body");
        assert.deepEqual(errors, []);
      },
    );
  });

  test("connections are served concurrently", async () => {
    const random = createRandom(3);
    const bodies = [0, 1, 2, 3].map(() => random.bytes(100_000));
    await withServer(
      (request) => ({ status: 200, body: bodies[Number(request.path.slice(1))]! }),
      async (p) => {
        const results = await Promise.all(
          bodies.map(async (_, i) => {
            const response = await httpGet(await p.client.dial(B, 80), { host: B, path: `/${i}` });
            return readAll(response.body);
          }),
        );
        results.forEach((r, i) => {
          sameBytes(r, bodies[i]!, `body ${i}`);
        });
      },
    );
  });

  test("HEAD, 404, an empty body, and a handler that throws (500)", async () => {
    await withServer(
      (request) => {
        if (request.path === "/boom") throw new Error("handler bug");
        if (request.path === "/empty") return { status: 204 };
        if (request.path === "/missing") return { status: 404, body: encoder.encode("no\n") };
        return { status: 200, body: encoder.encode("hello") };
      },
      async (p, errors) => {
        const head = await rawExchange(p, "HEAD / HTTP/1.0\r\n\r\n");
        assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
        assert.match(head, /\r\nContent-Length: 5\r\n/);
        assert.ok(head.endsWith("\r\n\r\n"), `no body after HEAD: ${JSON.stringify(head)}`);
        const missing = await httpGet(await p.client.dial(B, 80), { host: B, path: "/missing" });
        assert.equal(missing.status, 404);
        assert.equal(decoder.decode(await readAll(missing.body)), "no\n");
        const empty = await httpGet(await p.client.dial(B, 80), { host: B, path: "/empty" });
        assert.equal(empty.status, 204);
        assert.equal((await readAll(empty.body)).length, 0);
        const boom = await httpGet(await p.client.dial(B, 80), { host: B, path: "/boom" });
        assert.equal(boom.status, 500);
        await readAll(boom.body);
        assert.ok(
          errors.some((e) => (e as Error).message === "handler bug"),
          "the failure is reported",
        );
      },
    );
  });

  test("malformed requests get 400, 431, 501 or 505, and the server goes on serving", async () => {
    await withServer(
      () => ({ status: 200, body: encoder.encode("fine") }),
      async (p, errors) => {
        const cases: [string | Uint8Array, RegExp][] = [
          ["NOT HTTP AT ALL\r\n\r\n", /^HTTP\/1\.1 400 /],
          ["GET / HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 400 [\s\S]*without a Host/],
          ["GET / HTTP/2.0\r\nHost: x\r\n\r\n", /^HTTP\/1\.1 505 /],
          [
            "GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
            /^HTTP\/1\.1 400 [\s\S]*header name/,
          ],
          ["GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", /^HTTP\/1\.1 400 [\s\S]*obs-fold/],
          ["GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", /^HTTP\/1\.1 400 /],
          ["GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", /^HTTP\/1\.1 400 /],
          ["POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", /^HTTP\/1\.1 501 /],
          ["POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", /^HTTP\/1\.1 413 /],
          [`GET / HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(20_000)}\r\n\r\n`, /^HTTP\/1\.1 431 /],
          [new Uint8Array(20_000).fill(0), /^HTTP\/1\.1 431 /],
        ];
        for (const [request, expected] of cases) {
          const response = await rawExchange(p, request);
          assert.match(response, expected, `for ${JSON.stringify(String(request).slice(0, 50))}`);
        }
        assert.equal(errors.length, cases.length, "each failure is reported");
        // A request cut short (the client closes mid-header) is an error, not a crash.
        const cut = await p.client.dial(B, 80);
        const writer = cut.writable.getWriter();
        await writer.write(encoder.encode("GET / HTTP/1.1\r\nHo"));
        await writer.close();
        await readAll(cut.readable);
        const fine = await httpGet(await p.client.dial(B, 80), { host: B, path: "/" });
        assert.equal(decoder.decode(await readAll(fine.body)), "fine");
      },
    );
  });

  test("a client that does not finish its request in time is reset, and the server goes on", async () => {
    const p = pair();
    const listener = p.server.listen(80);
    const errors: unknown[] = [];
    const serving = serveHttp(listener, () => ({ status: 200, body: encoder.encode("fine") }), {
      requestTimeoutMs: 100,
      onError: (e) => errors.push(e),
    });
    try {
      const slow = await p.client.dial(B, 80);
      const writer = slow.writable.getWriter();
      await writer.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n"));
      const started = performance.now();
      await assert.rejects(readAll(slow.readable), /ECONNRESET/, "the slow client is reset");
      assert.ok(performance.now() - started >= 50, "not before the timeout");
      for (let i = 0; i < 100 && errors.length === 0; i++)
        await new Promise((r) => setTimeout(r, 5));
      assert.equal((errors[0] as HttpError | undefined)?.code, "TIMEOUT", String(errors[0]));
      const fine = await httpGet(await p.client.dial(B, 80), { host: B, path: "/" });
      assert.equal(decoder.decode(await readAll(fine.body)), "fine");
      assert.equal(errors.length, 1);
    } finally {
      listener.close();
      p.close();
      await serving.done;
    }
  });

  test("httpGet decodes a chunked body and reads an undelimited one to the close", async () => {
    const p = pair();
    try {
      const chunked = await getFromRaw(
        p,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
      );
      assert.equal(decoder.decode(await readAll(chunked.body)), "hello world");
    } finally {
      p.close();
    }
    const q = pair();
    try {
      const open = await getFromRaw(q, "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil the end");
      assert.equal(open.headers.get("server"), "old");
      assert.equal(decoder.decode(await readAll(open.body)), "until the end");
    } finally {
      q.close();
    }
  });

  for (const [name, response, code, what] of [
    ["a status line that is not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", "MALFORMED", /status line/],
    ["a bad status code", "HTTP/1.1 2000 OK\r\n\r\n", "MALFORMED", /status line/],
    ["a bad header", "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "MALFORMED", /without a name/],
    [
      "a bad Content-Length",
      "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n",
      "MALFORMED",
      /Content-Length/,
    ],
    [
      "a header over the bound",
      `HTTP/1.1 200 OK\r\nX: ${"y".repeat(20_000)}\r\n\r\n`,
      "HEADER_TOO_LARGE",
      /larger than 16384/,
    ],
    ["a close before the header ends", "HTTP/1.1 200 OK\r\nX: 1\r\n", "TRUNCATED", /ended/],
    ["no response at all", "", "TRUNCATED", /before a response/],
  ] as const) {
    test(`httpGet rejects ${name} with a clear HttpError`, async () => {
      const p = pair();
      try {
        await rejectsWith(getFromRaw(p, response), code, what);
      } finally {
        p.close();
      }
    });
  }

  test("httpGet errors the body when the connection ends before Content-Length or the last chunk", async () => {
    const p = pair();
    try {
      const short = await getFromRaw(p, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
      await rejectsWith(readAll(short.body), "TRUNCATED", /after 9 of 100 body bytes/);
    } finally {
      p.close();
    }
    const q = pair();
    try {
      const chunks = await getFromRaw(
        q,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
      );
      await rejectsWith(readAll(chunks.body), "TRUNCATED", /inside a chunk/);
    } finally {
      q.close();
    }
    const r = pair();
    try {
      const bad = await getFromRaw(
        r,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      );
      await rejectsWith(readAll(bad.body), "MALFORMED", /chunk size/);
    } finally {
      r.close();
    }
  });

  test("httpGet refuses a request it cannot send cleanly, before sending anything", async () => {
    const stream = {
      readable: new ReadableStream<Uint8Array>(),
      writable: new WritableStream<Uint8Array>({
        write() {
          throw new Error("nothing should be written");
        },
      }),
    } as unknown as TcpStream;
    await rejectsWith(httpGet(stream, { host: "x", path: "no-slash" }), "MALFORMED", /path/);
    await rejectsWith(httpGet(stream, { host: "x", path: "/a b" }), "MALFORMED", /path/);
    await rejectsWith(
      httpGet(stream, { host: "x\r\nEvil: 1", path: "/" }),
      "MALFORMED",
      /request header/,
    );
  });
});
