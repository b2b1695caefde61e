/**
 * Multicast and broadcast through a relayed mesh of real hosts with kernel TUNs (#9):
 *
 *   h1 ── h2 ── h3 ── h4        (only neighbours share a segment: h1 reaches h3 and h4
 *                                 through relays, and the broadcast trees must too)
 *
 * h2 founds the mesh; h1 and h3 join with h2's tokens, h4 with h3's. A sender on h1 (a
 * small Node script that names no interface, so the route weft adds for 224.0.0.0/4
 * takes its datagrams into the mesh) sends 20 numbered datagrams to 239.1.2.3 and 5 to
 * the mesh range's directed broadcast; receivers on h2, h3 and h4 (the same script,
 * joined to the group on weft0) must each get every one exactly once. The counters in
 * the metrics agree.
 *
 * Runtimes per host rotate with the test runner's: under Node h1 node, h2 bun, h3 deno,
 * h4 node; under Deno deno, node, bun, deno; under Bun bun, deno, node, bun.
 *
 * Root only; under CI=true it must run. Traffic goes only to addresses inside the
 * namespaces this test creates; every namespace, process and directory it makes is
 * removed at the end, also on failure.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { detectRuntime } from "../../runtimes/detect.ts";
import { parsePrefix } from "../../src/net/ip.ts";
import { directedBroadcast } from "../../src/net/multicast.ts";
import { pings, scrapeMetrics, sleep, waitFor } from "../helpers/host-checks.ts";
import { createTestNetwork, type TestHost } from "../helpers/netns.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";
import { type HostRuntime, WeftHost } from "../helpers/weft-host.ts";

const TOOLS = ["ip", "ping", "node"];
const PORT = "51820";
const GROUP = "239.1.2.3";
const UDP_PORT = 6353;
const RANGE = "10.40.0.0/16";
const DATAGRAMS = 20;
const BROADCASTS = 5;

const ROTATION: Record<string, [HostRuntime, HostRuntime, HostRuntime, HostRuntime]> = {
  node: ["node", "bun", "deno", "node"],
  deno: ["deno", "node", "bun", "deno"],
  bun: ["bun", "deno", "node", "bun"],
};

/**
 * The receiver (`receive ADDRESS`): joins GROUP on the interface with ADDRESS, prints
 * "ready", then one line per datagram. The sender (`send`): DATAGRAMS to GROUP, then
 * BROADCASTS to the given broadcast address, 20 ms apart.
 */
const SCRIPT = `
import { createSocket } from "node:dgram";
const [mode, address, broadcast] = process.argv.slice(2);
const socket = createSocket({ type: "udp4", reuseAddr: true });
if (mode === "receive") {
  socket.on("message", (data) => process.stdout.write(data.toString() + "\\n"));
  socket.bind(${UDP_PORT}, () => {
    socket.addMembership("${GROUP}", address);
    process.stdout.write("ready\\n");
  });
} else {
  socket.bind(0, async () => {
    socket.setBroadcast(true);
    const send = (text, to) =>
      new Promise((resolve, reject) =>
        socket.send(text, ${UDP_PORT}, to, (error) => (error ? reject(error) : resolve())));
    for (let i = 1; i <= ${DATAGRAMS}; i++) {
      await send("m" + i, "${GROUP}");
      await new Promise((r) => setTimeout(r, 20));
    }
    for (let i = 1; i <= ${BROADCASTS}; i++) {
      await send("b" + i, broadcast);
      await new Promise((r) => setTimeout(r, 20));
    }
    socket.close();
  });
}
`;

interface Receiver {
  readonly host: WeftHost;
  readonly child: ChildProcess;
  readonly lines: string[];
}

function startReceiver(host: WeftHost, namespace: string, script: string, address: string) {
  const child = spawn("ip", ["netns", "exec", namespace, "node", script, "receive", address], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const receiver: Receiver = { host, child, lines: [] };
  let rest = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split("\n");
    rest = parts.pop()!;
    receiver.lines.push(...parts);
  });
  return receiver;
}

/** One counter of `weft_multicast_packets_total` from a host's metrics. */
function multicastCounter(namespace: string, event: string): number {
  const pattern = new RegExp(`^weft_multicast_packets_total\\{event="${event}"\\} (\\d+)$`, "m");
  return Number(pattern.exec(scrapeMetrics(namespace))?.[1] ?? -1);
}

