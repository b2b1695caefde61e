/**
 * Containers attached by network namespace (`src/daemon/attach.ts`), on the runtime
 * running this file. Root only; under CI=true it must run.
 *
 * Each test makes its own namespaces: a "host" standing in for a weft host, whose
 * `weft0` is a veth holding the overlay address 10.77.0.1/16 (no daemon, no TUN; a dummy
 * link needs a kernel module our machines lack), and a "container". `attachNamespace`
 * runs `ip`, so it runs in a child process on the same runtime inside the host namespace
 * (`test/helpers/attach-child.ts` under `ip netns exec`). Traffic only goes between
 * those namespaces; names carry the test's pid and a random tag, and everything made
 * (namespaces, /etc/netns/NAME, processes) is removed in `finally`, also on failure.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { detectRuntime } from "../../runtimes/detect.ts";
import type { Attachment, AttachOptions, Detachment } from "../../src/daemon/attach.ts";
import type { AttachChildRequest } from "../helpers/attach-child.ts";
import { sh } from "../helpers/netns.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";
import { runtimeCommand } from "../helpers/tun-client.ts";

const TOOLS = ["ip", "nsenter", "unshare", "ping", "mount"];
const RUNTIME = detectRuntime();
const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..");
const CHILD = join(ROOT, "test", "helpers", "attach-child.ts");
const TAG = `${process.pid.toString(36)}${randomBytes(2).toString("hex")}`;
const RANGE = "10.77.0.0/16";
const HOST_ADDRESS = "10.77.0.1";
const ADDRESS = "10.77.0.9";
const NEW_ADDRESS = "10.77.0.10";
const DOMAIN = "weft.internal";
const ONE_LINE = /^[^\n]+$/;

let namespaces = 0;

/** The namespaces of one test. */
interface Setup {
  readonly host: string;
  readonly container: string;
  /** The attach options for `container`, with `address`. */
  options(address?: string): AttachOptions;
  /** Runs attach or detach inside the host namespace; the result or the error. */
  run(request: AttachChildRequest): ChildOutcome;
  attach(address?: string): Attachment;
  detach(netns?: string): Detachment;
  /** Runs a command inside the host namespace. */
  inHost(command: string, args: string[]): string;
  /** Runs a command inside the container namespace. */
  inContainer(command: string, args: string[]): string;
}

interface ChildOutcome {
  readonly result?: Attachment & Detachment;
  readonly error?: { name: string; code?: string; message: string };
}

/** Runs `body` with a fresh host and container namespace, removed afterwards whatever happens. */
async function withNamespaces(body: (setup: Setup) => Promise<void> | void): Promise<void> {
  assertCanRun(...TOOLS);
  const index = namespaces++;
  const host = `weft-attach-${TAG}-${index}h`;
  const container = `weft-attach-${TAG}-${index}c`;
  const made: string[] = [];
  const inHost = (command: string, args: string[]) =>
    sh("ip", ["netns", "exec", host, command, ...args]);
  const inContainer = (command: string, args: string[]) =>
    sh("ip", ["netns", "exec", container, command, ...args]);
  const run = (request: AttachChildRequest): ChildOutcome => {
    const [program, ...args] = runtimeCommand(RUNTIME, CHILD);
    const output = execFileSync(
      "ip",
      ["netns", "exec", host, program!, ...args, JSON.stringify(request)],
      { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 },
    );
    const last = output.trim().split("\n").at(-1) ?? "";
    return JSON.parse(last) as ChildOutcome;
  };
  const options = (address = ADDRESS): AttachOptions => ({
    netns: container,
    address,
    meshRange: RANGE,
    hostAddress: HOST_ADDRESS,
    dnsServer: HOST_ADDRESS,
    searchDomain: DOMAIN,
    id: `test-${TAG}`,
  });
  const setup: Setup = {
    host,
    container,
    options,
    run,
    attach(address) {
      const outcome = run({ op: "attach", options: options(address) });
      assert.equal(outcome.error, undefined, `attach succeeds: ${outcome.error?.message}`);
      return outcome.result!;
    },
    detach(netns = container) {
      const outcome = run({ op: "detach", options: { netns } });
      assert.equal(outcome.error, undefined, `detach succeeds: ${outcome.error?.message}`);
      return outcome.result!;
    },
    inHost,
    inContainer,
  };
  try {
    for (const name of [host, container]) {
      sh("ip", ["netns", "add", name]);
      made.push(name);
    }
    // The stand-in for weft's TUN: the overlay address with the range's prefix.
    inHost("ip", ["link", "add", "weft0", "type", "veth", "peer", "name", "weft0-far"]);
    inHost("ip", ["address", "add", `${HOST_ADDRESS}/16`, "dev", "weft0"]);
    for (const dev of ["lo", "weft0", "weft0-far"]) inHost("ip", ["link", "set", dev, "up"]);
    await body(setup);
  } finally {
    for (const name of made) {
      try {
        for (const pid of sh("ip", ["netns", "pids", name]).split("\n").filter(Boolean)) {
          sh("kill", ["-9", pid]);
        }
        sh("ip", ["netns", "del", name]);
      } catch {
        // best effort: later runs use new names
      }
      rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
    }
  }
}

