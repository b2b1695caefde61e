/**
 * `weft demo`: three peers in this process, on loopback UDP, with no root. A founds a
 * mesh; B joins with a token from A; C joins with a token from B, because a firewall
 * (in this process: a filter on the sockets) keeps A and C from reaching each other.
 * Every peer runs the userspace TCP/IP stack (`weft up --userspace`), so no root is
 * needed. The demo shows the addresses IPAM handed out, the names DNS resolves on every
 * peer, a message from A to C that B relays without reading it, a real HTTP request from
 * A to a server on C over TCP through B, and each peer's status.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Endpoint, PacketConn } from "../net/packet-conn.ts";
import { httpGet, serveHttp } from "../netstack/http1.ts";
import type { Runtime } from "../runtime.ts";
import { buildConfig } from "./config.ts";
import { Daemon } from "./daemon.ts";
import { formatDaemonStatus } from "./format.ts";
import { createLogger, type Level } from "./log.ts";

const DEMO_PORT = 7;
const HTTP_PORT = 80;
const STEP_TIMEOUT_MS = 30_000;

export interface DemoOptions {
  readonly write: (line: string) => void;
  /** Daemon logs at this level and above go to stderr ("error" keeps the demo quiet). */
  readonly logLevel?: Level;
}

/** Runs the demo; resolves when done (all peers stopped, temp state removed), throws on failure. */
export async function runDemo(runtime: Runtime, options: DemoOptions): Promise<void> {
  const say = options.write;
  const root = mkdtempSync(join(tmpdir(), "weft-demo-"));
  const log = createLogger(options.logLevel ?? "error");
  const daemons: Daemon[] = [];
  const firewall = new Firewall();
  const start = async (name: string, token?: string) => {
    const config = buildConfig({
      stateDir: join(root, name),
      port: "0",
      listen: "127.0.0.1",
      userspace: true,
      socks5: "off",
      name,
      logLevel: options.logLevel ?? "error",
      join: token,
    });
    const daemon = await Daemon.start(config, firewall.wrap(runtime, name), log);
    daemons.push(daemon);
    return daemon;
  };
  try {
    say("weft demo: three peers on loopback; a firewall keeps A and C apart.\n");
    firewall.block("a", "c");
    const a = await start("a");
    say(`A founded mesh ${a.membersList().meshId} (range ${a.config.range}).`);
    const tokenForB = a.invite({ ttlMs: 600_000, uses: 1, nickname: "b", endpoints: [] }).token;
    say(`A invited B:  weft invite --name b  ->  ${abbreviate(tokenForB)}`);
    const b = await start("b", tokenForB);
    say("B joined with that token (weft join TOKEN).");
    const tokenForC = b.invite({ ttlMs: 600_000, uses: 1, nickname: "c", endpoints: [] }).token;
    say(`B invited C:  ${abbreviate(tokenForC)}`);
    const c = await start("c", tokenForC);
    say("C joined with B's token: it cannot reach A at all.\n");

    const peers = [a, b, c];
    await until("every peer has an overlay address", () =>
      peers.every((d) => d.status().self.address !== undefined),
    );
    say("Addresses from IPAM (A seeded the range; B and C got space by donation):");
    for (const d of peers) say(`  ${d.config.nickname}  ${d.status().self.address}`);

    const names = peers.map((d) => d.config.nickname);
    await until("every name resolves on every peer", () =>
      peers.every((d) => names.every((n) => d.dnsLookup(n).addresses.length > 0)),
    );
    say("\nNames, resolved on every peer (the DNS CRDT, replicated by gossip):");
    for (const d of peers) {
      const answers = names.map((n) => `${n}.${d.config.domain}=${d.dnsLookup(n).addresses[0]}`);
      say(`  on ${d.config.nickname}: ${answers.join("  ")}`);
    }

    await until("A sees C relayed via B", () =>
      a.status().peers.some((p) => p.nickname === "c" && p.path === "relayed"),
    );
    const received = new Promise<string>((resolve) =>
      c.mesh.onDatagram((from, port, data) => {
        if (port === DEMO_PORT && from === a.mesh.key) resolve(new TextDecoder().decode(data));
      }),
    );
    const relayedBefore = b.mesh.status().relayed.relayedForwarded;
    const message = "hello C, this is A";
    await until("A's message reaches C", async () => {
      a.mesh.sendDatagram(c.mesh.key, DEMO_PORT, new TextEncoder().encode(message));
      return (await Promise.race([received, sleep(500).then(() => undefined)])) !== undefined;
    });
    const text = await received;
    const relayed = b.mesh.status().relayed.relayedForwarded - relayedBefore;
    say(
      `\nA sent "${message}" to C; C received "${text}" (B forwarded ${relayed} end-to-end encrypted frame(s) it cannot read).`,
    );

    await until("every peer has its userspace stack", () =>
      peers.every((d) => d.userspace !== undefined),
    );
    const server = c.userspace!.tcp.listen(HTTP_PORT);
    serveHttp(server, (request) => ({
      status: 200,
      headers: { "content-type": "text/plain" },
      body: new TextEncoder().encode(
        `hello from C's userspace stack: you asked for ${request.path} from ${request.headers.get("user-agent") ?? "?"}\n`,
      ),
    }));
    const url = `http://c.${c.config.domain.replace(/\.$/, "")}/hello`;
    const forwardedBefore = b.mesh.status().relayed.relayedForwarded;
    const stream = await a.userspace!.dial(`c.${c.config.domain}`, HTTP_PORT);
    const response = await httpGet(stream, {
      host: `c.${c.config.domain.replace(/\.$/, "")}`,
      path: "/hello",
      headers: { "user-agent": "weft-demo" },
    });
    const body = new TextDecoder().decode(await new Response(response.body).arrayBuffer());
    server.close();
    const forwarded = b.mesh.status().relayed.relayedForwarded - forwardedBefore;
    say(
      `\nA fetched ${url} over TCP on its userspace stack: HTTP ${response.status}, "${body.trim()}" (B forwarded ${forwarded} encrypted frame(s) of it).`,
    );

    say("\nweft status on each peer:");
    for (const d of peers) say(`\n${formatDaemonStatus(d.status())}`);
    say("\nweft demo: done.");
  } finally {
    await Promise.all(daemons.map((d) => d.stop("demo done")));
    rmSync(root, { recursive: true, force: true });
  }
}

