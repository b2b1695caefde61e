/**
 * The parent's side of `mesh-peer.ts`: spawns a peer process on a chosen runtime (inside a
 * network namespace if asked), sends it commands and collects its answers and datagrams.
 * Every process started here is killed by `kill()`, by `killAllMeshPeers()`, or when this
 * process exits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { MeshStatus } from "../../src/mesh/status.ts";
import type { MeshPeerCommand, MeshPeerConfig } from "./mesh-peer.ts";

export type PeerRuntime = "node" | "deno" | "bun";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..");
const SCRIPT = join(ROOT, "test", "helpers", "mesh-peer.ts");
const BIN = join(ROOT, "node_modules", ".bin");

/** The command line running `mesh-peer.ts` on `runtime`. */
export function meshPeerCommand(runtime: PeerRuntime): string[] {
  switch (runtime) {
    case "node":
      return [
        process.execPath.endsWith("node") ? process.execPath : "node",
        "--import",
        "tsx",
        SCRIPT,
      ];
    case "deno":
      return [join(BIN, "deno"), "run", "-A", SCRIPT];
    case "bun":
      return [join(BIN, "bun"), SCRIPT];
  }
}

export interface ReceivedDatagram {
  readonly from: string;
  readonly port: number;
  readonly data: Uint8Array;
}

type Answer = Record<string, unknown>;

const running = new Set<MeshPeerProcess>();
process.on("exit", () => killAllMeshPeers());

/** Kills every peer process still running (for `after` hooks and failures). */
export function killAllMeshPeers(): void {
  for (const peer of running) peer.kill();
}

export class MeshPeerProcess {
  readonly name: string;
  readonly received: ReceivedDatagram[] = [];
  readonly stderr: string[] = [];
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve(a: Answer): void; reject(e: Error): void }>();
  readonly #ready: Promise<{ publicKey: string; port: number; runtime: string }>;
  #nextId = 1;
  #exited: string | undefined;

  /** Starts `mesh-peer.ts` on `runtime`, prefixed by `wrapper` (e.g. `ip netns exec NS`). */
  constructor(name: string, runtime: PeerRuntime, config: MeshPeerConfig, wrapper: string[] = []) {
    this.name = name;
    const [command, ...args] = [...wrapper, ...meshPeerCommand(runtime), JSON.stringify(config)];
    this.#child = spawn(command!, args, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    running.add(this);
    let onReady: (value: { publicKey: string; port: number; runtime: string }) => void;
    let onFail: (error: Error) => void;
    this.#ready = new Promise((resolve, reject) => {
      onReady = resolve;
      onFail = reject;
    });
    createInterface({ input: this.#child.stderr! }).on("line", (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 200) this.stderr.shift();
    });
    createInterface({ input: this.#child.stdout! }).on("line", (line) => {
      let message: Answer;
      try {
        message = JSON.parse(line) as Answer;
      } catch {
        this.stderr.push(`stdout: ${line}`);
        return;
      }
      if (message.event === "ready") onReady(message as never);
      else if (message.event === "datagram") {
        this.received.push({
          from: message.from as string,
          port: message.port as number,
          data: Uint8Array.from(atob(message.data as string), (c) => c.charCodeAt(0)),
        });
      } else if (typeof message.id === "number") {
        const waiter = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (typeof message.error === "string")
          waiter?.reject(new Error(`${name}: ${message.error}`));
        else waiter?.resolve(message);
      }
    });
    const fail = (why: string) => {
      this.#exited = why;
      running.delete(this);
      const error = new Error(`${name} ${why}\n${this.stderr.slice(-20).join("\n")}`);
      onFail(error);
      for (const waiter of this.#pending.values()) waiter.reject(error);
      this.#pending.clear();
    };
    this.#child.on("error", (error) => fail(`failed to start: ${error.message}`));
    this.#child.on("exit", (code, signal) => fail(`exited (code ${code}, signal ${signal})`));
  }

  /** Resolves with the peer's key and bound port once its socket is up. */
  ready(timeoutMs = 30_000): Promise<{ publicKey: string; port: number; runtime: string }> {
    return withTimeout(this.#ready, timeoutMs, `${this.name} did not start`);
  }

  request<T extends Answer = Answer>(command: MeshPeerCommand, timeoutMs = 30_000): Promise<T> {
    if (this.#exited) return Promise.reject(new Error(`${this.name} ${this.#exited}`));
    const id = this.#nextId++;
    const answer = new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (a: Answer) => void, reject });
      this.#child.stdin!.write(`${JSON.stringify({ ...command, id })}\n`);
    });
    return withTimeout(answer, timeoutMs, `${this.name} did not answer "${command.cmd}"`);
  }

  async status(): Promise<{ status: MeshStatus; table: string }> {
    return this.request<{ status: MeshStatus; table: string }>({ cmd: "status" });
  }

  /** Asks the peer to close its mesh and exit; kills it if it has not within a second. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once("exit", () => resolve()));
    this.#child.stdin!.write(`${JSON.stringify({ cmd: "close" })}\n`);
    this.#child.stdin!.end();
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
    this.kill();
  }

  kill(): void {
    running.delete(this);
    if (this.#child.exitCode === null && this.#child.signalCode === null)
      this.#child.kill("SIGKILL");
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
