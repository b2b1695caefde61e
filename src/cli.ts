/**
 * The `weft` command line (glue: may use the runtime through `runtimes/`).
 * Run as `node bin/weft.js`, `deno run -A mod.ts`, `bun run src/cli.ts`.
 */
import { rmSync } from "node:fs";
import type { Server } from "node:http";
import { Command, CommanderError } from "commander";
import { loadRuntime } from "../runtimes/index.ts";
import { addAttachCommands, addMembershipCommands } from "./cli/members.ts";
import { collect, type Json, print } from "./cli/output.ts";
import { fromBase64, KEY_BYTES, toBase64 } from "./crypto/index.ts";
import {
  buildConfig,
  type DaemonConfig,
  DEFAULT_METRICS,
  DEFAULT_MTU,
  DEFAULT_PORT,
  DEFAULT_SOCKS5,
  DEFAULT_TUN_NAME,
  type RawUpOptions,
} from "./daemon/config.ts";
import { callDaemon, socketPathOf } from "./daemon/control-client.ts";
import { serveControl } from "./daemon/control-server.ts";
import { Daemon, type DaemonStatus } from "./daemon/daemon.ts";
import { runDemo } from "./daemon/demo.ts";
import { formatDaemonStatus } from "./daemon/format.ts";
import { createLogger, isLevel } from "./daemon/log.ts";
import { serveMetrics } from "./daemon/metrics.ts";
import { defaultStateDir } from "./daemon/state-dir.ts";
import { DEFAULT_MULTICAST_PACKETS_PER_SECOND } from "./mesh/multicast.ts";
import { VERSION } from "./version.ts";

async function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Uint8Array);
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** Parses a base64 WireGuard key as `wg` does; throws an Error naming the problem. */
function parseKey(text: string, what: string): Uint8Array {
  let key: Uint8Array;
  try {
    key = fromBase64(text.trim());
  } catch {
    throw new Error(`Invalid ${what}: not base64`);
  }
  if (key.length !== KEY_BYTES)
    throw new Error(`Invalid ${what}: ${key.length} bytes, expected ${KEY_BYTES}`);
  return key;
}

/** The options of `weft up` and `weft join`. */
function withUpOptions(command: Command): Command {
  return command
    .option("--port <port>", "UDP port of the tunnel", String(DEFAULT_PORT))
    .option("--listen <address>", "bind the UDP port to this address only")
    .option(
      "--peer <peer>",
      "a member to connect to: PUBKEY@HOST:PORT, or HOST:PORT of a known one (repeatable)",
      collect,
    )
    .option("--tun <name>", "TUN device name", DEFAULT_TUN_NAME)
    .option("--no-tun", "no TUN device: carry only the mesh's own traffic (no root needed)")
    .option("--mtu <bytes>", "MTU of the TUN device or userspace stack", String(DEFAULT_MTU))
    .option(
      "--userspace",
      "no TUN: the overlay address lives on a TCP/IP stack in weft (no root needed)",
    )
    .option(
      "--socks5 <ip:port|off>",
      `with --userspace: serve a SOCKS5 proxy into the mesh here (default ${DEFAULT_SOCKS5})`,
    )
    .option(
      "--forward <[bind:]localport:host:port>",
      "with --userspace: forward a local TCP port to a mesh service (repeatable)",
      collect,
    )
    .option(
      "--expose <[meshport:]localport>",
      "with --userspace: serve a local TCP port on the overlay address (repeatable)",
      collect,
    )
    .option("--name <nickname>", "this peer's name in the mesh and in DNS (default: hostname)")
    .option("--range <cidr>", "a new mesh's address range (joiners take the mesh's)")
    .option("--ipalloc <mode>", "IPAM bootstrap: auto, seed, join, observer, consensus=N", "auto")
    .option("--domain <domain>", "a new mesh's DNS domain (joiners take the mesh's)")
    .option("--dns-ttl <seconds>", "TTL of DNS answers for mesh names")
    .option("--dns-listen <host:port>", "serve DNS here (default: the overlay address, port 53)")
    .option("--metrics [host:port]", `serve Prometheus metrics (default ${DEFAULT_METRICS})`)
    .option("--advertise <host:port>", "an endpoint others can reach us at (repeatable)", collect)
    .option("--connection-limit <n>", "most direct connections to peers learned by gossip")
    .option("--multicast <on|off>", "carry IPv4 multicast and broadcast through the mesh", "on")
    .option(
      "--multicast-rate <n>",
      "multicast packets per second each member may send (burst: twice that)",
      String(DEFAULT_MULTICAST_PACKETS_PER_SECOND),
    )
    .option("--log-level <level>", "debug, info, warn or error", "info")
    .option("--json", "log one JSON object per line");
}

