/**
 * A stock WireGuard peer for interop tests: Debian's `wireguard-go`, configured by `wg`,
 * inside a test host's network namespace. Root only. Names are unique per instance and
 * `stop()` removes the process and its control socket.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestHost } from "./netns.ts";

export interface WireguardGoOptions {
  /** Base64 private key of the wireguard-go side. */
  privateKey: string;
  listenPort: number;
  /** The overlay address of the wireguard-go interface, with prefix (e.g. 10.214.7.2/24). */
  interfaceAddress: string;
  peer: {
    publicKey: string;
    presharedKey?: string;
    allowedIps: string;
    endpoint?: string;
  };
}

export interface WireguardGo {
  readonly interfaceName: string;
  /** Runs `wg ARGS` for this interface inside the namespace. */
  wg(args: string[]): string;
  /** Last handshake with the peer as Unix seconds (0 = never), from `wg show latest-handshakes`. */
  latestHandshake(): number;
  stop(): void;
}

/** Starts wireguard-go in `host`'s namespace, configures it with `wg`, and brings the interface up. */
export async function startWireguardGo(
  host: TestHost,
  options: WireguardGoOptions,
): Promise<WireguardGo> {
  const interfaceName = `wgt${randomBytes(4).toString("hex")}`.slice(0, 15);
  const child: ChildProcess = spawn(
    "ip",
    ["netns", "exec", host.namespace, "wireguard-go", "-f", interfaceName],
    {
      env: { ...process.env, WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "error" },
      stdio: "ignore",
    },
  );
  const socket = `/var/run/wireguard/${interfaceName}.sock`;
  const dir = mkdtempSync(join(tmpdir(), "weft-wg-"));
  const stop = () => {
    child.kill("SIGTERM");
    rmSync(socket, { force: true });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 100 && !existsSync(socket); i++)
      await new Promise((r) => setTimeout(r, 20));
    if (!existsSync(socket)) throw new Error(`wireguard-go did not create ${socket}`);
    const keyFile = join(dir, "private");
    writeFileSync(keyFile, `${options.privateKey}\n`, { mode: 0o600 });
    const peerArgs = ["peer", options.peer.publicKey, "allowed-ips", options.peer.allowedIps];
    if (options.peer.endpoint) peerArgs.push("endpoint", options.peer.endpoint);
    if (options.peer.presharedKey) {
      const pskFile = join(dir, "psk");
      writeFileSync(pskFile, `${options.peer.presharedKey}\n`, { mode: 0o600 });
      peerArgs.push("preshared-key", pskFile);
    }
    host.exec("wg", [
      "set",
      interfaceName,
      "private-key",
      keyFile,
      "listen-port",
      String(options.listenPort),
      ...peerArgs,
    ]);
    host.exec("ip", ["addr", "add", options.interfaceAddress, "dev", interfaceName]);
    host.exec("ip", ["link", "set", interfaceName, "up"]);
  } catch (error) {
    stop();
    throw error;
  }
  return {
    interfaceName,
    wg: (args) => host.exec("wg", [...args]),
    latestHandshake() {
      const line = host.exec("wg", ["show", interfaceName, "latest-handshakes"]).trim();
      return Number(line.split(/\s+/)[1] ?? 0);
    },
    stop,
  };
}
