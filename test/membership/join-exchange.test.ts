/**
 * The join exchange end to end on the simulator: real inviters (Members replicated by
 * `replicateMembers`, an InvitationBook, a JoinResponder admitting as the daemon does)
 * and joiners calling `joinMesh`, on a virtual clock and a seeded network. Every refusal
 * with its code, endpoints that do not answer, men in the middle, single-use races, lost
 * packets, stalled joiners, floods and garbage. Seeded loops name their seed on failure.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { toBase64, toHex } from "../../src/crypto/index.ts";
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  initMessage,
  type JoinReply,
  KIND,
  type KnownPeer,
  parseMessage,
  sealedMessage,
} from "../../src/membership/join-protocol.ts";
import {
  type AdmitResult,
  MAX_SESSIONS,
  SESSION_TIMEOUT_MS,
} from "../../src/membership/join-responder.ts";
import { Members } from "../../src/membership/members.ts";
import { canonicalCbor, signRecord, verifyRecord } from "../../src/membership/records.ts";
import {
  decodeToken,
  encodeToken,
  type Invite,
  invitationId,
  invitationPsk,
} from "../../src/membership/token.ts";
import type { Endpoint } from "../../src/net/packet-conn.ts";
import {
  createInitiation,
  createLocalIdentity,
  createRemoteIdentity,
} from "../../src/tunnel/handshake.ts";
import {
  accepted,
  createInviter,
  createJoiner,
  createKeys,
  createWorld,
  crypto,
  DOMAIN,
  type Inviter,
  type Joiner,
  PORT,
  RANGE,
  refused,
  runFor,
  settle,
  type World,
} from "./join-world.ts";

const DEFAULT_TIMEOUT_MS = 15_000;

/** The admission records `members` holds for `key` (one, when joins are idempotent). */
function admissionsOf(members: Members, key: Uint8Array) {
  return members
    .records()
    .filter((r) => r.record.kind === "admission" && toBase64(r.record.member) === toBase64(key));
}

function usedBy(inviter: Inviter, id: Uint8Array): readonly string[] {
  return inviter.book.lookup(id)!.usedBy;
}

/** A join INIT for `token` from `privateKey`, as a joiner would make it. */
function initFor(world: World, token: Invite, privateKey: Uint8Array, index: number): Uint8Array {
  const local = createLocalIdentity(crypto, privateKey);
  const remote = createRemoteIdentity(crypto, local, token.inviterKey, invitationPsk(token.secret));
  const made = createInitiation(crypto, local, remote, index, world.clock.wallNow());
  assert.ok(made, "an initiation to the inviter's key");
  return initMessage(invitationId(token.secret), made.message);
}

function kindsOf(sent: readonly { data: Uint8Array }[]): number[] {
  return sent.map((s) => s.data[1]!);
}

