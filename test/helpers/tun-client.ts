/**
 * The parent's side of `tun-child.ts`: a network namespace of the test's own, and child
 * processes on the runtime running this test, inside it, optionally as the unprivileged
 * user nobody. Every namespace is deleted and every child killed by `cleanup()`.
 *
 * Traffic stays in the namespace: it holds only `lo` and the children's TUN devices.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { detectRuntime, type RuntimeName } from "../../runtimes/detect.ts";
import type { TunChildConfig } from "./tun-child.ts";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..");
const SCRIPT = join(ROOT, "test", "helpers", "tun-child.ts");
const BIN = join(ROOT, "node_modules", ".bin");
/** The unprivileged user and group the privilege test runs the child as. */
const NOBODY = 65534;

/** The command line running `script` on `runtime` (as mesh-peer-client.ts does). */
export function runtimeCommand(runtime: RuntimeName, script: string): string[] {
  switch (runtime) {
    case "node":
      return [
        process.execPath.endsWith("node") ? process.execPath : "node",
        "--import",
        "tsx",
        script,
      ];
    case "deno":
      return [join(BIN, "deno"), "run", "-A", script];
    case "bun":
      return [join(BIN, "bun"), script];
  }
}

/** One line `tun-child.ts` printed. */
export type ChildEvent = Record<string, unknown> & { event: string };

export interface ChildExit {
  readonly code: number | null;
  readonly signal: string | null;
}

/** A running `tun-child.ts`. */
export class TunChild {
  readonly events: ChildEvent[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<ChildExit>;
  readonly #child: ChildProcess;
  #listeners: (() => void)[] = [];

  constructor(command: string[], env: Record<string, string | undefined>) {
    const [file, ...args] = command;
    this.#child = spawn(file!, args, { cwd: ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
    this.#child.stdin!.on("error", () => {}); // the child may be gone already
    createInterface({ input: this.#child.stderr! }).on("line", (line) => this.stderr.push(line));
    createInterface({ input: this.#child.stdout! }).on("line", (line) => {
      try {
        this.events.push(JSON.parse(line) as ChildEvent);
      } catch {
        this.stderr.push(`stdout: ${line}`);
      }
      for (const listener of this.#listeners) listener();
    });
    this.exited = new Promise((resolve) => {
      this.#child.on("error", (error) => {
        this.stderr.push(`failed to start: ${error.message}`);
        resolve({ code: null, signal: null });
      });
      this.#child.on("exit", (code, signal) => {
        for (const listener of this.#listeners) listener();
        resolve({ code, signal });
      });
    });
  }

  /** The first event named `name`; rejects with the child's stderr if it exits or times out first. */
  next(name: string, timeoutMs = 30_000): Promise<ChildEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.find((e) => e.event === name);
        if (found) return finish(() => resolve(found));
        if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
          finish(() => reject(new Error(`child exited before "${name}":\n${this.describe()}`)));
        }
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(new Error(`no "${name}" within ${timeoutMs} ms:\n${this.describe()}`)),
          ),
        timeoutMs,
      );
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.#listeners = this.#listeners.filter((l) => l !== check);
        settle();
      };
      this.#listeners.push(check);
      check();
    });
  }

  /** Writes a line to the child's stdin. */
  send(line: string): void {
    this.#child.stdin!.write(`${line}\n`);
  }

  /** Ends the child's stdin: the waiting modes close their device and exit. */
  endInput(): void {
    this.#child.stdin!.end();
  }

  /** Resolves with the exit, or kills the child and rejects after `timeoutMs`. */
  async exit(timeoutMs = 10_000): Promise<ChildExit> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`child did not exit within ${timeoutMs} ms:\n${this.describe()}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null)
      this.#child.kill("SIGKILL");
  }

  /** What the child printed, for failure messages. */
  describe(): string {
    return [...this.events.map((e) => JSON.stringify(e)), ...this.stderr].join("\n");
  }
}

/**
 * How the child runs: as root; as the user nobody (no capabilities; `/dev/net/tun` is
 * usually root's alone, else the kernel refuses TUNSETIFF); as root without CAP_NET_ADMIN
 * (opening the device works, creating an interface does not); as root with an empty
 * `/dev/net` (a tmpfs mounted in the mount namespace `ip netns exec` makes, which does not
 * propagate to the host); or as root without `ip` on the PATH.
 */
export type ChildSetup =
  | "root"
  | "nobody"
  | "root-without-net-admin"
  | "without-dev-net-tun"
  | "without-ip-command";

/** The command prefix for each of `ChildSetup`. */
const SETUP_PREFIX: Record<ChildSetup, string[]> = {
  root: [],
  nobody: ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups"],
  "root-without-net-admin": ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin"],
  "without-dev-net-tun": ["sh", "-c", 'mount -t tmpfs tmpfs /dev/net && exec "$@"', "sh"],
  // The runtime's path is absolute; `ip` is then found nowhere.
  "without-ip-command": ["env", "PATH=/nonexistent"],
};

export interface TunNamespace {
  readonly name: string;
  /** Runs a command in the namespace; returns stdout, throws with stderr. */
  exec(command: string, args: string[]): string;
  /**
   * Starts `tun-child.ts` in the namespace, set up as `setup` says (root by default), on
   * `runtime` (by default the one running this process).
   */
  start(config: TunChildConfig, setup?: ChildSetup, runtime?: RuntimeName): TunChild;
  /** Kills the children and deletes the namespace; safe to call twice. */
  cleanup(): void;
}

/** A fresh namespace `weft-tun-<pid><random>` with `lo` up. */
export function createTunNamespace(): TunNamespace {
  const name = `weft-tun-${process.pid.toString(36)}${randomBytes(3).toString("hex")}`;
  const children: TunChild[] = [];
  execFileSync("ip", ["netns", "add", name], { stdio: "pipe" });
  let deleted = false;
  const exec = (command: string, args: string[]) =>
    execFileSync("ip", ["netns", "exec", name, command, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  try {
    exec("ip", ["link", "set", "lo", "up"]);
  } catch (error) {
    execFileSync("ip", ["netns", "del", name], { stdio: "pipe" });
    throw error;
  }
  return {
    name,
    exec,
    start(config, setup = "root", runtime = detectRuntime()) {
      const command = [
        "ip",
        "netns",
        "exec",
        name,
        ...SETUP_PREFIX[setup],
        ...runtimeCommand(runtime, SCRIPT),
        JSON.stringify(config),
      ];
      const env = { ...process.env, NO_COLOR: "1" };
      const child = new TunChild(command, env);
      children.push(child);
      return child;
    },
    cleanup() {
      for (const child of children.splice(0)) child.kill();
      if (deleted) return;
      deleted = true;
      try {
        for (const pid of execFileSync("ip", ["netns", "pids", name], { encoding: "utf8" })
          .split("\n")
          .filter(Boolean)) {
          process.kill(Number(pid), "SIGKILL");
        }
      } catch {
        // gone already
      }
      try {
        execFileSync("ip", ["netns", "del", name], { stdio: "pipe" });
      } catch {
        // best effort: the next run uses a new name
      }
    },
  };
}
