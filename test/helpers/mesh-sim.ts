/**
 * Many mesh peers in one process, on a virtual clock and a seeded simulated network: the
 * fixture of every mesh simulation test and of `bench/mesh.ts`.
 *
 * Hosts get addresses from 198.18.0.0/15 (RFC 2544's benchmarking range): nothing here
 * leaves the process, and the addresses say so.
 */
import type { Crypto } from "../../src/crypto/index.ts";
import { toBase64 } from "../../src/crypto/index.ts";
import type { PeerKey } from "../../src/mesh/gossip-state.ts";
import { Mesh, type MeshOptions } from "../../src/mesh/mesh.ts";
import type { Endpoint, PacketConn } from "../../src/net/packet-conn.ts";
import type { Tun } from "../../src/net/tun.ts";
import { ChannelTun } from "../../src/sim/channel-tun.ts";
import { type LinkOptions, SimNetwork } from "../../src/sim/network.ts";
import { createRandom, type Random } from "../../src/sim/random.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";

export const MESH_PORT = 51820;
/** The simulated mesh's shared secret: members admit any key that proves it. */
export const MESH_SECRET = new Uint8Array(32).fill(0x5e);

export interface SimPeer {
  readonly index: number;
  readonly name: string;
  readonly address: string;
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly key: PeerKey;
  mesh: Mesh;
  /**
   * The peer's Tun: inject IP packets to send, read what was delivered. Left unattached
   * when `tunFor` gave the peer another Tun.
   */
  tun: ChannelTun;
  alive: boolean;
  readonly received: { from: PeerKey; port: number; data: Uint8Array; broadcast: boolean }[];
  readonly logs: string[];
  /** Datagrams the peer sent, when the sim records them. */
  readonly sent: { data: Uint8Array; to: Endpoint }[];
}

export interface MeshSimOptions {
  readonly crypto: Crypto;
  readonly seed: number;
  readonly count: number;
  readonly link?: Partial<LinkOptions>;
  /** Per peer, which others it is configured with (static peers); default: peer 0 for all. */
  readonly staticPeers?: (index: number) => readonly number[];
  readonly meshOptions?: Partial<MeshOptions>;
  /** Keep log lines (costly at scale). */
  readonly keepLogs?: boolean;
  /** Record every datagram each peer sends (costly at scale). */
  readonly recordSends?: boolean;
  /**
   * Another Tun for a peer's mesh (such as a userspace Netstack), asked at each start
   * (again on `revive`); `undefined` keeps the peer's ChannelTun.
   */
  readonly tunFor?: (index: number) => Tun | undefined;
}

export interface MeshSim {
  readonly clock: VirtualClock;
  readonly network: SimNetwork;
  readonly random: Random;
  readonly peers: SimPeer[];
  /** Advances virtual time in small steps (timers fire in order either way). */
  run(ms: number): void;
  /** Runs until `done()` holds, checking every `stepMs`; returns the virtual time taken or -1. */
  runUntil(done: () => boolean, limitMs: number, stepMs?: number): number;
  /** Blocks both directions between two peers. */
  cut(a: number, b: number): void;
  uncut(a: number, b: number): void;
  /** Stops a peer as a crash would: its socket closes, nothing more is sent. */
  kill(index: number): Promise<void>;
  /** Starts a killed peer again with the same key and address (a restart). */
  revive(index: number): void;
  byKey(key: PeerKey): SimPeer | undefined;
  close(): Promise<void>;
}

export function addressOf(index: number): string {
  const host = index + 1;
  return `198.18.${host >> 8}.${host & 255}`;
}

