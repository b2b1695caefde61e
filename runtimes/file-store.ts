/**
 * The `Store` on files, one per blob (`<directory>/<name>.state`), through node:fs, which
 * Node, Deno and Bun all provide. A save is atomic and durable: write a temporary file in
 * the same directory (mode 0600: the state names the peer's keys and addresses), fsync
 * it, rename it over the old file, then fsync the directory so the rename itself survives
 * a power cut. A reader sees the old blob or the new one, never a mix.
 */
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { checkStoreName, type Store, StoreError } from "../src/store.ts";

/** Blobs larger than this are refused on load, before reading them. */
export const DEFAULT_MAX_BLOB_BYTES = 64 * 1024 * 1024;

export interface FileStoreOptions {
  readonly maxBlobBytes?: number;
}

/** A Store keeping its blobs in `directory` (created, mode 0700, when missing). */
export function createFileStore(directory: string, options: FileStoreOptions = {}): Store {
  const maxBlobBytes = options.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
  try {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new StoreError("WRITE_FAILED", `Cannot create the state directory "${directory}"`, {
      cause: error,
    });
  }
  return {
    load(name) {
      checkStoreName(name);
      const path = join(directory, `${name}.state`);
      try {
        const size = statSync(path).size;
        if (size > maxBlobBytes) {
          throw new StoreError(
            "TOO_LARGE",
            `State file "${path}" is ${size} bytes, over the limit of ${maxBlobBytes}`,
          );
        }
        const bytes = readFileSync(path);
        return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } catch (error) {
        if (error instanceof StoreError) throw error;
        if (errorCode(error) === "ENOENT") return undefined;
        throw new StoreError("READ_FAILED", `Cannot read state file "${path}"`, { cause: error });
      }
    },
    save(name, bytes) {
      checkStoreName(name);
      writeFileAtomic(join(directory, `${name}.state`), bytes);
    },
  };
}

let saves = 0;

/**
 * Replaces `path` atomically and durably, mode 0600 unless told otherwise: a temporary file beside it, fsync,
 * rename, fsync of the directory. Throws a `StoreError` ("WRITE_FAILED") naming the file.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array, mode = 0o600): void {
  const directory = dirname(path);
  const temp = join(directory, `.${basename(path)}.${Date.now()}-${saves++}.tmp`);
  try {
    const fd = openSync(temp, "wx", mode);
    if (mode !== 0o600) fchmodSync(fd, mode); // exactly `mode`, whatever the umask
    try {
      for (let offset = 0; offset < bytes.length; ) {
        offset += writeSync(fd, bytes, offset, bytes.length - offset);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw new StoreError("WRITE_FAILED", `Cannot save state file "${path}"`, { cause: error });
  }
  syncDirectory(directory);
}

/** Makes a rename in `directory` durable. */
function syncDirectory(directory: string): void {
  let fd: number;
  try {
    fd = openSync(directory, "r");
  } catch (error) {
    throw new StoreError("WRITE_FAILED", `Cannot open "${directory}" to sync it`, { cause: error });
  }
  try {
    fsyncSync(fd);
  } catch (error) {
    // Some file systems refuse fsync on a directory (EINVAL): the rename is then as
    // durable as that file system makes it, which is all we can have there.
    if (errorCode(error) !== "EINVAL") {
      throw new StoreError("WRITE_FAILED", `Cannot sync "${directory}"`, { cause: error });
    }
  } finally {
    closeSync(fd);
  }
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}
