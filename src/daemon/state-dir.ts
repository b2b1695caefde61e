/**
 * The daemon's state directory: where it finds its identity and saved state, and the
 * lock that keeps a second daemon off it. Files are written with the Store's
 * `writeFileAtomic` (mode 0600, temporary file, fsync, rename, fsync of the directory).
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic } from "../../runtimes/file-store.ts";
import { fromBase64, toBase64 } from "../crypto/bytes.ts";

/** The state directory when none is given: as root the system's, else the user's XDG data dir. */
export function defaultStateDir(env: Record<string, string | undefined> = process.env): string {
  if (typeof process.getuid === "function" && process.getuid() === 0) return "/var/lib/weft";
  const dataHome = env.XDG_DATA_HOME || join(env.HOME || homedir(), ".local", "share");
  return join(dataHome, "weft");
}

/** Creates the directory (mode 0700) if missing; throws a clear error when it cannot. */
export function ensureStateDir(directory: string): void {
  try {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new Error(`Cannot create the state directory ${directory}: ${reason(error)}`);
  }
}

/** The file's text, or undefined when it does not exist; other errors throw. */
export function readFileIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`Cannot read ${path}: ${reason(error)}`);
  }
}

/**
 * Takes the state directory for this process: writes our pid to `weft.pid`, created
 * exclusively. A pid file left by a process that is gone is replaced; one of a live
 * process means another daemon runs here, and this throws saying so.
 */
export function lockStateDir(directory: string): () => void {
  const path = join(directory, "weft.pid");
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new Error(`Cannot lock the state directory ${directory}: ${reason(error)}`);
      }
    }
    const holder = Number.parseInt(readFileIfExists(path) ?? "", 10);
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new Error(
        `Another weft daemon (pid ${holder}) is already running on the state directory ${directory}`,
      );
    }
    rmSync(path, { force: true }); // stale: its process is gone
  }
  throw new Error(`Cannot lock the state directory ${directory}: its pid file keeps reappearing`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function reason(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

/**
 * A 32-byte key kept base64 in a file of the state directory (mode 0600, written
 * atomically): read it, or make one with `create` and save it. Throws an Error naming the
 * file when it holds something else.
 */
export function loadOrCreateKeyFile(
  path: string,
  create: () => Uint8Array,
  onCreated: () => void,
): Uint8Array {
  const text = readFileIfExists(path);
  if (text !== undefined) {
    let key: Uint8Array;
    try {
      key = fromBase64(text.trim());
    } catch {
      throw new Error(`${path} does not hold a base64 key`);
    }
    if (key.length !== 32) throw new Error(`${path} holds ${key.length} bytes, not a 32-byte key`);
    return key;
  }
  const key = create();
  writeFileAtomic(path, new TextEncoder().encode(`${toBase64(key)}\n`));
  onCreated();
  return key;
}
