/**
 * NAT traversal in simulation (#9): two mesh peers, each behind its own NAT of a classic
 * type, and a relay with a public address that both dial. They first talk through the
 * relay; endpoint discovery (pongs tell each peer where it was seen) and hole punching
 * (candidates exchanged through the relay, pings from both sides at once) should move them
 * to a direct path wherever the two NATs allow one, and leave them relayed where not:
 *
 *   a (192.168.1.2) ─ NAT A (203.0.113.1) ─┐
 *                                           ├─ the Internet ─ relay r (198.51.100.1)
 *   b (192.168.2.2) ─ NAT B (203.0.113.2) ─┘
 *
 * The expected table is the one `test/sim/nat.test.ts` derives for plain UDP: direct for
 * every pair except port-restricted cone with symmetric, and symmetric with symmetric.
 * Each test prints its seed when it fails; rerun with WEFT_SEED=<seed>.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ClassicNatType } from "../../src/sim/index.ts";
import {
  CLASSIC,
  createNatMeshWorld,
  HOST_A,
  NAT_A,
  NAT_B,
  type NatMeshWorld,
  PORT,
  punchable,
} from "../helpers/nat-sim.ts";
import { providers } from "../helpers/providers.ts";

const crypto = providers[1]![1];
const SEED = Number(globalThis.process?.env?.WEFT_SEED ?? 20261128);
const DATA_PORT = 7;
/** Where the issue draws the line for a punch that should work. */
const PUNCH_LIMIT_MS = 5_000;

async function withWorld(
  typeA: ClassicNatType,
  typeB: ClassicNatType,
  body: (w: NatMeshWorld) => Promise<void> | void,
): Promise<void> {
  const w = createNatMeshWorld(crypto, typeA, typeB, SEED);
  try {
    await body(w);
  } catch (error) {
    throw new Error(
      `${typeA} x ${typeB} failed with seed ${SEED} (rerun with WEFT_SEED=${SEED})\n${w.logs.slice(-40).join("\n")}`,
      { cause: error },
    );
  } finally {
    await w.close();
  }
}

describe("NAT traversal: every pair of classic NAT types", () => {
  for (const typeA of CLASSIC)
    for (const typeB of CLASSIC) {
      const expectDirect = punchable(typeA, typeB);
      test(`${typeA} x ${typeB}: ${expectDirect ? "direct after punching" : "stays relayed"}`, () =>
        withWorld(typeA, typeB, (w) => {
          assert.ok(w.bothAtRelay() >= 0, "a and b connect to the relay");
          if (expectDirect) {
            const took = w.runUntil(() => w.isDirect(w.a, w.b) && w.isDirect(w.b, w.a), 30_000);
            assert.ok(took >= 0, "a and b end up with a direct path");
            assert.ok(
              took <= PUNCH_LIMIT_MS,
              `direct within ${PUNCH_LIMIT_MS} ms of both reaching the relay (took ${took} ms)`,
            );
            const path = w.peerStatus(w.a, w.b)!;
            const seenAt = path.endpoint!.split(":")[0];
            assert.equal(
              seenAt,
              NAT_B,
              "a's direct path to b goes to b's NAT, not b's LAN address",
            );
          } else {
            w.runUntil(() => false, 60_000, 250);
            assert.ok(!w.isDirect(w.a, w.b), "no direct path a -> b");
            assert.ok(!w.isDirect(w.b, w.a), "no direct path b -> a");
          }
          // Either way data flows, and without a direct path it flows through the relay.
          const forwardedBefore = w.r.mesh.status().relayed.relayedForwarded;
          for (let i = 0; i < 5; i++)
            w.a.mesh.sendDatagram(w.b.mesh.key, DATA_PORT, Uint8Array.of(i));
          w.runUntil(() => false, 1_000);
          assert.equal(w.b.received.length, 5, "all 5 datagrams a -> b arrive");
          const forwarded = w.r.mesh.status().relayed.relayedForwarded - forwardedBefore;
          if (expectDirect) assert.equal(forwarded, 0, "the relay carries none of them");
          else assert.ok(forwarded >= 5, `the relay carries them (forwarded ${forwarded})`);
          assert.equal(
            w.peerStatus(w.a, w.b)!.path,
            expectDirect ? "direct" : "relayed",
            "status names the path",
          );
        }));
    }
});

