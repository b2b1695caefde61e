/**
 * The program people run, on a three-runtime mesh of real namespaces with kernel TUNs:
 *
 *   h1 ── veth ── h2 ── veth ── h3      (h1 and h3 share no segment: h2 relays)
 *
 * Under Node's runner h1 runs weft on Node, h2 the compiled single binary, h3 Bun, as the
 * hosts issue asks; under Deno's and Bun's runners the runtimes rotate (h1 deno, h3 node;
 * h1 bun, h3 deno). `npm test` runs it once, under Node (test/run.ts), and the NAT,
 * membership, PMTU and multicast scenarios put Deno's TUN adapter to work.
 * Shown: ping between every pair of overlay addresses, dig of every name on every host,
 * iperf3 TCP h1 -> h3 through the relay, `weft status --json` naming the relay, and h2
 * stopped (h1-h3 fails) then restarted (h1-h3 back within 10 s).
 *
 * Root only; under CI=true it must run. Traffic goes only to addresses inside the
 * namespaces this test creates.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { detectRuntime } from "../../runtimes/detect.ts";
import { pings, scrapeMetrics, sleep, waitFor } from "../helpers/host-checks.ts";
import { createTestNetwork, type TestHost } from "../helpers/netns.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";
import { compileBinary, type HostRuntime, WeftHost } from "../helpers/weft-host.ts";

const TOOLS = ["ip", "ping", "dig", "iperf3"];
const PORT = "51820";

const ROTATION: Record<string, [HostRuntime, HostRuntime, HostRuntime]> = {
  node: ["node", "binary", "bun"],
  deno: ["deno", "binary", "node"],
  bun: ["bun", "binary", "deno"],
};

describe("weft hosts: three runtimes, kernel TUNs, a relay", () => {
  test("ping, dig and iperf3 across the mesh; status names the relay; h2 restarts", {
    ...rootOnly(...TOOLS),
    timeout: 240_000,
  }, async () => {
    assertCanRun(...TOOLS);
    const runtimes = ROTATION[detectRuntime()]!;
    const network = createTestNetwork("hosts");
    const binary = runtimes.includes("binary") ? compileBinary() : undefined;
    const hosts: WeftHost[] = [];
    const namespaceOf: TestHost[] = [];
    let iperfServer: ChildProcess | undefined;
    try {
      const [n1, n2, n3] = [network.addHost("h1"), network.addHost("h2"), network.addHost("h3")];
      namespaceOf.push(n1, n2, n3);
      network.linkHosts(n1, n2);
      network.linkHosts(n2, n3);
      const [h1, h2, h3] = (["h1", "h2", "h3"] as const).map(
        (name, i) => new WeftHost(name, runtimes[i]!, [n1, n2, n3][i]!.namespace, binary),
      ) as [WeftHost, WeftHost, WeftHost];
      hosts.push(h1, h2, h3);
      console.log(`runtimes: h1 ${h1.runtime}, h2 ${h2.runtime}, h3 ${h3.runtime}`);
      const common = [
        "--port",
        PORT,
        "--log-level",
        process.env.WEFT_TEST_LOG ?? "info",
        "--metrics",
      ];

      h2.start([...common, "--name", "h2"]);
      await waitFor(
        "h2 to come up with an address",
        () => h2.status()?.self.address !== undefined,
        30_000,
      );
      const h2Key = h2.status()!.self.publicKey;
      // h2 founded the mesh; h1 and h3 join with its tokens, each of which lists both of
      // h2's addresses, of which each joiner reaches one.
      const invite = (name: string) => {
        const result = h2.cli(["invite", "--name", name]);
        assert.equal(result.status, 0, result.stderr);
        return result.stdout.trim();
      };
      h1.start([...common, "--join", invite("h1"), "--metrics"]);
      h3.start([...common, "--join", invite("h3")]);
      await waitFor(
        "h1 and h3 to have addresses and see each other relayed",
        () => {
          const s1 = h1.status();
          const s3 = h3.status();
          return (
            s1?.self.address !== undefined &&
            s3?.self.address !== undefined &&
            s1.peers.some((p) => p.nickname === "h3" && p.path === "relayed" && p.address) &&
            s3.peers.some((p) => p.nickname === "h1" && p.path === "relayed" && p.address)
          );
        },
        40_000,
      );
      const address = new Map(hosts.map((h) => [h, h.status()!.self.address!]));
      console.log(`overlay: ${hosts.map((h) => `${h.name} ${address.get(h)}`).join(", ")}`);
      assert.equal(new Set(address.values()).size, 3, "three distinct overlay addresses");

      // Routes follow IPAM gossip within a second or two: give the first ping time.
      const namespaces = new Map([
        [h1, n1],
        [h2, n2],
        [h3, n3],
      ]);
      for (const from of hosts) {
        for (const to of hosts) {
          if (from === to) continue;
          await waitFor(
            `${from.name} to ping ${to.name} (${address.get(to)})`,
            () => pings(namespaces.get(from)!.namespace, address.get(to)!, 1),
            15_000,
          );
          assert.ok(
            pings(namespaces.get(from)!.namespace, address.get(to)!),
            `${from.name} pings ${to.name}`,
          );
        }
      }

      for (const at of hosts) {
        for (const named of hosts) {
          const answer = namespaces
            .get(at)!
            .exec("dig", [
              "+short",
              "+time=2",
              "+tries=2",
              `@${address.get(at)}`,
              `${named.name}.weft.internal`,
            ])
            .trim();
          assert.equal(answer, address.get(named), `dig on ${at.name} resolves ${named.name}`);
        }
      }

      const s1 = h1.status()!;
      const h3SeenFromH1 = s1.peers.find((p) => p.nickname === "h3")!;
      assert.equal(h3SeenFromH1.path, "relayed", "h1 reaches h3 through a relay");
      assert.deepEqual(h3SeenFromH1.viaNicknames, ["h2"], "the relay is h2");
      assert.deepEqual(h3SeenFromH1.via, [h2Key]);

      iperfServer = spawn(
        "ip",
        ["netns", "exec", n3.namespace, "iperf3", "-s", "-1", "-B", address.get(h3)!],
        {
          stdio: "ignore",
        },
      );
      await sleep(500);
      const report = JSON.parse(
        n1.exec("iperf3", ["-c", address.get(h3)!, "-t", "5", "-J", "--connect-timeout", "5000"]),
      ) as { error?: string; end: { sum_received: { bits_per_second: number; bytes: number } } };
      assert.equal(report.error, undefined, `iperf3: ${report.error}`);
      const mbits = report.end.sum_received.bits_per_second / 1e6;
      console.log(`iperf3 h1 -> h3 through h2: ${mbits.toFixed(0)} Mbit/s`);
      assert.ok(report.end.sum_received.bytes > 0, "iperf3 moved data h1 -> h3");

      const metrics = scrapeMetrics(n1.namespace);
      assert.match(
        metrics,
        /weft_peers\{path="relayed"\} 1/,
        "h1's metrics count one relayed peer",
      );

      const h2Exit = await h2.down();
      assert.equal(h2Exit, 0, `h2 stops cleanly:\n${h2.log()}`);
      assert.ok(!pings(n1.namespace, address.get(h3)!, 2), "with h2 down, h1 cannot reach h3");
      h2.start([...common, "--name", "h2"]);
      const restoredMs = await waitFor(
        "h1 to reach h3 again after h2 restarts",
        () => pings(n1.namespace, address.get(h3)!, 1),
        10_000,
      );
      console.log(`h1 -> h3 restored ${restoredMs} ms after h2 restarted`);
    } catch (error) {
      for (const [i, host] of hosts.entries()) {
        console.log(`--- ${host.name} (${host.runtime}) log\n${host.log()}`);
        const counters = scrapeMetrics(namespaceOf[i]!.namespace)
          .split("\n")
          .filter((line) => /^weft_(drops|relay|bytes)/.test(line));
        console.log(`--- ${host.name} counters\n${counters.join("\n")}`);
      }
      throw error;
    } finally {
      iperfServer?.kill();
      for (const host of hosts) await host.down(5_000).catch(() => host.kill());
      network.cleanup();
      for (const host of hosts) rmSync(host.stateDir, { recursive: true, force: true });
      if (binary) rmSync(join(binary, ".."), { recursive: true, force: true });
    }
  });
});
