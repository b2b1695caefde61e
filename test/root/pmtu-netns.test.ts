/**
 * Path MTU on real hosts (issue #9): namespaces linked by veth pairs, a weft daemon on
 * each (h2 and h3 join with h1's invitations), TUNs at the default 1420.
 *
 *   h2 ── veth, MTU 1280 both ends ── h1 ── veth, 1500 at h1, 1280 at h3 ── h3
 *
 * The h1-h2 link is small where both hosts see it: weft learns 1280 from the routing
 * table (`ip route get`), path MTU 1280 - 20 - 8 - 32 = 1220. The h1-h3 link is a black
 * hole from h1: h1's end says 1500, h3's end drops anything over 1280 without a word, so
 * h1 finds 1220 only by probing. h2 and h3 share no link and go through h1: their path
 * MTU is h1's less the relay overhead (100): 1120.
 *
 * Shown: every path MTU above (`weft status --json`); `ping -M do -s 1300` from h2 to
 * h1's overlay address (a 1328-byte packet: between the path MTU and the TUN MTU; `-s
 * 1400` would make 1428 bytes, more than the 1420-byte TUN, which the kernel refuses
 * locally before weft sees it) prints "Frag needed" with mtu 1220, after which the kernel
 * holds 1220 for that destination; a 1220-byte ping crosses the black hole; a 10 MB
 * download with curl over the overlay completes byte-exact (sha256).
 *
 * Under Node's runner h1 runs weft on Node, h2 on Bun, h3 on Deno; the runtimes rotate
 * under Deno's (Deno, Node, Bun) and Bun's (Bun, Deno, Node) runners.
 *
 * A second test settles where weft's ICMP errors must come from: into a TUN of a fresh
 * namespace, an ICMP frag-needed about a UDP datagram from a socket bound to the TUN's
 * address to a far address is written with the TUN's own address as its source, then the
 * same error with the far address as its source. The kernel drops the first before any
 * protocol sees it (a packet arriving with a local source address is a martian,
 * `fib_validate_source`; not even IcmpInDestUnreachs counts it) and caches the MTU of the
 * second (`ip route get` shows `mtu 1200`), which is why `src/mesh/oversize.ts` sends its
 * errors from the original's destination. (The kernel acts on a frag-needed only when a
 * socket matches the quoted packet, as the UDP socket here and ping's socket above do; an
 * error about an echo request no socket sent changes nothing, whatever its source.)
 *
 * Root only; under CI=true it must run. Traffic goes only to addresses inside the
 * namespaces these tests create.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { detectRuntime } from "../../runtimes/detect.ts";
import { toHex } from "../../src/crypto/index.ts";
import { fragmentationNeeded } from "../../src/net/icmp-errors.ts";
import { parseIp } from "../../src/net/ip.ts";
import { sleep, waitFor } from "../helpers/host-checks.ts";
import { createTestNetwork, sh } from "../helpers/netns.ts";
import { udpPacket } from "../helpers/packets.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";
import { createTunNamespace } from "../helpers/tun-client.ts";
import { type HostRuntime, WeftHost } from "../helpers/weft-host.ts";

const TOOLS = ["ip", "ping", "curl", "node"];
const PORT = "51820";
const HTTP_PORT = 8080;
const LINK_MTU = 1280;
/** 1280 less the outer IPv4 (20) and UDP (8) headers and WireGuard's header and tag (32). */
const PATH_MTU = 1220;
/** The first hop's path MTU less the relay frame (68) and the relayed message's header and tag (32). */
const RELAYED_MTU = PATH_MTU - 100;
const FILE_BYTES = 10 * 1024 * 1024;

const ROTATION: Record<string, [HostRuntime, HostRuntime, HostRuntime]> = {
  node: ["node", "bun", "deno"],
  deno: ["deno", "node", "bun"],
  bun: ["bun", "deno", "node"],
};

/** A file server in `namespace` on `address`, in Node (on every CI host, unlike python3). */
function serveFile(namespace: string, address: string, path: string): ChildProcess {
  const script = `require("http").createServer((q, s) => {
    s.writeHead(200, { "content-length": require("fs").statSync(process.argv[1]).size });
    require("fs").createReadStream(process.argv[1]).pipe(s);
  }).listen(${HTTP_PORT}, process.argv[2], () => console.log("listening"));`;
  return spawn("ip", ["netns", "exec", namespace, "node", "-e", script, path, address], {
    stdio: ["ignore", "pipe", "pipe"],
  });
}

