/**
 * Fuzzing a Device's receive path: 100,000 generated datagrams per mode, from several
 * attacker hosts on the simulated network, at both devices of a pair with a live session.
 * None may throw out of the receive path, reach a Tun, log an internal error, be let
 * through without a drop being counted, or grow the device's tables; afterwards the real
 * session still carries data and can rekey.
 *
 * Datagrams come from a seeded generator (src/sim's createRandom), not fast-check: a
 * hundred thousand of them must take seconds. A failure names the seed; WEFT_FUZZ_SEED
 * replays the same datagrams (keys and indices are still fresh random each run).
 */
import assert from "node:assert/strict";
import { env } from "node:process";
import { describe, test } from "node:test";
import { concatBytes } from "../../src/crypto/index.ts";
import { createRandom, type Random, type SimPacketConn } from "../../src/sim/index.ts";
import {
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
} from "../../src/tunnel/constants.ts";
import {
  addMacs,
  type CookieGenerator,
  consumeCookieReply,
  createCookieGenerator,
} from "../../src/tunnel/cookie.ts";
import {
  createInitiation,
  createLocalIdentity,
  createRemoteIdentity,
} from "../../src/tunnel/handshake.ts";
import { udpPacket } from "../helpers/packets.ts";
import { providers } from "../helpers/providers.ts";
import {
  A_OVERLAY,
  A_UNDERLAY,
  B_OVERLAY,
  B_UNDERLAY,
  createTunnelPair,
  type Side,
  type TunnelPair,
} from "../helpers/tunnel-pair.ts";

const native = providers[1]![1];
const PORT = 51820;
const CASES_PER_MODE = 100_000;
const BATCH = 1_000;
/** Virtual time between batches: keeps handshake messages under the device's load threshold. */
const BATCH_INTERVAL_MS = 500;
const MAX_DATAGRAM_BYTES = 2_000;
const ATTACKERS = Array.from({ length: 8 }, (_, i) => `198.51.100.${i + 1}`);
const ATTACKER_PORT = 40_000;
/** Lengths around every message size, where off-by-one errors live. */
const EDGE_LENGTHS = [
  0,
  1,
  3,
  4,
  5,
  8,
  15,
  16,
  17,
  31,
  32,
  33,
  63,
  64,
  65,
  91,
  92,
  93,
  147,
  148,
  149,
  1420,
  1472,
  MAX_DATAGRAM_BYTES,
];
const HANDSHAKE_SIZES: Record<number, number> = {
  [MESSAGE_INITIATION_TYPE]: MESSAGE_INITIATION_SIZE,
  [MESSAGE_RESPONSE_TYPE]: MESSAGE_RESPONSE_SIZE,
  [MESSAGE_COOKIE_REPLY_TYPE]: MESSAGE_COOKIE_REPLY_SIZE,
};
const encoder = new TextEncoder();

type Name = "a" | "b";

/** Runs `body` with a seeded Random; a failure says which seed reproduces it. */
function withSeed(body: (random: Random, seed: number) => void): void {
  const seed =
    env.WEFT_FUZZ_SEED === undefined
      ? Math.floor(Math.random() * 2 ** 32)
      : Number(env.WEFT_FUZZ_SEED);
  try {
    body(createRandom(seed), seed);
  } catch (error) {
    if (error instanceof Error) {
      // Runners print either the message (Deno, Bun) or the stack (Node): say it in both.
      const line = `fuzz seed ${seed}: rerun with WEFT_FUZZ_SEED=${seed}`;
      error.message = `${error.message}\n(${line})`;
      error.stack = `${line}\n${error.stack}`;
    }
    throw error;
  }
}

function typeOf(message: Uint8Array): number {
  return message.length < 4
    ? 0
    : new DataView(message.buffer, message.byteOffset, 4).getUint32(0, true);
}

function setUint32(message: Uint8Array, offset: number, value: number): void {
  new DataView(message.buffer, message.byteOffset).setUint32(offset, value >>> 0, true);
}

function sumOf(record: Record<string, number>): number {
  return Object.values(record).reduce((sum, n) => sum + n, 0);
}

function internalErrors(side: Side): string[] {
  return side.logs.filter((line) => line.includes("internal error"));
}

