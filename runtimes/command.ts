/**
 * `Runtime.runCommand` for every runtime: `node:child_process`, which Node, Deno and Bun
 * all implement, as `tun-linux.ts` does for `ip -batch`. The daemon runs short system tools
 * with it (iproute2's `ip`, util-linux's `nsenter`) and shows their own error text.
 */
import { spawn } from "node:child_process";
import type { CommandResult } from "../src/runtime.ts";

/** A command still running after this long is killed (code -1, stderr says so). */
export const COMMAND_TIMEOUT_MS = 10_000;

/**
 * Runs `command` (looked up on the PATH) with `args`, writing `input` to its stdin, and
 * resolves when it exits. Rejects only when it cannot start (not installed), with the
 * system's message.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  input?: string,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { stdio: ["pipe", "pipe", "pipe"] });
    const decoder = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), COMMAND_TIMEOUT_MS);
    child.stdout.on("data", (chunk: Uint8Array) => {
      stdout += decoder.stdout.decode(chunk, { stream: true });
    });
    child.stderr.on("data", (chunk: Uint8Array) => {
      stderr += decoder.stderr.decode(chunk, { stream: true });
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`Cannot run "${command}": ${error.message}`, { cause: error }));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (signal) stderr += `${command} killed by ${signal}`;
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.on("error", () => {}); // a command exiting early is reported by "close"
    child.stdin.end(input ?? "");
  });
}