describe("join exchange: acceptance", () => {
  test("a joiner is admitted for its key under the invitation's nickname and gets the settings", async () => {
    const world = createWorld(1);
    const knownPeers: KnownPeer[] = [
      {
        publicKey: new Uint8Array(32).fill(7),
        nickname: "db1",
        endpoints: [{ address: "10.0.0.7", port: PORT }],
      },
    ];
    const inviter = createInviter(world, { nickname: "alpha", knownPeers });
    const { token, id } = inviter.invite({ nickname: "laptop" });
    const joiner = createJoiner(world, "10.0.0.2");
    const { value, atMs } = await accepted(world, joiner.join(token, { nickname: "ignored" }));

    assert.ok(atMs <= 100, `four 10 ms hops take about 40 virtual ms, not ${atMs}`);
    const admission = value.admission.record;
    assert.equal(admission.kind, "admission");
    assert.deepEqual(admission.member, joiner.publicKey, "the admission is for the joiner's key");
    assert.deepEqual(admission.signingKey, joiner.signingKey);
    assert.equal(admission.nickname, "laptop", "the invitation's nickname wins");
    assert.deepEqual(admission.admittedBy, inviter.publicKey);
    assert.deepEqual(admission.invitation, id, "the admission names the invitation");
    assert.ok(verifyRecord(world.meshId, value.genesis), "the genesis verifies");
    assert.ok(
      verifyRecord(world.meshId, value.inviterAdmission),
      "the inviter's admission verifies",
    );
    assert.ok(verifyRecord(world.meshId, value.admission), "the joiner's admission verifies");
    assert.deepEqual(value.genesis.bytes, inviter.members.genesis.bytes);
    // The joiner can build its own replica from what it got: the chain leads to the genesis.
    const replica = new Members({ meshId: world.meshId, genesis: value.genesis });
    assert.equal(
      replica.receive(value.inviterAdmission),
      "duplicate",
      "the founder's is the genesis",
    );
    assert.equal(replica.receive(value.admission), "accepted");
    assert.ok(replica.isMember(joiner.publicKey), "the joiner's own replica holds it");

    assert.deepEqual(value.settings, { domain: DOMAIN, range: RANGE });
    assert.equal(value.inviterNickname, "alpha");
    assert.deepEqual(value.peers, [
      {
        publicKey: toBase64(knownPeers[0]!.publicKey),
        nickname: "db1",
        endpoints: knownPeers[0]!.endpoints,
      },
    ]);
    assert.deepEqual(value.endpoint, { address: inviter.address, port: PORT });

    assert.ok(inviter.members.isMember(joiner.publicKey), "the inviter's Members holds the joiner");
    assert.equal(inviter.members.members().find((m) => m.key === joiner.key)?.nickname, "laptop");
    assert.deepEqual(inviter.changes, [{ admitted: [joiner.key], removed: [] }]);
    assert.ok(
      inviter.broadcasts.some((d) =>
        d.records.some((r) => toHex(r.hash) === toHex(value.admission.hash)),
      ),
      "the admission is broadcast to the mesh",
    );
    assert.deepEqual(usedBy(inviter, id), [joiner.key], "the use is spent on the joiner");
    assert.equal(inviter.responder.counters.accepted, 1);
    assert.equal(inviter.responder.counters.refused, 0);
    assert.deepEqual(kindsOf(joiner.sent), [KIND.init, KIND.req]);
    assert.deepEqual(kindsOf(inviter.sent), [KIND.resp, KIND.reply]);
    assert.deepEqual(inviter.meshReceived, [], "no join datagram reaches the inviter's mesh side");
    assert.deepEqual(joiner.meshReceived, [], "nor the joiner's");
  });

  test("a member that did not found the mesh invites: the joiner gets genesis, inviter, itself", async () => {
    const world = createWorld(2);
    const founder = createInviter(world, { nickname: "founder" });
    const second = createInviter(world, {
      address: "10.0.0.3",
      nickname: "second",
      admittedBy: founder,
    });
    const { token } = second.invite();
    const joiner = createJoiner(world, "10.0.0.2");
    const { value } = await accepted(world, joiner.join(token, { nickname: "chosen" }));

    assert.equal(
      value.admission.record.kind === "admission" && value.admission.record.nickname,
      "chosen",
      "no invitation nickname: the joiner's choice",
    );
    const inviterRecord = value.inviterAdmission.record;
    assert.ok(
      inviterRecord.kind === "admission" && toBase64(inviterRecord.admittedBy!) === founder.key,
      "the inviter's admission is the founder's admission of it",
    );
    const replica = new Members({ meshId: world.meshId, genesis: value.genesis });
    assert.equal(replica.receive(value.admission), "pending", "waits for its author's admission");
    assert.equal(replica.receive(value.inviterAdmission), "accepted");
    assert.ok(replica.isMember(joiner.publicKey), "genesis, inviter and joiner make a valid chain");
    assert.ok(
      !founder.members.isMember(joiner.publicKey),
      "the founder learns it by gossip, not here",
    );
    assert.ok(second.members.isMember(joiner.publicKey), "the inviter holds it at once");
  });

  test("with neither nickname, the joiner is admitted as the daemon's default", async () => {
    const world = createWorld(3);
    const inviter = createInviter(world);
    const joiner = createJoiner(world, "10.0.0.2");
    const { value } = await accepted(world, joiner.join(inviter.invite().token));
    assert.equal(
      value.admission.record.kind === "admission" && value.admission.record.nickname,
      "peer",
    );
  });

  test("joins through the one working endpoint of three, within a few virtual seconds", async () => {
    const world = createWorld(4);
    const inviter = createInviter(world, { address: "10.0.0.1" });
    const endpoints = [
      { host: "203.0.113.9", port: PORT }, // cut off from the joiner: datagrams vanish
      { host: "fd00::1", port: PORT }, // IPv6 from an IPv4 socket: unroutable
      inviter.endpoint,
    ];
    const { token } = inviter.invite({ endpoints });
    const joiner = createJoiner(world, "10.0.0.2");
    world.network.partition([joiner.address], ["203.0.113.9"]);
    const { value, atMs } = await accepted(world, joiner.join(token));
    assert.ok(atMs < 2_000, `joined in ${atMs} virtual ms`);
    assert.deepEqual(
      value.endpoint,
      { address: "10.0.0.1", port: PORT },
      "the endpoint that answered",
    );
    const dropped = world.network.counters().dropped;
    assert.ok(dropped.partition >= 1 && dropped.unroutable >= 1, "the other two were tried");
    assert.deepEqual(
      joiner.sent
        .filter((s) => s.data[1] === KIND.init)
        .map((s) => s.to.address)
        .sort(),
      ["10.0.0.1", "203.0.113.9", "fd00::1"],
      "an INIT to every endpoint at once",
    );
  });

  test("the working endpoint may be the last and slow: the dead ones are retried meanwhile", async () => {
    const world = createWorld(5);
    const inviter = createInviter(world);
    const { token } = inviter.invite({
      endpoints: [
        { host: "192.0.2.1", port: PORT },
        { host: "192.0.2.2", port: 9 },
        inviter.endpoint,
      ],
    });
    const joiner = createJoiner(world, "10.0.0.2");
    // The inviter's first RESPs are lost: the joiner gets in on a retry.
    let dropped = 0;
    inviter.outbound = (data) => !(data[1] === KIND.resp && dropped++ < 2);
    const { value, atMs } = await accepted(world, joiner.join(token));
    assert.deepEqual(value.endpoint, { address: inviter.address, port: PORT });
    assert.ok(atMs >= 2_000 && atMs < 3_000, `in on the third INIT, at ${atMs} virtual ms`);
    assert.equal(inviter.responder.sessionCount, 1, "the retried INIT got the same session");
  });

  test("a DNS name in the token is resolved by the caller; with no resolver it is bad-endpoint", async () => {
    const world = createWorld(6);
    const inviter = createInviter(world);
    const { token } = inviter.invite({ endpoints: [{ host: "inviter.example", port: PORT }] });
    const joiner = createJoiner(world, "10.0.0.2");
    const asked: string[] = [];
    const { value } = await accepted(
      world,
      joiner.join(token, {
        resolve: async (host) => {
          asked.push(host);
          return [inviter.address];
        },
      }),
    );
    assert.deepEqual(asked, ["inviter.example"]);
    assert.deepEqual(value.endpoint, { address: inviter.address, port: PORT });
    const other = createJoiner(world, "10.0.0.4");
    await assert.rejects(other.join(token), (error: Error & { code?: string }) => {
      assert.equal(error.code, "bad-endpoint");
      assert.match(error.message, /could be resolved/);
      return true;
    });
  });
});