/** Real messages addressed to one device, to mutate. */
interface Corpus {
  handshake: Uint8Array[];
  transport: Uint8Array[];
  /** The genuine initiation the device consumed (only B receives initiations). */
  initiation: Uint8Array | undefined;
}

/**
 * A pair with a session both ways, quiet for minutes (spec timers), and the real
 * messages each device received. `loaded` puts both devices under load, so each
 * handshake message needs a cookie first and cookie replies flow both ways.
 */
function establish(
  seed: number,
  loaded: boolean,
): { pair: TunnelPair; corpus: Record<Name, Corpus> } {
  const underLoad = loaded ? { underLoadHandshakesPerSecond: 0 } : undefined;
  const pair = createTunnelPair({ crypto: native, seed, a: underLoad, b: underLoad });
  const { clock, network, a, b } = pair;
  // Attackers may send more than an Ethernet MTU: the device must cope with any length.
  network.setDefaultLink({ mtuBytes: 65_535 });
  a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, encoder.encode("hello B")));
  clock.advance(loaded ? 12_000 : 10);
  b.tun.inject(udpPacket(B_OVERLAY, A_OVERLAY, 2, 1, encoder.encode("hello A")));
  clock.advance(10_100); // A's keepalive
  a.tun.inject(udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, encoder.encode("hello again B")));
  clock.advance(10_100); // B's keepalive
  assert.equal(b.tun.written.length, 2, b.logs.join("\n"));
  assert.equal(a.tun.written.length, 1, a.logs.join("\n"));
  const received = (from: Side): Corpus => {
    const handshake = from.conn.sent.filter((m) => typeOf(m) !== MESSAGE_TRANSPORT_TYPE);
    return {
      handshake,
      transport: from.conn.sent.filter((m) => typeOf(m) === MESSAGE_TRANSPORT_TYPE),
      initiation: handshake.filter((m) => typeOf(m) === MESSAGE_INITIATION_TYPE).at(-1),
    };
  };
  return { pair, corpus: { a: received(b), b: received(a) } };
}

/** One attacker host: its socket and, per target device, what it needs to forge macs. */
interface Attacker {
  conn: SimPacketConn;
  /** Makes mac1 (public key known) and mac2 (once a cookie reply came back) for a target. */
  generators: Record<Name, CookieGenerator>;
}

function listenAttackers(pair: TunnelPair): Attacker[] {
  return ATTACKERS.map((address) => {
    const conn = pair.network.listen(address, ATTACKER_PORT);
    const generators: Record<Name, CookieGenerator> = {
      a: createCookieGenerator(native, pair.a.publicKey),
      b: createCookieGenerator(native, pair.b.publicKey),
    };
    conn.onReceive((data, from) => {
      const target = from.address === A_UNDERLAY ? "a" : "b";
      // Keep the cookie if this reply answers the last message sent; else ignore it.
      consumeCookieReply(native, generators[target], data, pair.clock.now());
    });
    return { conn, generators };
  });
}

/**
 * Makes the datagrams. Every kind is unauthenticated or a replay, so the device must drop
 * each one; the kinds aim at every check on the way in.
 */
class DatagramFactory {
  readonly #random: Random;
  readonly #corpus: Record<Name, Corpus>;
  readonly #pair: TunnelPair;
  readonly #stranger = createLocalIdentity(native, native.generatePrivateKey());
  readonly kinds = new Map<string, number>();

  constructor(random: Random, corpus: Record<Name, Corpus>, pair: TunnelPair) {
    this.#random = random;
    this.#corpus = corpus;
    this.#pair = pair;
  }

