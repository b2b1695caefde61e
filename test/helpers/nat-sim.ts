/**
 * Two mesh peers behind NATs and a public relay, in simulation (#9): the world of
 * `test/mesh/nat-traversal.test.ts` and `bench/reach.ts`.
 *
 *   a (192.168.1.2) ─ NAT A (203.0.113.1) ─┐
 *                                           ├─ the Internet ─ relay r (198.51.100.1)
 *   b (192.168.2.2) ─ NAT B (203.0.113.2) ─┘
 *
 * Both NATed peers have the relay as a static peer; everything else they learn.
 */
import type { Crypto } from "../../src/crypto/index.ts";
import { Mesh } from "../../src/mesh/mesh.ts";
import type { Endpoint } from "../../src/net/packet-conn.ts";
import {
  CLASSIC_NAT_TYPES,
  type ClassicNatType,
  createRandom,
  SimNat,
  SimNetwork,
  VirtualClock,
} from "../../src/sim/index.ts";
import { MESH_SECRET } from "./mesh-sim.ts";

export const PORT = 51820;
export const RELAY = "198.51.100.1";
export const NAT_A = "203.0.113.1";
export const NAT_B = "203.0.113.2";
export const HOST_A = "192.168.1.2";
export const HOST_B = "192.168.2.2";

export const CLASSIC: readonly ClassicNatType[] = [
  "fullCone",
  "restrictedCone",
  "portRestrictedCone",
  "symmetric",
];

/** Whether plain UDP hole punching gets through a pair (the table of test/sim/nat.test.ts). */
export function punchable(a: ClassicNatType, b: ClassicNatType): boolean {
  const hard = (x: ClassicNatType, y: ClassicNatType) =>
    x === "symmetric" && (y === "symmetric" || y === "portRestrictedCone");
  return !hard(a, b) && !hard(b, a);
}

export interface NatNode {
  readonly name: string;
  readonly mesh: Mesh;
  readonly received: { data: Uint8Array; atMs: number }[];
}

export type NatMeshWorld = ReturnType<typeof createNatMeshWorld>;

export function createNatMeshWorld(
  crypto: Crypto,
  typeA: ClassicNatType,
  typeB: ClassicNatType,
  seed: number,
) {
  const clock = new VirtualClock();
  const random = createRandom(seed);
  const network = new SimNetwork({ clock, random, defaultLink: { latencyMs: 15, jitterMs: 3 } });
  const nats = [
    new SimNat(network, {
      publicAddress: NAT_A,
      privateNetwork: "192.168.1.0/24",
      ...CLASSIC_NAT_TYPES[typeA],
      random,
    }),
    new SimNat(network, {
      publicAddress: NAT_B,
      privateNetwork: "192.168.2.0/24",
      ...CLASSIC_NAT_TYPES[typeB],
      random,
    }),
  ];
  network.setLinkBetween(HOST_A, NAT_A, { latencyMs: 1 });
  network.setLinkBetween(HOST_B, NAT_B, { latencyMs: 1 });
  const keys = createRandom(seed ^ 0x5eed);
  const logs: string[] = [];
  const node = (name: string, address: string): NatNode => {
    const received: NatNode["received"] = [];
    const mesh = new Mesh({
      crypto,
      clock,
      conn: network.listen(address, PORT),
      privateKey: keys.bytes(32),
      nickname: name,
      advertise: [{ address, port: PORT }],
      random: () => random.next(),
      initialVersion: 1,
      presharedKey: MESH_SECRET,
      log: (level, message) => logs.push(`${clock.now()} ${name} ${level}: ${message}`),
    });
    mesh.onDatagram((_from, _port, data) => received.push({ data, atMs: clock.now() }));
    return { name, mesh, received };
  };
  const r = node("r", RELAY);
  const a = node("a", HOST_A);
  const b = node("b", HOST_B);
  const relay: Endpoint = { address: RELAY, port: PORT };
  a.mesh.addPeer({ publicKey: r.mesh.publicKey, endpoint: relay });
  b.mesh.addPeer({ publicKey: r.mesh.publicKey, endpoint: relay });

  const peerStatus = (from: NatNode, to: NatNode) =>
    from.mesh.status().peers.find((p) => p.publicKey === to.mesh.key);
  const isDirect = (from: NatNode, to: NatNode) => peerStatus(from, to)?.path === "direct";
  const runUntil = (done: () => boolean, limitMs: number, stepMs = 50): number => {
    const start = clock.now();
    while (clock.now() - start <= limitMs) {
      if (done()) return clock.now() - start;
      clock.advance(stepMs);
    }
    return -1;
  };
  /** Both NATed peers connected to the relay (from then on they can talk through it). */
  const bothAtRelay = () => runUntil(() => isDirect(a, r) && isDirect(b, r), 10_000);
  const close = async () => {
    for (const n of [r, a, b]) await n.mesh.close();
  };
  return {
    clock,
    network,
    nats,
    r,
    a,
    b,
    logs,
    peerStatus,
    isDirect,
    runUntil,
    bothAtRelay,
    close,
  };
}
