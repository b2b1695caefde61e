/**
 * Relayed against direct throughput on real loopback UDP, one process per peer
 * (test/helpers/mesh-peer.ts), all on 127.0.0.1:
 *
 *   relayed:  A ──► B ──► C    A and C know only B, and advertise 127.0.0.1:9, where
 *                              nothing listens: the only path between them is B
 *   direct:   A' ──────► C'    A' knows C' at its real port
 *
 * A floods C with datagrams as fast as its event loop and socket allow; C counts what
 * arrives. Runs alternate between the two pairs so both see the same machine state.
 */

import type { PortCounts } from "../test/helpers/mesh-peer.ts";
import { MeshPeerProcess, type PeerRuntime } from "../test/helpers/mesh-peer-client.ts";
import { median } from "./harness.ts";

const LOOPBACK = "127.0.0.1";
/** The discard port: nothing listens there, so a relayed pair cannot find a direct path. */
const NOWHERE = { address: LOOPBACK, port: 9 };
const FLOOD_PORT = 9000;
const PROBE_PORT = 9001;

export interface LoopbackOptions {
  readonly runtime: PeerRuntime;
  readonly sizes: readonly number[];
  readonly runs: number;
  readonly datagramsPerRun: number;
  readonly crypto: { generatePrivateKey(): Uint8Array; publicKey(k: Uint8Array): Uint8Array };
  readonly toBase64: (bytes: Uint8Array) => string;
}

export interface FloodRun {
  sent: number;
  received: number;
  mbps: number;
}

export interface LoopbackResult {
  runtime: PeerRuntime;
  bytes: number;
  relayed: { medianMbps: number; medianLoss: number; runs: FloodRun[] };
  direct: { medianMbps: number; medianLoss: number; runs: FloodRun[] };
  relayedOverDirect: number;
  relayPath: string;
}

interface Pair {
  from: MeshPeerProcess;
  to: MeshPeerProcess;
  toKey: string;
  all: MeshPeerProcess[];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function startPair(relayed: boolean, options: LoopbackOptions): Promise<Pair> {
  const { crypto, toBase64, runtime } = options;
  const key = () => crypto.generatePrivateKey();
  const secret = toBase64(key());
  const base = (name: string, privateKey: Uint8Array) => ({
    privateKey: toBase64(privateKey),
    nickname: name,
    bind: { address: LOOPBACK, port: 0 },
    presharedKey: secret,
  });
  const [keyA, keyB, keyC] = [key(), key(), key()];
  const all: MeshPeerProcess[] = [];
  const start = (name: string, config: object) => {
    const peer = new MeshPeerProcess(name, runtime, config as never);
    all.push(peer);
    return peer;
  };
  try {
    let from: MeshPeerProcess;
    let to: MeshPeerProcess;
    if (relayed) {
      const b = start("B", base("B", keyB));
      const { port } = await b.ready();
      const viaB = [
        { publicKey: toBase64(crypto.publicKey(keyB)), endpoint: { address: LOOPBACK, port } },
      ];
      from = start("A", { ...base("A", keyA), advertise: [NOWHERE], peers: viaB });
      to = start("C", { ...base("C", keyC), advertise: [NOWHERE], peers: viaB });
    } else {
      to = start("C'", base("C'", keyC));
      const { port } = await to.ready();
      const toC = [
        { publicKey: toBase64(crypto.publicKey(keyC)), endpoint: { address: LOOPBACK, port } },
      ];
      from = start("A'", { ...base("A'", keyA), peers: toC });
    }
    await Promise.all(all.map((p) => p.ready()));
    const toKey = toBase64(crypto.publicKey(keyC));
    await to.request({ cmd: "count", port: FLOOD_PORT });
    // Until a datagram arrives, the end-to-end session (through B) is not up yet.
    const deadline = Date.now() + 30_000;
    while (!to.received.some((r) => r.port === PROBE_PORT)) {
      if (Date.now() > deadline) throw new Error(`No datagram from ${from.name} to ${to.name}`);
      await from.request({ cmd: "send", to: toKey, port: PROBE_PORT, data: "AA==" });
      await sleep(250);
    }
    return { from, to, toKey, all };
  } catch (error) {
    for (const peer of all) peer.kill();
    throw error;
  }
}

async function flood(pair: Pair, bytes: number, count: number): Promise<FloodRun> {
  await pair.to.request({ cmd: "count", port: FLOOD_PORT }); // from zero
  const { sent } = await pair.from.request<{ sent: number }>(
    { cmd: "flood", to: pair.toKey, port: FLOOD_PORT, count, bytes },
    120_000,
  );
  await sleep(500); // what is still in flight arrives
  const { counts } = await pair.to.request<{ counts: PortCounts }>({
    cmd: "counts",
    port: FLOOD_PORT,
  });
  const seconds = (counts.lastMs - counts.firstMs) / 1000;
  const mbps = seconds > 0 ? (counts.bytes * 8) / seconds / 1e6 : 0;
  return { sent, received: counts.datagrams, mbps: Math.round(mbps * 10) / 10 };
}

function summarize(runs: FloodRun[]) {
  return {
    medianMbps: median(runs.map((r) => r.mbps)),
    medianLoss: Math.round(median(runs.map((r) => 1 - r.received / r.sent)) * 1000) / 1000,
    runs,
  };
}

export async function measureLoopback(
  options: LoopbackOptions,
  progress: (line: string) => void,
): Promise<LoopbackResult[]> {
  const relayedPair = await startPair(true, options);
  const directPair = await startPair(false, options);
  try {
    const { status } = await relayedPair.from.status();
    const c = status.peers.find((p) => p.publicKey === relayedPair.toKey);
    const relayPath = `${c?.path} via ${c?.via.length} relay(s), ${c?.hops} hops`;
    if (c?.path !== "relayed") throw new Error(`A reaches C ${relayPath}, not relayed`);
    const results: LoopbackResult[] = [];
    for (const bytes of options.sizes) {
      await flood(relayedPair, bytes, Math.min(2000, options.datagramsPerRun)); // warm-up
      await flood(directPair, bytes, Math.min(2000, options.datagramsPerRun));
      const relayed: FloodRun[] = [];
      const direct: FloodRun[] = [];
      for (let run = 0; run < options.runs; run++) {
        relayed.push(await flood(relayedPair, bytes, options.datagramsPerRun));
        direct.push(await flood(directPair, bytes, options.datagramsPerRun));
        progress(
          `${bytes} B run ${run + 1}: relayed ${relayed.at(-1)!.mbps} Mbit/s, direct ${direct.at(-1)!.mbps} Mbit/s`,
        );
      }
      const r = summarize(relayed);
      const d = summarize(direct);
      results.push({
        runtime: options.runtime,
        bytes,
        relayed: r,
        direct: d,
        relayedOverDirect: Math.round((r.medianMbps / d.medianMbps) * 100) / 100,
        relayPath,
      });
    }
    const after = await relayedPair.from.status();
    const stillRelayed = after.status.peers.find((p) => p.publicKey === relayedPair.toKey)?.path;
    if (stillRelayed !== "relayed") throw new Error(`A reaches C ${stillRelayed} after the runs`);
    return results;
  } finally {
    await Promise.all([...relayedPair.all, ...directPair.all].map((p) => p.stop()));
  }
}