  /** A datagram for `target` from `attacker`; its kind is counted in `kinds`. */
  make(target: Name, attacker: Attacker): Uint8Array {
    const r = this.#random;
    const corpus = this.#corpus[target];
    const real = (list: Uint8Array[]) => list[r.int(list.length)]!;
    const anyReal = () => real(r.int(2) === 0 ? corpus.handshake : corpus.transport);
    const roll = r.int(100);
    let kind: string;
    let datagram: Uint8Array;
    if (roll < 20) {
      kind = "random bytes";
      datagram = r.bytes(this.#length());
    } else if (roll < 30) {
      kind = "truncated copy";
      const message = anyReal();
      datagram = message.slice(0, r.int(message.length));
    } else if (roll < 40) {
      kind = "extended copy";
      const message = anyReal();
      const extra = 1 + r.int(MAX_DATAGRAM_BYTES - message.length);
      datagram = concatBytes(message, r.bytes(r.int(4) === 0 ? 1 : extra));
    } else if (roll < 50) {
      kind = "right type, wrong size";
      const type = 1 + r.int(4);
      let length = this.#length();
      const size = HANDSHAKE_SIZES[type];
      if (size !== undefined && length === size) length++;
      if (type === MESSAGE_TRANSPORT_TYPE) length = r.int(MESSAGE_TRANSPORT_MIN_SIZE);
      datagram = r.bytes(length);
      if (length >= 4) setUint32(datagram, 0, type);
    } else if (roll < 55) {
      kind = "right size, nonzero reserved bytes";
      const message = anyReal().slice();
      message[1 + r.int(3)]! |= 1 + r.int(255);
      datagram = message;
    } else if (roll < 65) {
      kind = "right size, random content";
      const type = 1 + r.int(4);
      const length =
        HANDSHAKE_SIZES[type] ??
        MESSAGE_TRANSPORT_MIN_SIZE + r.int(MAX_DATAGRAM_BYTES - MESSAGE_TRANSPORT_MIN_SIZE);
      datagram = r.bytes(length);
      setUint32(datagram, 0, type);
    } else if (roll < 80) {
      [kind, datagram] = this.#transport(real(corpus.transport));
    } else if (roll < 90) {
      kind = "real message, bits flipped";
      datagram = anyReal().slice();
      for (let i = 1 + r.int(8); i > 0; i--) datagram[r.int(datagram.length)]! ^= 1 << r.int(8);
    } else {
      [kind, datagram] = this.#withMacs(target, attacker);
    }
    this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
    return datagram;
  }

  /** Half the time a length near a message size, else any up to MAX_DATAGRAM_BYTES. */
  #length(): number {
    const r = this.#random;
    return r.int(2) === 0
      ? EDGE_LENGTHS[r.int(EDGE_LENGTHS.length)]!
      : r.int(MAX_DATAGRAM_BYTES + 1);
  }

  /** A real transport header with something changed, or the real message replayed. */
  #transport(message: Uint8Array): [string, Uint8Array] {
    const r = this.#random;
    const copy = message.slice();
    switch (r.int(5)) {
      case 0:
        setUint32(copy, 4, r.int(2 ** 32));
        return ["transport, random receiver index", copy];
      case 1: {
        // A random counter, one at the top of the 64-bit range, or a small one like the real ones.
        const how = r.int(3);
        const low = how === 0 ? r.int(2 ** 32) : how === 1 ? 2 ** 32 - 1 - r.int(8) : r.int(64);
        setUint32(copy, 8, low);
        setUint32(copy, 12, how === 0 ? r.int(2 ** 32) : how === 1 ? 2 ** 32 - 1 : 0);
        return ["transport, random counter", copy];
      }
      case 2:
        copy.set(r.bytes(copy.length - 16), 16);
        return ["transport, random ciphertext", copy];
      case 3: {
        const length = MESSAGE_TRANSPORT_MIN_SIZE + r.int(MAX_DATAGRAM_BYTES);
        return [
          "transport, random ciphertext length",
          concatBytes(copy.subarray(0, 16), r.bytes(length - 16)),
        ];
      }
      default:
        return ["transport, replayed", copy];
    }
  }

  /**
   * Handshake messages with a valid mac1, as anyone who knows the target's public key can
   * make, and a valid mac2 once the target under load sent this attacker a cookie: these
   * get past the DoS checks to the handshake code itself.
   */
  #withMacs(target: Name, attacker: Attacker): [string, Uint8Array] {
    const r = this.#random;
    const corpus = this.#corpus[target];
    const targetSide = target === "a" ? this.#pair.a : this.#pair.b;
    let kind: string;
    let message: Uint8Array;
    const choice = r.int(10);
    if (choice < 4) {
      kind = "initiation, random content, valid macs";
      message = r.bytes(MESSAGE_INITIATION_SIZE);
      setUint32(message, 0, MESSAGE_INITIATION_TYPE);
    } else if (choice < 8) {
      kind = "response, random content, valid macs";
      message = r.bytes(MESSAGE_RESPONSE_SIZE);
      setUint32(message, 0, MESSAGE_RESPONSE_TYPE);
      // Half aimed at a live receiver index of the target (transport messages name it).
      if (r.int(2) === 0) setUint32(message, 8, receiverIndexOf(corpus.transport[0]!));
    } else if (choice < 9 && corpus.initiation) {
      kind = "genuine initiation replayed, valid macs";
      message = corpus.initiation.slice();
    } else {
      kind = "initiation from an unknown static key";
      const remote = createRemoteIdentity(native, this.#stranger, targetSide.publicKey);
      const created = createInitiation(
        native,
        this.#stranger,
        remote,
        r.int(2 ** 32),
        this.#pair.clock.wallNow(),
      );
      assert.ok(created, "an initiation from the stranger could be built");
      message = created.message;
    }
    addMacs(native, attacker.generators[target], message, this.#pair.clock.now());
    return [kind, message];
  }
}