describe("join exchange: refusals", () => {
  test("expired: a join just before expiry gets in, one after it is refused as expired", async () => {
    const world = createWorld(10);
    const inviter = createInviter(world);
    const early = inviter.invite({ ttlMs: 60_000 });
    const late = inviter.invite({ ttlMs: 60_000 });
    await runFor(world, 59_900);
    await accepted(world, createJoiner(world, "10.0.0.2").join(early.token));
    await runFor(world, 200); // the wall clock is now past both expiries
    const joiner = createJoiner(world, "10.0.0.3");
    const { error } = await refused(world, joiner.join(late.token));
    assert.equal(error.code, "expired");
    assert.match(error.message, /^the invitation expired at 2025-01-01T00:01:00\.000Z/);
    assert.match(error.message, /answer from 10\.0\.0\.1:51820/);
    assert.deepEqual(usedBy(inviter, late.id), [], "nothing spent");
    assert.ok(!inviter.members.isMember(joiner.publicKey), "not admitted");
  });

  test("expired by the inviter's wall clock, which may jump", async () => {
    const world = createWorld(11);
    const inviter = createInviter(world);
    const { token } = inviter.invite({ ttlMs: 3_600_000 });
    world.clock.adjustWallClock(3_600_000);
    const { error } = await refused(world, createJoiner(world, "10.0.0.2").join(token));
    assert.equal(error.code, "expired");
  });

  test("used: a single-use token the second time, a 2-use token the third time", async () => {
    const world = createWorld(12);
    const inviter = createInviter(world);
    const single = inviter.invite();
    const first = createJoiner(world, "10.0.0.2");
    await accepted(world, first.join(single.token));
    const second = createJoiner(world, "10.0.0.3");
    const { error } = await refused(world, second.join(single.token));
    assert.equal(error.code, "used");
    assert.match(error.message, /^the invitation was already used/);
    assert.ok(!inviter.members.isMember(second.publicKey), "the second joiner is not admitted");

    const double = inviter.invite({ uses: 2 });
    const joiners = ["10.0.0.4", "10.0.0.5", "10.0.0.6"].map((a) => createJoiner(world, a));
    await accepted(world, joiners[0]!.join(double.token));
    await accepted(world, joiners[1]!.join(double.token));
    const third = await refused(world, joiners[2]!.join(double.token));
    assert.equal(third.error.code, "used");
    assert.match(third.error.message, /used up \(2 uses\)/);
    assert.deepEqual(usedBy(inviter, double.id), [joiners[0]!.key, joiners[1]!.key]);
  });

  test("revoked: refused as revoked, nothing spent", async () => {
    const world = createWorld(13);
    const inviter = createInviter(world);
    const { token, id } = inviter.invite({ uses: 5 });
    assert.equal(inviter.book.revoke(toHex(id).slice(0, 6), world.clock.wallNow()), 1);
    const joiner = createJoiner(world, "10.0.0.2");
    const { error } = await refused(world, joiner.join(token));
    assert.equal(error.code, "revoked");
    assert.match(error.message, /revoked by its inviter/);
    assert.deepEqual(usedBy(inviter, id), []);
  });

  test("wrong mesh: a valid secret and inviter key, another mesh id in the token", async () => {
    const world = createWorld(14);
    const inviter = createInviter(world);
    const { token, id } = inviter.invite();
    const otherMesh = new Uint8Array(16).fill(0xee);
    const forged = encodeToken({ ...token, meshId: otherMesh });
    const decoded = decodeToken(forged);
    assert.ok(decoded.ok, "re-encoded with the same secret, the token is well-formed");
    const joiner = createJoiner(world, "10.0.0.2");
    const { error } = await refused(world, joiner.join(decoded.value));
    assert.equal(error.code, "wrong-mesh");
    assert.ok(error.message.includes(toHex(otherMesh)), `names the token's mesh: ${error.message}`);
    assert.ok(
      error.message.includes(toHex(world.meshId)),
      `names the inviter's mesh: ${error.message}`,
    );
    assert.deepEqual(usedBy(inviter, id), [], "nothing spent");
    assert.ok(!inviter.members.isMember(joiner.publicKey), "not admitted");
    // The real token still works afterwards.
    await accepted(world, joiner.join(token));
  });

  test("unknown: a token the inviter never issued gets NOT_FOUND, then unknown at the timeout", async () => {
    const world = createWorld(15);
    const inviter = createInviter(world);
    const { token } = inviter.invite();
    const never = { ...token, secret: world.random.bytes(32) };
    const joiner = createJoiner(world, "10.0.0.2");
    const { error, atMs } = await refused(world, joiner.join(never));
    assert.equal(error.code, "unknown");
    assert.match(
      error.message,
      /no peer at the token's endpoints knows this invitation \(10\.0\.0\.1:51820\)/,
    );
    assert.equal(
      atMs,
      DEFAULT_TIMEOUT_MS,
      "it waits the whole timeout (NOT_FOUND is unauthenticated)",
    );
    assert.ok(inviter.responder.counters.notFound >= 1, "the responder counted it");
    assert.ok(
      kindsOf(inviter.sent).every((k) => k === KIND.notFound),
      "and answered only NOT_FOUND",
    );
    assert.equal(inviter.responder.sessionCount, 0, "no handshake for an unknown id");

    const quick = await refused(
      world,
      createJoiner(world, "10.0.0.3").join(never, { timeoutMs: 3_000 }),
    );
    assert.equal(quick.error.code, "unknown");
    assert.equal(quick.atMs - atMs, 3_000, "timeoutMs is honoured");
  });

  test("unknown also when the token names the same endpoint twice (a name resolving to a literal)", async () => {
    const world = createWorld(19);
    const inviter = createInviter(world);
    const { token } = inviter.invite({
      endpoints: [inviter.endpoint, { host: "inviter.example", port: PORT }, inviter.endpoint],
    });
    const never = { ...token, secret: world.random.bytes(32) };
    const joiner = createJoiner(world, "10.0.0.2");
    const { error } = await refused(
      world,
      joiner.join(never, { resolve: async () => [inviter.address] }),
    );
    assert.equal(error.code, "unknown", `the inviter said NOT_FOUND: ${error.message}`);
    assert.match(error.message, /knows this invitation \(10\.0\.0\.1:51820\)/, "named once");
    const inits = joiner.sent.filter(
      (s) => s.data[1] === KIND.init && s.to.address === inviter.address,
    );
    assert.equal(inits.length, DEFAULT_TIMEOUT_MS / 1_000, "one INIT a second, not three");
  });

  test("unreachable: no endpoint answers", async () => {
    const world = createWorld(16);
    const inviter = createInviter(world);
    const { token } = inviter.invite({
      endpoints: [
        { host: "192.0.2.1", port: PORT },
        { host: "10.0.0.1", port: 9 },
      ],
    });
    const joiner = createJoiner(world, "10.0.0.2");
    const { error, atMs } = await refused(world, joiner.join(token));
    assert.equal(error.code, "unreachable");
    assert.match(
      error.message,
      /no answer from any endpoint \(tried 192\.0\.2\.1:51820, 10\.0\.0\.1:9\)/,
    );
    assert.equal(atMs, DEFAULT_TIMEOUT_MS);
    const inits = joiner.sent.filter((s) => s.data[1] === KIND.init).length;
    assert.ok(inits >= 2 * 14, `INITs resent every second to both endpoints (${inits})`);
  });

  test("one endpoint that does not know the invitation, one that does not answer: unreachable", async () => {
    const world = createWorld(17);
    const inviter = createInviter(world);
    const { token } = inviter.invite();
    const never = {
      ...token,
      secret: world.random.bytes(32),
      endpoints: [inviter.endpoint, { host: "192.0.2.1", port: PORT }],
    };
    const { error } = await refused(world, createJoiner(world, "10.0.0.2").join(never));
    assert.equal(error.code, "unreachable", "unknown only when every endpoint said so");
  });

  test("a removed key is refused by the inviter with its reason, and nothing is spent", async () => {
    const world = createWorld(18);
    const inviter = createInviter(world);
    const joiner = createJoiner(world, "10.0.0.2");
    inviter.replication.remove(joiner.publicKey);
    const { token, id } = inviter.invite();
    const { error } = await refused(world, joiner.join(token));
    assert.equal(error.code, "refused");
    assert.match(error.message, /removed/);
    assert.deepEqual(usedBy(inviter, id), []);
    assert.ok(!inviter.members.isMember(joiner.publicKey), "still out");
  });
});

