/**
 * Members-only enforcement in simulation: real Meshes (Devices, gossip, routing) on a
 * virtual clock and a seeded network, each asking its own `Members` replica who may get
 * in, the replicas kept equal by `replicateMembers` over the mesh's own gossip. Each test
 * names its seed when it fails; rerun with WEFT_SEED=<seed>.
 */
import assert from "node:assert/strict";
import { log } from "node:console";
import { describe, test } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import { toBase64, toHex } from "../../src/crypto/index.ts";
import { Members } from "../../src/membership/members.ts";
import { signRecord } from "../../src/membership/records.ts";
import {
  type MembershipChange,
  MembershipError,
  type MembershipReplication,
  replicateMembers,
} from "../../src/membership/replicate.ts";
import { DEFAULT_HOP_LIMIT, encodeRelay } from "../../src/mesh/frames.ts";
import type { PeerKey } from "../../src/mesh/gossip-state.ts";
import { Mesh } from "../../src/mesh/mesh.ts";
import type { Endpoint } from "../../src/net/packet-conn.ts";
import { SimNetwork } from "../../src/sim/network.ts";
import { createRandom } from "../../src/sim/random.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";
import { providers } from "../helpers/providers.ts";

const native = providers[1]![1];
const SEED = Number(globalThis.process?.env?.WEFT_SEED ?? 20261208);
const PORT = 51820;
/** The gossip engine's default anti-entropy period: the unit the bounds count in. */
const GOSSIP_INTERVAL_MS = 5_000;
const MESSAGE_INITIATION_TYPE = 1;

async function withSeed(name: string, body: (seed: number) => Promise<void> | void) {
  try {
    await body(SEED);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(`${name} failed with seed ${SEED} (rerun with WEFT_SEED=${SEED}): ${why}`, {
      cause: error,
    });
  }
}

interface Node {
  readonly index: number;
  readonly name: string;
  readonly address: string;
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly key: PeerKey;
  readonly signingSecret: Uint8Array;
  readonly signingKey: Uint8Array;
  members: Members;
  replication: MembershipReplication | undefined;
  mesh: Mesh;
  readonly changes: MembershipChange[];
  readonly received: { from: PeerKey; data: Uint8Array }[];
  /** Handshake initiations this node sent (for replaying them inside relay frames). */
  readonly initiations: Uint8Array[];
}

interface Cluster {
  readonly clock: VirtualClock;
  readonly network: SimNetwork;
  readonly meshId: Uint8Array;
  readonly nodes: Node[];
  /** Starts (or restarts) a node's Mesh: a member replicating `members`, or a rogue without rules. */
  start(
    node: Node,
    how: { members?: Members; staticPeers: readonly Node[]; veto?: (key: PeerKey) => boolean },
  ): void;
  run(ms: number): void;
  /** Runs until `done()` holds, checking every `stepMs`; the virtual ms it took, or -1. */
  runUntil(done: () => boolean, limitMs: number, stepMs?: number): number;
  close(): Promise<void>;
}

function addressOf(index: number): string {
  return `198.18.0.${index + 1}`;
}

/**
 * `count` nodes; the first `memberCount` are members from the start (node 0 founded the
 * mesh and admitted the others), each configured with node 0 as its static peer and
 * learning the rest by gossip. The other nodes are created but not started.
 */