/** Polls `check` every 100 ms until it holds; throws naming `what` after 30 s. */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting until ${what}`);
    await sleep(100);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function abbreviate(token: string): string {
  return token.length > 40
    ? `${token.slice(0, 28)}...${token.slice(-8)} (${token.length} chars)`
    : token;
}

/** Drops datagrams between named peers' sockets, as a firewall between two hosts would. */
class Firewall {
  readonly #ports = new Map<string, number>();
  readonly #blocked = new Set<string>();

  block(one: string, other: string): void {
    this.#blocked.add(`${one}|${other}`);
    this.#blocked.add(`${other}|${one}`);
  }

  #allows(name: string, remote: Endpoint): boolean {
    for (const [other, port] of this.#ports) {
      if (port === remote.port && this.#blocked.has(`${name}|${other}`)) return false;
    }
    return true;
  }

  /** The runtime with `name`'s UDP sockets behind this firewall. */
  wrap(runtime: Runtime, name: string): Runtime {
    return {
      ...runtime,
      listenUdp: async (options) => {
        const conn = await runtime.listenUdp(options);
        this.#ports.set(name, conn.localPort);
        const filtered: PacketConn = {
          get localPort() {
            return conn.localPort;
          },
          send: (data, to) => {
            if (this.#allows(name, to)) conn.send(data, to);
          },
          onReceive: (handler) =>
            conn.onReceive((data, from) => {
              if (this.#allows(name, from)) handler(data, from);
            }),
          close: () => conn.close(),
        };
        return filtered;
      },
    };
  }
}