describe("join exchange: an inviter's answer is checked", () => {
  /** A join against an inviter whose admission result `lie` rewrites. */
  async function lied(
    seed: number,
    lie: (honest: AdmitResult, world: World, inviter: Inviter, joiner: Joiner) => AdmitResult,
  ) {
    const world = createWorld(seed);
    const joiner = createJoiner(world, "10.0.0.2");
    const inviter: Inviter = createInviter(world, {
      admit: (_request, honest) => {
        const result = honest();
        return "refused" in result ? result : lie(result, world, inviter, joiner);
      },
    });
    const { error } = await refused(world, joiner.join(inviter.invite().token));
    assert.equal(error.code, "bad-reply", `refused as a bad reply: ${error.message}`);
    return error.message;
  }

  test("records that do not parse", async () => {
    const message = await lied(30, (honest) => ({
      ...honest,
      admission: new Uint8Array([1, 2, 3]),
    }));
    assert.match(message, /a record does not parse/);
  });

  test("a genesis of another mesh", async () => {
    const message = await lied(31, (honest, world) => {
      const stranger = createKeys(world);
      const genesis = signRecord(
        new Uint8Array(16).fill(9),
        {
          kind: "admission",
          version: 1,
          member: stranger.publicKey,
          signingKey: stranger.signingKey,
          nickname: "elsewhere",
          admittedBy: null,
          invitation: null,
          at: 0,
        },
        stranger.signingSecret,
      );
      return { ...honest, genesis: genesis.bytes };
    });
    assert.match(message, /its genesis is not that of mesh/);
  });

  test("an admission of another key", async () => {
    const message = await lied(32, (honest, world, inviter) => {
      const someone = createKeys(world);
      const admission = inviter.replication.admit({
        member: someone.publicKey,
        signingKey: someone.signingKey,
        nickname: "someone",
      });
      return { ...honest, admission: admission.bytes };
    });
    assert.match(message, /the admission is not for this peer/);
  });

  test("an inviter admission that is not the inviter's", async () => {
    const message = await lied(33, (honest) => ({ ...honest, inviterAdmission: honest.admission }));
    assert.match(message, /the inviter's admission is not the inviter's/);
  });

  test("an admission signed for another mesh", async () => {
    const message = await lied(34, (honest, world, inviter, joiner) => {
      const forged = signRecord(
        new Uint8Array(16).fill(9),
        {
          kind: "admission",
          version: 1,
          member: joiner.publicKey,
          signingKey: joiner.signingKey,
          nickname: "peer",
          admittedBy: inviter.publicKey,
          invitation: null,
          at: world.clock.wallNow(),
        },
        inviter.signingSecret,
      );
      return { ...honest, admission: forged.bytes };
    });
    assert.match(message, /not validly signed for this mesh/);
  });
});

