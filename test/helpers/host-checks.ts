/** Waiting and probing for the root tests that run weft hosts in network namespaces. */
import assert from "node:assert/strict";
import { sh } from "./netns.ts";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` (a throw counts as not yet) every 250 ms; the ms it took, or a failed assertion. */
export async function waitFor(
  what: string,
  check: () => boolean,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      if (check()) return Date.now() - started;
    } catch {
      // not yet
    }
    if (Date.now() - started > timeoutMs) {
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(250);
  }
}

/** Runs a command in a namespace; true when it exits 0. */
export function succeeds(namespace: string, command: string, args: string[]): boolean {
  try {
    sh("ip", ["netns", "exec", namespace, command, ...args]);
    return true;
  } catch {
    return false;
  }
}

/** Whether `namespace` gets echo replies from `target` (an address or a name). */
export function pings(namespace: string, target: string, count = 3): boolean {
  return succeeds(namespace, "ping", ["-c", String(count), "-i", "0.3", "-W", "2", target]);
}

/** The metrics page of the daemon in `namespace` (each serves on its own loopback), or "". */
export function scrapeMetrics(namespace: string): string {
  try {
    return sh("ip", [
      "netns",
      "exec",
      namespace,
      "bash",
      "-c",
      "exec 3<>/dev/tcp/127.0.0.1/9586 || exit 1; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    ]);
  } catch {
    return "";
  }
}
