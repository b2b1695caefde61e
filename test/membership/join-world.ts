/**
 * The join exchange's fixture: inviters and joiners on one virtual clock and one seeded
 * simulated network. An inviter is a real member (a `Members` replica wired through
 * `replicateMembers` to a stand-in mesh whose gossip channel records broadcasts), with an
 * `InvitationBook` in a `MemoryStore` and a `JoinResponder` on its socket's join side,
 * admitting joiners as the daemon does (`admitJoiner`). A joiner calls `joinMesh` from
 * its own socket; `settle` drives virtual time until every join has an outcome.
 */
import assert from "node:assert/strict";
import { ed25519 } from "@noble/curves/ed25519.js";
import { type Crypto, toBase64 } from "../../src/crypto/index.ts";
import { admitJoiner } from "../../src/daemon/membership-glue.ts";
import { InvitationBook } from "../../src/membership/invitations.ts";
import {
  type JoinAccepted,
  JoinError,
  type JoinOptions,
  joinMesh,
} from "../../src/membership/join-client.ts";
import { splitJoinTraffic } from "../../src/membership/join-demux.ts";
import type { KnownPeer } from "../../src/membership/join-protocol.ts";
import { type AdmitRequest, JoinResponder } from "../../src/membership/join-responder.ts";
import { Members, type MembersDelta } from "../../src/membership/members.ts";
import { signRecord } from "../../src/membership/records.ts";
import {
  type MembershipChange,
  type MembershipReplication,
  replicateMembers,
} from "../../src/membership/replicate.ts";
import { decodeToken, type Invite, type InviteEndpoint } from "../../src/membership/token.ts";
import type { GossipChannel } from "../../src/mesh/gossip-state.ts";
import type { Endpoint, PacketConn } from "../../src/net/packet-conn.ts";
import {
  createRandom,
  type LinkOptions,
  MemoryStore,
  type Random,
  SimNetwork,
  type SimPacketConn,
  VirtualClock,
} from "../../src/sim/index.ts";
import { providers } from "../helpers/providers.ts";

/** This runtime's native crypto (noble where it lacks an algorithm): real keys, fast. */
export const crypto: Crypto = providers[1]![1];
export const PORT = 51820;
export const DOMAIN = "weft.internal";
export const RANGE = "10.40.0.0/16";

export interface World {
  readonly clock: VirtualClock;
  readonly network: SimNetwork;
  /** Keys, secrets and link choices of this world: one seed replays it all. */
  readonly random: Random;
  readonly meshId: Uint8Array;
}

export function createWorld(seed: number, link: Partial<LinkOptions> = { latencyMs: 10 }): World {
  const clock = new VirtualClock();
  const network = new SimNetwork({ clock, random: createRandom(seed), defaultLink: link });
  const random = createRandom(seed ^ 0x701e);
  return { clock, network, random, meshId: random.bytes(16) };
}

export interface Keys {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly key: string;
  readonly signingSecret: Uint8Array;
  readonly signingKey: Uint8Array;
}

export function createKeys(world: World): Keys {
  const privateKey = world.random.bytes(32);
  const publicKey = crypto.publicKey(privateKey);
  const signingSecret = world.random.bytes(32);
  return {
    privateKey,
    publicKey,
    key: toBase64(publicKey),
    signingSecret,
    signingKey: ed25519.getPublicKey(signingSecret),
  };
}

/** A stand-in for the Mesh: a gossip channel that records what is broadcast. */
function fakeMesh() {
  const broadcasts: MembersDelta[] = [];
  let revalidations = 0;
  return {
    broadcasts,
    get revalidations() {
      return revalidations;
    },
    channel<D>(name: string): GossipChannel<D> {
      return {
        name,
        broadcast: (update: D) => broadcasts.push(update as MembersDelta),
        unicast: () => false,
        onUnicast: () => {},
      };
    },
    revalidateMembers: () => {
      revalidations++;
    },
  };
}

export interface Inviter extends Keys {
  readonly address: string;
  readonly endpoint: InviteEndpoint;
  readonly members: Members;
  readonly replication: MembershipReplication;
  readonly changes: MembershipChange[];
  readonly broadcasts: MembersDelta[];
  readonly book: InvitationBook;
  readonly store: MemoryStore;
  readonly conn: SimPacketConn;
  readonly responder: JoinResponder;
  /** Datagrams that reached the socket's mesh side (none of the join exchange's may). */
  readonly meshReceived: Uint8Array[];
  /** Every join datagram the responder sent. */
  readonly sent: { data: Uint8Array; to: Endpoint }[];
  /** Decides, per datagram the responder sends, whether it leaves (default: all do). */
  outbound: (data: Uint8Array, to: Endpoint) => boolean;
  /** A fresh invitation from the book, as a decoded token too. */
  invite(options?: {
    ttlMs?: number;
    uses?: number;
    nickname?: string | null;
    endpoints?: readonly InviteEndpoint[];
  }): { text: string; token: Invite; id: Uint8Array };
}