describe("join exchange: men in the middle", () => {
  test("a token whose inviter key was replaced: the real inviter cannot answer, the joiner times out", async () => {
    const world = createWorld(20);
    const inviter = createInviter(world);
    const { token, id } = inviter.invite();
    const impostor = createKeys(world);
    const swapped = encodeToken({ ...token, inviterKey: impostor.publicKey });
    const decoded = decodeToken(swapped);
    assert.ok(decoded.ok, "the swapped token is well-formed (same secret, new check)");
    const joiner = createJoiner(world, "10.0.0.2");
    const { error } = await refused(world, joiner.join(decoded.value));
    assert.equal(error.code, "unreachable", "no answer authenticates, so none is taken");
    assert.ok(inviter.responder.counters.badHandshake >= 1, "the inviter could not read the INIT");
    assert.deepEqual(inviter.sent, [], "and sent nothing");
    assert.equal(inviter.responder.counters.accepted, 0);
    assert.deepEqual(usedBy(inviter, id), []);
    assert.ok(!inviter.members.isMember(joiner.publicKey), "not admitted");
  });

  test("tampered and forged answers on the path are ignored; the genuine one is taken", async () => {
    const world = createWorld(22);
    const inviter = createInviter(world);
    const { token, id } = inviter.invite();
    const joiner = createJoiner(world, "10.0.0.2");
    const attacker = world.network.listen("10.0.0.66", PORT);
    const joinerEndpoint: Endpoint = { address: joiner.address, port: PORT };
    let tamperedResp = false;
    let tamperedReply = false;
    joiner.inbound = (data) => {
      if (data[1] === KIND.resp && !tamperedResp) {
        tamperedResp = true;
        // The joiner's index is the RESP's receiver field: an observer sees it.
        const index = new DataView(data.buffer, data.byteOffset + 2 + 8, 4).getUint32(0, true);
        for (const code of ["used", "revoked", "wrong-mesh"] as const) {
          const refusal: JoinReply = { kind: "refuse", code, message: "forged" };
          attacker.send(
            sealedMessage(crypto, KIND.reply, index, world.random.bytes(32), encodeReply(refusal)),
            joinerEndpoint,
          );
        }
        const bad = data.slice();
        bad[bad.length - 1]! ^= 0x01;
        return bad;
      }
      if (data[1] === KIND.reply && !tamperedReply) {
        tamperedReply = true;
        const bad = data.slice();
        bad[10]! ^= 0x80;
        return bad;
      }
      return data;
    };
    const { value } = await accepted(world, joiner.join(token));
    assert.ok(tamperedResp && tamperedReply, "both the RESP and the REPLY were tampered with once");
    assert.deepEqual(
      value.admission.record.kind === "admission" && value.admission.record.member,
      joiner.publicKey,
    );
    assert.deepEqual(usedBy(inviter, id), [joiner.key]);
    assert.equal(
      inviter.responder.counters.accepted,
      1,
      "decided once; the REPLY was resent as is",
    );
  });
});

