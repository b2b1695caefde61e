/**
 * Helpers for the proxy tests: two in-process userspace stacks joined by a simulated link
 * on the real clock (the proxies meet real loopback sockets, so virtual time would not
 * do), servers on the far stack, and a raw byte client over the runtime's TCP seam.
 * Traffic goes only to 127.0.0.1 and to the simulated 10.40.0.0/24 (never a real network).
 */
import { systemClock } from "../../src/clock.ts";
import type { StreamConn, StreamListener } from "../../src/net/stream.ts";
import {
  Netstack,
  TcpError,
  TcpStack,
  type TcpStackOptions,
  type TcpStream,
} from "../../src/netstack/index.ts";
import type { Runtime } from "../../src/runtime.ts";

export const NEAR = "10.40.0.1";
export const FAR = "10.40.0.2";
export const FAR6 = "fd00::2";
export const LOOPBACK = "127.0.0.1";

/** Names the near stack resolves (as weft's DNS would): everything else is ENOTFOUND. */
export const NAMES: Record<string, string> = {
  "far.mesh": FAR,
  "some.name": FAR,
};

export interface Mesh {
  /** The stack the proxies dial from. */
  readonly near: TcpStack;
  /** The stack the test's servers listen on. */
  readonly far: TcpStack;
  /** The Netstacks under them (for UDP). */
  readonly nearStack: Netstack;
  readonly farStack: Netstack;
  close(): void;
}

function randomUint32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}

/** Two stacks whose packets cross to each other through a 0 ms timer. */
export function meshPair(extra: Partial<TcpStackOptions> = {}): Mesh {
  const clock = systemClock;
  const near = new Netstack({ addresses: [NEAR, "fd00::1"], clock });
  const far = new Netstack({ addresses: [FAR, FAR6], clock });
  near.onPacket((packet) => {
    const copy = packet.slice();
    clock.setTimer(0, () => far.write(copy));
  });
  far.onPacket((packet) => {
    const copy = packet.slice();
    clock.setTimer(0, () => near.write(copy));
  });
  const options: TcpStackOptions = {
    clock,
    randomUint32,
    mslMs: 100,
    resolve: async (name) => {
      const address = NAMES[name];
      if (address === undefined) throw new Error(`no such name`);
      return address;
    },
    ...extra,
  };
  const nearTcp = new TcpStack(near, options);
  const farTcp = new TcpStack(far, options);
  return {
    near: nearTcp,
    far: farTcp,
    nearStack: near,
    farStack: far,
    close() {
      nearTcp.close();
      farTcp.close();
    },
  };
}

/** Serves every connection on `port` of `stack` with `handle` until the stack closes. */
export function serveOn(
  stack: TcpStack,
  port: number,
  handle: (stream: TcpStream) => Promise<void>,
): void {
  const server = stack.listen(port);
  void (async () => {
    for await (const stream of server) void handle(stream).catch(() => stream.abort());
  })();
}

/** Echoes bytes back, FIN answered with FIN. */
export async function echo(stream: TcpStream): Promise<void> {
  await stream.readable.pipeTo(stream.writable);
}

/** Reads until FIN, then writes `respond(request)` and closes (request-then-FIN servers). */
export function replyAfterFin(
  respond: (request: Uint8Array) => Uint8Array,
): (stream: TcpStream) => Promise<void> {
  return async (stream) => {
    const request = await readAll(stream.readable);
    const writer = stream.writable.getWriter();
    await writer.write(respond(request));
    await writer.close();
  };
}

export async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of readable) chunks.push(chunk);
  return concat(chunks);
}

export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Deterministic pseudo-random bytes (xorshift), so a mismatch is reproducible. */
export function pattern(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * A host connection read by hand: bytes collect in `received`, `read(n)` waits for n of
 * them, `ended`/`closed` say what the peer did. Rejects waits after `timeoutMs`.
 */
export class RawClient {
  readonly conn: StreamConn;
  #buffer: Uint8Array = new Uint8Array(0);
  #waiters: (() => void)[] = [];
  ended = false;
  closed = false;
  closeError: Error | undefined;
  total = 0;

  /** `autoEnd`: answer the peer's FIN with ours (most clients do); else stay half-open. */
  constructor(conn: StreamConn, keep = true, autoEnd = true) {
    this.conn = conn;
    conn.onData((data) => {
      this.total += data.length;
      if (keep) this.#buffer = concat([this.#buffer, data]);
      this.#wake();
    });
    conn.onEnd(() => {
      // Like most clients: nothing more to say once the other side is done.
      this.ended = true;
      if (autoEnd) conn.end();
      this.#wake();
    });
    conn.onClose((error) => {
      this.closed = true;
      this.closeError = error;
      this.#wake();
    });
  }

  static async dial(
    runtime: Runtime,
    port: number,
    keep = true,
    autoEnd = true,
  ): Promise<RawClient> {
    return new RawClient(await runtime.dialTcp({ address: LOOPBACK, port }, 5000), keep, autoEnd);
  }

  get buffered(): number {
    return this.#buffer.length;
  }

  write(bytes: Uint8Array): boolean {
    return this.conn.write(bytes);
  }

  /** Writes all of `bytes`, waiting for drain when the conn asks. */
  async writeAll(bytes: Uint8Array, chunk = 64 * 1024): Promise<void> {
    for (let at = 0; at < bytes.length; at += chunk) {
      if (!this.conn.write(bytes.subarray(at, at + chunk))) {
        await new Promise<void>((resolve) => this.conn.onDrain(resolve));
      }
    }
  }

  /** Takes exactly `n` bytes. */
  async read(n: number, timeoutMs = 10_000): Promise<Uint8Array> {
    await this.until(() => this.#buffer.length >= n, timeoutMs, `${n} bytes`);
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return out;
  }

  /** Everything until the peer's FIN (or close). */
  async readToEnd(timeoutMs = 20_000): Promise<Uint8Array> {
    await this.until(() => this.ended || this.closed, timeoutMs, "the end");
    const out = this.#buffer;
    this.#buffer = new Uint8Array(0);
    return out;
  }

  async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
}

/** A listener whose connections are also handed to `seen` (to look at the proxy's side). */
export function watched(listener: StreamListener, seen: StreamConn[]): StreamListener {
  return {
    localPort: listener.localPort,
    onConnection(handler) {
      listener.onConnection((conn) => {
        seen.push(conn);
        handler(conn);
      });
    },
    close: () => listener.close(),
  };
}

/** Polls `done` every 20 ms of real time; throws after `timeoutMs`. */
export async function waitFor(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Waits `ms` of real time. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** An error as the lead's dial hook throws for a destination that is not on the mesh. */
export function notOnMesh(): Error {
  const error = new Error("ENETUNREACH: not on the mesh") as Error & { code: string };
  error.code = "ENETUNREACH";
  return error;
}

export { TcpError };
