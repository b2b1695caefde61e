/**
 * The CLI against real daemons on loopback (no TUN, so no root): every command's happy
 * path and its error path, asserted on output and exit code. Two peers: alpha founds the
 * mesh, beta joins it with an invite token from alpha.
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import dnsPacket from "dns-packet";
import { detectRuntime } from "../../runtimes/detect.ts";
import { runCli } from "../helpers/cli.ts";
import { eventually, makeStateDir, type RunningDaemon, startDaemon } from "../helpers/daemon.ts";

const randomPort = () => 20_000 + Math.floor(Math.random() * 40_000);

/** No stack trace: errors are one line that starts with "weft: ". */
function assertCleanError(stderr: string, pattern: RegExp): void {
  assert.match(stderr, pattern);
  assert.doesNotMatch(stderr, /\n\s+at /, `a stack trace leaked: ${stderr}`);
}

describe("weft daemon and CLI on loopback", () => {
  let alpha: RunningDaemon;
  let beta: RunningDaemon;
  let alphaDnsPort: number;

  before(async () => {
    const common = ["--no-tun", "--port", "0", "--listen", "127.0.0.1"];
    alphaDnsPort = randomPort();
    alpha = await startDaemon(makeStateDir("alpha"), [
      ...common,
      "--name",
      "alpha",
      "--dns-listen",
      `127.0.0.1:${alphaDnsPort}`,
    ]);
    const invite = alpha.cli(["invite", "--name", "beta"]);
    assert.equal(invite.status, 0, invite.stderr);
    beta = await startDaemon(makeStateDir("beta"), [...common, "--join", invite.stdout.trim()]);
  });

  after(async () => {
    await alpha?.cleanup();
    await beta?.cleanup();
  });

  test("a joining peer connects directly and gets its own address by donation", async () => {
    const ok = await eventually(() => {
      const a = alpha.status();
      const b = beta.status();
      return (
        a.peers.some((p) => p.nickname === "beta" && p.path === "direct") &&
        b.self.address !== undefined &&
        b.self.address !== a.self.address
      );
    });
    assert.ok(ok, `alpha and beta did not connect:\n${alpha.log()}\n${beta.log()}`);
    assert.equal(
      alpha.status().self.address,
      "10.40.0.1",
      "the seed takes the range's first address",
    );
  });

  test("status and peers print people's text and --json", () => {
    const text = alpha.cli(["status"]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^alpha 10\.40\.0\.1 /);
    assert.match(text.stdout, /beta .* direct 127\.0\.0\.1:\d+/);
    const peers = alpha.cli(["peers", "--json"]);
    assert.equal(peers.status, 0, peers.stderr);
    const list = JSON.parse(peers.stdout) as { nickname: string; address?: string }[];
    assert.deepEqual(
      list.map((p) => p.nickname),
      ["beta"],
    );
    assert.ok(
      list[0]!.address !== undefined,
      "beta's address is known to alpha (from its DNS name)",
    );
  });

  test("dns add on one peer resolves on the other; ls and rm", async () => {
    const add = beta.cli(["dns", "add", "web", "10.40.200.7"]);
    assert.equal(add.status, 0, add.stderr);
    assert.match(add.stdout, /added web 10\.40\.200\.7/);
    const seen = await eventually(
      () => alpha.cli(["dns", "lookup", "web"]).stdout.trim() === "10.40.200.7",
    );
    assert.ok(seen, "web.weft.internal reached alpha");
    const json = JSON.parse(alpha.cli(["dns", "lookup", "WEB.weft.internal", "--json"]).stdout);
    assert.deepEqual(json.addresses, ["10.40.200.7"]);
    const reverse = alpha.cli(["dns", "lookup", "10.40.200.7"]);
    assert.equal(reverse.stdout.trim(), "web.weft.internal.", "reverse lookup of an address");
    const ls = alpha.cli(["dns", "ls", "--json"]);
    const names = (JSON.parse(ls.stdout) as { name: string }[]).map((e) => e.name).sort();
    assert.deepEqual(names, ["alpha.weft.internal.", "beta.weft.internal.", "web.weft.internal."]);
    const rm = beta.cli(["dns", "rm", "web"]);
    assert.equal(rm.status, 0, rm.stderr);
    assert.match(rm.stdout, /removed 1 record of web/);
    const gone = await eventually(() => alpha.cli(["dns", "lookup", "web"]).status === 1);
    assert.ok(gone, "the removal reached alpha");
    assertCleanError(alpha.cli(["dns", "lookup", "web"]).stderr, /^weft: web: no such name/);
    assertCleanError(beta.cli(["dns", "rm", "web"]).stderr, /not registered by this peer/);
    assertCleanError(beta.cli(["dns", "add", "web", "not-an-ip"]).stderr, /^weft: /);
  });

  test("the DNS server answers mesh names over UDP on --dns-listen", async () => {
    assert.equal(alpha.status().self.dns, `127.0.0.1:${alphaDnsPort}`);
    const betaAddress = beta.status().self.address;
    const socket = createSocket("udp4");
    try {
      const answer = new Promise<Buffer>((resolve) => socket.once("message", resolve));
      const query = dnsPacket.encode({
        type: "query",
        id: 4242,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: "A", name: "beta.weft.internal" }],
      });
      socket.send(query, alphaDnsPort, "127.0.0.1");
      const reply = dnsPacket.decode(
        await Promise.race([
          answer,
          new Promise<never>((_, no) =>
            setTimeout(() => no(new Error("no DNS answer in 5 s")), 5000),
          ),
        ]),
      );
      assert.equal(reply.id, 4242);
      assert.deepEqual(
        reply.answers?.map((a) => (a as { data: string }).data),
        [betaAddress],
      );
    } finally {
      socket.close();
    }
  });

  test("ipam allocate is idempotent per handle, claims a given address, releases", () => {
    const first = alpha.cli(["ipam", "allocate", "container-1"]);
    assert.equal(first.status, 0, first.stderr);
    const again = alpha.cli(["ipam", "allocate", "container-1"]);
    assert.equal(again.stdout, first.stdout, "same handle, same address");
    const claimed = alpha.cli(["ipam", "allocate", "container-2", "10.40.0.77", "--json"]);
    assert.equal(claimed.status, 0, claimed.stderr);
    assert.equal(JSON.parse(claimed.stdout).address, "10.40.0.77");
    const status = JSON.parse(alpha.cli(["ipam", "status", "--json"]).stdout);
    assert.equal(status.allocations["container-2"], "10.40.0.77");
    assert.equal(status.range, "10.40.0.0/16");
    assert.equal(alpha.cli(["ipam", "release", "container-2"]).status, 0);
    assertCleanError(alpha.cli(["ipam", "release", "container-2"]).stderr, /has no address here/);
    assertCleanError(alpha.cli(["ipam", "allocate", "x", "999.1.1.1"]).stderr, /Invalid address/);
    assertCleanError(alpha.cli(["ipam", "release", "weft:self"]).stderr, /own address/);
  });

  test("connect and disconnect name peers by key, prefix or nickname; bad names are refused", () => {
    const alphaKey = alpha.status().self.publicKey;
    const port = alpha.status().self.port;
    const connect = beta.cli(["connect", `127.0.0.1:${port}`, "--json"]);
    assert.equal(connect.status, 0, connect.stderr);
    assert.equal(
      JSON.parse(connect.stdout).publicKey,
      alphaKey,
      "host:port of a known peer finds its key",
    );
    assertCleanError(
      beta.cli(["connect", "127.0.0.1:9"]).stderr,
      /No known peer at 127\.0\.0\.1:9/,
    );
    assertCleanError(beta.cli(["connect", "nonsense"]).stderr, /Invalid peer "nonsense"/);
    assertCleanError(beta.cli(["disconnect", "nosuch"]).stderr, /No peer "nosuch"/);
    const disconnect = beta.cli(["disconnect", "alpha"]);
    assert.equal(disconnect.status, 0, disconnect.stderr);
    assert.match(
      disconnect.stdout,
      new RegExp(`disconnected from ${alphaKey.replace(/[+/]/g, "\\$&")}`),
    );
    assert.equal(beta.cli(["connect", `${alphaKey}@127.0.0.1:${port}`]).status, 0);
  });

  test("a second up on the same state directory refuses", () => {
    const second = runCli(["--state-dir", alpha.stateDir, "up", "--no-tun", "--port", "0"]);
    assert.equal(second.status, 1);
    assertCleanError(second.stderr, /Another weft daemon \(pid \d+\) is already running/);
  });

  test("bad arguments: one line and exit code 1", () => {
    assertCleanError(runCli(["up", "--port", "99999"]).stderr, /Invalid --port "99999"/);
    assertCleanError(runCli(["up", "--peer", "x@y"]).stderr, /Invalid peer "x@y"/);
    assertCleanError(runCli(["up", "--ipalloc", "maybe"]).stderr, /Invalid --ipalloc "maybe"/);
    const missing = alpha.cli(["dns", "add", "onlyname"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /missing required argument/);
    const unknown = runCli(["frobnicate"]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /unknown command/);
  });

  test("down stops the daemon cleanly; forget then removes it: space, names, membership", async () => {
    const betaKey = beta.status().self.publicKey;
    const down = beta.cli(["down"]);
    assert.equal(down.status, 0, down.stderr);
    assert.equal(await beta.exited(), 0, `beta exits 0:\n${beta.log()}`);
    assert.ok(!existsSync(join(beta.stateDir, "weft.sock")), "the control socket is removed");
    assert.ok(!existsSync(join(beta.stateDir, "weft.pid")), "the lock is released");
    assert.match(beta.log(), /shutting down: weft down/);
    const notRunning = beta.cli(["status"]);
    assert.equal(notRunning.status, 1);
    assertCleanError(notRunning.stderr, /^weft: weft is not running/);
    assertCleanError(alpha.cli(["ipam", "rmpeer", "nosuch"]).stderr, /No peer "nosuch"/);
    assertCleanError(alpha.cli(["forget", "nosuch"]).stderr, /No peer "nosuch"/);
    const forget = alpha.cli(["forget", "beta", "--json"]);
    assert.equal(forget.status, 0, forget.stderr);
    assert.deepEqual(JSON.parse(forget.stdout), {
      peer: betaKey,
      nickname: "beta",
      heir: alpha.status().self.publicKey,
    });
    const members = JSON.parse(alpha.cli(["members", "--json"]).stdout) as {
      members: { nickname: string }[];
      removed: { publicKey: string; removedByNickname: string }[];
    };
    assert.deepEqual(
      members.members.map((m) => m.nickname),
      ["alpha"],
    );
    assert.deepEqual(
      members.removed.map((r) => r.publicKey),
      [betaKey],
    );
    const names = (JSON.parse(alpha.cli(["dns", "ls", "--json"]).stdout) as { name: string }[]).map(
      (e) => e.name,
    );
    assert.deepEqual(names, ["alpha.weft.internal."], "a removed peer's names are gone");
  });

  test("a restarted peer keeps its key and address", async () => {
    const before = alpha.status().self;
    assert.equal(alpha.cli(["down"]).status, 0);
    assert.equal(await alpha.exited(), 0, alpha.log());
    // The log file is appended to: the restarted daemon's lines come after these.
    const earlier = alpha.log().length;
    const restarted = await startDaemon(alpha.stateDir, [
      "--json",
      "--no-tun",
      "--port",
      "0",
      "--listen",
      "127.0.0.1",
    ]);
    try {
      const ok = await eventually(() => restarted.status().self.address === before.address);
      assert.ok(ok, `the address came back:\n${restarted.log()}`);
      assert.equal(restarted.status().self.publicKey, before.publicKey);
      const lines = restarted.log().slice(earlier).trim().split("\n");
      assert.ok(lines.length >= 2, `the restarted daemon logged:\n${restarted.log()}`);
      for (const line of lines) {
        let event: { level: string; component: string; message: string };
        try {
          event = JSON.parse(line);
        } catch {
          assert.fail(`not a JSON log line: ${line}\n${restarted.log()}`);
        }
        assert.ok(event.level && event.component && event.message, `a JSON log line: ${line}`);
      }
    } finally {
      restarted.child.kill("SIGTERM");
      const code = await restarted.exited();
      // Deno's child_process reports any child it signalled as ended by the signal.
      const expected = detectRuntime() === "deno" ? [0, null] : [0];
      assert.ok(
        expected.includes(code as number),
        `SIGTERM stops it (${code}):\n${restarted.log()}`,
      );
      assert.match(restarted.log(), /"message":"stopped"/);
      assert.match(restarted.log(), /shutting down: SIGTERM/);
      assert.ok(!existsSync(join(alpha.stateDir, "weft.pid")), "the lock is released");
    }
  });
});