describe("NAT traversal: discovery, reporting, fallback", () => {
  test("each NATed peer learns its public endpoint from pongs and offers it", () =>
    withWorld("portRestrictedCone", "portRestrictedCone", (w) => {
      assert.ok(w.bothAtRelay() >= 0, "a and b connect to the relay");
      w.runUntil(() => false, 2_000);
      const offered = w.a.mesh.status().endpoints;
      assert.ok(offered.includes(`${HOST_A}:${PORT}`), `a offers its LAN address (${offered})`);
      assert.ok(
        offered.some((e) => e.startsWith(`${NAT_A}:`)),
        `a offers the address the relay sees it at (${offered})`,
      );
      // The relay publishes what a said, so b learns it by gossip too.
      const entry = w.b.mesh.topology.entry(w.a.mesh.key);
      assert.ok(
        entry?.endpoints.some((e) => e.address === NAT_A),
        "a's public endpoint reached b through topology gossip",
      );
    }));

  test("a path found through two port-restricted NATs is reported as punched", () =>
    withWorld("portRestrictedCone", "portRestrictedCone", (w) => {
      assert.ok(w.bothAtRelay() >= 0, "a and b connect to the relay");
      assert.ok(
        w.runUntil(() => w.isDirect(w.a, w.b) && w.isDirect(w.b, w.a), PUNCH_LIMIT_MS) >= 0,
        "direct both ways",
      );
      const punched = [w.peerStatus(w.a, w.b)!.punched, w.peerStatus(w.b, w.a)!.punched];
      assert.deepEqual(punched, [true, true], "both sides report the path as punched");
      assert.equal(w.peerStatus(w.a, w.r)!.punched, false, "the relay's path was not punched");
    }));

  test("an idle punched path stays open: the mesh's own pings and gossip refresh 30 s NAT mappings", () =>
    withWorld("portRestrictedCone", "portRestrictedCone", (w) => {
      assert.ok(w.bothAtRelay() >= 0, "a and b connect to the relay");
      assert.ok(
        w.runUntil(() => w.isDirect(w.a, w.b) && w.isDirect(w.b, w.a), PUNCH_LIMIT_MS) >= 0,
        "direct both ways",
      );
      let lost = false;
      w.runUntil(
        () => {
          lost ||= !w.isDirect(w.a, w.b) || !w.isDirect(w.b, w.a);
          return false;
        },
        150_000,
        500,
      );
      assert.ok(!lost, "the path never dropped to relayed during 150 s without traffic");
      const expired = w.nats.reduce((n, nat) => n + (nat.counters().dropped.expired ?? 0), 0);
      assert.equal(expired, 0, "no datagram met an expired NAT mapping");
    }));

  test("a punched path that breaks falls back to the relay within 5 s and comes back", () =>
    withWorld("portRestrictedCone", "portRestrictedCone", (w) => {
      assert.ok(w.bothAtRelay() >= 0, "a and b connect to the relay");
      assert.ok(
        w.runUntil(() => w.isDirect(w.a, w.b) && w.isDirect(w.b, w.a), PUNCH_LIMIT_MS) >= 0,
        "direct both ways",
      );
      // Traffic every 100 ms from a to b, throughout.
      let sent = 0;
      const send = () => {
        w.a.mesh.sendDatagram(w.b.mesh.key, DATA_PORT, Uint8Array.of(sent++ & 0xff));
        w.clock.setTimer(100, send);
      };
      send();
      w.runUntil(() => false, 2_000);
      const handshakeAge = () => w.peerStatus(w.a, w.b)!.handshakeAgeMs!;
      const cutAt = w.clock.now();
      const receivedBeforeCut = w.b.received.length;
      w.network.partition([NAT_A], [NAT_B]);
      const fellBack = w.runUntil(() => w.peerStatus(w.a, w.b)!.path === "relayed", 10_000);
      assert.ok(
        fellBack >= 0 && fellBack <= 5_000,
        `relayed within 5 s of the break (${fellBack} ms)`,
      );
      w.runUntil(() => false, 3_000);
      const gap = longestGap(w.b.received.filter((r) => r.atMs >= cutAt - 200).map((r) => r.atMs));
      assert.ok(
        gap <= 5_000,
        `b never went more than 5 s without a datagram (longest gap ${gap} ms)`,
      );
      assert.ok(
        w.b.received.length > receivedBeforeCut + 20,
        "datagrams kept arriving through the relay",
      );
      assert.ok(
        handshakeAge() >= w.clock.now() - cutAt,
        "the session outlived the break (no new handshake)",
      );
      w.network.heal();
      const back = w.runUntil(() => w.isDirect(w.a, w.b) && w.isDirect(w.b, w.a), 30_000);
      assert.ok(back >= 0, "direct again after the path heals");
      const forwarded = w.r.mesh.status().relayed.relayedForwarded;
      w.runUntil(() => false, 2_000);
      assert.equal(
        w.r.mesh.status().relayed.relayedForwarded,
        forwarded,
        "once direct again, the relay carries nothing more",
      );
    }));
});

function longestGap(times: readonly number[]): number {
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}