export function createMeshSim(options: MeshSimOptions): MeshSim {
  const clock = new VirtualClock();
  const random = createRandom(options.seed);
  const network = new SimNetwork({ clock, random, defaultLink: options.link });
  const keyRandom = createRandom(options.seed ^ 0x5eed);
  const peers: SimPeer[] = [];
  const byKey = new Map<PeerKey, SimPeer>();

  const start = (peer: SimPeer) => {
    const socket = network.listen(peer.address, MESH_PORT);
    const conn: PacketConn = options.recordSends
      ? {
          localPort: socket.localPort,
          send: (data, to) => {
            peer.sent.push({ data: data.slice(), to });
            socket.send(data, to);
          },
          onReceive: (handler) => socket.onReceive(handler),
          close: () => socket.close(),
        }
      : socket;
    peer.tun = new ChannelTun({ mtuBytes: 1420 });
    peer.mesh = new Mesh({
      tun: options.tunFor?.(peer.index) ?? peer.tun,
      crypto: options.crypto,
      clock,
      conn,
      privateKey: peer.privateKey,
      nickname: peer.name,
      advertise: [{ address: peer.address, port: MESH_PORT }],
      random: () => random.next(),
      initialVersion: 1 + clock.now(),
      presharedKey: MESH_SECRET,
      log: options.keepLogs
        ? (level, message) => peer.logs.push(`${clock.now()} ${level}: ${message}`)
        : undefined,
      ...options.meshOptions,
    });
    peer.mesh.onDatagram((from, port, data, info) =>
      peer.received.push({ from, port, data, broadcast: info.broadcast }),
    );
    peer.alive = true;
  };

  for (let index = 0; index < options.count; index++) {
    // Keys from the seed, so a failing run replays with the same keys (and tie-breaks).
    const privateKey = keyRandom.bytes(32);
    const publicKey = options.crypto.publicKey(privateKey);
    const peer: SimPeer = {
      index,
      name: `p${index}`,
      address: addressOf(index),
      privateKey,
      publicKey,
      key: toBase64(publicKey),
      mesh: undefined as unknown as Mesh,
      tun: undefined as unknown as ChannelTun,
      alive: false,
      received: [],
      logs: [],
      sent: [],
    };
    peers.push(peer);
    byKey.set(peer.key, peer);
  }
  const staticOf = (i: number) => options.staticPeers?.(i) ?? (i === 0 ? [] : [0]);
  for (const peer of peers) start(peer);
  for (const peer of peers)
    for (const j of staticOf(peer.index)) {
      const other = peers[j]!;
      peer.mesh.addPeer({
        publicKey: other.publicKey,
        endpoint: { address: other.address, port: MESH_PORT },
      });
    }

  const sim: MeshSim = {
    clock,
    network,
    random,
    peers,
    run(ms) {
      const end = clock.now() + ms;
      while (clock.now() < end) clock.advance(Math.min(100, end - clock.now()));
    },
    runUntil(done, limitMs, stepMs = 100) {
      const startMs = clock.now();
      while (clock.now() - startMs <= limitMs) {
        if (done()) return clock.now() - startMs;
        clock.advance(stepMs);
      }
      return -1;
    },
    cut(a, b) {
      network.block(addressOf(a), addressOf(b));
      network.block(addressOf(b), addressOf(a));
    },
    uncut(a, b) {
      network.unblock(addressOf(a), addressOf(b));
      network.unblock(addressOf(b), addressOf(a));
    },
    async kill(index) {
      const peer = peers[index]!;
      peer.alive = false;
      await peer.mesh.close();
    },
    revive(index) {
      const peer = peers[index]!;
      start(peer);
      for (const j of staticOf(index)) {
        const other = peers[j]!;
        peer.mesh.addPeer({
          publicKey: other.publicKey,
          endpoint: { address: other.address, port: MESH_PORT },
        });
      }
    },
    byKey: (key) => byKey.get(key),
    async close() {
      for (const peer of peers) if (peer.alive) await peer.mesh.close();
    },
  };
  return sim;
}

/**
 * The relay fixture: A and C know only B, and A-C is cut both ways, so everything between
 * A and C goes through B. Runs `settleMs` so the three are connected and know each other.
 */
export function createRelayLine(
  options: Omit<MeshSimOptions, "count" | "staticPeers"> & { settleMs?: number },
): { sim: MeshSim; a: SimPeer; b: SimPeer; c: SimPeer } {
  const sim = createMeshSim({ ...options, count: 3, staticPeers: (i) => (i === 1 ? [] : [1]) });
  sim.cut(0, 2);
  sim.run(options.settleMs ?? 3_000);
  const [a, b, c] = sim.peers as [SimPeer, SimPeer, SimPeer];
  return { sim, a, b, c };
}
