/**
 * The daemon's underlay MTU cache (`src/daemon/underlay-mtu.ts`): iproute2 output as
 * `ip -o` prints it (lines copied from iproute2 6.1), and the cache against a fake
 * `runCommand` on a virtual clock.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseLinkMtu, parseRouteGet, UnderlayMtu } from "../../src/daemon/underlay-mtu.ts";
import type { CommandResult } from "../../src/runtime.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";

describe("ip -o output", () => {
  test("route get: the device, and a cached or pinned MTU", () => {
    assert.deepEqual(parseRouteGet("10.213.5.6 dev wt1a src 10.213.5.5 uid 0 \\    cache "), {
      device: "wt1a",
    });
    assert.deepEqual(
      parseRouteGet(
        "8.8.8.8 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0 \\    cache expires 597sec mtu 1280 ",
      ),
      { device: "eth0", mtu: 1280 },
    );
    assert.deepEqual(parseRouteGet("10.1.0.1 dev gre1 src 10.1.0.2 uid 0 mtu lock 1400"), {
      device: "gre1",
      mtu: 1400,
    });
    assert.deepEqual(parseRouteGet("RTNETLINK answers: Network is unreachable"), {});
  });

  test("link show: the interface's MTU", () => {
    assert.equal(
      parseLinkMtu(
        "7: wt1a@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1280 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether 2a:",
      ),
      1280,
    );
    assert.equal(parseLinkMtu(""), undefined);
  });
});

describe("UnderlayMtu", () => {
  function fakeIp(answers: Record<string, CommandResult>) {
    const calls: string[] = [];
    const runCommand = async (command: string, args: readonly string[]) => {
      const line = [command, ...args].join(" ");
      calls.push(line);
      return answers[line] ?? { code: 1, stdout: "", stderr: "unexpected" };
    };
    return { calls, runCommand };
  }
  const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: "" });

  test("unknown at first, then the smaller of route and link MTU, refreshed when stale", async () => {
    const clock = new VirtualClock();
    const ip = fakeIp({
      "ip -o route get 10.0.0.2": ok("10.0.0.2 dev veth0 src 10.0.0.1 uid 0 \\    cache "),
      "ip -o link show dev veth0": ok("5: veth0@if4: <UP> mtu 1280 qdisc noqueue"),
    });
    const underlay = new UnderlayMtu({ runCommand: ip.runCommand, clock, refreshMs: 30_000 });
    assert.equal(underlay.get("10.0.0.2"), undefined, "not known before ip answers");
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(underlay.get("10.0.0.2"), 1280, "the link's MTU");
    assert.equal(ip.calls.length, 2, "one route and one link lookup");
    underlay.get("10.0.0.2");
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(ip.calls.length, 2, "cached: no new lookup within the refresh time");
    clock.advance(30_000);
    underlay.get("10.0.0.2");
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(ip.calls.length, 4, "refreshed once stale");
  });

  test("a cached path MTU below the link's wins", async () => {
    const clock = new VirtualClock();
    const ip = fakeIp({
      "ip -o route get 192.0.2.9": ok(
        "192.0.2.9 dev eth0 uid 0 \\    cache expires 500sec mtu 1200",
      ),
      "ip -o link show dev eth0": ok("2: eth0: <UP> mtu 1500 qdisc fq"),
    });
    const underlay = new UnderlayMtu({ runCommand: ip.runCommand, clock });
    underlay.get("192.0.2.9");
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(underlay.get("192.0.2.9"), 1200);
  });

  test("never passes anything but an IP address to ip, and a failing ip means unknown", async () => {
    const clock = new VirtualClock();
    const ip = fakeIp({});
    const logs: string[] = [];
    const underlay = new UnderlayMtu({
      runCommand: ip.runCommand,
      clock,
      log: (m) => logs.push(m),
    });
    assert.equal(underlay.get("-n"), undefined);
    assert.equal(underlay.get("mesh:abc"), undefined);
    assert.equal(ip.calls.length, 0, "no command for what is not an address");
    underlay.get("10.9.9.9");
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(underlay.get("10.9.9.9"), undefined, "ip failed: unknown");
    assert.ok(
      logs.some((l) => l.includes("unexpected")),
      `the failure is logged: ${logs}`,
    );
    underlay.close();
    underlay.get("10.9.9.8");
    assert.equal(ip.calls.length, 1, "closed: no more commands");
  });
});