function buildProgram(): Command {
  const program = new Command()
    .name("weft")
    .description("A userspace mesh network on WireGuard tunnels")
    .version(VERSION)
    .option(
      "--state-dir <dir>",
      "the daemon's state directory (default: /var/lib/weft as root, else the XDG data dir)",
    )
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.configureHelp({ showGlobalOptions: true });

  /** Calls the running daemon of the state directory. */
  const daemon = (method: "GET" | "POST", path: string, body?: Record<string, unknown>) => {
    const stateDir = program.opts().stateDir ?? process.env.WEFT_STATE_DIR ?? defaultStateDir();
    return callDaemon(socketPathOf(stateDir), method, path, body);
  };

  const runUp = async (options: RawUpOptions) => {
    const stateDir = program.opts().stateDir as string | undefined;
    await runDaemon(buildConfig({ ...options, stateDir }));
  };
  withUpOptions(
    program
      .command("up")
      .description(
        "start this peer: found a new mesh, or join one with --join TOKEN; runs until stopped",
      ),
  )
    .option("--join <token>", "join the mesh of this invite token (from weft invite)")
    .action(runUp);
  withUpOptions(
    program
      .command("join")
      .description("join a mesh with an invite token and run, as weft up --join TOKEN")
      .argument("<token>", "the invite token printed by weft invite on a member"),
  ).action((token: string, options: RawUpOptions) => runUp({ ...options, join: token }));

  program
    .command("down")
    .description("stop the running daemon (the TUN goes, state is saved)")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      print(options, await daemon("POST", "/v1/down"), () => "weft is stopping");
    });

  program
    .command("status")
    .description("this peer and every member: address, path, endpoint, handshake, traffic")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      print(options, (await daemon("GET", "/v1/status")) as DaemonStatus, formatDaemonStatus);
    });

  program
    .command("peers")
    .description("the members this peer knows, one per line")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      const peers = (await daemon("GET", "/v1/peers")) as DaemonStatus["peers"];
      print(options, peers, (list) =>
        list
          .map((p) => `${p.publicKey} ${p.nickname || "-"} ${p.address ?? "-"} ${p.path}`)
          .join("\n"),
      );
    });

  program
    .command("connect")
    .description(
      "connect to a peer and keep it connected: PUBKEY@HOST:PORT, or HOST:PORT of a known peer",
    )
    .argument("<peer>")
    .option("--json", "print JSON")
    .action(async (peer: string, options: Json) => {
      const result = (await daemon("POST", "/v1/connect", { peer })) as { publicKey: string };
      print(options, result, (r) => `connecting to ${r.publicKey}`);
    });

  program
    .command("disconnect")
    .description(
      "stop connecting to a peer (nickname, public key or its first characters); it stays a member",
    )
    .argument("<peer>")
    .option("--json", "print JSON")
    .action(async (peer: string, options: Json) => {
      print(
        options,
        await daemon("POST", "/v1/disconnect", { peer }),
        (r) => `disconnected from ${(r as { disconnected: string }).disconnected}`,
      );
    });

  addMembershipCommands(program, daemon);
  addAttachCommands(program, daemon);

  const dns = program.command("dns").description("names in the mesh's DNS");
  dns
    .command("add")
    .description("register NAME (in the mesh domain unless it has dots) for ADDRESS")
    .argument("<name>")
    .argument("<address>")
    .option("--json", "print JSON")
    .action(async (name: string, address: string, options: Json) => {
      const r = (await daemon("POST", "/v1/dns/add", { name, address })) as { added: boolean };
      print(options, r, () =>
        r.added ? `added ${name} ${address}` : `${name} ${address} was already registered`,
      );
    });
  dns
    .command("rm")
    .description("unregister NAME (all of this peer's addresses, or only ADDRESS)")
    .argument("<name>")
    .argument("[address]")
    .option("--json", "print JSON")
    .action(async (name: string, address: string | undefined, options: Json) => {
      const r = (await daemon("POST", "/v1/dns/rm", { name, address })) as { removed: number };
      if (r.removed === 0 && !options.json)
        throw new Error(`${name} is not registered by this peer`);
      print(
        options,
        r,
        () => `removed ${r.removed} record${r.removed === 1 ? "" : "s"} of ${name}`,
      );
    });
  dns
    .command("ls")
    .description("every name in the mesh, with its owner and age")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      const entries = (await daemon("GET", "/v1/dns/ls")) as {
        name: string;
        address: string;
        owner: string;
        ageMs: number;
      }[];
      print(options, entries, (list) =>
        list
          .map(
            (e) =>
              `${e.name.padEnd(32)} ${e.address.padEnd(16)} ${e.owner.slice(0, 12)} ${Math.round(e.ageMs / 1000)} s`,
          )
          .join("\n"),
      );
    });
  dns
    .command("lookup")
    .description(
      "the addresses of a mesh name, or the names of an address, as this peer's DNS answers",
    )
    .argument("<name-or-address>")
    .option("--json", "print JSON")
    .action(async (name: string, options: Json) => {
      const r = (await daemon("GET", `/v1/dns/lookup?name=${encodeURIComponent(name)}`)) as {
        addresses: string[];
        names: string[];
      };
      const found = [...r.addresses, ...r.names];
      if (found.length === 0 && !options.json) throw new Error(`${name}: no such name in the mesh`);
      print(options, r, () => found.join("\n"));
    });

  const ipam = program.command("ipam").description("the mesh's address allocation");
  ipam
    .command("status")
    .description("the range, this peer's space and allocations, and the ring")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      const r = (await daemon("GET", "/v1/ipam/status")) as {
        range: string;
        seeded: boolean;
        owned: number;
        free: number;
        allocated: number;
        allocations: Record<string, string>;
        ring: { start: string; end: string; owner: string; free: number }[];
      };
      print(options, r, () =>
        [
          `range ${r.range}, ${r.seeded ? "seeded" : "not seeded yet"}; this peer owns ${r.owned}, ${r.free} free, ${r.allocated} allocated`,
          ...Object.entries(r.allocations).map(([h, a]) => `  ${a.padEnd(16)} ${h}`),
          "ring:",
          ...r.ring.map((e) => `  ${e.start}-${e.end} ${e.owner.slice(0, 12)} free ${e.free}`),
        ].join("\n"),
      );
    });
  ipam
    .command("allocate")
    .description("an address for HANDLE (idempotent), or the given one")
    .argument("<handle>")
    .argument("[address]")
    .option("--json", "print JSON")
    .action(async (handle: string, address: string | undefined, options: Json) => {
      const r = (await daemon("POST", "/v1/ipam/allocate", { handle, address })) as {
        address: string;
      };
      print(options, r, () => r.address);
    });
  ipam
    .command("release")
    .description("give HANDLE's address back")
    .argument("<handle>")
    .option("--json", "print JSON")
    .action(async (handle: string, options: Json) => {
      const r = (await daemon("POST", "/v1/ipam/release", { handle })) as { released: boolean };
      if (!r.released && !options.json) throw new Error(`${handle} has no address here`);
      print(options, r, () => `released ${handle}`);
    });
  ipam
    .command("rmpeer")
    .description("reclaim a dead peer's address space (only for peers that are gone for good)")
    .argument("<peer>")
    .option("--json", "print JSON")
    .action(async (peer: string, options: Json) => {
      const r = (await daemon("POST", "/v1/ipam/rmpeer", { peer })) as {
        peer: string;
        heir: string;
      };
      print(options, r, () => `removed ${r.peer}; its space goes to ${r.heir}`);
    });

  program
    .command("genkey")
    .description("print a new private key (base64, as 'wg genkey')")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      const runtime = await loadRuntime();
      const privateKey = toBase64(runtime.crypto.generatePrivateKey());
      print(options, { privateKey }, (r) => r.privateKey);
    });

  program
    .command("pubkey")
    .description("read a private key on stdin, print its public key (as 'wg pubkey')")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      const runtime = await loadRuntime();
      const privateKey = parseKey(await readStdin(), "private key");
      print(
        options,
        { publicKey: toBase64(runtime.crypto.publicKey(privateKey)) },
        (r) => r.publicKey,
      );
    });

  program
    .command("genpsk")
    .description("print a new preshared key (base64, as 'wg genpsk')")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      const runtime = await loadRuntime();
      print(
        options,
        { presharedKey: toBase64(runtime.crypto.randomBytes(KEY_BYTES)) },
        (r) => r.presharedKey,
      );
    });

  program
    .command("version")
    .description("print weft's version and the runtime")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      const runtime = await loadRuntime();
      print(
        options,
        { version: VERSION, runtime: runtime.name, runtimeVersion: runtime.version },
        (r) => `weft ${r.version} on ${r.runtime} ${r.runtimeVersion}`,
      );
    });

  program
    .command("demo")
    .description(
      "a three-peer mesh in this process on loopback, joined by invite, with a relay (no root)",
    )
    .option("--log-level <level>", "daemon logs at this level and above", "error")
    .action(async (options: { logLevel: string }) => {
      if (!isLevel(options.logLevel)) throw new Error(`Invalid --log-level "${options.logLevel}"`);
      const runtime = await loadRuntime();
      await runDemo(runtime, {
        write: (line) => process.stdout.write(`${line}\n`),
        logLevel: options.logLevel,
      });
      // Handles of the runtime must not keep us alive.
      process.exit(0);
    });

  program
    .command("info")
    .description("print the runtime and which crypto implementation serves each algorithm")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      const runtime = await loadRuntime();
      const info = {
        version: VERSION,
        runtime: runtime.name,
        runtimeVersion: runtime.version,
        crypto: runtime.crypto.implementations,
      };
      print(options, info, (r) =>
        [
          `weft ${r.version} on ${r.runtime} ${r.runtimeVersion}`,
          ...Object.entries(r.crypto).map(
            ([algorithm, implementation]) => `  ${algorithm}: ${implementation}`,
          ),
        ].join("\n"),
      );
    });

  return program;
}