describe("join exchange: single-use races", () => {
  test("two joiners, one single-use token, the same instant: exactly one gets in (20 seeds)", async () => {
    for (let seed = 100; seed < 120; seed++) {
      const world = createWorld(seed);
      const inviter = createInviter(world);
      const { token, id } = inviter.invite();
      const a = createJoiner(world, "10.0.0.2");
      const b = createJoiner(world, "10.0.0.3");
      const link = () => ({
        latencyMs: 1 + world.random.int(30),
        jitterMs: world.random.int(3) === 0 ? 0 : 1 + world.random.int(20),
      });
      world.network.setLinkBetween(a.address, inviter.address, link());
      world.network.setLinkBetween(b.address, inviter.address, link());
      const racers = seed % 2 === 0 ? [a, b] : [b, a];
      const outcomes = await settle(
        world,
        racers.map((j) => j.join(token)),
      );
      const winners = outcomes.filter((o) => o.ok);
      const losers = outcomes.flatMap((o) => (o.ok ? [] : [o.error]));
      assert.equal(winners.length, 1, `seed ${seed}: exactly one accepted`);
      assert.equal(losers.length, 1, `seed ${seed}: one refused`);
      assert.equal(losers[0]!.code, "used", `seed ${seed}: refused as used: ${losers[0]!.message}`);
      const winner = racers[outcomes.findIndex((o) => o.ok)]!;
      const loser = racers[outcomes.findIndex((o) => !o.ok)]!;
      assert.deepEqual(
        usedBy(inviter, id),
        [winner.key],
        `seed ${seed}: the use went to the winner`,
      );
      assert.ok(inviter.members.isMember(winner.publicKey), `seed ${seed}: the winner is a member`);
      assert.ok(!inviter.members.isMember(loser.publicKey), `seed ${seed}: the loser is not`);
    }
  });

  test("five joiners race for a 2-use token: exactly two get in", async () => {
    const world = createWorld(130, { latencyMs: 5, jitterMs: 10 });
    const inviter = createInviter(world);
    const { token, id } = inviter.invite({ uses: 2 });
    const joiners = [2, 3, 4, 5, 6].map((n) => createJoiner(world, `10.0.0.${n}`));
    const outcomes = await settle(
      world,
      joiners.map((j) => j.join(token)),
    );
    assert.equal(outcomes.filter((o) => o.ok).length, 2, "two accepted");
    assert.deepEqual(
      outcomes.flatMap((o) => (o.ok ? [] : [o.error.code])),
      ["used", "used", "used"],
    );
    assert.equal(usedBy(inviter, id).length, 2);
  });
});

describe("join exchange: lost packets", () => {
  test("30% loss each way: the join still completes by retransmission (8 seeds)", async () => {
    let lost = 0;
    for (let seed = 200; seed < 208; seed++) {
      const world = createWorld(seed, { latencyMs: 20, jitterMs: 10, lossRate: 0.3 });
      const inviter = createInviter(world);
      const { token, id } = inviter.invite();
      const joiner = createJoiner(world, "10.0.0.2");
      const [outcome] = await settle(world, [joiner.join(token)]);
      assert.ok(
        outcome!.ok,
        `seed ${seed}: accepted despite loss${outcome!.ok ? "" : `: ${outcome!.error.message}`}`,
      );
      assert.deepEqual(usedBy(inviter, id), [joiner.key], `seed ${seed}: one use`);
      assert.equal(inviter.responder.counters.accepted, 1, `seed ${seed}: decided once`);
      assert.equal(
        admissionsOf(inviter.members, joiner.publicKey).length,
        1,
        `seed ${seed}: one admission`,
      );
      lost += world.network.counters().dropped.loss;
    }
    assert.ok(lost > 0, "packets were lost, so retransmission was exercised");
  });

  test("a REPLY lost after the use was spent: the resent REQ gets the same yes", async () => {
    const world = createWorld(210);
    const inviter = createInviter(world);
    const { token, id } = inviter.invite();
    let replies = 0;
    inviter.outbound = (data) => !(data[1] === KIND.reply && replies++ === 0);
    const joiner = createJoiner(world, "10.0.0.2");
    const { value, atMs } = await accepted(world, joiner.join(token));
    assert.ok(atMs >= 1_000, `in on the REQ resent after a second (${atMs} ms)`);
    const sentReplies = inviter.sent.filter((s) => s.data[1] === KIND.reply);
    assert.equal(sentReplies.length, 2);
    assert.deepEqual(sentReplies[1]!.data, sentReplies[0]!.data, "the same REPLY, byte for byte");
    assert.equal(inviter.responder.counters.accepted, 1, "decided once");
    assert.deepEqual(usedBy(inviter, id), [joiner.key], "exactly one use");
    assert.deepEqual(
      admissionsOf(inviter.members, joiner.publicKey).map((r) => r.hash),
      [value.admission.hash],
    );
  });

  test("REPLYs lost for longer than the inviter keeps a session: the joiner handshakes again, same yes", async () => {
    const world = createWorld(212);
    const inviter = createInviter(world);
    const { token, id } = inviter.invite();
    inviter.outbound = (data) => data[1] !== KIND.reply || world.clock.now() > 11_000;
    const joiner = createJoiner(world, "10.0.0.2");
    const { value, atMs } = await accepted(world, joiner.join(token));
    assert.ok(atMs > 11_000 && atMs < DEFAULT_TIMEOUT_MS, `in within the one join (${atMs} ms)`);
    const inits = joiner.sent.filter((s) => s.data[1] === KIND.init).length;
    assert.ok(inits >= 2, `a second handshake (${inits} INITs)`);
    assert.deepEqual(usedBy(inviter, id), [joiner.key], "exactly one use");
    assert.deepEqual(
      admissionsOf(inviter.members, joiner.publicKey).map((r) => r.hash),
      [value.admission.hash],
      "one admission, the one the joiner got",
    );
  });

  test("every REPLY lost until the joiner gives up: joining again gets the same admission, one use", async () => {
    const world = createWorld(211);
    const inviter = createInviter(world);
    const { token, id } = inviter.invite();
    inviter.outbound = (data) => data[1] !== KIND.reply;
    const joiner = createJoiner(world, "10.0.0.2");
    const first = await refused(world, joiner.join(token));
    assert.equal(first.error.code, "unreachable");
    assert.match(first.error.message, /stopped answering/);
    assert.deepEqual(usedBy(inviter, id), [joiner.key], "the use was spent before the yes left");
    const [admission] = admissionsOf(inviter.members, joiner.publicKey);
    assert.ok(admission, "and the joiner admitted");

    inviter.outbound = () => true;
    const { value } = await accepted(world, joiner.join(token));
    assert.deepEqual(value.admission.hash, admission.hash, "the same admission, not a second one");
    assert.equal(admissionsOf(inviter.members, joiner.publicKey).length, 1);
    assert.deepEqual(usedBy(inviter, id), [joiner.key], "still exactly one use");
    const other = await refused(world, createJoiner(world, "10.0.0.3").join(token));
    assert.equal(other.error.code, "used", "and nobody else gets it");
  });
});

