/**
 * TUN devices on Deno: libc through `Deno.dlopen` (needs `--allow-ffi`). Everything but the
 * calls themselves is in `tun-linux.ts`. The wait for packets is poll(2) declared
 * `nonblocking`, which Deno runs on a thread of its own and answers with a promise.
 */
/// <reference path="./deno.d.ts" />
import type { TunOptions } from "../src/net/tun.ts";
import {
  type LinuxTun,
  openLinuxTun,
  POLLFD_BYTES,
  setPollFds,
  type TunSyscalls,
} from "./tun-linux.ts";

interface Libc {
  open(path: Uint8Array, flags: number): number;
  ioctl(fd: number, request: number, argument: Uint8Array): number;
  read(fd: number, buffer: Uint8Array, count: number): number | bigint;
  write(fd: number, data: Uint8Array, count: number): number | bigint;
  eventfd(initialValue: number, flags: number): number;
  close(fd: number): Promise<number>;
  poll(fds: Uint8Array, count: number, timeoutMs: number): Promise<number>;
  __errno_location(): Deno.PointerValue;
}

let loaded: { libc: Libc; errno: Int32Array } | undefined;

function load(): { libc: Libc; errno: Int32Array } {
  if (loaded !== undefined) return loaded;
  const libc = Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    // Declared with its one argument: x86-64 and arm64 Linux pass it as for a variadic call.
    ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
    read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    eventfd: { parameters: ["u32", "i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32", nonblocking: true },
    poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
    __errno_location: { parameters: [], result: "pointer" },
  }).symbols as unknown as Libc;
  // This thread's errno, read right after a failed call (the synchronous calls run here).
  const location = libc.__errno_location();
  if (location === null) throw new Error("libc returned no errno location");
  loaded = { libc, errno: new Int32Array(Deno.UnsafePointerView.getArrayBuffer(location, 4)) };
  return loaded;
}

function syscalls(): TunSyscalls {
  const { libc, errno } = load();
  const checked = (result: number | bigint) => {
    const value = Number(result);
    return value < 0 ? -errno[0]! : value;
  };
  // Off the V8 heap (an ArrayBuffer's store never moves), as the poll thread reads it.
  const pollFds = new Uint8Array(new ArrayBuffer(2 * POLLFD_BYTES));
  return {
    open: (path, flags) => checked(libc.open(path, flags)),
    ioctl: (fd, request, argument) => checked(libc.ioctl(fd, request, argument)),
    read: (fd, buffer) => checked(libc.read(fd, buffer, buffer.length)),
    write: (fd, data) => checked(libc.write(fd, data, data.length)),
    eventfd: (initialValue, flags) => checked(libc.eventfd(initialValue, flags)),
    close: async (fd) => {
      await libc.close(fd);
    },
    waitReadable: async (fd, wakeFd) => {
      setPollFds(pollFds, fd, wakeFd);
      await libc.poll(pollFds, 2, -1);
    },
    release: () => {},
  };
}

/** Opens a TUN device on Deno (see `openLinuxTun`). */
export function openTun(options: TunOptions): Promise<LinuxTun> {
  return openLinuxTun(syscalls(), options);
}
