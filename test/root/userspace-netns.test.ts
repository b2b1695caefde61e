/**
 * A userspace peer in a mesh of kernel-TUN peers, on real hosts (namespaces):
 *
 *   h1 ── veth ── h2        h1: `weft up` with a kernel TUN (the kernel's TCP)
 *                           h2: `weft up --userspace` (no TUN: weft's TCP/IP stack)
 *
 * h2 serves an HTTP server of its own namespace (on 127.0.0.1) to the mesh with
 * `--expose`; h1 reaches it with plain curl over its TUN, by overlay address and by name
 * through its DNS. h2 reaches a server h1 runs on its overlay address with
 * `curl --socks5-hostname` through its proxy. h1 pings h2's overlay address (the stack
 * answers) and asks h2's DNS on its overlay address. Files are 20 MB, compared by sha256.
 *
 * Root only; under CI=true it must run. Traffic goes only to the namespaces this test
 * creates.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { detectRuntime } from "../../runtimes/detect.ts";
import { loadRuntime } from "../../runtimes/index.ts";
import { pings, waitFor } from "../helpers/host-checks.ts";
import { createTestNetwork } from "../helpers/netns.ts";
import {
  curlSha256,
  type FileServer,
  randomFile,
  startFileServer,
} from "../helpers/netstack-wg.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";
import { type HostRuntime, WeftHost } from "../helpers/weft-host.ts";

const TOOLS = ["ip", "ping", "dig", "curl", "bash", "sha256sum", "node"];
const runtime = await loadRuntime();
const SIZE = 20 * 1000 * 1000;
const SOCKS_PORT = 1080;
const EXPOSED_PORT = 8080;
const H2_LOCAL_HTTP = 8090;
const H1_HTTP = 8081;

/** [h1 with a TUN, h2 in userspace], rotated with the runner. */
const ROTATION: Record<string, [HostRuntime, HostRuntime]> = {
  node: ["node", "deno"],
  deno: ["bun", "node"],
  bun: ["deno", "bun"],
};

describe("a userspace peer among kernel-TUN peers", () => {
  test("curl over the TUN into --expose, SOCKS5 out of the userspace peer, ping and DNS", {
    ...rootOnly(...TOOLS),
    timeout: 180_000,
  }, async () => {
    assertCanRun(...TOOLS);
    const [tunRuntime, userspaceRuntime] = ROTATION[detectRuntime()]!;
    console.log(`runtimes: h1 (TUN) ${tunRuntime}, h2 (userspace) ${userspaceRuntime}`);
    const network = createTestNetwork("usp");
    const file = randomFile(SIZE);
    const servers: FileServer[] = [];
    const hosts: WeftHost[] = [];
    try {
      const n1 = network.addHost("h1");
      const n2 = network.addHost("h2");
      network.linkHosts(n1, n2);
      const h1 = new WeftHost("h1", tunRuntime, n1.namespace);
      const h2 = new WeftHost("h2", userspaceRuntime, n2.namespace);
      hosts.push(h1, h2);
      h1.start(["--port", "51820", "--name", "h1"]);
      await waitFor("h1 up with its TUN", () => h1.status()?.self.address !== undefined, 30_000);
      const h1Address = h1.status()!.self.address!;
      const token = h1.cli(["invite", "--name", "h2"]);
      assert.equal(token.status, 0, token.stderr);

      servers.push(await startFileServer(runtime, n2, "127.0.0.1", H2_LOCAL_HTTP, file.path));
      h2.start([
        "--port",
        "51820",
        "--userspace",
        "--socks5",
        `127.0.0.1:${SOCKS_PORT}`,
        "--expose",
        `${EXPOSED_PORT}:${H2_LOCAL_HTTP}`,
        "--join",
        token.stdout.trim(),
      ]);
      await waitFor(
        "h2 up on its userspace stack, and each knowing the other's name",
        () =>
          h2.status()?.self.address !== undefined &&
          h1.cli(["dns", "lookup", "h2"]).status === 0 &&
          h2.cli(["dns", "lookup", "h1"]).status === 0,
        30_000,
      );
      const h2Address = h2.status()!.self.address!;
      const h2Status = h2.status() as unknown as { self: { tun?: string }; userspace?: object };
      assert.equal(h2Status.self.tun, undefined, "h2 has no TUN");
      assert.ok(h2Status.userspace, "h2 reports its userspace stack");

      assert.ok(pings(n1.namespace, h2Address), "h1's kernel pings h2's userspace stack");
      const dig = n1.exec("dig", [
        "+short",
        "+time=2",
        "+tries=3",
        `@${h2Address}`,
        "h1.weft.internal",
      ]);
      assert.equal(dig.trim(), h1Address, "h2 answers DNS on its overlay address");

      const byAddress = await curlSha256(
        `http://${h2Address}:${EXPOSED_PORT}/file`,
        n1.namespace,
        120,
      );
      assert.equal(byAddress.sha256, file.sha256, "h1's curl gets h2's exposed file intact");
      console.log(
        `h1 (kernel TCP) <- h2 --expose: ${(SIZE / byAddress.seconds / 1e6).toFixed(1)} MB/s`,
      );
      // A namespace's resolv.conf is the host's: h1's own DNS names h2 for curl.
      const h2ByName = n1.exec("dig", ["+short", `@${h1Address}`, "h2.weft.internal"]).trim();
      assert.equal(h2ByName, h2Address, "h1's DNS resolves the userspace peer's name");
      const byName = await curlSha256(
        `http://h2.weft.internal:${EXPOSED_PORT}/file`,
        n1.namespace,
        120,
        ["--resolve", `h2.weft.internal:${EXPOSED_PORT}:${h2ByName}`],
      );
      assert.equal(byName.sha256, file.sha256, "by name too");

      servers.push(await startFileServer(runtime, n1, h1Address, H1_HTTP, file.path));
      const viaSocks = await curlSha256(
        `http://h1.weft.internal:${H1_HTTP}/file`,
        n2.namespace,
        120,
        ["--socks5-hostname", `127.0.0.1:${SOCKS_PORT}`],
      );
      assert.equal(viaSocks.sha256, file.sha256, "h2's curl through SOCKS5 gets h1's file intact");
      console.log(
        `h2 SOCKS5 -> h1 (kernel TCP): ${(SIZE / viaSocks.seconds / 1e6).toFixed(1)} MB/s`,
      );
    } catch (error) {
      for (const host of hosts) console.log(`--- ${host.name} log:\n${host.log()}`);
      throw error;
    } finally {
      for (const server of servers) server.stop();
      for (const host of hosts) await host.down();
      network.cleanup();
      file.remove();
    }
  });
});