describe("weft CLI without a daemon", () => {
  test("daemon commands say it is not running, with exit code 1", () => {
    const stateDir = makeStateDir("none");
    for (const args of [["status"], ["peers"], ["down"], ["dns", "ls"], ["ipam", "status"]]) {
      const result = runCli(["--state-dir", stateDir, ...args]);
      assert.equal(result.status, 1, `${args.join(" ")} exits 1`);
      assertCleanError(result.stderr, /^weft: weft is not running \(no daemon at .*weft\.sock/);
    }
  });

  test("version, genkey, pubkey and --help work anywhere", () => {
    const version = JSON.parse(runCli(["version", "--json"]).stdout);
    assert.match(version.version, /^\d+\.\d+\.\d+/);
    const { privateKey } = JSON.parse(runCli(["genkey", "--json"]).stdout);
    const pub = runCli(["pubkey", "--json"], privateKey);
    assert.equal(pub.status, 0, pub.stderr);
    assert.equal(JSON.parse(pub.stdout).publicKey.length, 44);
    assert.equal(JSON.parse(runCli(["genpsk", "--json"]).stdout).presharedKey.length, 44);
    assert.ok(
      JSON.parse(runCli(["info", "--json"]).stdout).crypto.x25519,
      "info names the X25519 implementation",
    );
    for (const command of ["up", "status", "dns", "ipam", "connect"]) {
      const help = runCli([command, "--help"]);
      assert.equal(help.status, 0, `${command} --help exits 0`);
      assert.match(help.stdout, /Usage: weft/);
    }
  });
});
