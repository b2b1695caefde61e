/**
 * The join exchange end to end on the simulated network: a founder with a genesis and an
 * invitation book answers joiners that hold its tokens; every refusal has its code and
 * words; races, stalls, floods and garbage leave the inviter serving.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import fc from "fast-check";
import { nobleCrypto as crypto, toBase64, toHex } from "../../src/crypto/index.ts";
import { InvitationBook } from "../../src/membership/invitations.ts";
import { JoinError, type JoinOptions, joinMesh } from "../../src/membership/join-client.ts";
import { splitJoinTraffic } from "../../src/membership/join-demux.ts";
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  initMessage,
  isJoinMessage,
  type KnownPeer,
  MAX_DATAGRAM_BYTES,
  parseMessage,
} from "../../src/membership/join-protocol.ts";
import { JoinResponder, MAX_SESSIONS } from "../../src/membership/join-responder.ts";
import { Members } from "../../src/membership/members.ts";
import { canonicalCbor, signRecord } from "../../src/membership/records.ts";
import {
  decodeToken,
  type Invite,
  invitationId,
  invitationPsk,
} from "../../src/membership/token.ts";
import type { PacketConn } from "../../src/net/packet-conn.ts";
import {
  createRandom,
  type LinkOptions,
  MemoryStore,
  SimNetwork,
  VirtualClock,
} from "../../src/sim/index.ts";
import {
  createInitiation,
  createLocalIdentity,
  createRemoteIdentity,
} from "../../src/tunnel/handshake.ts";

const MESH = Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i);
const OTHER_MESH = Uint8Array.from({ length: 16 }, (_, i) => 0x80 + i);
const PORT = 51820;
const FOUNDER = "10.0.0.1";
const EPOCH = Date.UTC(2026, 10, 28, 9, 0, 0);

type World = ReturnType<typeof world>;

function world(seed = 1, link: Partial<LinkOptions> = { latencyMs: 15 }) {
  const clock = new VirtualClock({ epochMs: EPOCH });
  const network = new SimNetwork({ clock, random: createRandom(seed), defaultLink: link });
  return { clock, network };
}

let keySeed = 0;
function keys() {
  keySeed++;
  const privateKey = crypto.generatePrivateKey();
  const signingSecret = new Uint8Array(32).fill(keySeed);
  return {
    privateKey,
    publicKey: crypto.publicKey(privateKey),
    signingSecret,
    signingKey: ed25519.getPublicKey(signingSecret),
  };
}

/** The founder of MESH at 10.0.0.1, answering joins on its one socket. */
function founder(w: World, address = FOUNDER) {
  const own = keys();
  const genesis = signRecord(
    MESH,
    {
      kind: "admission",
      version: 1,
      member: own.publicKey,
      signingKey: own.signingKey,
      nickname: "founder",
      admittedBy: null,
      invitation: null,
      at: w.clock.wallNow(),
    },
    own.signingSecret,
  );
  const members = new Members({ meshId: MESH, genesis });
  const store = new MemoryStore();
  const loaded = InvitationBook.load(store, (n) => crypto.randomBytes(n));
  assert.ok(loaded.ok, "an empty book");
  const book = loaded.value;
  const conn = w.network.listen(address, PORT);
  const { mesh, join } = splitJoinTraffic(conn);
  const meshReceived: Uint8Array[] = [];
  mesh.onReceive((data) => meshReceived.push(data.slice()));
  const peers: KnownPeer[] = [
    {
      publicKey: new Uint8Array(32).fill(3),
      nickname: "old",
      endpoints: [{ address: "10.0.0.9", port: PORT }],
    },
  ];
  const responder = new JoinResponder({
    crypto,
    clock: w.clock,
    privateKey: own.privateKey,
    meshId: MESH,
    invitations: book,
    send: (data, to) => join.send(data, to),
    admit: (request) => {
      if (members.isRemoved(request.member)) return { refused: "this key was removed" };
      const admission = signRecord(
        MESH,
        {
          kind: "admission",
          version: 1,
          member: request.member,
          signingKey: request.signingKey,
          nickname: request.nickname ?? "peer",
          admittedBy: own.publicKey,
          invitation: request.invitation,
          at: Math.floor(w.clock.wallNow()),
        },
        own.signingSecret,
      );
      members.receive(admission);
      return {
        genesis: genesis.bytes,
        inviterAdmission: genesis.bytes,
        admission: admission.bytes,
      };
    },
    settings: () => ({ domain: "weft.internal", range: "10.40.0.0/16", nickname: "founder" }),
    peers: () => peers,
  });
  join.onReceive((data, from) => responder.receive(data, from));
  const endpoint = { host: address, port: PORT };
  function invite(
    options: { ttlMs?: number; uses?: number; nickname?: string; meshId?: Uint8Array } = {},
    endpoints = [endpoint],
  ): { text: string; token: Invite; id: Uint8Array } {
    const { token } = book.create({
      meshId: options.meshId ?? MESH,
      inviterKey: own.publicKey,
      endpoints,
      ttlMs: options.ttlMs,
      uses: options.uses,
      nickname: options.nickname,
      now: w.clock.wallNow(),
    });
    const decoded = decodeToken(token);
    assert.ok(decoded.ok, "our own token decodes");
    return { text: token, token: decoded.value, id: invitationId(decoded.value.secret) };
  }
  return { own, genesis, members, book, store, conn, responder, meshReceived, invite, endpoint };
}

