/**
 * Linux TUN devices behind the `Tun` seam, on any runtime that can call libc: the
 * constants and `struct ifreq` layout of `linux/if_tun.h`, option checks, error messages,
 * the interface's configuration, and the read loop. Each runtime's file (`tun-node.ts` on
 * koffi, `tun-deno.ts` on `Deno.dlopen`, `tun-bun.ts` on `bun:ffi`) only supplies the
 * handful of system calls in `TunSyscalls`.
 *
 * Reading never blocks the event loop: the device is opened O_NONBLOCK, a poll(2) waits
 * for it off the JavaScript thread (koffi's async call, Deno's nonblocking symbol, a
 * Bun worker), and then the JavaScript thread reads whatever is queued, up to
 * `READ_BATCH` packets per turn, with non-blocking read(2)s:
 *
 *   poll([tun, wake]) off-thread ──ready──> read, read, ... (EAGAIN) ──> poll again
 *                                           (a full batch yields a turn, then reads on)
 *
 * `close()` writes to an eventfd in the same poll, so a pending wait returns at once and
 * nothing keeps the process alive; then the device's file closes and the kernel removes
 * the (non-persistent) interface.
 *
 * The constants hold for Linux on x86-64 and arm64 (the generic ioctl and errno numbering);
 * byte order is the host's, through typed arrays.
 */
import { spawn } from "node:child_process";
import { setImmediate } from "node:timers";
import { formatPrefix, parsePrefix } from "../src/net/ip.ts";
import type { PacketHandler, Tun, TunOptions } from "../src/net/tun.ts";

/** The device that hands out TUN interfaces. */
export const TUN_DEVICE_PATH = "/dev/net/tun";
/** `_IOW('T', 202, int)`: attaches the open file to a (new) interface named in an ifreq. */
export const TUNSETIFF = 0x400454ca;
/** A layer-3 device: IP packets, no Ethernet header. */
export const IFF_TUN = 0x0001;
/** No 4-byte packet information header before each packet. */
export const IFF_NO_PI = 0x1000;
/** `struct ifreq`: the name (IFNAMSIZ bytes with its NUL), then a union; flags are its first short. */
export const IFREQ_BYTES = 40;
export const IFNAMSIZ = 16;
export const IFREQ_FLAGS_OFFSET = 16;
export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
/** eventfd(2)'s flags share the values of O_NONBLOCK and O_CLOEXEC. */
export const EFD_NONBLOCK = O_NONBLOCK;
export const EFD_CLOEXEC = O_CLOEXEC;
/** `struct pollfd`: int fd, short events, short revents. */
export const POLLFD_BYTES = 8;
export const POLLIN = 0x0001;

/**
 * Fills `pollFds` (2 x `struct pollfd`) to wait for input on the device and on the wake
 * eventfd; revents are cleared, since poll(2) only writes them.
 */
export function setPollFds(pollFds: Uint8Array, fd: number, wakeFd: number): void {
  const ints = new Int32Array(pollFds.buffer, pollFds.byteOffset, 4);
  const shorts = new Int16Array(pollFds.buffer, pollFds.byteOffset, 8);
  ints[0] = fd;
  shorts[2] = POLLIN;
  shorts[3] = 0;
  ints[2] = wakeFd;
  shorts[6] = POLLIN;
  shorts[7] = 0;
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  9: "EBADF",
  11: "EAGAIN",
  13: "EACCES",
  16: "EBUSY",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  77: "EBADFD",
};
const EPERM = 1;
const ENOENT = 2;
const EINTR = 4;
const ENXIO = 6;
const EAGAIN = 11;
const EACCES = 13;
const EBUSY = 16;
const ENODEV = 19;
const EINVAL = 22;