describe("join exchange: stalls and floods", () => {
  test("a joiner that stalls after INIT: its session expires, another joiner is served meanwhile", async () => {
    const world = createWorld(300);
    const inviter = createInviter(world);
    const stallToken = inviter.invite();
    // One INIT, then silence: the responder answers it and waits for a REQ that never comes.
    const staller = world.network.listen("10.0.0.66", PORT);
    const stallerGot: number[] = [];
    staller.onReceive((data) => stallerGot.push(data[1]!));
    staller.send(initFor(world, stallToken.token, world.random.bytes(32), 1), {
      address: inviter.address,
      port: PORT,
    });
    await runFor(world, 100);
    assert.deepEqual(stallerGot, [KIND.resp], "the staller got its RESP");
    assert.equal(inviter.responder.sessionCount, 1, "and holds a session");

    await runFor(world, 1_900);
    const good = createJoiner(world, "10.0.0.2");
    const { atMs } = await accepted(world, good.join(inviter.invite().token));
    assert.ok(atMs < 2_100, `served at once while the staller holds its session (${atMs} ms)`);
    assert.equal(inviter.responder.sessionCount, 2);

    // The staller's INIT arrived at 10 ms: its session ends at 10 s after that.
    await runFor(world, SESSION_TIMEOUT_MS + 10 - world.clock.now() - 1);
    assert.equal(inviter.responder.sessionCount, 2, "not a millisecond early");
    await runFor(world, 1);
    assert.equal(inviter.responder.sessionCount, 1, "then the staller's session is gone");
    assert.equal(inviter.responder.counters.expiredSessions, 1, "counted as expired");
    await runFor(world, atMs);
    assert.equal(inviter.responder.sessionCount, 0, "the served joiner's session ends too");
    assert.equal(
      inviter.responder.counters.expiredSessions,
      1,
      "answered sessions are not 'expired'",
    );
    assert.deepEqual(usedBy(inviter, stallToken.id), [], "the staller spent nothing");
    assert.equal(inviter.responder.counters.badRequest, 0, "nothing else went wrong");
  });

  test("a flood of INITs with a valid id from many addresses: sessions stay bounded, a joiner still gets in", async () => {
    const world = createWorld(301);
    const inviter = createInviter(world);
    const { token } = inviter.invite({ uses: 1000 });
    const counters = inviter.responder.counters;
    let host = 0;
    const burst = (sources: number, each = 1) => {
      for (let s = 0; s < sources; s++) {
        host++;
        const conn = world.network.listen(`10.1.${host >> 8}.${host & 255}`, PORT);
        conn.onReceive(() => {});
        for (let i = 0; i < each; i++) {
          conn.send(initFor(world, token, world.random.bytes(32), host * 16 + i + 1), {
            address: inviter.address,
            port: PORT,
          });
        }
      }
    };
    burst(120);
    await runFor(world, 50);
    assert.ok(inviter.responder.sessionCount <= MAX_SESSIONS, "bounded");
    assert.equal(inviter.responder.sessionCount, 50, "the global bucket let 50 through");
    assert.equal(counters.rateLimited, 70, "the rest were rate limited");

    await runFor(world, 950);
    burst(120);
    await runFor(world, 50);
    assert.equal(inviter.responder.sessionCount, MAX_SESSIONS, "full, never more");
    assert.equal(counters.rateLimited, 140);

    await runFor(world, 1_950); // both buckets full again
    const before = counters.rateLimited;
    burst(1, 12); // one address, twelve INITs at once
    await runFor(world, 50);
    assert.equal(counters.rateLimited - before, 7, "one address gets 5 handshakes a second");
    assert.equal(inviter.responder.sessionCount, MAX_SESSIONS);

    await runFor(world, 500);
    const joiner = createJoiner(world, "10.0.0.2");
    const { value } = await accepted(world, joiner.join(token));
    assert.deepEqual(value.admission.record.member, joiner.publicKey, "the real joiner got in");
    assert.ok(inviter.responder.sessionCount <= MAX_SESSIONS);

    await runFor(world, SESSION_TIMEOUT_MS + 100);
    assert.equal(inviter.responder.sessionCount, 0, "every session ends");
    assert.ok(counters.expiredSessions > 0, "the flood's sessions expired unanswered");
    assert.equal(counters.accepted, 1, "the flood admitted nobody");
    assert.equal(inviter.members.members().length, 2, "founder and joiner");
  });
});