function createCluster(seed: number, count: number, memberCount: number): Cluster {
  const clock = new VirtualClock();
  const random = createRandom(seed);
  const network = new SimNetwork({
    clock,
    random,
    defaultLink: { latencyMs: 5, jitterMs: 2 },
  });
  const keys = createRandom(seed ^ 0x5eed);
  const meshId = keys.bytes(16);
  const nodes: Node[] = [];
  for (let index = 0; index < count; index++) {
    const privateKey = keys.bytes(32);
    const publicKey = native.publicKey(privateKey);
    const signingSecret = keys.bytes(32);
    nodes.push({
      index,
      name: `p${index}`,
      address: addressOf(index),
      privateKey,
      publicKey,
      key: toBase64(publicKey),
      signingSecret,
      signingKey: ed25519.getPublicKey(signingSecret),
      members: undefined as unknown as Members,
      replication: undefined,
      mesh: undefined as unknown as Mesh,
      changes: [],
      received: [],
      initiations: [],
    });
  }
  const founder = nodes[0]!;
  const genesis = signRecord(
    meshId,
    {
      kind: "admission",
      version: 1,
      member: founder.publicKey,
      signingKey: founder.signingKey,
      nickname: founder.name,
      admittedBy: null,
      invitation: null,
      at: clock.wallNow(),
    },
    founder.signingSecret,
  );
  const admissions = nodes.slice(1, memberCount).map((node) =>
    signRecord(
      meshId,
      {
        kind: "admission",
        version: 1,
        member: node.publicKey,
        signingKey: node.signingKey,
        nickname: node.name,
        admittedBy: founder.publicKey,
        invitation: new Uint8Array(16).fill(node.index),
        at: clock.wallNow(),
      },
      founder.signingSecret,
    ),
  );

  const cluster: Cluster = {
    clock,
    network,
    meshId,
    nodes,
    start(node, how) {
      const socket = network.listen(node.address, PORT);
      const members = how.members;
      node.mesh = new Mesh({
        crypto: native,
        clock,
        conn: {
          localPort: socket.localPort,
          send: (data: Uint8Array, to: Endpoint) => {
            if (data[0] === MESSAGE_INITIATION_TYPE) node.initiations.push(data.slice());
            socket.send(data, to);
          },
          onReceive: (handler) => socket.onReceive(handler),
          close: () => socket.close(),
        },
        privateKey: node.privateKey,
        nickname: node.name,
        advertise: [{ address: node.address, port: PORT }],
        random: () => random.next(),
        initialVersion: 1 + clock.now(),
        isMember: members ? (key) => members.isMember(key) && !how.veto?.(key) : undefined,
        gossip: { intervalMs: GOSSIP_INTERVAL_MS },
      });
      node.mesh.onDatagram((from, _port, data) => node.received.push({ from, data }));
      if (members) {
        node.members = members;
        node.replication = replicateMembers(members, node.mesh, {
          meshId,
          self: node.publicKey,
          signingSecret: node.signingSecret,
          now: () => clock.wallNow(),
        });
        node.replication.onChange((change) => node.changes.push(change));
      }
      for (const other of how.staticPeers) {
        node.mesh.addPeer({
          publicKey: other.publicKey,
          endpoint: { address: other.address, port: PORT },
        });
      }
    },
    run(ms) {
      const end = clock.now() + ms;
      while (clock.now() < end) clock.advance(Math.min(50, end - clock.now()));
    },
    runUntil(done, limitMs, stepMs = 10) {
      const startMs = clock.now();
      while (clock.now() - startMs <= limitMs) {
        if (done()) return clock.now() - startMs;
        clock.advance(stepMs);
      }
      return -1;
    },
    async close() {
      for (const node of nodes) await node.mesh?.close();
    },
  };

  for (const node of nodes.slice(0, memberCount)) {
    const members = new Members({ meshId, genesis });
    for (const record of admissions) members.receive(record);
    cluster.start(node, { members, staticPeers: node === founder ? [] : [founder] });
  }
  return cluster;
}

/** The connected peers of a node, as its status says. */
function connectedTo(node: Node): PeerKey[] {
  return node.mesh
    .status()
    .peers.filter((p) => p.connected)
    .map((p) => p.publicKey)
    .sort();
}

/** Whether every pair of `nodes` is connected directly. */
function fullyConnected(nodes: readonly Node[]): boolean {
  return nodes.every((node) => {
    const connected = new Set(connectedTo(node));
    return nodes.every((other) => other === node || connected.has(other.key));
  });
}

/** Whether `node` holds any trace of `stranger`: Device peer or session, peer state in the Mesh. */
function holds(node: Node, stranger: Node): boolean {
  return (
    node.mesh.device.peers().some((p) => toBase64(p.publicKey) === stranger.key) ||
    node.mesh.device.hasSession(stranger.publicKey) ||
    node.mesh.members().includes(stranger.key) ||
    node.mesh.status().peers.some((p) => p.publicKey === stranger.key)
  );
}

/** Whether `node` refuses `key` in every way: not a member, nothing of it in Mesh or Device. */
function refuses(node: Node, other: Node): boolean {
  return !node.members.isMember(other.key) && !holds(node, other);
}

function drops(node: Node, reason: string): number {
  return node.mesh.drops()[reason] ?? 0;
}

function deviceDrops(node: Node, reason: string): number {
  return node.mesh.device.drops()[reason] ?? 0;
}