/** The defaults of `TunOptions`. */
export const DEFAULT_TUN_NAME = "weft0";
export const DEFAULT_TUN_MTU = 1420;
/** The smallest MTU IPv4 allows (and the kernel's lower bound for a TUN), and the IPv6 minimum. */
const MIN_MTU = 68;
const MIN_IPV6_MTU = 1280;
const MAX_MTU = 65535;
/** Packets read per turn of the event loop before yielding to other work. */
export const READ_BATCH = 64;
/** A read buffer that holds any packet, whatever the MTU is set to later. */
const READ_BUFFER_BYTES = 65536;
/** `ip` has this long to configure the interface. */
const CONFIGURE_TIMEOUT_MS = 10_000;

/**
 * The system calls a runtime's binding supplies. Each returns what the call returns, or
 * `-errno` where the call failed (so -11 is EAGAIN); buffers are passed by pointer.
 */
export interface TunSyscalls {
  /** open(2) of a NUL-terminated path. */
  open(path: Uint8Array, flags: number): number;
  /** ioctl(2) with a pointer argument. */
  ioctl(fd: number, request: number, argument: Uint8Array): number;
  read(fd: number, buffer: Uint8Array): number;
  write(fd: number, data: Uint8Array): number;
  eventfd(initialValue: number, flags: number): number;
  /**
   * close(2) off the JavaScript thread, never rejecting: closing a TUN device's file
   * unregisters its interface, which waits for the kernel (RCU grace periods: 15 ms on
   * an idle host, seconds on a busy one).
   */
  close(fd: number): Promise<void>;
  /**
   * Resolves once `fd` or `wakeFd` is readable, or poll(2) failed (the caller then reads
   * and finds out); waits off the JavaScript thread and never rejects.
   */
  waitReadable(fd: number, wakeFd: number): Promise<void>;
  /** Frees what the binding holds for this device (a worker); called once, last. */
  release(): void;
}

/** Stable codes of the errors opening a TUN device can fail with. */
export type TunErrorCode =
  | "TUN_NEEDS_ROOT"
  | "TUN_UNAVAILABLE"
  | "TUN_NAME_IN_USE"
  | "TUN_OPEN_FAILED"
  | "TUN_CONFIGURE_FAILED";

/** Why a TUN device could not be opened or configured; `message` says what to do. */
export class TunError extends Error {
  readonly code: TunErrorCode;

  constructor(code: TunErrorCode, message: string) {
    super(message);
    this.name = "TunError";
    this.code = code;
  }
}

/** What a TUN device counted, for metrics and for debugging silent loss. */
export interface TunCounters {
  /** Packets read from the host and handed to the handler. */
  readonly received: number;
  /** Packets the kernel accepted from `write`. */
  readonly sent: number;
  /** Writes the kernel refused (the packet was dropped). */
  readonly writeErrors: number;
  /** The errno name of the latest failed read or write. */
  readonly lastError: string | undefined;
}

/** A kernel TUN device: a `Tun` that also reports its counters. */
export interface LinuxTun extends Tun {
  counters(): TunCounters;
}

/** Options checked and filled in, with the ifreq name bytes. */
interface TunSettings {
  readonly name: string;
  readonly nameBytes: Uint8Array;
  readonly mtu: number;
  readonly addresses: readonly string[];
  readonly multicast: boolean;
}

/**
 * Checks `options` and fills in the defaults. Throws `RangeError` for a name longer than
 * 15 bytes or an MTU out of range, `SyntaxError` for characters the kernel refuses in a
 * name and for addresses that are not "address/length".
 */
