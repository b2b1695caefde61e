/**
 * A `Store` in memory, for tests and simulations: a restarted peer gets the same object
 * back and so finds what it saved. It copies bytes both ways, as a disk would, so a caller
 * that reuses its buffer cannot change what was saved.
 */
import { checkStoreName, type Store } from "../store.ts";

export class MemoryStore implements Store {
  readonly #blobs = new Map<string, Uint8Array>();
  /** How many saves happened, per name (tests check that state was saved before it was sent). */
  readonly saves = new Map<string, number>();

  load(name: string): Uint8Array | undefined {
    checkStoreName(name);
    return this.#blobs.get(name)?.slice();
  }

  save(name: string, bytes: Uint8Array): void {
    checkStoreName(name);
    this.#blobs.set(name, bytes.slice());
    this.saves.set(name, (this.saves.get(name) ?? 0) + 1);
  }

  /** Overwrites a blob as a corrupted disk would (tests of refused loads). */
  corrupt(name: string, bytes: Uint8Array): void {
    this.#blobs.set(name, bytes.slice());
  }
}
