/**
 * NAT traversal on real hosts (#9): hA and hB each sit behind their own masquerading
 * router namespace, and r has the only "public" address both reach (see
 * `test/helpers/nat-hosts.ts` for the picture). r founds the mesh and invites both. They
 * first talk through r; hole punching should then give them a direct path through both
 * NATs: `weft status` says "punched" and names the other's router, r's relay counter
 * stops moving while iperf3 runs between them, and ping works throughout.
 *
 * Runtimes rotate with the test runner's: under Node r runs on Bun, hA on Node, hB on
 * Deno; under Deno node, deno, bun; under Bun deno, bun, node.
 *
 * Root only; under CI=true it must run. Traffic goes only to addresses inside the
 * namespaces this test creates, all removed at the end, also on failure.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { describe, test } from "node:test";
import { detectRuntime } from "../../runtimes/detect.ts";
import { scrapeMetrics, sleep, waitFor } from "../helpers/host-checks.ts";
import { createNatWorld, type NatWorld } from "../helpers/nat-hosts.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";
import { type HostRuntime, WeftHost } from "../helpers/weft-host.ts";

const TOOLS = ["ip", "ping", "iperf3", "iptables"];
const PORT = "51820";

const ROTATION: Record<string, [HostRuntime, HostRuntime, HostRuntime]> = {
  node: ["bun", "node", "deno"],
  deno: ["node", "deno", "bun"],
  bun: ["deno", "bun", "node"],
};

/** r's count of relay frames it forwarded, from its metrics page. */
function forwardedBy(namespace: string): number {
  const match = /weft_relay_frames_total\{role="forwarded"\} (\d+)/.exec(scrapeMetrics(namespace));
  return match ? Number(match[1]) : Number.NaN;
}

/** iperf3 TCP for `seconds` from `client` to `server`'s overlay address; Mbit/s received. */
async function iperf(world: NatWorld, from: string, to: string, address: string, seconds: number) {
  const ns = (name: string) =>
    name === "r" ? world.relay : name === "hA" ? world.hostA : world.hostB;
  const server: ChildProcess = spawn(
    "ip",
    ["netns", "exec", ns(to).namespace, "iperf3", "-s", "-1", "-B", address],
    { stdio: "ignore" },
  );
  try {
    await sleep(400);
    const report = JSON.parse(
      ns(from).exec("iperf3", [
        "-c",
        address,
        "-t",
        `${seconds}`,
        "-J",
        "--connect-timeout",
        "5000",
      ]),
    ) as { error?: string; end: { sum_received: { bits_per_second: number; bytes: number } } };
    assert.equal(report.error, undefined, `iperf3 ${from} -> ${to}: ${report.error}`);
    assert.ok(report.end.sum_received.bytes > 0, `iperf3 moved data ${from} -> ${to}`);
    return report.end.sum_received.bits_per_second / 1e6;
  } finally {
    server.kill();
  }
}

/** Sent and received counts from ping's summary line. */
function pingSummary(output: string): { sent: number; received: number } {
  const match = /(\d+) packets transmitted, (\d+) received/.exec(output);
  return match ? { sent: Number(match[1]), received: Number(match[2]) } : { sent: 0, received: 0 };
}