export function tunSettings(options: TunOptions = {}): TunSettings {
  const name = options.name ?? DEFAULT_TUN_NAME;
  if (typeof name !== "string") throw new TypeError(`Expected "name" to be a string`);
  const nameBytes = new TextEncoder().encode(name);
  if (nameBytes.length >= IFNAMSIZ) {
    throw new RangeError(
      `TUN name "${name}" is too long: ${nameBytes.length} bytes, the kernel allows at most ${IFNAMSIZ - 1}`,
    );
  }
  // The kernel's dev_valid_name(): not empty, ".", "..", nor with "/", ":" or whitespace.
  if (name === "" || name === "." || name === ".." || /[/:\s]/.test(name)) {
    throw new SyntaxError(
      `TUN name "${name}" is not a valid interface name: it must be non-empty, not "." or "..", without "/", ":" or spaces`,
    );
  }
  const mtu = options.mtu ?? DEFAULT_TUN_MTU;
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) {
    throw new RangeError(
      `Expected "mtu" to be an integer from ${MIN_MTU} to ${MAX_MTU}, got ${mtu}`,
    );
  }
  const addresses = (options.addresses ?? []).map((text) => {
    const prefix = typeof text === "string" && text.includes("/") ? parsePrefix(text) : undefined;
    if (prefix === undefined) {
      throw new SyntaxError(
        `Expected each of "addresses" to be an address with a prefix length, such as "10.40.0.1/16" or "fd00::1/64", got "${text}"`,
      );
    }
    if (prefix.address.length === 16 && mtu < MIN_IPV6_MTU) {
      throw new RangeError(
        `IPv6 address "${text}" needs an MTU of at least ${MIN_IPV6_MTU}, got ${mtu}`,
      );
    }
    return formatPrefix(prefix);
  });
  return { name, nameBytes, mtu, addresses, multicast: options.multicast === true };
}

/**
 * Opens `/dev/net/tun` as a TUN device (IFF_TUN | IFF_NO_PI) through `calls`, then
 * configures and raises the interface. Throws for bad options (see `tunSettings`) and
 * rejects with a `TunError` saying why it cannot open or configure the device.
 */
export async function openLinuxTun(calls: TunSyscalls, options: TunOptions): Promise<LinuxTun> {
  let settings: TunSettings;
  try {
    settings = tunSettings(options);
  } catch (error) {
    calls.release();
    throw error;
  }
  const fds: number[] = [];
  const closeAll = async () => {
    await Promise.all(fds.map((fd) => calls.close(fd)));
    calls.release();
  };
  try {
    const fd = calls.open(
      new TextEncoder().encode(`${TUN_DEVICE_PATH}\0`),
      O_RDWR | O_NONBLOCK | O_CLOEXEC,
    );
    if (fd < 0) throw openError(settings.name, -fd);
    fds.push(fd);
    const ifreq = new Uint8Array(new ArrayBuffer(IFREQ_BYTES));
    ifreq.set(settings.nameBytes);
    new Int16Array(ifreq.buffer, IFREQ_FLAGS_OFFSET, 1)[0] = IFF_TUN | IFF_NO_PI;
    const attached = calls.ioctl(fd, TUNSETIFF, ifreq);
    if (attached < 0) throw attachError(settings.name, -attached);
    // The kernel writes back the name it used ("weft%d" becomes "weft0").
    const end = ifreq.indexOf(0);
    const name = new TextDecoder().decode(ifreq.subarray(0, end < 0 ? IFNAMSIZ : end));
    const wakeFd = calls.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakeFd < 0) {
      throw new TunError(
        "TUN_OPEN_FAILED",
        `opening TUN device ${name} failed: eventfd: ${errnoName(-wakeFd)}`,
      );
    }
    fds.push(wakeFd);
    await configure(name, settings);
    return new KernelTun(calls, name, settings.mtu, fd, wakeFd);
  } catch (error) {
    await closeAll();
    throw error;
  }
}

function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

function needsRoot(name: string, what: string, errno: number): TunError {
  return new TunError(
    "TUN_NEEDS_ROOT",
    `opening TUN device ${name} needs root (CAP_NET_ADMIN): ${what} (${errnoName(errno)}); run weft as root or grant it CAP_NET_ADMIN`,
  );
}

