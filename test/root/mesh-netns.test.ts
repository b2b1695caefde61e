/**
 * The mesh on real UDP between processes in network namespaces: h1 and h3 sit on separate
 * segments that only h2 joins, so they can talk only through h2's relay.
 *
 *   h1 (Node) ── veth ── h2 (Deno) ── veth ── h3 (Bun)
 *
 * One `mesh-peer.ts` process per host; h1 and h3 know only h2 (static peer); h2 knows no
 * one and admits them by the mesh secret. WEFT_MESH_RUNTIMES=node,node,node picks other
 * runtimes. Root only; under CI=true it must run. Traffic goes only to addresses this
 * test gives to the veth links it creates.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { loadRuntime } from "../../runtimes/index.ts";
import { toBase64 } from "../../src/crypto/index.ts";
import type { MeshStatus } from "../../src/mesh/status.ts";
import {
  killAllMeshPeers,
  MeshPeerProcess,
  type PeerRuntime,
} from "../helpers/mesh-peer-client.ts";
import { createTestNetwork } from "../helpers/netns.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";

const TOOLS = ["ip", "ping"];
const MESH_PORT = 51820;
const APP_PORT = 7;
const BURST = 20;
const RUNTIMES = (process.env.WEFT_MESH_RUNTIMES ?? "node,deno,bun").split(",") as PeerRuntime[];

after(() => killAllMeshPeers());

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 200 ms until it returns true; fails with `what` after `timeoutMs`. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

function text(data: Uint8Array): string {
  return new TextDecoder().decode(data);
}

function base64Text(value: string): string {
  return toBase64(new TextEncoder().encode(value));
}

describe("mesh over real UDP in network namespaces", () => {
  test(
    "h1 and h3 on separate segments exchange datagrams through h2, which relays them",
    rootOnly(...TOOLS),
    async () => {
      assertCanRun(...TOOLS);
      const { crypto } = await loadRuntime();
      const network = createTestNetwork("mesh");
      const peers: MeshPeerProcess[] = [];
      try {
        const [h1, h2, h3] = [network.addHost("h1"), network.addHost("h2"), network.addHost("h3")];
        const left = network.linkHosts(h1, h2);
        const right = network.linkHosts(h2, h3);
        assert.throws(
          () => h1.exec("ping", ["-c", "1", "-W", "1", right.addressB]),
          "h1 has no route to h3",
        );

        const keys = [0, 1, 2].map(() => crypto.generatePrivateKey());
        const publicKeys = keys.map((key) => toBase64(crypto.publicKey(key)));
        const secret = toBase64(crypto.randomBytes(32));
        const at = (address: string) => ({ address, port: MESH_PORT });
        const h2Key = publicKeys[1]!;
        const start = (index: number, namespace: string, bind: string, config: object) => {
          const name = `h${index + 1}`;
          const peer = new MeshPeerProcess(
            name,
            RUNTIMES[index] ?? "node",
            {
              privateKey: toBase64(keys[index]!),
              nickname: name,
              bind: at(bind),
              presharedKey: secret,
              logLevels: ["info", "warn"],
              ...config,
            },
            ["ip", "netns", "exec", namespace],
          );
          peers.push(peer);
          return peer;
        };
        // h2 first, so the others' first handshakes find it listening.
        const p2 = start(1, h2.namespace, "0.0.0.0", {
          advertise: [at(left.addressB), at(right.addressA)],
        });
        await p2.ready();
        const p1 = start(0, h1.namespace, left.addressA, {
          advertise: [at(left.addressA)],
          peers: [{ publicKey: h2Key, endpoint: at(left.addressB) }],
        });
        const p3 = start(2, h3.namespace, right.addressB, {
          advertise: [at(right.addressB)],
          peers: [{ publicKey: h2Key, endpoint: at(right.addressA) }],
        });
        const ready = await Promise.all([p1.ready(), p2.ready(), p3.ready()]);
        console.log(`runtimes: ${ready.map((r, i) => `h${i + 1} ${r.runtime}`).join(", ")}`);
        const [k1, , k3] = publicKeys as [string, string, string];

        const pathTo = async (from: MeshPeerProcess, key: string) =>
          (await from.status()).status.peers.find((p) => p.publicKey === key);
        await waitFor(
          "h1 and h3 to learn a relayed path to each other",
          async () =>
            (await pathTo(p1, k3))?.path === "relayed" &&
            (await pathTo(p3, k1))?.path === "relayed",
          20_000,
        );

        // The first datagrams wait for the end-to-end handshake through h2 (and may be lost
        // with it, as UDP may): repeat until one arrives each way, then count a burst.
        const has = (peer: MeshPeerProcess, prefix: string) =>
          peer.received.some((r) => text(r.data).startsWith(prefix));
        await waitFor(
          "a first datagram each way",
          async () => {
            if (!has(p3, "hello from h1"))
              await p1.request({
                cmd: "send",
                to: k3,
                port: APP_PORT,
                data: base64Text("hello from h1"),
              });
            if (!has(p1, "hello from h3"))
              await p3.request({
                cmd: "send",
                to: k1,
                port: APP_PORT,
                data: base64Text("hello from h3"),
              });
            return has(p3, "hello from h1") && has(p1, "hello from h3");
          },
          20_000,
        );
        for (let i = 0; i < BURST; i++) {
          await p1.request({ cmd: "send", to: k3, port: APP_PORT, data: base64Text(`h1 #${i}`) });
          await p3.request({ cmd: "send", to: k1, port: APP_PORT, data: base64Text(`h3 #${i}`) });
        }
        const burst = (peer: MeshPeerProcess, from: string, prefix: string) =>
          new Set(
            peer.received
              .filter((r) => r.from === from && r.port === APP_PORT)
              .map((r) => text(r.data))
              .filter((t) => t.startsWith(prefix)),
          ).size;
        await waitFor(
          `${BURST} datagrams each way`,
          async () => burst(p3, k1, "h1 #") === BURST && burst(p1, k3, "h3 #") === BURST,
          5_000,
        );

        const statuses: MeshStatus[] = [];
        for (const peer of [p1, p2, p3]) {
          const { status, table } = await peer.status();
          statuses.push(status);
          console.log(table);
          console.log(
            `  counters ${JSON.stringify(status.relayed)} drops ${JSON.stringify(status.drops)}`,
          );
        }
        const [s1, s2, s3] = statuses as [MeshStatus, MeshStatus, MeshStatus];
        const h3SeenFromH1 = s1.peers.find((p) => p.publicKey === k3)!;
        assert.equal(h3SeenFromH1.path, "relayed");
        assert.deepEqual(h3SeenFromH1.via, [h2Key]);
        assert.equal(h3SeenFromH1.hops, 2);
        assert.ok(h3SeenFromH1.rxBytes > 0 && h3SeenFromH1.txBytes > 0);
        assert.equal(s3.peers.find((p) => p.publicKey === k1)!.path, "relayed");
        for (const p of s2.peers)
          assert.equal(p.path, "direct", `h2 reaches ${p.nickname} directly`);
        assert.ok(
          s2.relayed.relayedForwarded >= 2 * BURST,
          `h2 forwarded ${s2.relayed.relayedForwarded} relay frames`,
        );
        assert.ok(s1.relayed.relayedOut >= BURST && s1.relayed.relayedIn >= BURST);
        for (const status of [s1, s3])
          assert.equal(status.drops["relay-unknown-source"], undefined, "no relayed frame refused");
      } catch (error) {
        for (const peer of peers) console.log(`--- ${peer.name} stderr\n${peer.stderr.join("\n")}`);
        throw error;
      } finally {
        await Promise.all(peers.map((peer) => peer.stop()));
        network.cleanup();
      }
    },
  );
});
