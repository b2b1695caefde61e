/**
 * TUN devices on Node: libc through koffi (prebuilt, no compiler needed). Everything but
 * the calls themselves is in `tun-linux.ts`. The wait for packets is koffi's async call
 * of poll(2), which runs on one of koffi's worker threads while the event loop goes on.
 */
import koffi from "koffi";
import type { TunOptions } from "../src/net/tun.ts";
import {
  type LinuxTun,
  openLinuxTun,
  POLLFD_BYTES,
  setPollFds,
  type TunSyscalls,
} from "./tun-linux.ts";

type Callback = (error: unknown, result: number) => void;

interface Libc {
  open(path: Uint8Array, flags: number): number;
  // Declared with its one argument: koffi cannot call variadic functions asynchronously,
  // and x86-64 and arm64 Linux pass this pointer the same way either way.
  ioctl(fd: number, request: number, argument: Uint8Array): number;
  read(fd: number, buffer: Uint8Array, count: number): number;
  write(fd: number, data: Uint8Array, count: number): number;
  eventfd(initialValue: number, flags: number): number;
  close: { async(fd: number, done: Callback): void };
  poll: { async(fds: Uint8Array, count: number, timeoutMs: number, done: Callback): void };
}

let libc: Libc | undefined;

function loadLibc(): Libc {
  if (libc !== undefined) return libc;
  const lib = koffi.load("libc.so.6");
  libc = {
    open: lib.func("int open(void *path, int flags)"),
    ioctl: lib.func("int ioctl(int fd, unsigned long request, void *argument)"),
    read: lib.func("intptr_t read(int fd, void *buffer, size_t count)"),
    write: lib.func("intptr_t write(int fd, void *data, size_t count)"),
    eventfd: lib.func("int eventfd(unsigned int initval, int flags)"),
    close: lib.func("int close(int fd)"),
    poll: lib.func("int poll(void *fds, unsigned long nfds, int timeout)"),
  };
  return libc;
}

/** `result`, or -errno when the call failed. */
function checked(result: number): number {
  return result < 0 ? -koffi.errno() : result;
}

function syscalls(): TunSyscalls {
  const c = loadLibc();
  // Off the V8 heap (an ArrayBuffer's store never moves), as a worker thread reads it.
  const pollFds = new Uint8Array(new ArrayBuffer(2 * POLLFD_BYTES));
  return {
    open: (path, flags) => checked(c.open(path, flags)),
    ioctl: (fd, request, argument) => checked(c.ioctl(fd, request, argument)),
    read: (fd, buffer) => checked(c.read(fd, buffer, buffer.length)),
    write: (fd, data) => checked(c.write(fd, data, data.length)),
    eventfd: (initialValue, flags) => checked(c.eventfd(initialValue, flags)),
    close: (fd) => new Promise((resolve) => c.close.async(fd, () => resolve())),
    waitReadable: (fd, wakeFd) => {
      setPollFds(pollFds, fd, wakeFd);
      return new Promise((resolve) => c.poll.async(pollFds, 2, -1, () => resolve()));
    },
    release: () => {},
  };
}

/** Opens a TUN device on Node (see `openLinuxTun`). */
export function openTun(options: TunOptions): Promise<LinuxTun> {
  return openLinuxTun(syscalls(), options);
}
