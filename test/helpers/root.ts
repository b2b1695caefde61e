/**
 * Root-only tests: without root they skip with a printed reason, but under CI=true they
 * must run, so there a missing privilege or tool is a failure, never a skip.
 */
import { execFileSync } from "node:child_process";

export const IS_ROOT = typeof process.getuid === "function" && process.getuid() === 0;
export const IN_CI = process.env.CI === "true";

/** Whether `command` is on the PATH. */
export function hasCommand(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Test options for a test that needs root and the given commands: `{ skip: reason }`
 * when it cannot run here (the reason is also printed), `{ skip: false }` when it can or
 * when under CI, where `assertCanRun` then fails it with the reason.
 */
export function rootOnly(...commands: string[]): { skip: string | false } {
  const reason = whyNot(commands);
  if (reason && !IN_CI) {
    console.log(`skipping root-only test: ${reason}`);
    return { skip: reason };
  }
  return { skip: false };
}

/** Throws when the test cannot run (only reached under CI, where a skip is not allowed). */
export function assertCanRun(...commands: string[]): void {
  const reason = whyNot(commands);
  if (reason) throw new Error(`Root-only test cannot run under CI=true: ${reason}`);
}

function whyNot(commands: string[]): string | undefined {
  if (!IS_ROOT) return "not running as root";
  const missing = commands.filter((c) => !hasCommand(c));
  if (missing.length > 0) return `missing commands: ${missing.join(", ")} (see .ci/run)`;
  return undefined;
}
