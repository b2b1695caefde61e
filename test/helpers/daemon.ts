/**
 * `weft up` as a child process of the test, on this test's runtime, with its own state
 * directory and its log in a file (a pipe nobody reads could fill and stall it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CliResult, cliCommand, runCli } from "./cli.ts";

export interface RunningDaemon {
  readonly stateDir: string;
  readonly child: ChildProcess;
  /** `weft --state-dir <ours> ARGS`. */
  cli(args: string[], input?: string): CliResult;
  /** `status --json`, parsed; throws when the daemon does not answer. */
  status(): DaemonStatusJson;
  log(): string;
  /**
   * Resolves with the exit code once the process has ended (null: ended by a signal, as
   * Deno's child_process reports a child it sent one, whatever the child's exit code),
   * or "timeout" after `timeoutMs`.
   */
  exited(timeoutMs?: number): Promise<number | null | "timeout">;
  /** Kills the process if still running and removes its state directory. */
  cleanup(): Promise<void>;
}

export interface DaemonStatusJson {
  self: {
    publicKey: string;
    nickname: string;
    address?: string;
    port: number;
    dns?: string;
    endpoints?: string[];
  };
  peers: {
    publicKey: string;
    nickname: string;
    address?: string;
    path: string;
    endpoint?: string;
    punched?: boolean;
    via: string[];
    viaNicknames: string[];
    pathMtu?: number;
  }[];
}

/** A fresh state directory for a daemon. */
export function makeStateDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `weft-${label}-`));
}

/** Starts `weft up ARGS` on `stateDir` and waits until its control socket answers. */
export async function startDaemon(stateDir: string, args: string[]): Promise<RunningDaemon> {
  const [command, entry] = cliCommand();
  const logPath = join(stateDir, "daemon.log");
  const logFd = openSync(logPath, "a");
  const child = spawn(command, [...entry, "--state-dir", stateDir, "up", ...args], {
    stdio: ["ignore", logFd, logFd],
    env: { ...process.env, NO_COLOR: "1" },
  });
  closeSync(logFd);
  let exitCode: number | null | undefined;
  const exit = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  const cli = (cliArgs: string[], input?: string) =>
    runCli(["--state-dir", stateDir, ...cliArgs], input);
  const log = () => readFileSync(logPath, "utf8");
  const daemon: RunningDaemon = {
    stateDir,
    child,
    cli,
    log,
    status() {
      const result = cli(["status", "--json"]);
      if (result.status !== 0) throw new Error(`status failed: ${result.stderr}`);
      return JSON.parse(result.stdout) as DaemonStatusJson;
    },
    exited: (timeoutMs = 15_000) =>
      Promise.race([
        exit,
        new Promise<null>((r) => setTimeout(() => r(null), timeoutMs).unref?.()),
      ]),
    async cleanup() {
      if (exitCode === undefined) {
        child.kill("SIGKILL");
        await exit;
      }
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`weft up exited with ${exitCode}:\n${log()}`);
    if (cli(["status", "--json"]).status === 0) return daemon;
    if (Date.now() > deadline) {
      await daemon.cleanup();
      throw new Error(`weft up did not answer within 30 s:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Polls `condition` every 250 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(condition: () => boolean, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (condition()) return true;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}
