/**
 * Crypto throughput per provider on this runtime: ChaCha20-Poly1305 seal and open at
 * 64, 512, 1420 and 8192 bytes (into preallocated buffers, as the data path does) and
 * X25519 DH per second. Medians of 5 runs; writes bench/results/crypto-<runtime>.json.
 *
 * npm run bench:crypto    (runs it on Node, Deno and Bun in turn)
 */

import { loadRuntime } from "../runtimes/index.ts";
import { type Crypto, nobleCrypto } from "../src/crypto/index.ts";
import { opsPerSecond, writeResult } from "./harness.ts";

const SIZES = [64, 512, 1420, 8192];
const runtime = await loadRuntime();

interface AeadRow {
  bytes: number;
  sealMbps: number;
  openMbps: number;
  sealPacketsPerSecond: number;
}

function benchAead(crypto: Crypto, bytes: number): AeadRow {
  const key = crypto.randomBytes(32);
  const nonce = new Uint8Array(12);
  const plaintext = crypto.randomBytes(bytes);
  const aad = new Uint8Array(0);
  const sealed = new Uint8Array(bytes + 16);
  const opened = new Uint8Array(bytes);
  crypto.aeadSeal(key, nonce, plaintext, aad, sealed);
  const seal = opsPerSecond(() => crypto.aeadSeal(key, nonce, plaintext, aad, sealed));
  const open = opsPerSecond(() => {
    if (!crypto.aeadOpen(key, nonce, sealed, aad, opened))
      throw new Error("open failed in benchmark");
  });
  const mbps = (ops: number) => Math.round((ops * bytes * 8) / 1e6);
  return {
    bytes,
    sealMbps: mbps(seal),
    openMbps: mbps(open),
    sealPacketsPerSecond: Math.round(seal),
  };
}

/**
 * DH with the same key arrays each time (static keys, used in every handshake), and a
 * handshake's ephemeral pattern: generate a private key, then one DH with it.
 */
function benchDh(crypto: Crypto): { sameKeys: number; generateAndDh: number } {
  const a = crypto.generatePrivateKey();
  const bPublic = crypto.publicKey(crypto.generatePrivateKey());
  return {
    sameKeys: Math.round(opsPerSecond(() => crypto.dh(a, bPublic), 5, 300)),
    generateAndDh: Math.round(
      opsPerSecond(() => crypto.dh(crypto.generatePrivateKey(), bPublic), 5, 300),
    ),
  };
}

const providers: Array<[string, Crypto]> = [
  ["noble", nobleCrypto],
  ["native", runtime.crypto],
];
const results = providers.map(([name, crypto]) => ({
  provider: name,
  implementations: crypto.implementations,
  chacha20poly1305: SIZES.map((bytes) => benchAead(crypto, bytes)),
  x25519DhPerSecond: benchDh(crypto),
}));

const path = writeResult(`crypto-${runtime.name}`, {
  benchmark: "crypto",
  runtime: runtime.name,
  runtimeVersion: runtime.version,
  date: new Date().toISOString(),
  method: "median of 5 runs of >=200 ms each; seal and open into preallocated buffers",
  results,
});

console.log(`\ncrypto on ${runtime.name} ${runtime.version}`);
console.log("provider  chacha impl    bytes   seal Mbit/s   open Mbit/s");
for (const r of results) {
  for (const row of r.chacha20poly1305) {
    console.log(
      `${r.provider.padEnd(9)} ${r.implementations.chacha20poly1305.padEnd(13)} ${String(row.bytes).padStart(6)} ${String(row.sealMbps).padStart(13)} ${String(row.openMbps).padStart(13)}`,
    );
  }
}
for (const r of results) {
  const dh = r.x25519DhPerSecond;
  console.log(
    `${r.provider.padEnd(9)} x25519 (${r.implementations.x25519}): ${dh.sameKeys} DH/s same keys, ${dh.generateAndDh}/s generate+DH`,
  );
}
const noble1420 = results[0]!.chacha20poly1305.find((x) => x.bytes === 1420)!;
const native1420 = results[1]!.chacha20poly1305.find((x) => x.bytes === 1420)!;
console.log(
  `native/noble at 1420 B: seal ${(native1420.sealMbps / noble1420.sealMbps).toFixed(2)}x, open ${(native1420.openMbps / noble1420.openMbps).toFixed(2)}x`,
);
console.log(`wrote ${path}`);
