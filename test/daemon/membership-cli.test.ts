/**
 * Invitations end to end with real daemons on loopback (no TUN, no root): `weft invite`,
 * `weft join`, every way a token is refused with its own message, `weft members`,
 * `weft forget`, and a removed peer staying out after a restart with its old key.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { runCli } from "../helpers/cli.ts";
import { eventually, makeStateDir, type RunningDaemon, startDaemon } from "../helpers/daemon.ts";

const LOOPBACK = ["--no-tun", "--port", "0", "--listen", "127.0.0.1"];

/** `weft --state-dir DIR up --join TOKEN` expected to fail: its stderr (one line, no stack). */
function refusedJoin(token: string, extra: string[] = []): string {
  const dir = makeStateDir("joiner");
  try {
    const result = runCli(["--state-dir", dir, "up", ...LOOPBACK, ...extra, "--join", token]);
    assert.equal(result.status, 1, `the join fails: ${result.stdout}${result.stderr}`);
    assert.doesNotMatch(result.stderr, /\n\s+at /, `no stack trace: ${result.stderr}`);
    // The daemon's log lines come first; the error is the last line.
    return result.stderr.trim().split("\n").at(-1)!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function invite(daemon: RunningDaemon, args: string[] = []): string {
  const result = daemon.cli(["invite", ...args]);
  assert.equal(result.status, 0, result.stderr);
  const token = result.stdout.trim();
  assert.match(token, /^weft1-[A-Za-z0-9_-]+$/, "one token line");
  return token;
}

describe("invite, join, forget with real daemons", () => {
  let alpha: RunningDaemon;
  let beta: RunningDaemon;

  before(async () => {
    alpha = await startDaemon(makeStateDir("alpha"), [...LOOPBACK, "--name", "alpha"]);
    beta = await startDaemon(makeStateDir("beta"), [
      ...LOOPBACK,
      "--join",
      invite(alpha, ["--name", "beta"]),
    ]);
  });

  after(async () => {
    await alpha?.cleanup();
    await beta?.cleanup();
  });

  test("the joiner is admitted under the invitation's name and both list two members", async () => {
    const ok = await eventually(() => {
      const a = JSON.parse(alpha.cli(["members", "--json"]).stdout);
      const b = JSON.parse(beta.cli(["members", "--json"]).stdout);
      return a.members.length === 2 && b.members.length === 2 && a.meshId === b.meshId;
    });
    assert.ok(ok, `members agree:\n${alpha.log()}\n${beta.log()}`);
    assert.equal(beta.status().self.nickname, "beta", "the invitation named the joiner");
    const members = JSON.parse(beta.cli(["members", "--json"]).stdout) as {
      members: { nickname: string; admittedByNickname: string | null }[];
    };
    const byName = new Map(members.members.map((m) => [m.nickname, m]));
    assert.equal(byName.get("alpha")?.admittedByNickname, null, "alpha founded the mesh");
    assert.equal(byName.get("beta")?.admittedByNickname, "alpha");
    const text = alpha.cli(["members"]).stdout;
    assert.match(text, /^mesh [0-9a-f]{32}: 2 member\(s\)/);
    const connected = await eventually(() =>
      alpha.status().peers.some((p) => p.nickname === "beta" && p.path === "direct"),
    );
    assert.ok(connected, "alpha and beta connect");
  });

  test("a used single-use token is refused, saying so", async () => {
    const token = invite(alpha, ["--name", "gamma"]);
    const gamma = await startDaemon(makeStateDir("gamma"), [...LOOPBACK, "--join", token]);
    try {
      assert.equal(gamma.status().self.nickname, "gamma");
      assert.match(refusedJoin(token), /^weft: Cannot join: .*already used/i);
    } finally {
      await gamma.cleanup();
    }
    const gone = alpha.cli(["forget", "gamma"]);
    assert.equal(gone.status, 0, gone.stderr);
  });

  test("garbage, truncated, altered and oversized tokens are refused before any network", () => {
    assert.match(refusedJoin("hello"), /^weft: Invalid invite token: .*/);
    const token = invite(alpha);
    assert.match(
      refusedJoin(token.slice(0, 40)),
      /^weft: Invalid invite token: .*(truncated|damaged)/i,
    );
    const flipped = token.slice(0, 30) + (token[30] === "A" ? "B" : "A") + token.slice(31);
    assert.match(refusedJoin(flipped), /^weft: Invalid invite token: .*(altered|damaged)/i);
    assert.match(refusedJoin(`weft1-${"A".repeat(5000)}`), /^weft: Invalid invite token: .*long/i);
  });

  test("expired and revoked tokens are refused by the inviter with their reasons", async () => {
    const expiring = invite(alpha, ["--ttl", "1s"]);
    await new Promise((r) => setTimeout(r, 1500));
    assert.match(refusedJoin(expiring), /^weft: Cannot join: .*expired/i);
    const revoked = invite(alpha);
    const list = JSON.parse(alpha.cli(["invite", "list", "--json"]).stdout) as {
      id: string;
      state: string;
    }[];
    const open = list.filter((i) => i.state === "open");
    assert.ok(open.length >= 1, "the new invitation is listed as open");
    const last = open.at(-1)!;
    const revoke = alpha.cli(["invite", "revoke", last.id.slice(0, 8)]);
    assert.equal(revoke.status, 0, revoke.stderr);
    assert.match(refusedJoin(revoked), /^weft: Cannot join: .*revoked/i);
    assert.match(alpha.cli(["invite", "revoke", "ffffffff"]).stderr, /No open invitation/);
  });

  test("a peer of another mesh refuses a token for this one, naming both meshes", async () => {
    const other = await startDaemon(makeStateDir("other"), [...LOOPBACK, "--name", "other"]);
    try {
      const ours = JSON.parse(other.cli(["members", "--json"]).stdout).meshId as string;
      assert.equal(other.cli(["down"]).status, 0);
      await other.exited();
      const theirs = JSON.parse(alpha.cli(["members", "--json"]).stdout).meshId as string;
      const result = runCli([
        "--state-dir",
        other.stateDir,
        "up",
        ...LOOPBACK,
        "--join",
        invite(alpha),
      ]);
      assert.equal(result.status, 1);
      assert.match(
        result.stderr,
        new RegExp(`^weft: This peer is a member of mesh ${ours}; the token is for mesh ${theirs}`),
      );
    } finally {
      await other.cleanup();
    }
  });

  test("forget removes a member everywhere; restarted with its old key it stays out", async () => {
    const betaKey = beta.status().self.publicKey;
    const forget = alpha.cli(["forget", "beta"]);
    assert.equal(forget.status, 0, forget.stderr);
    assert.match(forget.stdout, /removed beta/);
    const cut = await eventually(
      () => !alpha.status().peers.some((p) => p.publicKey === betaKey && p.path === "direct"),
    );
    assert.ok(cut, `alpha dropped beta:\n${alpha.log()}`);
    const members = JSON.parse(alpha.cli(["members", "--json"]).stdout) as {
      removed: { publicKey: string }[];
    };
    assert.ok(
      members.removed.some((r) => r.publicKey === betaKey),
      "beta is listed as removed",
    );
    // Told of its removal before its sessions closed, beta stops on its own and says why.
    const code = await beta.exited();
    assert.equal(code, 1, `beta stops with exit code 1:\n${beta.log()}`);
    assert.match(beta.log(), /this peer was removed from mesh [0-9a-f]{32} by alpha/);
    const again = runCli(["--state-dir", beta.stateDir, "up", ...LOOPBACK]);
    assert.equal(again.status, 1, "a removed peer does not start again");
    assert.match(
      again.stderr.trim().split("\n").at(-1)!,
      /^weft: This peer was removed from mesh [0-9a-f]{32}: it needs a new invitation/,
    );
  });
});