/**
 * Bytes 4-7 as a little-endian index: the receiver index of a transport message (the
 * receiving device's own index for the keypair), the sender index of an initiation.
 */
function receiverIndexOf(message: Uint8Array): number {
  return new DataView(message.buffer, message.byteOffset).getUint32(4, true);
}

interface FuzzOutcome {
  pair: TunnelPair;
  attackers: Attacker[];
  drops: Record<Name, Record<string, number>>;
  kinds: Map<string, number>;
}

/**
 * Sends CASES_PER_MODE datagrams in batches, alternating targets at random, and checks
 * the device invariants after every batch.
 */
function fuzz(random: Random, seed: number, loaded: boolean): FuzzOutcome {
  const { pair, corpus } = establish(seed, loaded);
  const { clock, a, b } = pair;
  const attackers = listenAttackers(pair);
  const sides: Record<Name, Side> = { a, b };
  const baseline = {
    a: a.device.diagnostics(),
    b: b.device.diagnostics(),
  };
  const startDrops = { a: a.device.drops(), b: b.device.drops() };
  const written = { a: a.tun.written.length, b: b.tun.written.length };
  const peers = { a: a.device.peers(), b: b.device.peers() };
  const factory = new DatagramFactory(random, corpus, pair);

  // Each attacker asks each target once, so that under load it holds a cookie (mac2).
  for (const attacker of attackers) {
    for (const target of ["a", "b"] as const) {
      const message = factory.make(target, attacker);
      attacker.conn.send(message, {
        address: target === "a" ? A_UNDERLAY : B_UNDERLAY,
        port: PORT,
      });
    }
  }
  clock.advance(1);

  for (let sent = 0; sent < CASES_PER_MODE; sent += BATCH) {
    const before = { a: a.device.drops(), b: b.device.drops() };
    const count = { a: 0, b: 0 };
    for (let i = 0; i < BATCH; i++) {
      const target: Name = random.int(2) === 0 ? "a" : "b";
      const attacker = attackers[random.int(attackers.length)]!;
      const datagram = factory.make(target, attacker);
      attacker.conn.send(datagram, {
        address: target === "a" ? A_UNDERLAY : B_UNDERLAY,
        port: PORT,
      });
      count[target]++;
    }
    clock.advance(BATCH_INTERVAL_MS);
    for (const name of ["a", "b"] as const) {
      const side = sides[name];
      const where = `device ${name.toUpperCase()} after ${sent + BATCH} datagrams`;
      assert.deepEqual(internalErrors(side), [], where);
      assert.equal(side.tun.written.length, written[name], `${where}: wrote to its Tun`);
      // Every datagram was dropped, and counted once.
      const dropped = sumOf(side.device.drops()) - sumOf(before[name]);
      assert.equal(dropped, count[name], `${where}: ${count[name]} datagrams, ${dropped} drops`);
      const now = side.device.diagnostics();
      assert.equal(now.indices, baseline[name].indices, `${where}: receiver indices`);
      assert.equal(now.stagedPackets, baseline[name].stagedPackets, `${where}: staged packets`);
      if (loaded) {
        // Under load a source with a cookie reaches the rate limiter: one bucket per address.
        assert.ok(
          now.rateLimitedSources <= baseline[name].rateLimitedSources + ATTACKERS.length,
          `${where}: ${now.rateLimitedSources} rate-limited sources`,
        );
      } else {
        assert.equal(
          now.rateLimitedSources,
          baseline[name].rateLimitedSources,
          `${where}: rate limiter`,
        );
      }
      assert.deepEqual(side.device.peers(), peers[name], `${where}: peer state changed`);
    }
  }
  const drops = {
    a: subtract(a.device.drops(), startDrops.a),
    b: subtract(b.device.drops(), startDrops.b),
  };
  return { pair, attackers, drops, kinds: factory.kinds };
}