describe("path MTU on real hosts", () => {
  test("1280-byte links: path MTUs by routes, probes and relays, Frag needed from weft, curl of 10 MB intact", {
    ...rootOnly(...TOOLS),
    timeout: 120_000,
  }, async () => {
    assertCanRun(...TOOLS);
    const runtimes = ROTATION[detectRuntime()]!;
    const network = createTestNetwork("pmtu");
    const hosts: WeftHost[] = [];
    const files = mkdtempSync(join(tmpdir(), "weft-pmtu-"));
    let server: ChildProcess | undefined;
    try {
      const [n1, n2, n3] = [network.addHost("h1"), network.addHost("h2"), network.addHost("h3")];
      const link12 = network.linkHosts(n1, n2);
      const link13 = network.linkHosts(n1, n3);
      // Link ends by their addresses: h1-h2 both 1280, h1-h3 only at h3.
      for (const [host, address] of [
        [n1, link12.addressA],
        [n2, link12.addressB],
        [n3, link13.addressB],
      ] as const) {
        const device = host.exec("ip", ["-o", "addr", "show", "to", address]).split(/\s+/)[1]!;
        host.exec("ip", ["link", "set", "dev", device, "mtu", String(LINK_MTU)]);
      }
      const [h1, h2, h3] = (["h1", "h2", "h3"] as const).map(
        (name, i) => new WeftHost(name, runtimes[i]!, [n1, n2, n3][i]!.namespace),
      ) as [WeftHost, WeftHost, WeftHost];
      hosts.push(h1, h2, h3);
      console.log(`runtimes: h1 ${h1.runtime}, h2 ${h2.runtime}, h3 ${h3.runtime}`);
      const common = ["--port", PORT, "--log-level", process.env.WEFT_TEST_LOG ?? "info"];

      const started = Date.now();
      h1.start([...common, "--name", "h1"]);
      await waitFor("h1 to have an address", () => h1.status()?.self.address !== undefined, 30_000);
      for (const joiner of [h2, h3]) {
        const invite = h1.cli(["invite", "--name", joiner.name]);
        assert.equal(invite.status, 0, invite.stderr);
        joiner.start([...common, "--join", invite.stdout.trim()]);
      }
      const mtuOf = (from: WeftHost, to: string) =>
        from.status()?.peers.find((p) => p.nickname === to)?.pathMtu;
      const paths: [WeftHost, string, number][] = [
        [h1, "h2", PATH_MTU], // the routing table says 1280
        [h2, "h1", PATH_MTU],
        [h1, "h3", PATH_MTU], // probing finds the black hole
        [h3, "h1", PATH_MTU],
        [h2, "h3", RELAYED_MTU], // through h1
        [h3, "h2", RELAYED_MTU],
      ];
      await waitFor(
        "every path MTU to settle",
        () =>
          [h1, h2, h3].every((h) => h.status()?.self.address !== undefined) &&
          paths.every(([from, to, mtu]) => mtuOf(from, to) === mtu),
        40_000,
      ).catch((error) => {
        const seen = paths.map(([f, t, m]) => `${f.name}->${t} ${mtuOf(f, t)} (want ${m})`);
        throw new Error(`${(error as Error).message}: ${seen.join(", ")}`);
      });
      const [address1, address3] = [h1, h3].map((h) => h.status()!.self.address!);
      await waitFor(
        "h2 to reach h1 and h1 to reach h3",
        () => {
          sh("ip", ["netns", "exec", n2.namespace, "ping", "-c", "1", "-W", "1", address1!]);
          sh("ip", ["netns", "exec", n1.namespace, "ping", "-c", "1", "-W", "1", address3!]);
          return true;
        },
        15_000,
      );
      console.log(`mesh up, path MTUs settled and routed in ${Date.now() - started} ms`);

      // 1300 bytes of data + 8 ICMP + 20 IP = 1328: fits the 1420 TUN, not the 1220 path.
      const first = pingDoNotFragment(n2.namespace, address1!, 1300);
      assert.match(first, /Frag needed.*mtu = 1220/, `ping prints weft's error:\n${first}`);
      const cached = n2.exec("ip", ["-o", "route", "get", address1!]);
      assert.match(cached, /mtu 1220/, `h2's kernel took the error: ${cached}`);
      const second = pingDoNotFragment(n2.namespace, address1!, 1300);
      assert.match(second, /mtu=1220/, `now refused locally:\n${second}`);
      const fits = pingDoNotFragment(n2.namespace, address1!, PATH_MTU - 28);
      assert.match(fits, / 0% packet loss/, `a ping of exactly 1220 bytes passes:\n${fits}`);
      const overHole = pingDoNotFragment(n1.namespace, address3!, PATH_MTU - 28);
      assert.match(overHole, / 0% packet loss/, `1220 bytes cross the black hole:\n${overHole}`);
      const bigOverHole = pingDoNotFragment(n1.namespace, address3!, 1300);
      assert.match(bigOverHole, /mtu = 1220/, `bigger ones get weft's error:\n${bigOverHole}`);
      const relayed = pingDoNotFragment(n2.namespace, address3!, 1200);
      assert.match(relayed, /mtu = 1120/, `through the relay, less:\n${relayed}`);

      const file = join(files, "ten-megabytes");
      const content = randomBytes(FILE_BYTES);
      writeFileSync(file, content);
      const expected = createHash("sha256").update(content).digest("hex");
      server = serveFile(n1.namespace, address1!, file);
      await waitFor(
        "the file server to listen",
        () => (server!.stdout?.read()?.toString() ?? "").includes("listening"),
        10_000,
      );
      const downloaded = join(files, "downloaded");
      const curlStarted = Date.now();
      n2.exec("curl", [
        "-sS",
        "--max-time",
        "60",
        "-o",
        downloaded,
        `http://${address1}:${HTTP_PORT}/`,
      ]);
      const curlMs = Date.now() - curlStarted;
      const got = readFileSync(downloaded);
      assert.equal(got.length, FILE_BYTES, "all 10 MB arrived");
      assert.equal(createHash("sha256").update(got).digest("hex"), expected, "byte-exact");
      console.log(
        `curl of 10 MB over a 1220-byte path: ${curlMs} ms (${((FILE_BYTES * 8) / curlMs / 1000).toFixed(0)} Mbit/s)`,
      );
      assert.equal(mtuOf(h2, "h1"), PATH_MTU, "the path MTU held through the transfer");
    } catch (error) {
      for (const host of hosts) console.log(`--- ${host.name} log ---\n${host.log()}`);
      throw error;
    } finally {
      server?.kill("SIGKILL");
      for (const host of hosts) await host.kill();
      network.cleanup();
      rmSync(files, { recursive: true, force: true });
      for (const host of hosts) rmSync(host.stateDir, { recursive: true, force: true });
    }
  });

  test("the kernel ignores a frag-needed from its own address and takes one from the far end", {
    ...rootOnly("ip", "node"),
    timeout: 60_000,
  }, async () => {
    assertCanRun("ip", "node");
    const namespace = createTunNamespace();
    let socket: ChildProcess | undefined;
    try {
      const local = "198.18.7.1";
      const far = "198.18.7.2";
      const child = namespace.start({
        mode: "inject",
        options: { name: "wpmtu0", mtu: 1420, addresses: [`${local}/24`] },
      });
      await child.next("opened");
      // A socket the quoted datagram came from: without one the kernel ignores the error.
      socket = spawn(
        "ip",
        [
          "netns",
          "exec",
          namespace.name,
          "node",
          "-e",
          `const s = require("dgram").createSocket("udp4");
           s.bind(40000, "${local}", () => console.log("bound"));
           setInterval(() => {}, 60000);`,
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      await new Promise((resolve) => socket!.stdout!.once("data", resolve));
      const original = udpPacket(local, far, 40000, 9, new Uint8Array(1300 - 28));
      const fromSelf = fragmentationNeeded(original, 1200, parseIp(local)!)!;
      const fromFar = fragmentationNeeded(original, 1200, parseIp(far)!)!;
      const routeToFar = () => namespace.exec("ip", ["-o", "route", "get", far]);

      child.send(toHex(fromSelf));
      await child.next("injected-1");
      await sleep(300);
      assert.doesNotMatch(routeToFar(), /mtu 1200/, "an error from our own address is dropped");

      child.send(toHex(fromFar));
      await child.next("injected-2");
      await waitFor(
        "the kernel to cache the far end's MTU",
        () => /mtu 1200/.test(routeToFar()),
        5_000,
      );
      child.endInput();
      await child.exit();
    } finally {
      socket?.kill("SIGKILL");
      namespace.cleanup();
    }
  });
});

/** `ping -M do -s SIZE -c 1` from `namespace`: its output, whether it succeeded or not. */
function pingDoNotFragment(namespace: string, address: string, size: number): string {
  try {
    return sh("ip", [
      "netns",
      "exec",
      namespace,
      "ping",
      "-M",
      "do",
      "-s",
      String(size),
      "-c",
      "1",
      "-W",
      "2",
      address,
    ]);
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ""}${e.stderr ?? ""}`;
  }
}