function sameDigest(nodes: readonly Node[]): boolean {
  const digest = toHex(nodes[0]!.members.digest());
  return nodes.every((node) => toHex(node.members.digest()) === digest);
}

describe("members-only mesh", () => {
  test("a key never admitted completes no handshake with any member, and relays drop frames naming it", () =>
    withSeed("stranger", async (seed) => {
      const cluster = createCluster(seed, 5, 4);
      const members = cluster.nodes.slice(0, 4);
      const [, m1, m2, m3] = members as [Node, Node, Node, Node];
      const stranger = cluster.nodes[4]!;
      const formed = cluster.runUntil(() => fullyConnected(members), 30_000, 100);
      assert.notEqual(formed, -1, "the four members connect to each other");

      // The stranger knows every member's key and endpoint and follows no rule of its own.
      cluster.start(stranger, { staticPeers: members });
      // WireGuard sends at most one initiation per peer every 5 s (REKEY_TIMEOUT), so 30 s
      // of trying is 6 or so per member.
      const refusedBefore = members.map((m) => drops(m, "handshake-not-member"));
      for (let second = 0; second < 30; second++) {
        for (const m of members) {
          stranger.mesh.device.connect(m.publicKey);
          stranger.mesh.sendDatagram(m.key, 7, new Uint8Array([second]));
        }
        cluster.run(1_000);
      }
      for (const [i, m] of members.entries()) {
        assert.ok(!holds(m, stranger), `${m.name} holds no peer, session or connection of it`);
        assert.ok(
          drops(m, "handshake-not-member") - refusedBefore[i]! >= 5,
          `${m.name} refused its initiations (${drops(m, "handshake-not-member")})`,
        );
        assert.ok(
          deviceDrops(m, "handshake-refused") >= drops(m, "handshake-not-member"),
          `${m.name}'s Device refused every one of them`,
        );
        assert.ok(
          !m.received.some((r) => r.from === stranger.key),
          `${m.name} got nothing from it`,
        );
      }
      assert.deepEqual(connectedTo(stranger), [], "the stranger has no connection");
      assert.ok(stranger.initiations.length >= 5 * members.length, "the stranger kept trying");
      assert.ok(fullyConnected(members), "the members stayed connected");

      // A member relaying on the stranger's behalf: its own initiation, in relay frames.
      const initiation = stranger.initiations.at(-1)!;
      const send = (to: Node, hopLimit: number, destination: Node, source: Node) =>
        m1.mesh.device.sendControl(
          to.publicKey,
          encodeRelay(hopLimit, destination.publicKey, source.publicKey, initiation),
        );
      const before = {
        spoofed: drops(m2, "relay-spoofed-source"),
        source: drops(m2, "relay-source-not-member"),
        destination: drops(m2, "relay-destination-not-member"),
      };
      // As the first relay sees it: the neighbour is not the source it names.
      assert.ok(send(m2, DEFAULT_HOP_LIMIT, m3, stranger), "m1 sends in its session with m2");
      // As a later relay sees it (it trusts the relays before it on who the source is).
      send(m2, DEFAULT_HOP_LIMIT - 1, m3, stranger);
      // The stranger as the destination.
      send(m2, DEFAULT_HOP_LIMIT - 1, stranger, m1);
      // At the destination itself.
      send(m2, DEFAULT_HOP_LIMIT - 1, m2, stranger);
      cluster.run(1_000);
      assert.equal(drops(m2, "relay-spoofed-source") - before.spoofed, 1, "the forged source");
      assert.equal(
        drops(m2, "relay-source-not-member") - before.source,
        2,
        "a non-member source, at a relay and at the destination",
      );
      assert.equal(
        drops(m2, "relay-destination-not-member") - before.destination,
        1,
        "a non-member destination",
      );
      for (const m of members) assert.ok(!holds(m, stranger), `${m.name} still holds nothing`);
      assert.ok(sameDigest(members), "the members' replicas agree");
      await cluster.close();
    }));

  test("a member admitted on one peer is let in by all once the record arrives", () =>
    withSeed("admission", async (seed) => {
      const cluster = createCluster(seed, 5, 4);
      const members = cluster.nodes.slice(0, 4);
      const admitter = members[2]!;
      const newcomer = cluster.nodes[4]!;
      assert.notEqual(
        cluster.runUntil(() => fullyConnected(members), 30_000, 100),
        -1,
      );

      // Not admitted yet, it knows the members (it holds their records) and tries them all.
      const early = new Members({ meshId: cluster.meshId, genesis: members[0]!.members.genesis });
      for (const record of members[0]!.members.records()) early.receive(record);
      cluster.start(newcomer, { members: early, staticPeers: members });
      cluster.run(10_000);
      for (const m of members) {
        assert.ok(!holds(m, newcomer), `${m.name} refuses it before it is admitted`);
        assert.ok(drops(m, "handshake-not-member") > 0, `${m.name} counted the refusals`);
      }

      // p2 admits it (a chain: p0 admitted p2); the record spreads by gossip.
      const admittedAt = cluster.clock.now();
      const record = admitter.replication!.admit({
        member: newcomer.publicKey,
        signingKey: newcomer.signingKey,
        nickname: newcomer.name,
        invitation: new Uint8Array(16).fill(0xaa),
      });
      const everywhere = cluster.runUntil(
        () => members.every((m) => m.members.isMember(newcomer.key)),
        GOSSIP_INTERVAL_MS * 5,
        1,
      );
      assert.notEqual(everywhere, -1, "the admission reaches every member");
      for (const m of members) {
        assert.ok(
          m.changes.some((c) => c.admitted.includes(newcomer.key)),
          `${m.name}'s onChange heard of it`,
        );
      }
      // It then joins as a joiner would: the records from its inviter, its inviter as peer.
      await newcomer.mesh.close();
      const joined = Members.restore(admitter.members.snapshot());
      assert.ok(joined.ok, "the inviter's snapshot restores");
      cluster.start(newcomer, { members: joined.value, staticPeers: [admitter] });
      const startedAt = cluster.clock.now();
      const connected = cluster.runUntil(
        () => fullyConnected([...members, newcomer]),
        GOSSIP_INTERVAL_MS * 6,
        10,
      );
      assert.notEqual(connected, -1, "it connects to every member, and they to it");
      assert.ok(newcomer.members.isMember(newcomer.key), "it holds its own admission");
      assert.ok(
        cluster.runUntil(() => sameDigest([...members, newcomer]), GOSSIP_INTERVAL_MS * 5) >= 0,
        "all five replicas converge",
      );
      assert.ok(
        members.every((m) => m.members.records().some((r) => toHex(r.hash) === toHex(record.hash))),
        "every member holds the admission",
      );
      log(
        `admission: on every member ${everywhere} ms after admit; newcomer connected to all 4 ${connected} ms after it started (gossip every ${GOSSIP_INTERVAL_MS} ms; admitted at ${admittedAt}, started at ${startedAt})`,
      );
      await cluster.close();
    }));

  test("a removed member is refused everywhere within 5 gossip periods and cannot come back", () =>
    withSeed("removal", async (seed) => {
      const cluster = createCluster(seed, 5, 5);
      const nodes = cluster.nodes;
      const removed = nodes[4]!;
      const others = nodes.slice(0, 4);
      assert.notEqual(
        cluster.runUntil(() => fullyConnected(nodes), 30_000, 100),
        -1,
      );
      // It talks to everyone before: datagrams flow both ways.
      for (const m of others) removed.mesh.sendDatagram(m.key, 1, new Uint8Array([1]));
      cluster.run(500);
      for (const m of others) {
        assert.ok(
          m.received.some((r) => r.from === removed.key),
          `${m.name} heard from it before`,
        );
      }

      const refusedBefore = others.map((m) => drops(m, "handshake-not-member"));
      nodes[1]!.replication!.remove(removed.publicKey);
      const took = cluster.runUntil(() => others.every((m) => refuses(m, removed)), 30_000, 1);
      assert.notEqual(took, -1, "every member refuses it");
      assert.ok(
        took <= 5 * GOSSIP_INTERVAL_MS,
        `refused everywhere after ${took} ms, gossip every ${GOSSIP_INTERVAL_MS} ms`,
      );
      for (const m of others) {
        assert.ok(
          m.changes.some((c) => c.removed.includes(removed.key)),
          `${m.name}'s onChange heard of the removal`,
        );
        assert.ok(m.members.isRemoved(removed.key), `${m.name} holds the removal`);
      }

      // It keeps trying with its old key, for a minute: handshakes, datagrams, relays.
      const heardBefore = others.map(
        (m) => m.received.filter((r) => r.from === removed.key).length,
      );
      for (let second = 0; second < 60; second++) {
        for (const m of others) {
          removed.mesh.device.connect(m.publicKey);
          removed.mesh.sendDatagram(m.key, 2, new Uint8Array([second]));
        }
        cluster.run(1_000);
        for (const m of others) assert.ok(!holds(m, removed), `${m.name} never lets it back`);
      }
      for (const [i, m] of others.entries()) {
        assert.equal(
          m.received.filter((r) => r.from === removed.key).length,
          heardBefore[i],
          `${m.name} got nothing more from it`,
        );
        assert.ok(
          drops(m, "handshake-not-member") - refusedBefore[i]! >= 10,
          `${m.name} refused its initiations (${drops(m, "handshake-not-member") - refusedBefore[i]!})`,
        );
      }
      assert.deepEqual(connectedTo(removed), [], "it has no connection left");
      assert.ok(fullyConnected(others), "the others stay connected");
      assert.ok(sameDigest(others), "the others' replicas agree");
      assert.throws(
        () =>
          nodes[2]!.replication!.admit({
            member: removed.publicKey,
            signingKey: removed.signingKey,
            nickname: "again",
          }),
        (error: unknown) => error instanceof MembershipError && error.code === "REMOVED",
      );
      log(
        `removal: refused by all 4 members ${took} ms after remove() (gossip every ${GOSSIP_INTERVAL_MS} ms); ${others.map((m, i) => drops(m, "handshake-not-member") - refusedBefore[i]!).join("/")} initiations refused per member in the next 60 s`,
      );
      await cluster.close();
    }));

  for (const partitionMs of [20_000, 240_000]) {
    test(`a member partitioned away for ${partitionMs / 1000} s during a removal refuses the key within 5 gossip periods of healing`, () =>
      withSeed(`partition-${partitionMs}`, async (seed) => {
        const cluster = createCluster(seed, 6, 6);
        const nodes = cluster.nodes;
        const removed = nodes[5]!;
        const away = nodes[4]!;
        const rest = nodes.slice(0, 4);
        assert.notEqual(
          cluster.runUntil(() => fullyConnected(nodes), 30_000, 100),
          -1,
        );

        // The removed peer and one member on one side, everyone else on the other.
        cluster.network.partition(
          [away.address, removed.address],
          rest.map((m) => m.address),
        );
        const partitionedAt = cluster.clock.now();
        cluster.run(8_000);
        nodes[1]!.replication!.remove(removed.publicKey);
        assert.notEqual(
          cluster.runUntil(() => rest.every((m) => refuses(m, removed)), 5 * GOSSIP_INTERVAL_MS, 1),
          -1,
          "the reachable members refuse it",
        );
        cluster.run(partitionMs - (cluster.clock.now() - partitionedAt));
        assert.ok(away.members.isMember(removed.key), "the member cut off has not heard");
        assert.ok(connectedTo(away).includes(removed.key), "and is still connected to it");
        assert.ok(
          rest.every((m) => !connectedTo(away).includes(m.key)),
          "and is connected to none of the others",
        );

        cluster.network.heal();
        const healedAt = cluster.clock.now();
        const refusedAfter = cluster.runUntil(() => refuses(away, removed), 120_000, 10);
        assert.notEqual(refusedAfter, -1, "it refuses the key after healing");
        assert.ok(
          refusedAfter <= 5 * GOSSIP_INTERVAL_MS,
          `refused ${refusedAfter} ms after healing, gossip every ${GOSSIP_INTERVAL_MS} ms`,
        );
        // Keeps trying: nobody lets it in, on either side of the old partition.
        for (let second = 0; second < 30; second++) {
          for (const m of [...rest, away]) removed.mesh.device.connect(m.publicKey);
          cluster.run(1_000);
        }
        for (const m of [...rest, away]) assert.ok(refuses(m, removed), `${m.name} refuses it`);
        const members = [...rest, away];
        assert.ok(
          cluster.runUntil(() => fullyConnected(members), 60_000, 100) >= 0,
          "the five members are connected again",
        );
        assert.ok(sameDigest(members), "their replicas agree");
        log(
          `partition of ${partitionMs} ms: the member cut off refused the key ${refusedAfter} ms after healing (gossip every ${GOSSIP_INTERVAL_MS} ms; healed at ${healedAt})`,
        );
        await cluster.close();
      }));
  }

  test("a removed member cannot use relays: every relay and the destination drop its frames", () =>
    withSeed("relay", async (seed) => {
      // p0 - p1 - p2 in a line (p0-p2 cut), p3 the member to remove, next to p1.
      const cluster = createCluster(seed, 4, 4);
      const [p0, p1, p2, p3] = cluster.nodes as [Node, Node, Node, Node];
      for (const [a, b] of [
        [p0, p2],
        [p3, p2],
        [p3, p0],
      ] as const) {
        cluster.network.partition([a.address], [b.address]);
      }
      // p1 founded nothing, but p0 is everyone's static peer: give p2 and p3 p1 too.
      p2.mesh.addPeer({ publicKey: p1.publicKey, endpoint: { address: p1.address, port: PORT } });
      p3.mesh.addPeer({ publicKey: p1.publicKey, endpoint: { address: p1.address, port: PORT } });
      const relayed = (from: Node, to: Node) =>
        from.mesh.status().peers.find((p) => p.publicKey === to.key)?.path === "relayed";
      assert.notEqual(
        cluster.runUntil(() => relayed(p3, p2) && relayed(p0, p2) && relayed(p3, p0), 60_000, 100),
        -1,
        "p3 reaches p0 and p2 through p1",
      );
      p3.mesh.sendDatagram(p2.key, 3, new Uint8Array([1]));
      cluster.run(1_000);
      assert.ok(
        p2.received.some((r) => r.from === p3.key),
        "relayed traffic flows before",
      );

      p0.replication!.remove(p3.publicKey);
      const took = cluster.runUntil(
        () => [p0, p1, p2].every((m) => refuses(m, p3)),
        5 * GOSSIP_INTERVAL_MS,
        1,
      );
      assert.notEqual(took, -1, "p0, p1 and p2 refuse it");
      const heard = p2.received.length;
      for (let second = 0; second < 20; second++) {
        p3.mesh.sendDatagram(p2.key, 3, new Uint8Array([2]));
        p3.mesh.device.connect(p2.publicKey);
        cluster.run(1_000);
      }
      assert.equal(p2.received.length, heard, "nothing of it arrives through the relay");
      assert.ok(!holds(p1, p3) && !holds(p2, p3), "neither relay nor destination holds it");

      // A member forwarding for it (as one that has not heard of the removal would): the
      // relay drops the frame, and so does the destination if it is sent there directly.
      const initiation = p3.initiations.at(-1)!;
      const source = drops(p1, "relay-source-not-member");
      const destination = drops(p1, "relay-destination-not-member");
      const atDestination = drops(p2, "relay-source-not-member");
      p0.mesh.device.sendControl(
        p1.publicKey,
        encodeRelay(DEFAULT_HOP_LIMIT - 1, p2.publicKey, p3.publicKey, initiation),
      );
      p0.mesh.device.sendControl(
        p1.publicKey,
        encodeRelay(DEFAULT_HOP_LIMIT - 1, p3.publicKey, p0.publicKey, initiation),
      );
      p1.mesh.device.sendControl(
        p2.publicKey,
        encodeRelay(DEFAULT_HOP_LIMIT - 1, p2.publicKey, p3.publicKey, initiation),
      );
      cluster.run(1_000);
      assert.equal(drops(p1, "relay-source-not-member") - source, 1, "the relay, by source");
      assert.equal(
        drops(p1, "relay-destination-not-member") - destination,
        1,
        "the relay, by destination",
      );
      assert.equal(
        drops(p2, "relay-source-not-member") - atDestination,
        1,
        "the destination, by source",
      );
      assert.ok(!holds(p2, p3), "the destination made no peer of it");
      assert.ok(sameDigest([p0, p1, p2]), "the members' replicas agree");
      log(`relay: p0, p1, p2 refused the removed p3 ${took} ms after remove()`);
      await cluster.close();
    }));

  test("a static peer is dialled only once it is a member", () =>
    withSeed("static", async (seed) => {
      const cluster = createCluster(seed, 3, 2);
      const [p0, p1, later] = cluster.nodes as [Node, Node, Node];
      assert.notEqual(
        cluster.runUntil(() => fullyConnected([p0, p1]), 30_000, 100),
        -1,
      );
      // p1's operator configures a key that is not a member (yet).
      p1.mesh.addPeer({
        publicKey: later.publicKey,
        endpoint: { address: later.address, port: PORT },
      });
      const sentBefore = p1.initiations.length;
      cluster.run(20_000);
      assert.equal(p1.initiations.length, sentBefore, "p1 sends it no initiation");
      assert.ok(!p1.mesh.members().includes(later.key), "nor counts it a member");
      assert.ok(
        !p1.mesh.device.peers().some((p) => toBase64(p.publicKey) === later.key),
        "it is not in p1's Device",
      );
      // p0 admits it; it comes up knowing the records, with no static peer of its own.
      p0.replication!.admit({
        member: later.publicKey,
        signingKey: later.signingKey,
        nickname: later.name,
      });
      const joined = Members.restore(p0.members.snapshot());
      assert.ok(joined.ok, "snapshot restores");
      cluster.start(later, { members: joined.value, staticPeers: [] });
      const took = cluster.runUntil(() => connectedTo(p1).includes(later.key), 10_000, 10);
      assert.notEqual(took, -1, "p1 dials its static peer once it is a member");
      await cluster.close();
    }));

  test("a peer that stops being a member without revalidateMembers is still cut off by its first frame", () =>
    withSeed("safety-net", async (seed) => {
      const cluster = createCluster(seed, 2, 2);
      const [p0, p1] = cluster.nodes as [Node, Node];
      assert.notEqual(
        cluster.runUntil(() => fullyConnected([p0, p1]), 30_000, 100),
        -1,
      );
      // Restart p0 with a second opinion that nobody tells the mesh about.
      await p0.mesh.close();
      const banned = new Set<PeerKey>();
      cluster.start(p0, { members: p0.members, staticPeers: [], veto: (key) => banned.has(key) });
      assert.notEqual(
        cluster.runUntil(() => fullyConnected([p0, p1]), 30_000, 100),
        -1,
      );
      banned.add(p1.key);
      p1.mesh.sendDatagram(p0.key, 4, new Uint8Array([4]));
      cluster.run(1_000);
      assert.ok(drops(p0, "control-not-member") >= 1, "the frame is dropped, counted");
      assert.ok(!p0.received.some((r) => r.data[0] === 4), "and not delivered");
      assert.ok(!holds(p0, p1), "and p0 threw p1 out");
      await cluster.close();
    }));

  test("replication refuses what it cannot sign, and never throws on bad gossip", () =>
    withSeed("api", async (seed) => {
      const cluster = createCluster(seed, 3, 2);
      const [p0, p1, outsider] = cluster.nodes as [Node, Node, Node];
      assert.notEqual(
        cluster.runUntil(() => fullyConnected([p0, p1]), 30_000, 100),
        -1,
      );
      assert.throws(
        () => p1.replication!.remove(p1.publicKey),
        (error: unknown) => error instanceof MembershipError && error.code === "SELF_REMOVAL",
      );
      // A peer that holds the records but is not a member cannot sign for the mesh.
      const replica = Members.restore(p0.members.snapshot());
      assert.ok(replica.ok, "snapshot restores");
      cluster.start(outsider, { members: replica.value, staticPeers: [p0] });
      assert.throws(
        () =>
          outsider.replication!.admit({
            member: outsider.publicKey,
            signingKey: outsider.signingKey,
            nickname: "self-made",
          }),
        (error: unknown) => error instanceof MembershipError && error.code === "NOT_A_MEMBER",
      );
      // Records that are garbage or forged by the outsider change nothing, and throw nothing.
      const forged = signRecord(
        cluster.meshId,
        {
          kind: "removal",
          version: 1,
          member: p1.publicKey,
          removedBy: p0.publicKey,
          at: 1,
        },
        outsider.signingSecret,
      );
      const outcomes = p0.replication!.receive([new Uint8Array([1, 2, 3]), forged]);
      assert.deepEqual(outcomes, ["rejected", "pending"]);
      assert.ok(p0.members.isMember(p1.key), "p1 is still a member");
      const digest = toHex(p0.members.digest());
      p0.mesh.gossip.receive(p1.key, new Uint8Array([0xff, 0x00, 0x13]));
      cluster.run(2_000);
      assert.equal(toHex(p0.members.digest()), digest, "bad gossip changed nothing");
      // Removing twice returns the removal already held.
      const first = p0.replication!.remove(p1.publicKey);
      const again = p0.replication!.remove(p1.publicKey);
      assert.equal(toHex(again.hash), toHex(first.hash), "the same removal");
      await cluster.close();
    }));
});
