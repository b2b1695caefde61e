/**
 * Relays bytes between a host socket (`StreamConn`, the local side) and a mesh connection
 * (`TcpStream`, the netstack side), both ways, with backpressure and half-close:
 *
 * ```
 *  conn ──onData──► (pause conn while more than highWaterBytes are unwritten) ──► stream.writable
 *  conn ◄──write─── (wait for onDrain when write returns false)  ◄── stream.readable
 *  conn FIN (onEnd)       ─► stream FIN (writable.close)
 *  stream FIN (read done) ─► conn FIN (end)
 *  conn failed / reset    ─► stream RST (abort)
 *  stream reset / error   ─► conn RST (abort)
 * ```
 *
 * Memory per pipe stays bounded by the stream's own buffers, about `highWaterBytes` in
 * flight towards the stream, and the conn's send queue above its high-water mark by at
 * most one chunk.
 */
import type { StreamConn } from "../net/stream.ts";
import type { TcpStream } from "../netstack/tcp-stack.ts";

/** Bytes from the conn that may wait for the stream before the conn is paused. */
export const DEFAULT_PIPE_HIGH_WATER_BYTES = 64 * 1024;

export interface PipeOptions {
  /** Bytes already read from the conn (say, pipelined after a SOCKS5 request) to send first. */
  readonly initial?: Uint8Array;
  /** See DEFAULT_PIPE_HIGH_WATER_BYTES. */
  readonly highWaterBytes?: number;
}

/** How a pipe ended. */
export interface PipeResult {
  /** Bytes carried from the conn to the stream (the `initial` bytes included). */
  readonly bytesToStream: number;
  /** Bytes carried from the stream to the conn. */
  readonly bytesToConn: number;
  /** "closed": FIN both ways; "aborted": one side failed or was reset, and the other was reset. */
  readonly outcome: "closed" | "aborted";
  /** What failed, when aborted. */
  readonly error?: Error;
}

/** Live byte counts of a running pipe. */
export interface PipeCounters {
  readonly bytesToStream: number;
  readonly bytesToConn: number;
}

export interface Pipe {
  /** Settles (never rejects) when both directions are done or the pipe was aborted. */
  readonly done: Promise<PipeResult>;
  counters(): PipeCounters;
  /** Resets both sides now; `done` settles as "aborted". Idempotent. */
  abort(error?: Error): void;
}

/**
 * Starts relaying between `conn` and `stream`; it takes over the conn's handlers and the
 * stream's reader and writer. Both sides are finished (closed or reset) when `done` settles.
 */
export function pipe(conn: StreamConn, stream: TcpStream, options: PipeOptions = {}): Pipe {
  const highWater = options.highWaterBytes ?? DEFAULT_PIPE_HIGH_WATER_BYTES;
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  let bytesToStream = 0;
  let bytesToConn = 0;
  let unwritten = 0;
  let paused = false;
  let toStreamDone = false;
  let toConnDone = false;
  let connEnded = false;
  let finished = false;
  let drainWaiter: (() => void) | undefined;
  let resolveDone!: (result: PipeResult) => void;
  const done = new Promise<PipeResult>((resolve) => {
    resolveDone = resolve;
  });

  const finish = (outcome: "closed" | "aborted", error?: Error) => {
    if (finished) return;
    finished = true;
    const wake = drainWaiter;
    drainWaiter = undefined;
    wake?.();
    resolveDone({
      bytesToStream,
      bytesToConn,
      outcome,
      ...(error === undefined ? {} : { error }),
    });
  };

  const abort = (error?: Error) => {
    if (finished) return;
    finish("aborted", error ?? new Error("the pipe was aborted"));
    conn.abort();
    stream.abort();
  };

  const maybeClosed = () => {
    if (!toStreamDone || !toConnDone || finished) return;
    finish("closed");
    // Both FINs are through; the conn finishes by itself, close() only makes sure of it.
    conn.close();
  };

  // conn → stream
  const sendToStream = (data: Uint8Array) => {
    if (finished || toStreamDone || data.length === 0) return;
    const chunk = data.slice();
    unwritten += chunk.length;
    if (unwritten > highWater && !paused) {
      paused = true;
      conn.pause();
    }
    writer.write(chunk).then(
      () => {
        bytesToStream += chunk.length;
        unwritten -= chunk.length;
        if (paused && unwritten <= highWater / 2 && !finished) {
          paused = false;
          conn.resume();
        }
      },
      (error: unknown) => abort(asError(error)),
    );
  };
  conn.onData(sendToStream);
  conn.onEnd(() => {
    connEnded = true;
    if (finished || toStreamDone) return;
    writer.close().then(
      () => {
        toStreamDone = true;
        maybeClosed();
      },
      (error: unknown) => abort(asError(error)),
    );
  });
  conn.onClose((error) => {
    if (finished) return;
    // Gone before FIN both ways: what is left cannot be carried. (After both FINs the
    // stream may still be taking our last bytes; that finishes without the conn.)
    if (error !== undefined || !connEnded || !toConnDone) {
      abort(error ?? new Error("the local connection closed"));
    }
  });
  conn.onDrain(() => {
    const wake = drainWaiter;
    drainWaiter = undefined;
    wake?.();
  });
  if (options.initial !== undefined) sendToStream(options.initial);

  // stream → conn
  void (async () => {
    try {
      for (;;) {
        const { value, done: ended } = await reader.read();
        if (finished) return;
        if (ended) break;
        bytesToConn += value.length;
        if (!conn.write(value)) {
          await new Promise<void>((resolve) => {
            drainWaiter = resolve;
          });
          if (finished) return;
        }
      }
      toConnDone = true;
      conn.end();
      maybeClosed();
    } catch (error) {
      abort(asError(error));
    }
  })();

  return {
    done,
    counters: () => ({ bytesToStream, bytesToConn }),
    abort,
  };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