export interface InviterOptions {
  readonly address?: string;
  readonly nickname?: string;
  readonly knownPeers?: readonly KnownPeer[];
  /** Another member that admits this one first (else this one founds the mesh). */
  readonly admittedBy?: Inviter;
  /** Stands in for the daemon's admission (`honest`), to make an inviter that lies. */
  readonly admit?: (
    request: AdmitRequest,
    honest: () => ReturnType<typeof admitJoiner>,
  ) => ReturnType<typeof admitJoiner>;
}

export function createInviter(world: World, options: InviterOptions = {}): Inviter {
  const own = createKeys(world);
  const address = options.address ?? "10.0.0.1";
  const nickname = options.nickname ?? "inviter";
  let members: Members;
  if (options.admittedBy === undefined) {
    const genesis = signRecord(
      world.meshId,
      {
        kind: "admission",
        version: 1,
        member: own.publicKey,
        signingKey: own.signingKey,
        nickname,
        admittedBy: null,
        invitation: null,
        at: world.clock.wallNow(),
      },
      own.signingSecret,
    );
    members = new Members({ meshId: world.meshId, genesis });
  } else {
    const by = options.admittedBy;
    by.replication.admit({ member: own.publicKey, signingKey: own.signingKey, nickname });
    members = new Members({ meshId: world.meshId, genesis: by.members.genesis });
    for (const record of by.members.records()) members.receive(record);
    assert.ok(members.isMember(own.publicKey), "the second inviter holds its own admission");
  }
  const mesh = fakeMesh();
  const replication = replicateMembers(members, mesh, {
    meshId: world.meshId,
    self: own.publicKey,
    signingSecret: own.signingSecret,
    now: () => world.clock.wallNow(),
  });
  const changes: MembershipChange[] = [];
  replication.onChange((change) => changes.push(change));
  const store = new MemoryStore();
  const loaded = InvitationBook.load(store, (n) => world.random.bytes(n));
  assert.ok(loaded.ok, "an empty store loads as an empty book");
  const book = loaded.value;
  const conn = world.network.listen(address, PORT);
  const split = splitJoinTraffic(conn);
  const meshReceived: Uint8Array[] = [];
  split.mesh.onReceive((data) => meshReceived.push(data.slice()));
  const sent: { data: Uint8Array; to: Endpoint }[] = [];
  const responder = new JoinResponder({
    crypto,
    clock: world.clock,
    privateKey: own.privateKey,
    meshId: world.meshId,
    invitations: book,
    send: (data, to) => {
      sent.push({ data: data.slice(), to });
      if (inviter.outbound(data, to)) split.join.send(data, to);
    },
    admit: (request) => {
      const honest = () => admitJoiner(replication, own.publicKey, request);
      return options.admit ? options.admit(request, honest) : honest();
    },
    settings: () => ({ domain: DOMAIN, range: RANGE, nickname }),
    peers: () => options.knownPeers ?? [],
  });
  split.join.onReceive((data, from) => responder.receive(data, from));
  const endpoint = { host: address, port: PORT };
  const inviter: Inviter = {
    ...own,
    address,
    endpoint,
    members,
    replication,
    changes,
    broadcasts: mesh.broadcasts,
    book,
    store,
    conn,
    responder,
    meshReceived,
    sent,
    outbound: () => true,
    invite(more = {}) {
      const { token, invitation } = book.create({
        meshId: world.meshId,
        inviterKey: own.publicKey,
        endpoints: more.endpoints ?? [endpoint],
        ttlMs: more.ttlMs,
        uses: more.uses,
        nickname: more.nickname,
        now: world.clock.wallNow(),
      });
      const decoded = decodeToken(token);
      assert.ok(decoded.ok, `the book's token decodes: ${decoded.ok ? "" : decoded.error}`);
      return { text: token, token: decoded.value, id: invitation.id };
    },
  };
  return inviter;
}