interface LinkJson {
  ifname: string;
  flags: string[];
  mtu: number;
  ifalias?: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}
interface RouteJson {
  dst: string;
  dev?: string;
  gateway?: string;
  prefsrc?: string;
  scope?: string;
}

function link(json: string): LinkJson | undefined {
  return (JSON.parse(json) as LinkJson[])[0];
}

function ipv4Addresses(found: LinkJson | undefined): string[] {
  return (found?.addr_info ?? [])
    .filter((a) => a.family === "inet")
    .map((a) => `${a.local}/${a.prefixlen}`);
}

function routes(json: string): RouteJson[] {
  return JSON.parse(json) as RouteJson[];
}

/** The host end's name attach derives from a namespace file. */
function expectedHostIf(path: string): string {
  return `wv${statSync(path).ino.toString(16)}`;
}

/** Whether `ip link show dev` finds `dev` (run through `exec`). */
function hasLink(exec: (command: string, args: string[]) => string, dev: string): boolean {
  try {
    exec("ip", ["link", "show", "dev", dev]);
    return true;
  } catch {
    return false;
  }
}

function ping(exec: (command: string, args: string[]) => string, address: string): string {
  return exec("ping", ["-c", "3", "-i", "0.2", "-W", "3", address]);
}

/** A link's identity and what attach sets (IPv6 link-local flags change by themselves: DAD). */
function linkSummary(json: string): unknown {
  const found = link(json) as (LinkJson & Record<string, unknown>) | undefined;
  if (found === undefined) return undefined;
  const { ifindex, link_index, ifname, flags, mtu, address, ifalias } = found;
  return { ifindex, link_index, ifname, flags, mtu, address, ifalias, ipv4: ipv4Addresses(found) };
}

/** Everything attach configures, to compare before and after a second attach. */
function snapshot(setup: Setup, hostIf: string): string {
  return JSON.stringify({
    containerLink: linkSummary(setup.inContainer("ip", ["-j", "address", "show", "dev", "weft0"])),
    containerRoutes: routes(setup.inContainer("ip", ["-j", "route", "show"])),
    hostLink: linkSummary(setup.inHost("ip", ["-j", "-d", "address", "show", "dev", hostIf])),
    hostLinks: (JSON.parse(setup.inHost("ip", ["-j", "link", "show"])) as LinkJson[])
      .map((l) => l.ifname)
      .sort(),
    hostRoutes: routes(setup.inHost("ip", ["-j", "route", "show"])),
    resolvConf: readFileSync(`/etc/netns/${setup.container}/resolv.conf`, "utf8"),
  });
}

/** Checks the container's address and routes and that both sides answer ping. */
function assertConnected(setup: Setup, hostIf: string, address: string): void {
  const weft0 = link(setup.inContainer("ip", ["-j", "address", "show", "dev", "weft0"]));
  assert.ok(weft0?.flags.includes("UP"), `weft0 is up in the container: ${weft0?.flags}`);
  assert.deepEqual(ipv4Addresses(weft0), [`${address}/32`], "the container's only IPv4 address");
  assert.equal(weft0?.mtu, 1420, "the TUN's MTU on the container's end");
  const lo = link(setup.inContainer("ip", ["-j", "link", "show", "dev", "lo"]));
  assert.ok(lo?.flags.includes("UP"), "lo is up in the container");
  const containerRoutes = routes(setup.inContainer("ip", ["-j", "route", "show"]));
  assert.deepEqual(
    containerRoutes.map((r) => [r.dst, r.dev, r.gateway, r.prefsrc, r.scope]),
    [
      [RANGE, "weft0", "169.254.1.1", address, undefined],
      ["169.254.1.1", "weft0", undefined, undefined, "link"],
    ],
    "the container routes the mesh range via the link-scoped gateway, and nothing else",
  );
  const hostRoutes = routes(setup.inHost("ip", ["-j", "route", "show", "dev", hostIf]));
  assert.deepEqual(
    hostRoutes.map((r) => [r.dst, r.prefsrc, r.scope]),
    [[address, HOST_ADDRESS, "link"]],
    `the host routes only ${address}/32 to ${hostIf}, from its overlay address`,
  );
  assert.match(ping(setup.inContainer, HOST_ADDRESS), / 0% packet loss|[1-3] received/);
  assert.match(ping(setup.inHost, address), / 0% packet loss|[1-3] received/);
}