/** Runs the daemon in the foreground until a signal or `weft down` stops it. */
async function runDaemon(config: DaemonConfig): Promise<void> {
  const runtime = await loadRuntime();
  const log = createLogger(config.logLevel, undefined, undefined, config.logJson);
  const daemon = await Daemon.start(config, runtime, log);
  const servers: Server[] = [];
  let signals = 0;
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      log("warn", "daemon", `${signal} again: exiting without cleanup`);
      process.exit(130);
    }
    void daemon.stop(signal);
  };
  // Deno's node:process listeners do not stop the default action (exit 143 after our
  // cleanup); its own signal API does.
  const deno = (
    globalThis as unknown as { Deno?: { addSignalListener(s: string, f: () => void): void } }
  ).Deno;
  for (const signal of ["SIGINT", "SIGTERM"]) {
    if (deno) deno.addSignalListener(signal, () => onSignal(signal));
    else process.on(signal, () => onSignal(signal));
  }
  try {
    servers.push(await serveControl(daemon, socketPathOf(config.stateDir)));
    if (config.metrics) {
      const colon = config.metrics.lastIndexOf(":");
      const host = config.metrics.slice(0, colon).replace(/^\[|\]$/g, "");
      servers.push(await serveMetrics(daemon, host, Number(config.metrics.slice(colon + 1))));
      log("info", "metrics", `serving Prometheus metrics on http://${config.metrics}/metrics`);
    }
  } catch (error) {
    await daemon.stop("a server could not start");
    throw new Error(`Cannot serve: ${(error as Error).message}`);
  }
  await daemon.stopped;
  for (const server of servers) {
    server.closeAllConnections?.();
    // Bounded: on Deno a listener's close callback has been seen never to come after a signal.
    await Promise.race([
      new Promise((resolve) => server.close(resolve)),
      new Promise((resolve) => setTimeout(resolve, 1_000)),
    ]);
  }
  rmSync(socketPathOf(config.stateDir), { force: true });
  if (daemon.failure) {
    process.stderr.write(`weft: ${daemon.failure}\n`);
    process.exit(1);
  }
  // Handles of the runtime (a pending TUN read, DNS sockets) must not keep us alive.
  process.exit(0);
}

/** Runs the CLI with `argv` in Node's convention (runtime, script, args...); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    process.stderr.write(`weft: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if ((import.meta as { main?: boolean }).main) process.exitCode = await main(process.argv);