function subtract(
  after: Record<string, number>,
  before: Record<string, number>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [reason, n] of Object.entries(after)) {
    if (n - (before[reason] ?? 0) > 0) out[reason] = n - (before[reason] ?? 0);
  }
  return out;
}

/** Fresh packets both ways, then a new handshake, then fresh packets again. */
function assertSessionWorks(pair: TunnelPair, note: string): void {
  const { clock, a, b } = pair;
  const exchange = (label: string) => {
    const toB = udpPacket(A_OVERLAY, B_OVERLAY, 3, 4, encoder.encode(`${label} to B`));
    const toA = udpPacket(B_OVERLAY, A_OVERLAY, 4, 3, encoder.encode(`${label} to A`));
    const [seenA, seenB] = [a.tun.written.length, b.tun.written.length];
    a.tun.inject(toB);
    b.tun.inject(toA);
    clock.advance(1);
    assert.deepEqual(b.tun.written.slice(seenB), [toB], `${note}: ${label}, A to B`);
    assert.deepEqual(a.tun.written.slice(seenA), [toA], `${note}: ${label}, B to A`);
  };
  exchange("after the fuzz");
  const handshakes = a.device.peers()[0]!.handshakesCompleted;
  a.device.connect(b.publicKey);
  clock.advance(12_000); // under load the cookie round trips may cost retransmissions
  assert.equal(
    a.device.peers()[0]!.handshakesCompleted,
    handshakes + 1,
    `${note}: no new handshake\n${a.logs.slice(-10).join("\n")}\n${b.logs.slice(-10).join("\n")}`,
  );
  exchange("after a new handshake");
}

