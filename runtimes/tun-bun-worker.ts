/**
 * The thread that makes `tun-bun.ts`'s blocking calls (Bun's FFI has no asynchronous
 * ones): for `{ op: "poll", fd, wakeFd }` it blocks in poll(2) until either is readable,
 * for `{ op: "close", fd }` in close(2); each is answered, in order, with the call's
 * result. The reading itself happens on the main thread.
 */
/// <reference path="./bun.d.ts" />
import { dlopen } from "bun:ffi";
import { parentPort } from "node:worker_threads";
import { POLLFD_BYTES, setPollFds } from "./tun-linux.ts";

/** What the main thread asks of this one. */
export type TunWorkerRequest =
  | { readonly op: "poll"; readonly fd: number; readonly wakeFd: number }
  | { readonly op: "close"; readonly fd: number };

const { poll, close } = dlopen("libc.so.6", {
  poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
}).symbols as unknown as {
  poll(fds: Uint8Array, count: number, timeoutMs: number): number;
  close(fd: number): number;
};

const pollFds = new Uint8Array(2 * POLLFD_BYTES);

parentPort!.on("message", (request: TunWorkerRequest) => {
  if (request.op === "close") {
    parentPort!.postMessage(close(request.fd));
    return;
  }
  setPollFds(pollFds, request.fd, request.wakeFd);
  parentPort!.postMessage(poll(pollFds, 2, -1));
});
