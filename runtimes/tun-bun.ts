/**
 * TUN devices on Bun: libc through `bun:ffi`. Everything but the calls themselves is in
 * `tun-linux.ts`. Bun's FFI calls are all synchronous, so the wait for packets (poll(2))
 * and the final close(2) block in a worker thread (`tun-bun-worker.ts`), one per device,
 * started on first use; it holds the process open only while a call is pending.
 */
/// <reference path="./bun.d.ts" />
import { dlopen, toArrayBuffer } from "bun:ffi";
import { Worker } from "node:worker_threads";
import type { TunOptions } from "../src/net/tun.ts";
import type { TunWorkerRequest } from "./tun-bun-worker.ts";
import { type LinuxTun, openLinuxTun, type TunSyscalls } from "./tun-linux.ts";

interface Libc {
  open(path: Uint8Array, flags: number): number;
  ioctl(fd: number, request: number, argument: Uint8Array): number;
  read(fd: number, buffer: Uint8Array, count: number): number | bigint;
  write(fd: number, data: Uint8Array, count: number): number | bigint;
  eventfd(initialValue: number, flags: number): number;
  __errno_location(): number;
}

let loaded: { libc: Libc; errno: Int32Array } | undefined;

function load(): { libc: Libc; errno: Int32Array } {
  if (loaded !== undefined) return loaded;
  const libc = dlopen("libc.so.6", {
    open: { args: ["ptr", "i32"], returns: "i32" },
    // Declared with its one argument: x86-64 and arm64 Linux pass it as for a variadic call.
    ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
    read: { args: ["i32", "ptr", "usize"], returns: "isize" },
    write: { args: ["i32", "ptr", "usize"], returns: "isize" },
    eventfd: { args: ["u32", "i32"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  }).symbols as unknown as Libc;
  // This thread's errno, read right after a failed call (every call but poll runs here).
  loaded = { libc, errno: new Int32Array(toArrayBuffer(libc.__errno_location(), 0, 4)) };
  return loaded;
}

/**
 * Where the worker's code is. In a single binary (`bun build --compile`, which must list
 * the worker as an entry point) modules live under `/$bunfs/` and a worker is named by
 * its path from the project root; from sources, by its URL beside this file.
 */
function workerEntry(): string | URL {
  return import.meta.url.includes("/$bunfs/")
    ? "./runtimes/tun-bun-worker.ts"
    : new URL("./tun-bun-worker.ts", import.meta.url);
}

/**
 * The worker making the blocking calls for one device: started on first use, holding the
 * process open only while a call is pending. Answers come in the order of the requests.
 */
function blockingCalls(): { call(request: TunWorkerRequest): Promise<void>; stop(): void } {
  let worker: Worker | undefined;
  const waiting: (() => void)[] = [];
  const answered = () => {
    waiting.shift()?.();
    if (waiting.length === 0) worker?.unref();
  };
  return {
    call(request) {
      if (worker === undefined) {
        worker = new Worker(workerEntry());
        worker.on("message", answered);
        // A worker that fails answers nothing more: release every caller.
        worker.on("error", () => {
          while (waiting.length > 0) answered();
        });
      }
      worker.ref();
      return new Promise((resolve) => {
        waiting.push(resolve);
        worker!.postMessage(request);
      });
    },
    stop() {
      void worker?.terminate();
    },
  };
}

function syscalls(): TunSyscalls {
  const { libc, errno } = load();
  const checked = (result: number | bigint) => {
    const value = Number(result);
    return value < 0 ? -errno[0]! : value;
  };
  const blocking = blockingCalls();
  return {
    open: (path, flags) => checked(libc.open(path, flags)),
    ioctl: (fd, request, argument) => checked(libc.ioctl(fd, request, argument)),
    read: (fd, buffer) => checked(libc.read(fd, buffer, buffer.length)),
    write: (fd, data) => checked(libc.write(fd, data, data.length)),
    eventfd: (initialValue, flags) => checked(libc.eventfd(initialValue, flags)),
    close: (fd) => blocking.call({ op: "close", fd }),
    waitReadable: (fd, wakeFd) => blocking.call({ op: "poll", fd, wakeFd }),
    release: () => blocking.stop(),
  };
}

/** Opens a TUN device on Bun (see `openLinuxTun`). */
export function openTun(options: TunOptions): Promise<LinuxTun> {
  return openLinuxTun(syscalls(), options);
}
