/**
 * What the proxy services share: the log hook, and the set of live sessions (a bound on
 * how many run at once, byte counts that include the sessions still running, and a way
 * to reset them all when the service closes).
 */
import type { Pipe, PipeResult } from "./pipe.ts";

export type ProxyLogLevel = "debug" | "info" | "warn";
export type ProxyLog = (level: ProxyLogLevel, message: string) => void;

/** Connections a service relays at once by default; more are refused (closed at once). */
export const DEFAULT_MAX_PROXY_CONNECTIONS = 1024;

/** Counts every proxy service keeps; a snapshot. */
export interface RelayCounters {
  /** Sessions open now (handshaking, dialling or relaying). */
  readonly active: number;
  /** Connections taken on since the start. */
  readonly accepted: number;
  /** Connections refused because `maxConnections` were open. */
  readonly refusedForLimit: number;
  /** Dials (to the mesh or to the local target) that failed. */
  readonly dialFailures: number;
  /** Relays that ended with FIN both ways. */
  readonly closed: number;
  /** Relays that ended with a reset or failure on either side. */
  readonly aborted: number;
  /** Bytes carried towards the mesh (finished and running relays). */
  readonly bytesToMesh: number;
  /** Bytes carried from the mesh (finished and running relays). */
  readonly bytesFromMesh: number;
}

/** One session as the set sees it: how to reset it, and its pipe once relaying. */
export interface Session {
  abort(): void;
  pipe?: Pipe;
  /** True when the local side is the StreamConn (towards the mesh = to the stream). */
  readonly connIsLocal: boolean;
}

export class Sessions {
  readonly #max: number;
  readonly #live = new Set<Session>();
  accepted = 0;
  refusedForLimit = 0;
  dialFailures = 0;
  #closed = 0;
  #aborted = 0;
  #bytesToMesh = 0;
  #bytesFromMesh = 0;

  constructor(max: number | undefined) {
    const limit = max ?? DEFAULT_MAX_PROXY_CONNECTIONS;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`Expected "maxConnections" to be a positive integer, got ${limit}`);
    }
    this.#max = limit;
  }

  get size(): number {
    return this.#live.size;
  }

  /** Files a new session, or counts a refusal and answers false when the set is full. */
  admit(session: Session): boolean {
    if (this.#live.size >= this.#max) {
      this.refusedForLimit++;
      return false;
    }
    this.accepted++;
    this.#live.add(session);
    return true;
  }

  /** Takes a session out of the set (idempotent). */
  release(session: Session): void {
    this.#live.delete(session);
  }

  /** Records the session's relay; it leaves the set when the pipe is done. */
  relay(session: Session, pipe: Pipe): Promise<PipeResult> {
    session.pipe = pipe;
    return pipe.done.then((result) => {
      if (result.outcome === "closed") this.#closed++;
      else this.#aborted++;
      this.#add(session, result.bytesToStream, result.bytesToConn);
      session.pipe = undefined;
      this.release(session);
      return result;
    });
  }

  /** Resets every live session. */
  abortAll(): void {
    for (const session of [...this.#live]) session.abort();
  }

  counters(): RelayCounters {
    let toMesh = this.#bytesToMesh;
    let fromMesh = this.#bytesFromMesh;
    for (const session of this.#live) {
      const live = session.pipe?.counters();
      if (live === undefined) continue;
      toMesh += session.connIsLocal ? live.bytesToStream : live.bytesToConn;
      fromMesh += session.connIsLocal ? live.bytesToConn : live.bytesToStream;
    }
    return {
      active: this.#live.size,
      accepted: this.accepted,
      refusedForLimit: this.refusedForLimit,
      dialFailures: this.dialFailures,
      closed: this.#closed,
      aborted: this.#aborted,
      bytesToMesh: toMesh,
      bytesFromMesh: fromMesh,
    };
  }

  #add(session: Session, toStream: number, toConn: number): void {
    if (session.connIsLocal) {
      this.#bytesToMesh += toStream;
      this.#bytesFromMesh += toConn;
    } else {
      this.#bytesToMesh += toConn;
      this.#bytesFromMesh += toStream;
    }
  }
}