/** A joiner at `address`; `wrap` may stand between it and its socket. */
function joiner(w: World, address: string, wrap: (conn: PacketConn) => PacketConn = (c) => c) {
  const own = keys();
  const conn = w.network.listen(address, PORT);
  const { mesh, join } = splitJoinTraffic(conn);
  const meshReceived: Uint8Array[] = [];
  mesh.onReceive((data) => meshReceived.push(data.slice()));
  return {
    own,
    conn,
    mesh,
    meshReceived,
    join: (token: Invite, more: Partial<JoinOptions> = {}) =>
      joinMesh({
        crypto,
        clock: w.clock,
        conn: wrap(join),
        token,
        privateKey: own.privateKey,
        signingPublicKey: own.signingKey,
        ...more,
      }),
  };
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Runs virtual time in 10 ms steps until every promise settles (or `limitMs` passes). */
async function settle<T>(
  w: World,
  promises: Promise<T>[],
  limitMs = 30_000,
): Promise<Outcome<T>[]> {
  const outcomes: (Outcome<T> | undefined)[] = promises.map(() => undefined);
  promises.forEach((p, i) => {
    p.then(
      (value) => {
        outcomes[i] = { ok: true, value };
      },
      (error) => {
        outcomes[i] = { ok: false, error };
      },
    );
  });
  const flush = async () => {
    for (let i = 0; i < 10; i++) await Promise.resolve();
  };
  for (let t = 0; t <= limitMs && outcomes.some((o) => o === undefined); t += 10) {
    await flush();
    w.clock.advance(10);
  }
  await flush();
  assert.ok(
    outcomes.every((o) => o !== undefined),
    `every join settled within ${limitMs} ms`,
  );
  return outcomes as Outcome<T>[];
}

async function joinOne<T>(w: World, promise: Promise<T>): Promise<Outcome<T>> {
  return (await settle(w, [promise]))[0]!;
}

function refusal(outcome: Outcome<unknown>, code: string, words: RegExp): JoinError {
  assert.ok(!outcome.ok, `expected a refusal (${code}), the join succeeded`);
  const error = outcome.error;
  assert.ok(error instanceof JoinError, `a JoinError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  assert.match(error.message, words);
  return error;
}

function accepted<T>(outcome: Outcome<T>): T {
  assert.ok(outcome.ok, `expected acceptance, got ${outcome.ok ? "" : String(outcome.error)}`);
  return outcome.value;
}

describe("join exchange", () => {
  test("joins through the one working endpoint of three, and gets what it needs", async () => {
    const w = world();
    const f = founder(w);
    const { token } = f.invite({ nickname: "web" }, [
      { host: "10.0.0.99", port: PORT }, // nobody there
      { host: "inviter.example.com", port: 4000 }, // a name: resolves to another dead address
      f.endpoint,
    ]);
    const j = joiner(w, "10.0.1.1");
    const resolved: string[] = [];
    const result = accepted(
      await joinOne(
        w,
        j.join(token, {
          resolve: async (host) => {
            resolved.push(host);
            return ["10.0.0.98"];
          },
        }),
      ),
    );
    assert.deepEqual(resolved, ["inviter.example.com"]);
    assert.deepEqual(result.endpoint, { address: FOUNDER, port: PORT });
    assert.deepEqual(result.settings, { domain: "weft.internal", range: "10.40.0.0/16" });
    assert.equal(result.inviterNickname, "founder");
    assert.deepEqual(result.peers, [
      {
        publicKey: toBase64(new Uint8Array(32).fill(3)),
        nickname: "old",
        endpoints: [{ address: "10.0.0.9", port: PORT }],
      },
    ]);
    const admission = result.admission.record;
    assert.ok(admission.kind === "admission", "an admission");
    assert.deepEqual(admission.member, j.own.publicKey);
    assert.equal(admission.nickname, "web", "the invitation's nickname wins");
    // The joiner's own replica: genesis plus the records it got make it a member.
    const replica = new Members({ meshId: MESH, genesis: result.genesis });
    replica.receive(result.inviterAdmission);
    assert.equal(replica.receive(result.admission), "accepted");
    assert.ok(replica.isMember(j.own.publicKey), "the joiner's replica admits it");
    assert.ok(f.members.isMember(j.own.publicKey), "the founder's members admit it");
    assert.deepEqual(f.book.list()[0]!.usedBy, [toBase64(j.own.publicKey)]);
    assert.equal(f.responder.counters.accepted, 1);
    // The join traffic never reached either mesh side; WireGuard traffic still does.
    assert.equal(f.meshReceived.length + j.meshReceived.length, 0);
    const wireguard = new Uint8Array(148);
    wireguard[0] = 1;
    j.mesh.send(wireguard, { address: FOUNDER, port: PORT });
    w.clock.advance(100);
    assert.equal(f.meshReceived.length, 1, "a WireGuard message goes to the mesh side");
    assert.equal(f.responder.counters.malformed, 0, "and not to the responder");
  });

  test("retransmits through 40% loss, and the use is spent once", async () => {
    const w = world(7, { latencyMs: 30, lossRate: 0.4 });
    const f = founder(w);
    const { token } = f.invite();
    const j = joiner(w, "10.0.1.1");
    accepted(await joinOne(w, j.join(token, { timeoutMs: 30_000 })));
    assert.deepEqual(f.book.list()[0]!.usedBy, [toBase64(j.own.publicKey)]);
    assert.equal(f.responder.counters.accepted, 1, "one decision, however many resends");
  });

  test("a joiner whose answers are lost past the inviter's session life handshakes again", async () => {
    const w = world();
    const f = founder(w);
    const { token } = f.invite();
    let dropped = 0;
    const j = joiner(w, "10.0.1.1", (conn) => ({
      ...conn,
      localPort: conn.localPort,
      onReceive: (handler) =>
        conn.onReceive((data, from) => {
          if (parseMessage(data)?.kind === "reply" && w.clock.now() < 12_000) dropped++;
          else handler(data, from);
        }),
    }));
    const result = accepted(await joinOne(w, j.join(token, { timeoutMs: 30_000 })));
    assert.deepEqual(result.admission.record.member, j.own.publicKey);
    assert.ok(dropped >= 10, `replies were lost: ${dropped}`);
    assert.ok(f.responder.counters.accepted >= 2, "a second session got the same yes");
    assert.deepEqual(f.book.list()[0]!.usedBy, [toBase64(j.own.publicKey)], "one use");
  });

  test("an expired token is refused with its expiry", async () => {
    const w = world();
    const f = founder(w);
    const { token } = f.invite({ ttlMs: 60_000 });
    w.clock.advance(61_000);
    const outcome = await joinOne(w, joiner(w, "10.0.1.1").join(token));
    refusal(outcome, "expired", /invitation expired at 2026-11-28T09:01:00\.000Z/);
  });

  test("a used single-use token is refused; its joiner asking again gets the same yes", async () => {
    const w = world();
    const f = founder(w);
    const { token } = f.invite();
    const first = joiner(w, "10.0.1.1");
    accepted(await joinOne(w, first.join(token)));
    const second = joiner(w, "10.0.1.2");
    refusal(await joinOne(w, second.join(token)), "used", /invitation was already used/);
    // The first joiner lost its answer and runs the join again: same key, same yes.
    first.conn.close();
    const again = joinMesh({
      crypto,
      clock: w.clock,
      conn: splitJoinTraffic(w.network.listen("10.0.1.1", 40000)).join,
      token,
      privateKey: first.own.privateKey,
      signingPublicKey: first.own.signingKey,
    });
    accepted(await joinOne(w, again));
    assert.equal(f.book.list()[0]!.usedBy.length, 1);
  });

  test("a revoked token is refused, saying its inviter revoked it", async () => {
    const w = world();
    const f = founder(w);
    const { token, id } = f.invite();
    assert.equal(f.book.revoke(toHex(id).slice(0, 8), w.clock.wallNow()), 1);
    refusal(
      await joinOne(w, joiner(w, "10.0.1.1").join(token)),
      "revoked",
      /invitation was revoked by its inviter/,
    );
  });

  test("a token for another mesh is refused, naming both meshes and the peer", async () => {
    const w = world();
    const f = founder(w);
    const { token } = f.invite({ meshId: OTHER_MESH });
    refusal(
      await joinOne(w, joiner(w, "10.0.1.1").join(token)),
      "wrong-mesh",
      new RegExp(
        `invitation is for mesh ${toHex(OTHER_MESH)} but the peer at 10\\.0\\.0\\.1:51820 is in mesh ${toHex(MESH)}`,
      ),
    );
    assert.equal(f.book.list()[0]!.usedBy.length, 0, "no use spent");
  });

  test("a tampered token never leaves the joiner; one naming another inviter gets no answer", async () => {
    const w = world();
    const f = founder(w);
    const { text, token } = f.invite();
    const at = Math.floor(text.length / 2);
    const flipped = text.slice(0, at) + (text[at] === "A" ? "B" : "A") + text.slice(at + 1);
    const decoded = decodeToken(flipped);
    assert.ok(!decoded.ok && /damaged or altered/.test(decoded.error), "refused as altered");
    // A man in the middle swaps in its own key (recomputing the check needs only the
    // secret): the joiner's handshake is then to a key the real inviter does not hold.
    const mitm = keys();
    const forged: Invite = { ...token, inviterKey: mitm.publicKey };
    refusal(
      await joinOne(w, joiner(w, "10.0.1.1").join(forged, { timeoutMs: 5000 })),
      "unreachable",
      /no answer from any endpoint \(tried 10\.0\.0\.1:51820\): the inviter may be down or unreachable/,
    );
    assert.equal(f.responder.counters.badHandshake > 0, true, "the inviter could not read it");
    assert.equal(f.book.list()[0]!.usedBy.length, 0);
  });

  test("a man in the middle with the inviter's book but not its key cannot answer", async () => {
    const w = world();
    const f = founder(w);
    const { token } = f.invite();
    // The attacker sits at the token's endpoint with a copy of the book (id and psk).
    const stolen = new MemoryStore();
    stolen.save("invitations", f.store.load("invitations")!);
    const book = InvitationBook.load(stolen, (n) => crypto.randomBytes(n));
    assert.ok(book.ok, "the stolen book loads");
    const conn = w.network.listen("10.0.0.66", PORT);
    const attacker = new JoinResponder({
      crypto,
      clock: w.clock,
      privateKey: keys().privateKey,
      meshId: MESH,
      invitations: book.value,
      send: (data, to) => conn.send(data, to),
      admit: () => ({ refused: "never" }),
      settings: () => ({ domain: "x", range: "10.0.0.0/8", nickname: "evil" }),
      peers: () => [],
    });
    conn.onReceive((data, from) => attacker.receive(data, from));
    const j = joiner(w, "10.0.1.1");
    const outcome = await joinOne(
      w,
      j.join({ ...token, endpoints: [{ host: "10.0.0.66", port: PORT }] }, { timeoutMs: 4000 }),
    );
    refusal(outcome, "unreachable", /no answer/);
    assert.ok(attacker.counters.badHandshake > 0, "the impostor could not open the initiation");
  });

  test("an unknown invitation: NOT_FOUND is a diagnostic, then a clear error", async () => {
    const w = world();
    const f = founder(w);
    const { token } = f.invite();
    const stranger = { ...token, secret: new Uint8Array(32).fill(0xee) };
    refusal(
      await joinOne(w, joiner(w, "10.0.1.1").join(stranger, { timeoutMs: 4000 })),
      "unknown",
      /no peer at the token's endpoints knows this invitation/,
    );
    assert.ok(f.responder.counters.notFound > 0, "counted");
    // With a silent second endpoint, one NOT_FOUND does not decide.
    const both = { ...stranger, endpoints: [f.endpoint, { host: "10.0.0.99", port: PORT }] };
    refusal(
      await joinOne(w, joiner(w, "10.0.1.2").join(both, { timeoutMs: 4000 })),
      "unreachable",
      /no answer/,
    );
  });

  test("two joiners race for one single-use token: exactly one gets in", async () => {
    for (const seed of [1, 2, 3]) {
      const w = world(seed, { latencyMs: 20, jitterMs: 15 });
      const f = founder(w);
      const { token } = f.invite();
      const a = joiner(w, "10.0.1.1");
      const b = joiner(w, "10.0.1.2");
      const outcomes = await settle(w, [a.join(token), b.join(token)]);
      const wins = outcomes.filter((o) => o.ok);
      assert.equal(
        wins.length,
        1,
        `seed ${seed}: exactly one joins ${outcomes.map((o) => (o.ok ? "ok" : String(o.error)))}`,
      );
      refusal(outcomes.find((o) => !o.ok)!, "used", /already used/);
      assert.equal(f.book.list()[0]!.usedBy.length, 1);
      assert.equal(f.members.size, 2, `seed ${seed}: founder and one joiner`);
    }
  });

  test("a token for 3 uses admits 3 joiners and refuses a 4th", async () => {
    const w = world();
    const f = founder(w);
    const { token } = f.invite({ uses: 3 });
    const joiners = [1, 2, 3, 4].map((n) => joiner(w, `10.0.1.${n}`));
    const outcomes = await settle(
      w,
      joiners.slice(0, 3).map((j) => j.join(token)),
    );
    assert.ok(
      outcomes.every((o) => o.ok),
      "three join",
    );
    refusal(await joinOne(w, joiners[3]!.join(token)), "used", /used up \(3 uses\)/);
    assert.equal(f.members.size, 4);
  });

  test("a joiner that stalls after its handshake is timed out; another is served meanwhile", async () => {
    const w = world();
    const f = founder(w);
    const { token, id } = f.invite({ uses: 2 });
    // It sends its initiation, gets the response, and is never heard of again.
    const stalled = w.network.listen("10.0.1.1", PORT);
    const responses: Uint8Array[] = [];
    stalled.onReceive((data) => responses.push(data.slice()));
    const local = createLocalIdentity(crypto, crypto.generatePrivateKey());
    const remote = createRemoteIdentity(
      crypto,
      local,
      token.inviterKey,
      invitationPsk(token.secret),
    );
    const made = createInitiation(crypto, local, remote, 77, w.clock.wallNow())!;
    stalled.send(initMessage(id, made.message), { address: FOUNDER, port: PORT });
    w.clock.advance(100);
    assert.equal(parseMessage(responses[0] ?? new Uint8Array())?.kind, "resp", "it was answered");
    assert.equal(f.responder.sessionCount, 1, "a session waits for its request");
    const served = joiner(w, "10.0.1.2");
    accepted(await joinOne(w, served.join(token)));
    assert.equal(f.responder.sessionCount, 2, "served while the stalled session waits");
    w.clock.advance(10_000);
    assert.equal(f.responder.sessionCount, 0, "both sessions are gone after 10 s");
    assert.equal(f.responder.counters.expiredSessions, 1, "the stalled one timed out unanswered");
    assert.deepEqual(f.book.list()[0]!.usedBy, [toBase64(served.own.publicKey)]);
  });

  test("a joiner that never gets its request through gives up with a clear error", async () => {
    const w = world();
    const f = founder(w);
    const { token } = f.invite();
    const j = joiner(w, "10.0.1.1", (conn) => ({
      ...conn,
      localPort: conn.localPort,
      send: (data, to) => {
        if (parseMessage(data)?.kind !== "req") conn.send(data, to);
      },
    }));
    refusal(
      await joinOne(w, j.join(token, { timeoutMs: 8000 })),
      "unreachable",
      /the inviter at 10\.0\.0\.1:51820 stopped answering/,
    );
    w.clock.advance(10_000);
    assert.equal(f.responder.sessionCount, 0, "the inviter holds nothing for it");
    assert.equal(f.book.list()[0]!.usedBy.length, 0, "and spent nothing");
  });

  test("a flood of valid handshakes keeps pending state bounded and is rate-limited", async () => {
    const w = world(1, { latencyMs: 1 });
    const f = founder(w);
    const { token, id } = f.invite();
    const psk = invitationPsk(token.secret);
    let index = 1;
    const initiation = () => {
      const local = createLocalIdentity(crypto, crypto.generatePrivateKey());
      const remote = createRemoteIdentity(crypto, local, token.inviterKey, psk);
      return initMessage(
        id,
        createInitiation(crypto, local, remote, index++, w.clock.wallNow())!.message,
      );
    };
    // One source sending 20 a second gets at most 5 handshakes a second.
    const loud = w.network.listen("10.2.0.1", PORT);
    for (let i = 0; i < 20; i++) loud.send(initiation(), { address: FOUNDER, port: PORT });
    w.clock.advance(10);
    assert.equal(f.responder.sessionCount, 5, "per-source limit");
    // Then 160 sources, 40 a step, 4 steps of 300 ms.
    let most = 0;
    for (let step = 0; step < 4; step++) {
      for (let i = 0; i < 40; i++) {
        w.network
          .listen(`10.3.${step}.${i + 1}`, PORT)
          .send(initiation(), { address: FOUNDER, port: PORT });
      }
      w.clock.advance(300);
      most = Math.max(most, f.responder.sessionCount);
    }
    assert.ok(most <= MAX_SESSIONS, `sessions stayed at or under ${MAX_SESSIONS}: ${most}`);
    assert.ok(most >= MAX_SESSIONS - 10, `the flood did fill the table: ${most}`);
    assert.ok(f.responder.counters.rateLimited > 15, "rate limits dropped some");
    w.clock.advance(11_000);
    assert.equal(f.responder.sessionCount, 0, "all expire");
    accepted(await joinOne(w, joiner(w, "10.0.1.1").join(token)));
  });
});

describe("join protocol codecs and robustness", () => {
  test("requests and replies round-trip; a reply is trimmed to one datagram", () => {
    const request = { meshId: MESH, signingKey: new Uint8Array(32).fill(1), nickname: "web" };
    assert.deepEqual(decodeRequest(encodeRequest(request)), { ok: true, value: request });
    const record = new Uint8Array(300).fill(9);
    const peers = Array.from({ length: 40 }, (_, i) => ({
      publicKey: new Uint8Array(32).fill(i),
      nickname: `peer-${i}`,
      endpoints: [{ address: `10.0.${i}.1`, port: PORT }],
    }));
    const accept = {
      kind: "accept" as const,
      genesis: record,
      inviterAdmission: record,
      admission: record,
      domain: "weft.internal",
      range: "10.40.0.0/16",
      inviterNickname: "founder",
      peers,
    };
    const bytes = encodeReply(accept);
    assert.ok(bytes.length + 6 + 16 <= MAX_DATAGRAM_BYTES, `reply is ${bytes.length} bytes`);
    const decoded = decodeReply(bytes);
    assert.ok(decoded.ok && decoded.value.kind === "accept", "decodes");
    assert.ok(decoded.value.peers.length > 0 && decoded.value.peers.length < 40, "trimmed");
    assert.deepEqual(decoded.value.peers, peers.slice(0, decoded.value.peers.length));
    const refuse = {
      kind: "refuse" as const,
      code: "wrong-mesh" as const,
      message: "m",
      meshId: MESH,
    };
    assert.deepEqual(decodeReply(encodeReply(refuse)), { ok: true, value: refuse });
    assert.ok(!decodeReply(canonicalCbor([1, "refuse", "bogus", "m"])).ok, "unknown code");
    assert.ok(!decodeReply(canonicalCbor([1, "refuse", "used", "x".repeat(301)])).ok, "too long");
    assert.ok(isJoinMessage(new Uint8Array([0x57, 1])), "W 1 is a join message");
    assert.ok(!isJoinMessage(new Uint8Array([1, 0, 0, 0])), "a WireGuard initiation is not");
    assert.ok(!isJoinMessage(new Uint8Array([0x57, 9])), "nor an unknown kind");
  });

  test("property: decoders never throw on random bytes or random CBOR", () => {
    const cborish = fc
      .array(
        fc.oneof(
          fc.integer(),
          fc.string({ maxLength: 20 }),
          fc.uint8Array({ maxLength: 40 }),
          fc.constant(null),
        ),
        {
          maxLength: 10,
        },
      )
      .map((items) => canonicalCbor([1, ...items]));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 1600 }), cborish), (bytes) => {
        parseMessage(bytes);
        assert.equal(typeof decodeRequest(bytes).ok, "boolean");
        assert.equal(typeof decodeReply(bytes).ok, "boolean");
        const framed = new Uint8Array(bytes.length + 2);
        framed.set([0x57, (bytes[0] ?? 0) % 6], 0);
        framed.set(bytes, 2);
        parseMessage(framed);
      }),
      { numRuns: 1000 },
    );
  });

  test("property: random datagrams never throw from the responder, which keeps serving", async () => {
    const w = world();
    const f = founder(w);
    const { token, id } = f.invite();
    const from = { address: "10.9.0.1", port: 1 };
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 6 }),
        fc.uint8Array({ maxLength: 1500 }),
        fc.boolean(),
        (kind, body, withId) => {
          const data = new Uint8Array(2 + (withId ? 16 : 0) + body.length);
          data.set([0x57, kind]);
          if (withId) data.set(id, 2);
          data.set(body, withId ? 18 : 2);
          f.responder.receive(data, from);
          f.responder.receive(body, from);
        },
      ),
      { numRuns: 500 },
    );
    w.clock.advance(2000);
    accepted(await joinOne(w, joiner(w, "10.0.1.1").join(token)));
  });
});