function openError(name: string, errno: number): TunError {
  if (errno === EACCES || errno === EPERM) {
    return needsRoot(name, `cannot open ${TUN_DEVICE_PATH}`, errno);
  }
  if (errno === ENOENT || errno === ENXIO || errno === ENODEV) {
    return new TunError(
      "TUN_UNAVAILABLE",
      `no ${TUN_DEVICE_PATH}: load the tun module (modprobe tun), or in a container pass the device in (docker run --device /dev/net/tun --cap-add NET_ADMIN) (${errnoName(errno)})`,
    );
  }
  return new TunError(
    "TUN_OPEN_FAILED",
    `opening TUN device ${name} failed: cannot open ${TUN_DEVICE_PATH} (${errnoName(errno)})`,
  );
}

function attachError(name: string, errno: number): TunError {
  if (errno === EPERM || errno === EACCES) {
    return needsRoot(name, "the kernel refused to create it", errno);
  }
  if (errno === EBUSY) {
    return new TunError(
      "TUN_NAME_IN_USE",
      `TUN name ${name} is in use by another process (or another open device of this one): stop it or choose another name`,
    );
  }
  if (errno === EINVAL && name.includes("%")) {
    return new TunError(
      "TUN_OPEN_FAILED",
      `TUN name ${name} is not a name template the kernel accepts: use one "%d", as in "weft%d" (${errnoName(errno)})`,
    );
  }
  if (errno === EINVAL) {
    return new TunError(
      "TUN_NAME_IN_USE",
      `TUN name ${name} is taken by a network interface that is not a TUN device: choose another name`,
    );
  }
  return new TunError(
    "TUN_OPEN_FAILED",
    `opening TUN device ${name} failed: TUNSETIFF (${errnoName(errno)})`,
  );
}

/**
 * Sets the MTU and addresses and brings the link up with iproute2's `ip`, in one
 * `ip -batch` process. Why not netlink through FFI: one short process per open costs a few
 * milliseconds, the same code serves every runtime, and `ip`'s own error text ("RTNETLINK
 * answers: File exists") reaches the user, where netlink would mean building and parsing
 * rtnetlink messages in three FFI dialects. The cost: the host needs iproute2 (the error
 * says so).
 */
async function configure(name: string, settings: TunSettings): Promise<void> {
  // For multicast (TunOptions.multicast): IPv4 addresses with their broadcast address
  // (`broadcast +`), so the kernel delivers directed broadcasts to local sockets, and the
  // multicast route (replacing one through another device) once the link is up.
  const multicast = settings.multicast;
  const commands = [
    `link set dev ${name} mtu ${settings.mtu}${multicast ? " multicast on" : ""}`,
    ...settings.addresses.map((address) =>
      multicast && !address.includes(":")
        ? `address add ${address} broadcast + dev ${name}`
        : `address add ${address} dev ${name}`,
    ),
    `link set dev ${name} up`,
    ...(multicast ? [`route replace 224.0.0.0/4 dev ${name}`] : []),
  ];
  const { code, output, failure } = await runIpBatch(`${commands.join("\n")}\n`);
  if (failure !== undefined) {
    throw new TunError(
      "TUN_CONFIGURE_FAILED",
      `configuring TUN device ${name} needs the ip command from iproute2 (apt-get install iproute2): ${failure}`,
    );
  }
  if (code === 0) return;
  const reason = output.trim().replaceAll("\n", "; ") || `ip exited with code ${code}`;
  if (/Operation not permitted/i.test(reason)) {
    throw new TunError(
      "TUN_NEEDS_ROOT",
      `configuring TUN device ${name} needs root (CAP_NET_ADMIN): ${reason}`,
    );
  }
  throw new TunError("TUN_CONFIGURE_FAILED", `configuring TUN device ${name} failed: ${reason}`);
}