describe("fuzzing the receive path", () => {
  test("100,000 datagrams, not under load: all dropped, nothing grows, the session survives", () => {
    withSeed((random, seed) => {
      const { pair, drops, kinds } = fuzz(random, seed, false);
      // Never under load: no cookies, no rate limiting.
      for (const name of ["a", "b"] as const) {
        assert.equal(drops[name]["cookie-sent"] ?? 0, 0, JSON.stringify(drops));
        assert.equal(drops[name]["rate-limited"] ?? 0, 0, JSON.stringify(drops));
      }
      assertReached(drops, kinds, [
        "malformed",
        "mac1",
        "unknown-index",
        "decrypt-failed",
        "replayed-counter",
        "cookie-reply-failed",
        "handshake-refused",
        "replayed-initiation",
      ]);
      assertSessionWorks(pair, `seed ${seed}`);
    });
  });

  test("100,000 datagrams under load: cookies and rate limits, bounded per source, the session survives", () => {
    withSeed((random, seed) => {
      const { pair, drops, kinds } = fuzz(random, seed, true);
      assertReached(drops, kinds, [
        "malformed",
        "mac1",
        "cookie-sent",
        "rate-limited",
        "unknown-index",
        "decrypt-failed",
        "replayed-counter",
        "cookie-reply-failed",
        "handshake-refused",
        "replayed-initiation",
      ]);
      // A second later the attackers' buckets are stale: the next handshake message sweeps them.
      pair.clock.advance(1_000);
      assertSessionWorks(pair, `seed ${seed}`);
      for (const side of [pair.a, pair.b]) {
        assert.ok(
          side.device.diagnostics().rateLimitedSources <= 1,
          `${side.device.diagnostics().rateLimitedSources} rate-limited sources after the attack`,
        );
      }
    });
  });

  test("forged responses (valid mac1) and cookie replies aimed at a pending handshake leave it intact", () => {
    // An on-path attacker sees the initiation, so it knows the pending handshake's index,
    // and anyone knows A's public key, so its forgeries pass mac1 and reach the Noise
    // code (two DH each). B's real response is 100 ms behind them and must still complete
    // the handshake. 500 stay below the default load threshold (1,000 per second).
    withSeed((random, seed) => {
      const pair = createTunnelPair({ crypto: native, seed });
      const { clock, network, a, b } = pair;
      network.setLink(B_UNDERLAY, A_UNDERLAY, { latencyMs: 100 });
      const attacker = listenAttackers(pair)[0]!;
      const packet = udpPacket(A_OVERLAY, B_OVERLAY, 1, 2, encoder.encode("first"));
      a.tun.inject(packet);
      clock.advance(1);
      const pendingIndex = receiverIndexOf(a.conn.sent[0]!);
      const forgeries = { response: 0, cookie: 0 };
      for (let i = 0; i < 500; i++) {
        const cookie = random.int(4) === 0;
        const message = random.bytes(cookie ? MESSAGE_COOKIE_REPLY_SIZE : MESSAGE_RESPONSE_SIZE);
        setUint32(message, 0, cookie ? MESSAGE_COOKIE_REPLY_TYPE : MESSAGE_RESPONSE_TYPE);
        setUint32(message, cookie ? 4 : 8, pendingIndex);
        if (!cookie) addMacs(native, attacker.generators.a, message, clock.now());
        attacker.conn.send(message, { address: A_UNDERLAY, port: PORT });
        forgeries[cookie ? "cookie" : "response"]++;
      }
      clock.advance(1);
      assert.deepEqual(a.device.drops(), {
        ...(forgeries.response > 0 ? { "response-failed": forgeries.response } : {}),
        ...(forgeries.cookie > 0 ? { "cookie-reply-failed": forgeries.cookie } : {}),
      });
      assert.equal(a.device.peers()[0]!.handshakesCompleted, 0);
      assert.equal(a.device.diagnostics().indices, 1); // just the pending handshake
      assert.ok(
        !a.logs.some((line) => line.includes("received a cookie")),
        "no cookie was received",
      );

      clock.advance(200); // the real response arrives
      assert.deepEqual(b.tun.written, [packet], a.logs.concat(b.logs).join("\n"));
      assert.equal(a.device.peers()[0]!.handshakesCompleted, 1);
      assert.deepEqual(a.device.peers()[0]!.endpoint, { address: B_UNDERLAY, port: PORT });
      assert.deepEqual(internalErrors(a), []);
    });
  });

  test("under load, the rate limiter forgets quiet sources after a second", () => {
    // The rate limiter's contract (rate-limiter.ts): "the table holds only sources that
    // sent within the last second". Attackers with cookies fill it; then all is quiet.
    // Fails today: rate-limiter.ts sweeps only inside allow(), that is when the next
    // handshake message passes mac2, so with no more traffic the entries stay for good
    // (the test above shows that the next handshake does sweep them). wireguard-go sweeps
    // from a timer every second instead.
    withSeed((_random, seed) => {
      const { pair, corpus } = establish(seed, true);
      const attackers = listenAttackers(pair);
      // Two rounds of an initiation with valid macs from each attacker: the first fetches
      // a cookie, the second passes mac2 and takes a token from the attacker's bucket.
      for (let round = 0; round < 2; round++) {
        for (const attacker of attackers) {
          const initiation = corpus.b.initiation!.slice();
          addMacs(native, attacker.generators.b, initiation, pair.clock.now());
          attacker.conn.send(initiation, { address: B_UNDERLAY, port: PORT });
          pair.clock.advance(1);
        }
      }
      const filled = pair.b.device.diagnostics().rateLimitedSources;
      assert.ok(filled >= ATTACKERS.length, `only ${filled} rate-limited sources`);
      // A second idle, plus a second for a periodic sweep (wireguard-go's runs every second).
      pair.clock.advance(2_000);
      assert.equal(
        pair.b.device.diagnostics().rateLimitedSources,
        0,
        `${filled} sources went quiet 2 s ago, yet the rate limiter still holds their entries`,
      );
    });
  });
});

/** The fuzz reached every check it aims at (else it would prove little). */
function assertReached(
  drops: Record<Name, Record<string, number>>,
  kinds: Map<string, number>,
  reasons: string[],
): void {
  const all: Record<string, number> = {};
  for (const name of ["a", "b"] as const) {
    for (const [reason, n] of Object.entries(drops[name])) all[reason] = (all[reason] ?? 0) + n;
  }
  const note = `drops ${JSON.stringify(all)}, kinds ${JSON.stringify(Object.fromEntries(kinds))}`;
  for (const reason of reasons) assert.ok((all[reason] ?? 0) > 0, `no "${reason}" drop: ${note}`);
  assert.ok(sumOf(all) >= CASES_PER_MODE, note);
}