describe("join exchange: garbage", () => {
  test("property: random and mutated join datagrams never admit anyone, and the responder keeps serving", async () => {
    const world = createWorld(400);
    const inviter = createInviter(world);
    const { token, id } = inviter.invite({ uses: 10 });
    const first = createJoiner(world, "10.0.0.2");
    await accepted(world, first.join(token));
    const valid = [...first.sent, ...inviter.sent].map((s) => s.data);
    assert.deepEqual(valid.map((d) => d[1]).sort(), [KIND.init, KIND.resp, KIND.req, KIND.reply]);
    const counters = inviter.responder.counters;
    const membersBefore = inviter.members.size;
    const datagram = fc.oneof(
      fc.uint8Array({ maxLength: 1600 }),
      fc
        .tuple(fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 300 }))
        .map(([kind, rest]) => Uint8Array.of(0x57, kind, ...rest)),
      fc
        .record({
          base: fc.constantFrom(...valid),
          edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
          cut: fc.option(fc.nat(), { nil: undefined }),
          extra: fc.uint8Array({ maxLength: 4 }),
        })
        .map(({ base, edits, cut, extra }) => {
          let bytes = base.slice();
          for (const [at, x] of edits) bytes[at % bytes.length]! ^= x;
          if (cut !== undefined) bytes = bytes.subarray(0, cut % (bytes.length + 1));
          return Uint8Array.of(...bytes, ...extra);
        }),
    );
    fc.assert(
      fc.property(datagram, fc.integer({ min: 1, max: 250 }), (data, host) => {
        inviter.responder.receive(data, { address: `10.2.0.${host}`, port: PORT });
        assert.equal(counters.accepted, 1, "nobody else was accepted");
        assert.equal(inviter.members.size, membersBefore, "nobody else was admitted");
        assert.deepEqual(usedBy(inviter, id), [first.key], "no use was spent");
      }),
      { numRuns: 400, seed: 400 },
    );
    await runFor(world, 2_000);
    const second = createJoiner(world, "10.0.0.3");
    await accepted(world, second.join(token));
    assert.deepEqual(usedBy(inviter, id), [first.key, second.key], "a real joiner is still served");
  });

  test("property: parseMessage, decodeRequest and decodeReply never throw on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1600 }), (bytes) => {
        parseMessage(bytes);
        parseMessage(Uint8Array.of(0x57, 1 + ((bytes[0] ?? 0) % 5), ...bytes));
        assert.equal(typeof decodeRequest(bytes).ok, "boolean");
        assert.equal(typeof decodeReply(bytes).ok, "boolean");
      }),
      { numRuns: 1000, seed: 401 },
    );
  });

  test("property: decodeRequest and decodeReply never throw on CBOR of the right shape with wrong fields", () => {
    const leaf = fc.oneof(
      fc.integer({ min: -1000, max: 70_000 }),
      fc.string({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.constant(null),
      fc.boolean(),
    );
    const { value } = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("value"), { maxLength: 4 })),
    }));
    const shaped = fc.oneof(
      fc.array(value, { minLength: 7, maxLength: 7 }).map((rest) => [1, "accept", ...rest]),
      fc.array(value, { minLength: 2, maxLength: 3 }).map((rest) => [1, "refuse", ...rest]),
      fc.array(value, { minLength: 3, maxLength: 3 }).map((rest) => [1, ...rest]),
      fc.array(value, { maxLength: 10 }),
    );
    fc.assert(
      fc.property(shaped, (fields) => {
        const bytes = canonicalCbor(fields);
        const request = decodeRequest(bytes);
        if (request.ok)
          assert.equal(request.value.meshId.length, 16, "a request's mesh id is 16 bytes");
        const reply = decodeReply(bytes);
        if (reply.ok && reply.value.kind === "accept") {
          for (const peer of reply.value.peers)
            assert.equal(peer.publicKey.length, 32, "peer keys are keys");
        }
      }),
      { numRuns: 1000, seed: 402 },
    );
    // The well-formed ones decode, so the property is not vacuous.
    const request = {
      meshId: new Uint8Array(16),
      signingKey: new Uint8Array(32).fill(1),
      nickname: "n",
    };
    assert.deepEqual(decodeRequest(encodeRequest(request)), { ok: true, value: request });
  });
});
