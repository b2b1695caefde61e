/**
 * The Store seam: a peer's durable state as named blobs (the IPAM ring and allocations,
 * later identity, DNS entries, members), each replaced atomically as a whole. A real one
 * writes files (`runtimes/file-store.ts`); `src/sim/memory-store.ts` keeps them in memory.
 *
 * It is synchronous on purpose: a replicated state must be on disk before anything that
 * depends on it leaves the peer (IPAM saves a donation before gossiping it), and the
 * gossip engine reads states synchronously at any time. A save is a few small writes and
 * an fsync; control-plane state changes rarely enough for that.
 */

/** Durable named blobs. Names are short ASCII words ("ipam"), not paths. */
export interface Store {
  /**
   * The blob last saved under `name`, or undefined when none was ever saved. Throws a
   * `StoreError` when it cannot be read (permissions, a blob over the store's size limit).
   */
  load(name: string): Uint8Array | undefined;
  /**
   * Replaces `name`'s blob atomically and durably: after a crash the next `load` returns
   * either the old blob or this one, never a mix. Throws a `StoreError` when it cannot.
   */
  save(name: string, bytes: Uint8Array): void;
}

export type StoreErrorCode = "READ_FAILED" | "WRITE_FAILED" | "TOO_LARGE" | "BAD_NAME";

/** A store that cannot read or write; the message names the blob and the cause. */
export class StoreError extends Error {
  override readonly name = "StoreError";
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Names are plain words so that a file store can use them as file names safely. */
const STORE_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** Throws a `StoreError` unless `name` is a valid blob name. */
export function checkStoreName(name: string): void {
  if (!STORE_NAME.test(name)) {
    throw new StoreError(
      "BAD_NAME",
      `Expected a store name of lowercase letters, digits and dashes, got "${name}"`,
    );
  }
}