describe("weft multicast on real hosts", () => {
  test("a group and the directed broadcast reach three hosts along a relayed chain, each datagram once", {
    ...rootOnly(...TOOLS),
    timeout: 180_000,
  }, async () => {
    assertCanRun(...TOOLS);
    const started = Date.now();
    const mark = (what: string) =>
      console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${what}`);
    const runtimes = ROTATION[detectRuntime()]!;
    const network = createTestNetwork("mcast");
    const scratch = mkdtempSync(join(tmpdir(), "weft-mcast-"));
    const hosts: WeftHost[] = [];
    const namespaceOf = new Map<WeftHost, TestHost>();
    const receivers: Receiver[] = [];
    try {
      const script = join(scratch, "multicast.mjs");
      writeFileSync(script, SCRIPT);
      const ns = ["h1", "h2", "h3", "h4"].map((h) => network.addHost(h)) as [
        TestHost,
        TestHost,
        TestHost,
        TestHost,
      ];
      network.linkHosts(ns[0], ns[1]);
      network.linkHosts(ns[1], ns[2]);
      network.linkHosts(ns[2], ns[3]);
      const [h1, h2, h3, h4] = ns.map(
        (n, i) => new WeftHost(`h${i + 1}`, runtimes[i]!, n.namespace),
      ) as [WeftHost, WeftHost, WeftHost, WeftHost];
      hosts.push(h1, h2, h3, h4);
      for (const [i, host] of hosts.entries()) namespaceOf.set(host, ns[i]!);
      console.log(hosts.map((h) => `${h.name} ${h.runtime}`).join(", "));
      const common = [
        "--port",
        PORT,
        "--log-level",
        process.env.WEFT_TEST_LOG ?? "info",
        "--metrics",
      ];
      const invite = (inviter: WeftHost, name: string) => {
        const result = inviter.cli(["invite", "--name", name]);
        assert.equal(result.status, 0, `weft invite on ${inviter.name}: ${result.stderr}`);
        return result.stdout.trim();
      };

      h2.start([...common, "--name", "h2", "--range", RANGE]);
      await waitFor("h2 to found the mesh", () => h2.status()?.self.address !== undefined, 30_000);
      h1.start([...common, "--join", invite(h2, "h1")]);
      h3.start([...common, "--join", invite(h2, "h3")]);
      await waitFor("h3 to join", () => h3.status()?.self.address !== undefined, 40_000);
      h4.start([...common, "--join", invite(h3, "h4")]);
      await waitFor(
        "every host to have an address and reach h1 and h4 (relayed at the ends)",
        () =>
          hosts.every((h) => h.status()?.self.address !== undefined) &&
          h1
            .status()!
            .peers.some((p) => p.nickname === "h4" && p.path === "relayed" && p.address) &&
          h4.status()!.peers.some((p) => p.nickname === "h1" && p.path === "relayed" && p.address),
        60_000,
      );
      mark("four members, h1 and h4 relayed");
      const address = new Map(hosts.map((h) => [h, h.status()!.self.address!]));
      console.log(`overlay: ${hosts.map((h) => `${h.name} ${address.get(h)}`).join(", ")}`);
      // Unicast first: routes (IPAM gossip) are in place end to end.
      await waitFor("h1 to ping h4", () => pings(ns[0].namespace, address.get(h4)!, 1), 20_000);
      const status = h1.cli(["status"]);
      assert.match(
        status.stdout,
        /multicast on \(100\/s, burst 200\)/,
        "weft status says it is on",
      );

      for (const host of [h2, h3, h4]) {
        receivers.push(
          startReceiver(host, namespaceOf.get(host)!.namespace, script, address.get(host)!),
        );
      }
      await waitFor(
        "the receivers to join the group",
        () => receivers.every((r) => r.lines.includes("ready")),
        15_000,
      );
      const broadcast = directedBroadcast(parsePrefix(RANGE)!)!.join(".");
      mark(`receivers ready; sending to ${GROUP} and ${broadcast}`);
      ns[0].exec("node", [script, "send", address.get(h1)!, broadcast]);
      const expected = [
        ...Array.from({ length: DATAGRAMS }, (_, i) => `m${i + 1}`),
        ...Array.from({ length: BROADCASTS }, (_, i) => `b${i + 1}`),
      ].sort();
      const arrived = (r: Receiver) => r.lines.filter((l) => l !== "ready");
      await waitFor(
        "every receiver to get every datagram",
        () => receivers.every((r) => new Set(arrived(r)).size === expected.length),
        15_000,
      );
      // A copy that would arrive twice comes within milliseconds: give it time to.
      await sleep(1_000);
      for (const r of receivers) {
        assert.deepEqual(
          arrived(r).sort(),
          expected,
          `${r.host.name} got each of ${DATAGRAMS} group datagrams and ${BROADCASTS} broadcasts exactly once`,
        );
      }
      mark("every receiver got every datagram exactly once");
      assert.ok(
        multicastCounter(ns[0].namespace, "sent") >= DATAGRAMS + BROADCASTS,
        "h1's metrics count what it sent",
      );
      for (const host of [h2, h3, h4]) {
        const delivered = multicastCounter(namespaceOf.get(host)!.namespace, "delivered");
        assert.ok(
          delivered >= DATAGRAMS + BROADCASTS,
          `${host.name}'s metrics count ${delivered} delivered`,
        );
      }
    } catch (error) {
      for (const host of hosts) {
        console.log(`--- ${host.name} (${host.runtime}) log\n${host.log()}`);
        const counters = scrapeMetrics(namespaceOf.get(host)!.namespace)
          .split("\n")
          .filter((line) => /^weft_(drops|multicast)/.test(line));
        console.log(`--- ${host.name} counters\n${counters.join("\n")}`);
      }
      for (const r of receivers) console.log(`--- ${r.host.name} received: ${r.lines.join(" ")}`);
      throw error;
    } finally {
      for (const r of receivers) r.child.kill();
      await Promise.all(hosts.map((host) => host.down(5_000).catch(() => host.kill())));
      network.cleanup();
      for (const host of hosts) rmSync(host.stateDir, { recursive: true, force: true });
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