/** Runs `ip -batch -` on `input`; `failure` says why it could not run at all. */
function runIpBatch(input: string): Promise<{ code: number; output: string; failure?: string }> {
  return new Promise((resolve) => {
    const child = spawn("ip", ["-batch", "-"], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), CONFIGURE_TIMEOUT_MS);
    child.stdout.on("data", (chunk: Uint8Array) => {
      output += new TextDecoder().decode(chunk);
    });
    child.stderr.on("data", (chunk: Uint8Array) => {
      output += new TextDecoder().decode(chunk);
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ code: -1, output, failure: error.message });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, output: signal ? `${output}ip killed by ${signal}` : output });
    });
    child.stdin.on("error", () => {}); // ip exiting early is reported by "close"
    child.stdin.end(input);
  });
}

/** One open device; a class because its closed state and counters must stay consistent. */
class KernelTun implements LinuxTun {
  readonly name: string;
  readonly mtuBytes: number;
  readonly #calls: TunSyscalls;
  readonly #fd: number;
  readonly #wakeFd: number;
  readonly #buffer = new Uint8Array(new ArrayBuffer(READ_BUFFER_BYTES));
  #handler: PacketHandler | undefined;
  #reading: Promise<void> | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  #received = 0;
  #sent = 0;
  #writeErrors = 0;
  #lastError: string | undefined;

  constructor(calls: TunSyscalls, name: string, mtuBytes: number, fd: number, wakeFd: number) {
    this.#calls = calls;
    this.name = name;
    this.mtuBytes = mtuBytes;
    this.#fd = fd;
    this.#wakeFd = wakeFd;
  }

  write(packet: Uint8Array): void {
    if (this.#closing) return;
    // Non-blocking: the kernel takes the packet into its stack at once or refuses it.
    const result = this.#calls.write(this.#fd, packet);
    if (result >= 0) {
      this.#sent++;
    } else {
      this.#writeErrors++;
      this.#lastError = errnoName(-result);
    }
  }

  onPacket(handler: PacketHandler): void {
    if (this.#closing) return;
    this.#handler = handler;
    // Reading starts with the first handler; until then the kernel queues (then drops).
    this.#reading ??= this.#readLoop();
  }

  close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#closing = true;
      this.#handler = undefined;
      // Wakes a pending poll; the read loop then sees #closing and ends.
      this.#calls.write(this.#wakeFd, WAKE);
      this.#closed = (async () => {
        await this.#reading;
        await Promise.all([this.#calls.close(this.#fd), this.#calls.close(this.#wakeFd)]);
        this.#calls.release();
      })();
    }
    return this.#closed;
  }

  counters(): TunCounters {
    return {
      received: this.#received,
      sent: this.#sent,
      writeErrors: this.#writeErrors,
      lastError: this.#lastError,
    };
  }

  async #readLoop(): Promise<void> {
    while (!this.#closing) {
      const outcome = this.#readBatch();
      if (outcome === "failed" || this.#closing) return;
      if (outcome === "more") await nextTurn();
      else await this.#calls.waitReadable(this.#fd, this.#wakeFd);
    }
  }

  /** Reads up to READ_BATCH queued packets: "more" when the batch filled, "empty" at EAGAIN. */
  #readBatch(): "more" | "empty" | "failed" {
    const buffer = this.#buffer;
    for (let i = 0; i < READ_BATCH; i++) {
      const length = this.#calls.read(this.#fd, buffer);
      if (length < 0) {
        if (length === -EAGAIN) return "empty";
        if (length === -EINTR) continue;
        this.#lastError = errnoName(-length);
        console.error(`weft: TUN device ${this.name} stopped reading: ${this.#lastError}`);
        return "failed";
      }
      const handler = this.#handler;
      if (handler === undefined) return "empty"; // closed during the batch
      this.#received++;
      try {
        handler(buffer.subarray(0, length));
      } catch (error) {
        // A handler's bug must not stop the device: report it as uncaught, read on.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    return "more";
  }
}

/** The 8-byte counter increment that makes an eventfd readable. */
const WAKE = new Uint8Array(new BigUint64Array([1n]).buffer);

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
