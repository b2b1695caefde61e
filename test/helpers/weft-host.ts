/**
 * A `weft up` daemon inside a test network namespace, on a chosen runtime or the compiled
 * single binary. The CLI talks to it through its state directory's Unix socket, which is
 * reachable from any namespace, so commands run from the test process itself.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CliResult } from "./cli.ts";
import type { DaemonStatusJson } from "./daemon.ts";

export type HostRuntime = "node" | "deno" | "bun" | "binary";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..");
const BIN = join(ROOT, "node_modules", ".bin");

/** Builds the single `weft` binary with `bun build --compile` into a temporary directory. */
export function compileBinary(): string {
  const outfile = join(mkdtempSync(join(tmpdir(), "weft-bin-")), "weft");
  execFileSync(
    join(BIN, "bun"),
    [
      "build",
      "--compile",
      join(ROOT, "src", "cli.ts"),
      // The TUN adapter's worker: a binary holds only the entry points it is given.
      join(ROOT, "runtimes", "tun-bun-worker.ts"),
      "--outfile",
      outfile,
    ],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  return outfile;
}

/** The command line of `weft` on `runtime` (`binary` needs the path `compileBinary` gave). */
export function weftCommand(runtime: HostRuntime, binary?: string): string[] {
  switch (runtime) {
    case "node":
      return [
        process.execPath.endsWith("node") ? process.execPath : "node",
        // For profiling the daemons: WEFT_HOST_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p".
        ...(process.env.WEFT_HOST_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
        join(ROOT, "bin", "weft.js"),
      ];
    case "deno":
      return [join(BIN, "deno"), "run", "-A", join(ROOT, "mod.ts")];
    case "bun":
      return [join(BIN, "bun"), "run", join(ROOT, "src", "cli.ts")];
    case "binary":
      if (!binary) throw new Error("weftCommand('binary') needs the compiled binary's path");
      return [binary];
  }
}

export class WeftHost {
  readonly name: string;
  readonly runtime: HostRuntime;
  readonly stateDir: string;
  readonly #command: string[];
  readonly #namespace: string;
  #child: ChildProcess | undefined;
  #exit: Promise<number | null> | undefined;

  constructor(name: string, runtime: HostRuntime, namespace: string, binary?: string) {
    this.name = name;
    this.runtime = runtime;
    this.#namespace = namespace;
    this.#command = weftCommand(runtime, binary);
    this.stateDir = mkdtempSync(join(tmpdir(), `weft-host-${name}-`));
  }

  /** Starts `weft up ARGS` in the namespace; the log goes to `<stateDir>/daemon.log`. */
  start(args: string[]): void {
    const logFd = openSync(join(this.stateDir, "daemon.log"), "a");
    const [command, ...rest] = ["ip", "netns", "exec", this.#namespace, ...this.#command];
    this.#child = spawn(command!, [...rest, "--state-dir", this.stateDir, "up", ...args], {
      cwd: ROOT,
      stdio: ["ignore", logFd, logFd],
    });
    closeSync(logFd);
    const child = this.#child;
    this.#exit = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  /** The daemon's process id (`ip netns exec` execs the runtime, so it is the daemon's). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** `weft --state-dir <ours> ARGS`, run from the root namespace through the socket. */
  cli(args: string[]): CliResult {
    try {
      const stdout = execFileSync(
        this.#command[0]!,
        [...this.#command.slice(1), "--state-dir", this.stateDir, ...args],
        {
          cwd: ROOT,
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
          timeout: 60_000,
        },
      );
      return { status: 0, stdout, stderr: "" };
    } catch (error) {
      const e = error as { status?: number; stdout?: string; stderr?: string };
      return { status: e.status ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
    }
  }

  status(): DaemonStatusJson | undefined {
    const result = this.cli(["status", "--json"]);
    return result.status === 0 ? (JSON.parse(result.stdout) as DaemonStatusJson) : undefined;
  }

  log(): string {
    try {
      return readFileSync(join(this.stateDir, "daemon.log"), "utf8");
    } catch {
      return "(no log)";
    }
  }

  /** Asks the daemon to stop (`weft down`) and waits for its exit code; kills it after `timeoutMs`. */
  async down(timeoutMs = 15_000): Promise<number | null> {
    if (!this.#child || !this.#exit) return null;
    this.cli(["down"]);
    const code = await Promise.race([
      this.#exit,
      new Promise<"timeout">((r) => setTimeout(() => r("timeout"), timeoutMs)),
    ]);
    if (code === "timeout") {
      this.#child.kill("SIGKILL");
      await this.#exit;
      return null;
    }
    this.#child = undefined;
    return code;
  }

  /** Kills the daemon if it still runs (for `finally`). */
  async kill(): Promise<void> {
    if (!this.#child || !this.#exit) return;
    this.#child.kill("SIGKILL");
    await this.#exit;
    this.#child = undefined;
  }
}