describe("NAT traversal on real hosts", () => {
  test("two hosts behind masquerading routers start relayed and end up punched", {
    ...rootOnly(...TOOLS),
    timeout: 180_000,
  }, async () => {
    assertCanRun(...TOOLS);
    const runtimes = ROTATION[detectRuntime()]!;
    const world = createNatWorld("nat");
    const hosts: WeftHost[] = [];
    try {
      const r = new WeftHost("r", runtimes[0], world.relay.namespace);
      const hA = new WeftHost("hA", runtimes[1], world.hostA.namespace);
      const hB = new WeftHost("hB", runtimes[2], world.hostB.namespace);
      hosts.push(r, hA, hB);
      console.log(`runtimes: r ${r.runtime}, hA ${hA.runtime}, hB ${hB.runtime}`);
      const common = ["--port", PORT, "--log-level", process.env.WEFT_TEST_LOG ?? "info"];
      r.start([...common, "--name", "r", "--metrics"]);
      await waitFor("r to found the mesh", () => r.status()?.self.address !== undefined, 30_000);
      const invite = (name: string) => {
        const result = r.cli(["invite", "--name", name]);
        assert.equal(result.status, 0, result.stderr);
        return result.stdout.trim();
      };
      const startedMs = Date.now();
      hA.start([...common, "--join", invite("hA")]);
      hB.start([...common, "--join", invite("hB")]);

      const addressOf = (h: WeftHost) => h.status()?.self.address;
      await waitFor(
        "hA and hB to have addresses and reach each other",
        () => {
          const a = hA.status();
          const b = hB.status();
          return (
            a?.self.address !== undefined &&
            b?.self.address !== undefined &&
            a.peers.some((p) => p.nickname === "hB" && p.path !== "unreachable" && p.address) &&
            b.peers.some((p) => p.nickname === "hA" && p.path !== "unreachable" && p.address)
          );
        },
        40_000,
      );
      const [addressB, addressR] = [addressOf(hB)!, addressOf(r)!];
      // Ping from hA to hB through the switch from relayed to punched (5 per second).
      const ping = spawn("ip", [
        "netns",
        "exec",
        world.hostA.namespace,
        "ping",
        "-i",
        "0.2",
        "-c",
        "40",
        "-W",
        "1",
        addressB,
      ]);
      let pingOutput = "";
      ping.stdout.on("data", (chunk: Buffer) => {
        pingOutput += chunk.toString();
      });
      const pingDone = new Promise((resolve) => ping.once("exit", resolve));

      const punchedMs = await waitFor(
        "hA and hB to see each other on a direct path",
        () =>
          hA.status()!.peers.some((p) => p.nickname === "hB" && p.path === "direct") &&
          hB.status()!.peers.some((p) => p.nickname === "hA" && p.path === "direct"),
        30_000,
      );
      console.log(
        `direct path ${Date.now() - startedMs} ms after the joins started (${punchedMs} ms after both could talk)`,
      );
      const viewA = hA.status()!.peers.find((p) => p.nickname === "hB")!;
      const viewB = hB.status()!.peers.find((p) => p.nickname === "hA")!;
      console.log(
        `hA sees hB: ${viewA.endpoint} punched=${viewA.punched}; hB sees hA: ${viewB.endpoint} punched=${viewB.punched}`,
      );
      assert.equal(
        viewA.endpoint?.split(":")[0],
        world.routerB.address,
        "hA's path to hB goes to hB's router",
      );
      assert.equal(
        viewB.endpoint?.split(":")[0],
        world.routerA.address,
        "hB's path to hA goes to hA's router",
      );
      assert.ok(viewA.punched || viewB.punched, "status reports the path as punched");
      assert.match(
        `${hA.log()}\n${hB.log()}`,
        /direct path to \S+( \(\S+\))? at [\d.:]+ \(hole punched\)/,
        "a daemon logs the punched path",
      );
      const statusLines = hA.cli(["status"]).stdout;
      assert.match(
        statusLines,
        /hB\s+\S+\s+punched |punched 10\.213\./,
        `weft status says punched:\n${statusLines}`,
      );
      assert.ok(
        forwardedBy(world.relay.namespace) > 0,
        "r relayed between hA and hB before the punch",
      );

      await pingDone;
      const { sent, received } = pingSummary(pingOutput);
      console.log(`ping hA -> hB during the switch: ${received}/${sent} answered`);
      assert.ok(sent === 40 && received >= 36, `ping worked throughout (${received}/${sent})`);

      const before = forwardedBy(world.relay.namespace);
      const punchedMbits = await iperf(world, "hA", "hB", addressB, 4);
      const forwardedDuring = forwardedBy(world.relay.namespace) - before;
      console.log(
        `iperf3 hA -> hB punched: ${punchedMbits.toFixed(0)} Mbit/s; r forwarded ${forwardedDuring} frames meanwhile`,
      );
      assert.ok(
        forwardedDuring < 10,
        `hA-hB data no longer passes r (it forwarded ${forwardedDuring} frames)`,
      );
      const directMbits = await iperf(world, "hA", "r", addressR, 4);
      console.log(`iperf3 hA -> r (direct, one NAT): ${directMbits.toFixed(0)} Mbit/s`);
    } catch (error) {
      for (const host of hosts)
        console.log(`--- ${host.name} (${host.runtime}) log\n${host.log()}`);
      throw error;
    } finally {
      for (const host of hosts) await host.down(5_000).catch(() => host.kill());
      world.cleanup();
      for (const host of hosts) rmSync(host.stateDir, { recursive: true, force: true });
    }
  });
});