describe(`attaching network namespaces on ${RUNTIME}`, () => {
  test(
    "a named namespace gets a veth, its address, routes and resolver; attaching again changes nothing; detach removes it all, twice is fine",
    rootOnly(...TOOLS),
    async () => {
      await withNamespaces((setup) => {
        const forwardingBefore = setup.inHost("cat", ["/proc/sys/net/ipv4/ip_forward"]).trim();
        const attached = setup.attach();
        const hostIf = expectedHostIf(`/run/netns/${setup.container}`);
        assert.equal(attached.hostIf, hostIf, "host end named wv + the namespace's inode in hex");
        assert.ok(hostIf.length <= 15, `host end name fits IFNAMSIZ: ${hostIf}`);
        assert.equal(attached.containerIf, "weft0", "container end");
        assert.equal(attached.address, ADDRESS, "address");
        assert.equal(attached.gateway, "169.254.1.1", "gateway");
        assert.equal(attached.changed, true, "the first attach changes things");
        assert.equal(
          attached.forwardingEnabled,
          forwardingBefore === "0",
          `forwardingEnabled says whether it was off (was ${forwardingBefore})`,
        );
        assert.equal(
          setup.inHost("cat", ["/proc/sys/net/ipv4/ip_forward"]).trim(),
          "1",
          "IPv4 forwarding is on in the host namespace",
        );
        const hostEnd = link(setup.inHost("ip", ["-j", "-d", "address", "show", "dev", hostIf]));
        assert.equal(
          hostEnd?.ifalias,
          `weft:test-${TAG}`,
          "the host end's alias marks it as weft's",
        );
        assert.deepEqual(ipv4Addresses(hostEnd), ["169.254.1.1/32"], "the gateway on the host end");
        assertConnected(setup, hostIf, ADDRESS);

        const resolvPath = `/etc/netns/${setup.container}/resolv.conf`;
        assert.equal(attached.resolvConf, resolvPath, "resolver file for ip netns exec");
        const resolv = readFileSync(resolvPath, "utf8");
        assert.match(resolv, /^nameserver 10\.77\.0\.1$/m, `nameserver line:\n${resolv}`);
        assert.match(resolv, /^search weft\.internal$/m, `search line:\n${resolv}`);
        assert.equal((resolv.match(/^nameserver/gm) ?? []).length, 1, "one nameserver");
        assert.equal(
          setup.inContainer("cat", ["/etc/resolv.conf"]),
          resolv,
          "processes in the namespace see it as /etc/resolv.conf",
        );
        assert.equal(statSync(resolvPath).mode & 0o777, 0o644, "readable by every user");

        const before = snapshot(setup, hostIf);
        const again = setup.attach();
        assert.equal(again.hostIf, hostIf, "same host end");
        assert.equal(again.changed, false, "a second attach changes nothing");
        assert.equal(again.forwardingEnabled, false, "forwarding was on already");
        assert.equal(
          snapshot(setup, hostIf),
          before,
          "links, addresses, routes, resolver unchanged",
        );

        const detached = setup.detach();
        assert.equal(detached.hostIf, hostIf, "detach finds the same host end");
        assert.equal(detached.linkRemoved, true, "the veth pair was removed");
        assert.equal(detached.resolvConf, resolvPath, "the resolver file was removed");
        assert.equal(hasLink(setup.inHost, hostIf), false, "no host end");
        assert.equal(hasLink(setup.inContainer, "weft0"), false, "no container end");
        assert.deepEqual(
          routes(setup.inHost("ip", ["-j", "route", "show", `${ADDRESS}/32`])),
          [],
          "no host route to the address",
        );
        assert.equal(existsSync(resolvPath), false, "resolver file gone");
        assert.equal(existsSync(`/etc/netns/${setup.container}`), false, "its directory too");
        assert.deepEqual(
          ipv4Addresses(link(setup.inHost("ip", ["-j", "address", "show", "dev", "weft0"]))),
          [`${HOST_ADDRESS}/16`],
          "the host's own weft0 untouched",
        );

        const twice = setup.detach();
        assert.equal(twice.linkRemoved, false, "nothing left to remove");
        assert.equal(twice.changed, false, "a second detach changes nothing");
      });
    },
  );

  test(
    "attaching with another address replaces the old one on both sides",
    rootOnly(...TOOLS),
    async () => {
      await withNamespaces((setup) => {
        const first = setup.attach(ADDRESS);
        const second = setup.attach(NEW_ADDRESS);
        assert.equal(second.hostIf, first.hostIf, "same veth pair");
        assert.equal(second.changed, true, "the new address is a change");
        assertConnected(setup, second.hostIf, NEW_ADDRESS);
        setup.detach();
      });
    },
  );

  test(
    "a missing namespace, a host end name in use, a failing step and a foreign weft0 are refused in one line each",
    rootOnly(...TOOLS),
    async () => {
      await withNamespaces((setup) => {
        const missing = `weft-attach-${TAG}-missing`;
        const notFound = setup.run({
          op: "attach",
          options: { ...setup.options(), netns: missing },
        });
        assert.equal(notFound.error?.code, "NAMESPACE_NOT_FOUND", JSON.stringify(notFound));
        assert.match(notFound.error?.message ?? "", ONE_LINE, "one line");
        assert.ok(
          notFound.error?.message.includes(missing) && notFound.error.message.includes("not found"),
          `names the namespace and says it is not found: ${notFound.error?.message}`,
        );
        const noProcess = setup.run({
          op: "attach",
          options: { ...setup.options(), netns: "2147483646" },
        });
        assert.equal(noProcess.error?.code, "NAMESPACE_NOT_FOUND", JSON.stringify(noProcess));
        assert.match(noProcess.error?.message ?? "", /no process 2147483646/, "says which");

        const hostIf = expectedHostIf(`/run/netns/${setup.container}`);
        setup.inHost("ip", ["link", "add", hostIf, "type", "bridge"]);
        const hostClash = setup.run({ op: "attach", options: setup.options() });
        assert.equal(hostClash.error?.code, "NAME_CLASH", JSON.stringify(hostClash));
        assert.match(hostClash.error?.message ?? "", ONE_LINE, "one line");
        assert.ok(
          hostClash.error?.message.includes(hostIf),
          `names the interface: ${hostClash.error?.message}`,
        );
        const refusedDetach = setup.run({ op: "detach", options: { netns: setup.container } });
        assert.equal(refusedDetach.error?.code, "NAME_CLASH", "detach leaves a foreign link alone");
        assert.equal(hasLink(setup.inHost, hostIf), true, "the foreign link is still there");
        setup.inHost("ip", ["link", "del", hostIf]);

        // A step failing after the pair was made takes the pair away again.
        const wrongSource = setup.run({
          op: "attach",
          options: { ...setup.options(), hostAddress: "10.77.0.2", dnsServer: "10.77.0.2" },
        });
        assert.equal(wrongSource.error?.code, "STEP_FAILED", JSON.stringify(wrongSource));
        assert.match(wrongSource.error?.message ?? "", ONE_LINE, "one line");
        assert.match(
          wrongSource.error?.message ?? "",
          /routing 10\.77\.0\.9\/32 .*hostAddress.*Invalid prefsrc address/,
          "names the step and ip's message",
        );
        assert.equal(hasLink(setup.inHost, hostIf), false, "the half-made veth pair is gone");
        assert.equal(hasLink(setup.inContainer, "weft0"), false, "both ends");

        setup.inContainer("ip", ["link", "add", "weft0", "type", "bridge"]);
        const containerClash = setup.run({ op: "attach", options: setup.options() });
        assert.equal(containerClash.error?.code, "NAME_CLASH", JSON.stringify(containerClash));
        assert.ok(
          containerClash.error?.message.includes("weft0"),
          `names the interface: ${containerClash.error?.message}`,
        );
        assert.equal(hasLink(setup.inHost, hostIf), false, "no veth left behind");
        assert.equal(
          existsSync(`/etc/netns/${setup.container}`),
          false,
          "no resolver written for a refused attach",
        );
      });
    },
  );

  test(
    "a container's process is attached by PID, its own /etc/resolv.conf replaced and put back on detach",
    rootOnly(...TOOLS),
    async () => {
      await withNamespaces(async (setup) => {
        // A container: its own network namespace, and an /etc of its own (a tmpfs in a
        // private mount namespace) holding a resolv.conf of its own.
        const ORIGINAL = "nameserver 192.0.2.53\n";
        const container = await startProcess([
          "unshare",
          "--net",
          "--mount",
          "--propagation",
          "private",
          "sh",
          "-c",
          `mount -t tmpfs weft-attach-test /etc && printf '${ORIGINAL.replace("\n", "\\n")}' > /etc/resolv.conf && exec sleep 120`,
        ]);
        try {
          const pid = container.pid!;
          const inContainer = (command: string, args: string[]) =>
            sh("nsenter", [`--net=/proc/${pid}/ns/net`, command, ...args]);
          const resolvPath = `/proc/${pid}/root/etc/resolv.conf`;
          assert.equal(readFileSync(resolvPath, "utf8"), ORIGINAL, "the container's own resolver");

          const outcome = setup.run({
            op: "attach",
            options: { ...setup.options(), netns: `${pid}` },
          });
          assert.equal(outcome.error, undefined, `attach by PID: ${outcome.error?.message}`);
          const attached = outcome.result!;
          assert.equal(attached.hostIf, expectedHostIf(`/proc/${pid}/ns/net`), "host end by inode");
          assert.equal(attached.resolvConf, resolvPath, "the process's own /etc/resolv.conf");
          const weft0 = link(inContainer("ip", ["-j", "address", "show", "dev", "weft0"]));
          assert.deepEqual(ipv4Addresses(weft0), [`${ADDRESS}/32`], "address in the container");
          assert.match(ping(inContainer, HOST_ADDRESS), / 0% packet loss|[1-3] received/);
          assert.match(ping(setup.inHost, ADDRESS), / 0% packet loss|[1-3] received/);
          const resolv = readFileSync(resolvPath, "utf8");
          assert.match(resolv, /^nameserver 10\.77\.0\.1$/m, `mesh nameserver:\n${resolv}`);
          assert.equal((resolv.match(/^nameserver/gm) ?? []).length, 1, "only the mesh's");

          // The same namespace by its path is the same attachment.
          const byPath = setup.run({
            op: "attach",
            options: { ...setup.options(), netns: `/proc/${pid}/ns/net` },
          });
          assert.equal(byPath.result?.hostIf, attached.hostIf, "same host end by path");
          assert.equal(byPath.result?.changed, false, "nothing to change by path");

          const detached = setup.run({ op: "detach", options: { netns: `${pid}` } });
          assert.equal(
            detached.result?.linkRemoved,
            true,
            `veth removed: ${JSON.stringify(detached)}`,
          );
          assert.equal(hasLink(inContainer, "weft0"), false, "no weft0 in the container");
          assert.equal(hasLink(setup.inHost, attached.hostIf), false, "no host end");
          assert.equal(readFileSync(resolvPath, "utf8"), ORIGINAL, "its own resolver is back");
        } finally {
          container.kill("SIGKILL");
        }
      });
    },
  );

  test(
    "a process that shares this host's /etc is attached without touching the host's resolver",
    rootOnly(...TOOLS),
    async () => {
      await withNamespaces(async (setup) => {
        const hostResolv = "/etc/resolv.conf";
        const before = existsSync(hostResolv) ? readFileSync(hostResolv, "utf8") : undefined;
        const sleeper = await startProcess(["unshare", "--net", "sleep", "120"]);
        try {
          const outcome = setup.run({
            op: "attach",
            options: { ...setup.options(), netns: `${sleeper.pid}` },
          });
          assert.equal(outcome.error, undefined, `attach by PID: ${outcome.error?.message}`);
          assert.equal(outcome.result?.resolvConf, undefined, "no resolver written");
          const after = existsSync(hostResolv) ? readFileSync(hostResolv, "utf8") : undefined;
          assert.equal(after, before, "the host's /etc/resolv.conf is as it was");
          const detached = setup.run({ op: "detach", options: { netns: `${sleeper.pid}` } });
          assert.equal(
            detached.result?.linkRemoved,
            true,
            `veth removed: ${JSON.stringify(detached)}`,
          );
        } finally {
          sleeper.kill("SIGKILL");
        }
      });
    },
  );
});

/** Starts `command` and waits until it has exec'd `sleep` (its setup is done). */
async function startProcess(command: string[]): Promise<ChildProcess> {
  const [file, ...args] = command;
  const child = spawn(file!, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Uint8Array) => {
    stderr += new TextDecoder().decode(chunk);
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    let comm = "";
    try {
      comm = readFileSync(`/proc/${child.pid}/comm`, "utf8").trim();
    } catch {
      // not there yet, or gone
    }
    if (comm === "sleep") return child;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      assert.fail(`${command.join(" ")} did not start (comm "${comm}"): ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