export interface Joiner extends Keys {
  readonly address: string;
  readonly conn: SimPacketConn;
  /** Datagrams that reached the socket's mesh side. */
  readonly meshReceived: Uint8Array[];
  /** Every join datagram the joiner sent. */
  readonly sent: { data: Uint8Array; to: Endpoint }[];
  /** Decides, per datagram the joiner sends, whether it leaves (default: all do). */
  outbound: (data: Uint8Array, to: Endpoint) => boolean;
  /** Decides, per datagram the joiner receives, whether joinMesh sees it (default: all). */
  inbound: (data: Uint8Array, from: Endpoint) => Uint8Array | undefined;
  join(token: Invite, options?: Partial<JoinOptions>): Promise<JoinAccepted>;
}

export function createJoiner(world: World, address: string, keys = createKeys(world)): Joiner {
  const conn = world.network.listen(address, PORT);
  const split = splitJoinTraffic(conn);
  const meshReceived: Uint8Array[] = [];
  split.mesh.onReceive((data) => meshReceived.push(data.slice()));
  const sent: { data: Uint8Array; to: Endpoint }[] = [];
  // What joinMesh sees of its socket: the join side, through the test's filters.
  const seen: PacketConn = {
    get localPort() {
      return split.join.localPort;
    },
    send(data, to) {
      sent.push({ data: data.slice(), to });
      if (joiner.outbound(data, to)) split.join.send(data, to);
    },
    onReceive(handler) {
      split.join.onReceive((data, from) => {
        const passed = joiner.inbound(data, from);
        if (passed !== undefined) handler(passed, from);
      });
    },
    close: () => split.join.close(),
  };
  const joiner: Joiner = {
    ...keys,
    address,
    conn,
    meshReceived,
    sent,
    outbound: () => true,
    inbound: (data) => data,
    join: (token, options = {}) =>
      joinMesh({
        crypto,
        clock: world.clock,
        conn: seen,
        token,
        privateKey: keys.privateKey,
        signingPublicKey: keys.signingKey,
        ...options,
      }),
  };
  return joiner;
}

export type Outcome =
  | { readonly ok: true; readonly value: JoinAccepted; readonly atMs: number }
  | { readonly ok: false; readonly error: JoinError; readonly atMs: number };

/** Lets promise callbacks run (joinMesh awaits before it sends its first datagram). */
export function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Runs virtual time from timer to timer (letting promise callbacks run in between) until
 * every join has settled, or fails the test after `limitMs`; each outcome carries the
 * virtual time it settled at. A rejection that is not a JoinError fails the test.
 */
export async function settle(
  world: World,
  joins: readonly Promise<JoinAccepted>[],
  limitMs = 60_000,
): Promise<Outcome[]> {
  const outcomes: (Outcome | undefined)[] = joins.map(() => undefined);
  const failures: unknown[] = [];
  joins.forEach((join, i) => {
    join.then(
      (value) => {
        outcomes[i] = { ok: true, value, atMs: world.clock.now() };
      },
      (error: unknown) => {
        if (error instanceof JoinError) outcomes[i] = { ok: false, error, atMs: world.clock.now() };
        else failures.push(error);
      },
    );
  });
  await tick();
  const endMs = world.clock.now() + limitMs;
  while (outcomes.some((o) => o === undefined) && failures.length === 0) {
    const next = world.clock.nextDeadline();
    assert.ok(next !== undefined, "joins are pending but no timer is: a join would hang");
    assert.ok(next <= endMs, `joins still pending after ${limitMs} virtual ms`);
    world.clock.advance(next - world.clock.now());
    await tick();
  }
  if (failures.length > 0) throw failures[0];
  return outcomes as Outcome[];
}

/** Runs virtual time `ms` forward, timer by timer, letting promise callbacks run in between. */
export async function runFor(world: World, ms: number): Promise<void> {
  const endMs = world.clock.now() + ms;
  await tick();
  for (;;) {
    const next = world.clock.nextDeadline();
    if (next === undefined || next > endMs) break;
    world.clock.advance(next - world.clock.now());
    await tick();
  }
  world.clock.advance(endMs - world.clock.now());
  await tick();
}

/** The one outcome of one join, which must be an acceptance. */
export async function accepted(world: World, join: Promise<JoinAccepted>, limitMs?: number) {
  const [outcome] = await settle(world, [join], limitMs);
  assert.ok(
    outcome!.ok,
    `the join is accepted${outcome!.ok ? "" : `, not refused: ${outcome!.error.code}: ${outcome!.error.message}`}`,
  );
  return outcome!;
}

/** The one outcome of one join, which must be a JoinError. */
export async function refused(world: World, join: Promise<JoinAccepted>, limitMs?: number) {
  const [outcome] = await settle(world, [join], limitMs);
  assert.ok(!outcome!.ok, "the join is refused, not accepted");
  return outcome!;
}
