/**
 * The WireGuard device: wires the protocol pieces to a PacketConn and a Tun.
 *
 *   Tun packet -> AllowedIPs(destination) -> peer -> stage -> current keypair?
 *        yes: pad, seal, send to the peer's endpoint     no: handshake initiation
 *   UDP datagram -> type 1/2: mac1 (and mac2 + rate limit under load) -> handshake
 *                -> type 3: cookie for our pending handshake
 *                -> type 4: keypair by index -> open -> replay window -> AllowedIPs(source) -> Tun
 *
 * Everything runs synchronously on the event loop, one message at a time, so no state is
 * shared between concurrent tasks. Queues are bounded: at most STAGED_PACKETS_PER_PEER
 * packets wait per peer for a handshake, oldest dropped first. Nothing from the network
 * can throw out of the receive path: malformed, unauthenticated or replayed messages are
 * dropped and counted, and no state is allocated for a sender before it authenticates
 * (beyond the rate limiter's bucket, once under load).
 */
import type { CancelTimer, Clock } from "../clock.ts";
import { type Crypto, MAC_BYTES, toBase64, toHex } from "../crypto/index.ts";
import type { IpPrefix } from "../net/ip.ts";
import { type Endpoint, endpointKey, type PacketConn } from "../net/packet-conn.ts";
import type { Tun } from "../net/tun.ts";
import {
  allowedIpsOf,
  createAllowedIps,
  insertAllowedIp,
  lookupPacketDestination,
  lookupPacketSource,
  removeAllowedIpsOf,
} from "./allowed-ips.ts";
import {
  COOKIE_REPLY_RECEIVER_OFFSET,
  DEFAULT_UNDER_LOAD_HANDSHAKES_PER_SECOND,
  HANDSHAKE_INITIATION_RATE_MS,
  INITIATION_SENDER_OFFSET,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  PADDING_MULTIPLE,
  RESPONSE_RECEIVER_OFFSET,
  RESPONSE_SENDER_OFFSET,
  STAGED_PACKETS_PER_PEER,
  TRANSPORT_COUNTER_OFFSET,
  TRANSPORT_RECEIVER_OFFSET,
  UNDER_LOAD_AFTER_MS,
} from "./constants.ts";
import {
  addMacs,
  type CookieChecker,
  type CookieGenerator,
  checkMac1,
  checkMac2,
  consumeCookieReply,
  createCookieChecker,
  createCookieGenerator,
  createCookieReply,
} from "./cookie.ts";
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createLocalIdentity,
  createRemoteIdentity,
  createResponse,
  type LocalIdentity,
  type PendingInitiation,
  type RemoteIdentity,
} from "./handshake.ts";
import {
  clearKeypairs,
  confirmKeypair,
  createKeypair,
  createKeypairs,
  installKeypair,
  type Keypair,
  type Keypairs,
} from "./keypairs.ts";
import { isWellFormed, messageType, readUint32, writeUint32 } from "./messages.ts";
import { allow, createRateLimiter, type RateLimiter, sweepRateLimiter } from "./rate-limiter.ts";
import { validateCounter } from "./replay.ts";
import { isAfter } from "./tai64n.ts";
import * as timers from "./timers.ts";

export type LogLevel = "debug" | "info" | "warn";

export interface DeviceOptions {
  readonly crypto: Crypto;
  readonly clock: Clock;
  readonly conn: PacketConn;
  readonly tun: Tun;
  readonly privateKey: Uint8Array;
  /** Shorter timers for tests; the spec's by default. */
  readonly timers?: Partial<timers.TimerSettings>;
  /**
   * Handshake messages per second above which the device is under load and demands
   * cookies (mac2) and rate-limits per source. 0 means always under load (for tests).
   */
  readonly underLoadHandshakesPerSecond?: number;
  /** Source of randomness for timer jitter; Math.random by default. */
  readonly random?: () => number;
  /** One line per event; nothing is logged without it. */
  readonly log?: (level: LogLevel, message: string) => void;
  /** Protocol events the layers above react to (the mesh, metrics); called synchronously. */
  readonly onEvent?: (event: DeviceEvent) => void;
  /**
   * Receives decrypted transport payloads that are not IP packets (first nibble not 4 or
   * 6): the mesh's control messages. `payload` includes the padding and is only valid
   * during the call. Without it such payloads are dropped as "bad-inner-packet".
   */
  readonly onControl?: (publicKey: Uint8Array, payload: Uint8Array, from: Endpoint) => void;
  /**
   * Asked when a handshake initiation names a static key that is not a peer: the layer
   * above may `addPeer` it during the call (the mesh adds members on demand, so a peer of
   * a large mesh does not derive keys with every member up front).
   */
  readonly onUnknownPeer?: (publicKey: Uint8Array) => void;
  /**
   * Asked about a packet from the Tun that no peer's allowed IPs own (multicast, broadcast,
   * an address outside the mesh): true means the layer above took it (the mesh carries
   * multicast), false that it is dropped and counted as "no-peer-for-destination".
   * `packet` is only valid during the call.
   */
  readonly onNoRoute?: (packet: Uint8Array) => boolean;
  /**
   * Receives a packet from the Tun that is longer than its peer's MTU (`setPeerMtu`)
   * instead of sending it: the layer above answers with an ICMP error, fragments it, or
   * sends it anyway with `sendPacket`. `packet` is only valid during the call. Without
   * it such packets are sent as they are.
   */
  readonly onOversize?: (packet: Uint8Array, mtu: number, publicKey: Uint8Array) => void;
}

/** What `onEvent` reports. */
export type DeviceEvent =
  /** A session with the peer is confirmed (initiator: response consumed; responder: first data). */
  | { readonly type: "handshake-completed"; readonly publicKey: Uint8Array }
  /** An authenticated packet came from a new address: the peer's endpoint moved there. */
  | {
      readonly type: "endpoint-changed";
      readonly publicKey: Uint8Array;
      readonly endpoint: Endpoint;
    }
  /**
   * An authenticated packet of the peer came from another address than its previous one;
   * reported before any reply is sent, whether or not the peer roams.
   */
  | {
      readonly type: "source-changed";
      readonly publicKey: Uint8Array;
      readonly endpoint: Endpoint;
    };

export interface PeerConfig {
  readonly publicKey: Uint8Array;
  readonly presharedKey?: Uint8Array;
  readonly allowedIps: readonly IpPrefix[];
  readonly endpoint?: Endpoint;
  readonly persistentKeepaliveSeconds?: number;
  /**
   * Whether the endpoint follows the source of authenticated packets (WireGuard roaming,
   * the default). The mesh turns it off and chooses paths itself.
   */
  readonly roaming?: boolean;
}

/** What `peers()` reports about each peer, as `wg show` does. */
export interface PeerStatus {
  readonly publicKey: Uint8Array;
  readonly endpoint: Endpoint | undefined;
  readonly allowedIps: IpPrefix[];
  /** Clock time of the last completed handshake, or undefined. */
  readonly lastHandshakeMs: number | undefined;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly handshakesCompleted: number;
}

/** Counters of what the device dropped, by reason, for tests and metrics. */
export type DropReason =
  | "malformed"
  | "mac1"
  | "cookie-sent"
  | "rate-limited"
  | "handshake-refused"
  | "replayed-initiation"
  | "initiation-flood"
  | "unknown-index"
  | "response-failed"
  | "cookie-reply-failed"
  | "expired-keypair"
  | "decrypt-failed"
  | "replayed-counter"
  | "bad-inner-packet"
  | "source-not-allowed"
  | "no-peer-for-destination"
  | "no-endpoint"
  | "staged-overflow";

interface Peer {
  readonly id: string;
  readonly remote: RemoteIdentity;
  endpoint: Endpoint | undefined;
  readonly roaming: boolean;
  lastSource: Endpoint | undefined;
  readonly keypairs: Keypairs;
  pending: PendingInitiation | undefined;
  readonly cookie: CookieGenerator;
  readonly timers: timers.PeerTimers;
  staged: Uint8Array[];
  lastInitiationSentMs: number;
  lastInitiationConsumedMs: number;
  latestTimestamp: Uint8Array | undefined;
  lastHandshakeMs: number | undefined;
  handshakesCompleted: number;
  rxBytes: number;
  txBytes: number;
  cancelTimer: CancelTimer | undefined;
  armedDeadline: number | undefined;
  /** The largest IP packet its path carries (`setPeerMtu`); Infinity for no limit. */
  mtuBytes: number;
}

/** What a receiver index names: our pending handshake with a peer, or one of its keypairs. */
type IndexEntry = { peer: Peer; keypair: Keypair | undefined };

const KEEPALIVE = new Uint8Array(0);
const ENCODER = new TextEncoder();

/** A WireGuard interface: one private key, its peers, one PacketConn and one Tun. */
export class Device {
  readonly #crypto: Crypto;
  readonly #clock: Clock;
  readonly #conn: PacketConn;
  readonly #tun: Tun;
  readonly #settings: timers.TimerSettings;
  readonly #random: () => number;
  readonly #log: (level: LogLevel, message: string) => void;
  readonly #onEvent: (event: DeviceEvent) => void;
  readonly #onControl:
    | ((publicKey: Uint8Array, payload: Uint8Array, from: Endpoint) => void)
    | undefined;
  readonly #onUnknownPeer: ((publicKey: Uint8Array) => void) | undefined;
  readonly #onNoRoute: ((packet: Uint8Array) => boolean) | undefined;
  readonly #onOversize:
    | ((packet: Uint8Array, mtu: number, publicKey: Uint8Array) => void)
    | undefined;
  readonly #underLoadThreshold: number;
  #local: LocalIdentity;
  #checker: CookieChecker;
  readonly #rateLimiter: RateLimiter = createRateLimiter();
  readonly #peers = new Map<string, Peer>();
  readonly #indices = new Map<number, IndexEntry>();
  readonly #allowedIps = createAllowedIps<Peer>();
  readonly #drops = new Map<DropReason, number>();
  #handshakeWindowStartMs = 0;
  #handshakesInWindow = 0;
  #underLoadUntilMs = 0;
  #closed = false;
  #cancelSweep: CancelTimer | undefined;
  /** Scratch for padding plaintext and building nonces: the send path allocates only the message. */
  #scratch = new Uint8Array(65536 + PADDING_MULTIPLE);
  readonly #nonce = new Uint8Array(12);
  readonly #message = new Uint8Array(65536 + PADDING_MULTIPLE + 32);
  readonly #opened = new Uint8Array(65536 + PADDING_MULTIPLE);

  constructor(options: DeviceOptions) {
    this.#crypto = options.crypto;
    this.#clock = options.clock;
    this.#conn = options.conn;
    this.#tun = options.tun;
    this.#settings = { ...timers.SPEC_TIMERS, ...options.timers };
    this.#random = options.random ?? Math.random;
    this.#log = options.log ?? (() => {});
    this.#onEvent = options.onEvent ?? (() => {});
    this.#onControl = options.onControl;
    this.#onUnknownPeer = options.onUnknownPeer;
    this.#onNoRoute = options.onNoRoute;
    this.#onOversize = options.onOversize;
    this.#underLoadThreshold =
      options.underLoadHandshakesPerSecond ?? DEFAULT_UNDER_LOAD_HANDSHAKES_PER_SECOND;
    this.#local = createLocalIdentity(this.#crypto, options.privateKey.slice()); // ours to wipe on close;
    this.#checker = createCookieChecker(this.#crypto, this.#local.publicKey, this.#clock.now());
    this.#conn.onReceive((data, from) => this.#receive(data, from));
    this.#tun.onPacket((packet) => this.#send(packet));
  }

  /** Our static public key. */
  get publicKey(): Uint8Array {
    return this.#local.publicKey;
  }

  /** Adds a peer, or replaces the configuration of one with the same public key. */
  addPeer(config: PeerConfig): void {
    const id = toHex(config.publicKey);
    if (this.#peers.has(id)) this.removePeer(config.publicKey);
    const peer: Peer = {
      id,
      remote: createRemoteIdentity(
        this.#crypto,
        this.#local,
        config.publicKey,
        config.presharedKey,
      ),
      endpoint: config.endpoint
        ? { address: config.endpoint.address, port: config.endpoint.port }
        : undefined,
      roaming: config.roaming ?? true,
      lastSource: undefined,
      keypairs: createKeypairs(),
      pending: undefined,
      cookie: createCookieGenerator(this.#crypto, config.publicKey),
      timers: timers.createPeerTimers((config.persistentKeepaliveSeconds ?? 0) * 1000),
      staged: [],
      lastInitiationSentMs: Number.NEGATIVE_INFINITY,
      lastInitiationConsumedMs: Number.NEGATIVE_INFINITY,
      latestTimestamp: undefined,
      lastHandshakeMs: undefined,
      handshakesCompleted: 0,
      rxBytes: 0,
      txBytes: 0,
      cancelTimer: undefined,
      armedDeadline: undefined,
      mtuBytes: Number.POSITIVE_INFINITY,
    };
    if (!peer.remote.staticShared)
      this.#log(
        "warn",
        `peer ${this.#name(peer)} has a low-order public key: it can never complete a handshake`,
      );
    this.#peers.set(id, peer);
    for (const prefix of config.allowedIps)
      insertAllowedIp(this.#allowedIps, prefix.address, prefix.prefixLength, peer);
    // A persistent keepalive starts at once, as `wg set ... persistent-keepalive` does.
    if (peer.timers.persistentKeepaliveMs > 0 && peer.endpoint) this.#sendKeepalive(peer);
  }

  /** Replaces a peer's allowed IPs, keeping its sessions (wg set ... allowed-ips). */
  setAllowedIps(publicKey: Uint8Array, allowedIps: readonly IpPrefix[]): boolean {
    const peer = this.#peers.get(toHex(publicKey));
    if (!peer) return false;
    removeAllowedIpsOf(this.#allowedIps, peer);
    for (const prefix of allowedIps)
      insertAllowedIp(this.#allowedIps, prefix.address, prefix.prefixLength, peer);
    return true;
  }

  /** Removes a peer, wiping its keys and freeing its indices and routes. */
  removePeer(publicKey: Uint8Array): boolean {
    const peer = this.#peers.get(toHex(publicKey));
    if (!peer) return false;
    this.#zeroKeyMaterial(peer);
    peer.cancelTimer?.();
    removeAllowedIpsOf(this.#allowedIps, peer);
    this.#peers.delete(peer.id);
    return true;
  }

  /** The state of every peer. */
  peers(): PeerStatus[] {
    return [...this.#peers.values()].map((p) => ({
      publicKey: p.remote.publicKey,
      endpoint: p.endpoint,
      allowedIps: allowedIpsOf(this.#allowedIps, p),
      lastHandshakeMs: p.lastHandshakeMs,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      handshakesCompleted: p.handshakesCompleted,
    }));
  }

  /** How many messages were dropped for each reason since the device started. */
  drops(): Record<string, number> {
    return Object.fromEntries(this.#drops);
  }

  /** Sizes of the tables the network can make grow, for tests that check nothing leaks. */
  diagnostics(): { indices: number; rateLimitedSources: number; stagedPackets: number } {
    let staged = 0;
    for (const p of this.#peers.values()) staged += p.staged.length;
    return {
      indices: this.#indices.size,
      rateLimitedSources: this.#rateLimiter.buckets.size,
      stagedPackets: staged,
    };
  }

  /** Starts a handshake with a peer now (as sending a packet would). */
  connect(publicKey: Uint8Array): void {
    const peer = this.#peers.get(toHex(publicKey));
    if (peer) this.#initiateHandshake(peer, false);
  }

  /** Whether a session with the peer can carry data now, without a handshake first. */
  hasSession(publicKey: Uint8Array): boolean {
    const peer = this.#peers.get(toHex(publicKey));
    return peer !== undefined && this.#usableKeypair(peer, this.#clock.now()) !== undefined;
  }

  /** Points a peer at another endpoint (the mesh moves peers between paths this way). */
  setEndpoint(publicKey: Uint8Array, endpoint: Endpoint): void {
    const peer = this.#peers.get(toHex(publicKey));
    if (peer) peer.endpoint = { address: endpoint.address, port: endpoint.port };
  }

  /**
   * Sets the largest IP packet the peer's path carries (the path MTU): longer packets
   * from the Tun go to `onOversize`, and padding stops at it. `undefined` lifts the limit.
   */
  setPeerMtu(publicKey: Uint8Array, mtu: number | undefined): void {
    if (mtu !== undefined && (!Number.isInteger(mtu) || mtu < 1))
      throw new RangeError(`Expected "mtu" to be a positive integer, got ${mtu}`);
    const peer = this.#peers.get(toHex(publicKey));
    if (peer) peer.mtuBytes = mtu ?? Number.POSITIVE_INFINITY;
  }

  /**
   * Sends an IP packet to a peer as if it came from the Tun, but whatever its size
   * (`onOversize` uses it for fragments, and for IPv6 packets no path may refuse).
   * False when there is no such peer.
   */
  sendPacket(publicKey: Uint8Array, packet: Uint8Array): boolean {
    const peer = this.#peers.get(toHex(publicKey));
    if (!peer || this.#closed) return false;
    this.#sendToPeer(peer, packet);
    return true;
  }

  /**
   * Sends a mesh control message (its first nibble must not be 4 or 6) inside the peer's
   * session, as data. To the peer's endpoint it waits for a handshake like any packet;
   * `via` sends it to that address instead (path probes), and only on a live session:
   * false when there is none, or no such peer. Sent `via` an address, it goes unpadded:
   * a path MTU probe must be exactly the size it tests.
   */
  sendControl(publicKey: Uint8Array, payload: Uint8Array, via?: Endpoint): boolean {
    const version = payload[0]! >>> 4;
    if (payload.length === 0 || version === 4 || version === 6)
      throw new RangeError("A control message must not be empty or look like an IP packet");
    const peer = this.#peers.get(toHex(publicKey));
    if (!peer || this.#closed) return false;
    if (!via) {
      this.#sendToPeer(peer, payload);
      return true;
    }
    const now = this.#clock.now();
    const keypair = this.#usableKeypair(peer, now);
    if (!keypair) return false;
    this.#sendTransport(peer, keypair, payload, now, via, false);
    this.#afterSend(peer, keypair, now);
    return true;
  }

  /**
   * BLAKE2s digests of every session key the device holds, per peer (hex public key ->
   * digests). Reveals nothing about the keys; lets tests prove which keys a peer never had.
   */
  sessionKeyDigests(): Map<string, Uint8Array[]> {
    const digests = new Map<string, Uint8Array[]>();
    for (const peer of this.#peers.values()) {
      const list: Uint8Array[] = [];
      for (const k of [peer.keypairs.previous, peer.keypairs.current, peer.keypairs.next]) {
        if (!k) continue;
        list.push(this.#crypto.hash(k.sendKey), this.#crypto.hash(k.receiveKey));
      }
      digests.set(peer.id, list);
    }
    return digests;
  }

  /** Stops all processing and timers and wipes every key. Does not close the conn or tun. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelSweep?.();
    for (const peer of this.#peers.values()) {
      peer.cancelTimer?.();
      this.#zeroKeyMaterial(peer);
    }
    this.#local.privateKey.fill(0);
  }

  // ---- receive path -------------------------------------------------------------------

  #receive(data: Uint8Array, from: Endpoint): void {
    if (this.#closed) return;
    try {
      if (!isWellFormed(data)) {
        this.#drop("malformed");
        return;
      }
      switch (messageType(data)) {
        case MESSAGE_INITIATION_TYPE:
          this.#receiveInitiation(data, from);
          break;
        case MESSAGE_RESPONSE_TYPE:
          this.#receiveResponse(data, from);
          break;
        case MESSAGE_COOKIE_REPLY_TYPE:
          this.#receiveCookieReply(data);
          break;
        case MESSAGE_TRANSPORT_TYPE:
          this.#receiveTransport(data, from);
          break;
      }
    } catch (error) {
      // A bug, not bad input: never let it take the device down, but say so loudly.
      this.#log(
        "warn",
        `internal error on a received message: ${error instanceof Error ? error.stack : error}`,
      );
    }
  }

  /** mac1 always; under load also mac2 (else a cookie reply) and the per-source rate limit. */
  #admitHandshakeMessage(data: Uint8Array, from: Endpoint, senderIndex: number): boolean {
    if (!checkMac1(this.#crypto, this.#checker, data)) {
      this.#drop("mac1");
      this.#log(
        "debug",
        `dropped handshake message from ${endpointKey(from)}: invalid mac1 (the sender does not have our public key)`,
      );
      return false;
    }
    if (!this.#isUnderLoad()) return true;
    const source = ENCODER.encode(endpointKey(from));
    const now = this.#clock.now();
    if (!checkMac2(this.#crypto, this.#checker, data, source, now)) {
      const reply = createCookieReply(this.#crypto, this.#checker, data, senderIndex, source, now);
      this.#conn.send(reply, from);
      this.#drop("cookie-sent");
      return false;
    }
    const allowed = allow(this.#rateLimiter, from.address, now);
    this.#armRateLimiterSweep();
    if (!allowed) {
      this.#drop("rate-limited");
      return false;
    }
    return true;
  }

  /** While the rate limiter holds sources, sweep it every second so it forgets quiet ones. */
  #armRateLimiterSweep(): void {
    if (this.#cancelSweep || this.#rateLimiter.buckets.size === 0 || this.#closed) return;
    this.#cancelSweep = this.#clock.setTimer(1000, () => {
      this.#cancelSweep = undefined;
      sweepRateLimiter(this.#rateLimiter, this.#clock.now());
      this.#armRateLimiterSweep();
    });
  }

  #isUnderLoad(): boolean {
    if (this.#underLoadThreshold === 0) return true;
    const now = this.#clock.now();
    if (now - this.#handshakeWindowStartMs >= 1000) {
      this.#handshakeWindowStartMs = now;
      this.#handshakesInWindow = 0;
    }
    if (++this.#handshakesInWindow > this.#underLoadThreshold)
      this.#underLoadUntilMs = now + UNDER_LOAD_AFTER_MS;
    return now < this.#underLoadUntilMs;
  }

  #receiveInitiation(data: Uint8Array, from: Endpoint): void {
    if (!this.#admitHandshakeMessage(data, from, readUint32(data, INITIATION_SENDER_OFFSET)))
      return;
    const consumed = consumeInitiation(this.#crypto, this.#local, data, (key) => {
      if (!this.#peers.has(toHex(key))) this.#onUnknownPeer?.(key);
      return this.#peers.get(toHex(key))?.remote.staticShared;
    });
    if ("refused" in consumed) {
      this.#drop("handshake-refused");
      this.#log(
        "info",
        `refused handshake initiation from ${endpointKey(from)}: ${consumed.refused}`,
      );
      return;
    }
    const peer = this.#peers.get(toHex(consumed.initiatorPublic))!;
    const now = this.#clock.now();
    if (peer.latestTimestamp && !isAfter(consumed.timestamp, peer.latestTimestamp)) {
      this.#drop("replayed-initiation");
      this.#log(
        "debug",
        `dropped initiation from ${this.#name(peer)}: timestamp not newer than the last one (replay)`,
      );
      return;
    }
    if (now - peer.lastInitiationConsumedMs < HANDSHAKE_INITIATION_RATE_MS) {
      this.#drop("initiation-flood");
      return;
    }
    peer.latestTimestamp = consumed.timestamp;
    peer.lastInitiationConsumedMs = now;
    this.#roam(peer, from);
    timers.anyAuthenticatedPacketTraversal(peer.timers, now);
    timers.anyAuthenticatedPacketReceived(peer.timers);

    const localIndex = this.#allocateIndex({ peer, keypair: undefined });
    const response = createResponse(this.#crypto, peer.remote, consumed, localIndex);
    if (!response) {
      this.#indices.delete(localIndex);
      this.#drop("handshake-refused");
      return;
    }
    addMacs(this.#crypto, peer.cookie, response.message, now);
    const keypair = createKeypair(response.keys, now);
    this.#indices.set(localIndex, { peer, keypair });
    for (const old of installKeypair(peer.keypairs, keypair)) this.#freeIndex(old.localIndex, old);
    this.#log("debug", `handshake initiation from ${this.#name(peer)}, sending response`);
    this.#sendRaw(peer, response.message);
    timers.sessionDerived(peer.timers, this.#settings, now);
    this.#armTimer(peer);
  }

  #receiveResponse(data: Uint8Array, from: Endpoint): void {
    if (!this.#admitHandshakeMessage(data, from, readUint32(data, RESPONSE_SENDER_OFFSET))) return;
    const entry = this.#indices.get(readUint32(data, RESPONSE_RECEIVER_OFFSET));
    const peer = entry?.peer;
    if (
      !peer ||
      entry.keypair ||
      !peer.pending ||
      peer.pending.localIndex !== readUint32(data, RESPONSE_RECEIVER_OFFSET)
    ) {
      this.#drop("unknown-index");
      return;
    }
    const keys = consumeResponse(this.#crypto, this.#local, peer.remote, peer.pending, data);
    if (!keys) {
      this.#drop("response-failed");
      this.#log(
        "info",
        `handshake response from ${this.#name(peer)} at ${endpointKey(from)} failed to authenticate (different preshared key?)`,
      );
      return;
    }
    const now = this.#clock.now();
    peer.pending = undefined;
    const keypair = createKeypair(keys, now);
    this.#indices.set(keys.localIndex, { peer, keypair });
    for (const old of installKeypair(peer.keypairs, keypair)) this.#freeIndex(old.localIndex, old);
    this.#roam(peer, from);
    this.#handshakeCompleted(peer, now);
    timers.anyAuthenticatedPacketTraversal(peer.timers, now);
    timers.anyAuthenticatedPacketReceived(peer.timers);
    // Confirm the session to the responder: staged data if any, else a keepalive.
    this.#sendKeepalive(peer);
  }

  #receiveCookieReply(data: Uint8Array): void {
    const entry = this.#indices.get(readUint32(data, COOKIE_REPLY_RECEIVER_OFFSET));
    if (!entry || !consumeCookieReply(this.#crypto, entry.peer.cookie, data, this.#clock.now())) {
      this.#drop("cookie-reply-failed");
      return;
    }
    this.#log("debug", `received a cookie from ${this.#name(entry.peer)}: it is under load`);
  }

  #receiveTransport(data: Uint8Array, from: Endpoint): void {
    const entry = this.#indices.get(readUint32(data, TRANSPORT_RECEIVER_OFFSET));
    const keypair = entry?.keypair;
    if (!entry || !keypair) {
      this.#drop("unknown-index");
      return;
    }
    const peer = entry.peer;
    const now = this.#clock.now();
    if (now - keypair.createdMs >= this.#settings.rejectAfterTimeMs) {
      this.#drop("expired-keypair");
      return;
    }

    const nonce = this.#nonce;
    nonce.set(data.subarray(TRANSPORT_COUNTER_OFFSET, MESSAGE_TRANSPORT_HEADER_SIZE), 4);
    const sealed = data.subarray(MESSAGE_TRANSPORT_HEADER_SIZE);
    const plaintext = this.#crypto.aeadOpen(
      keypair.receiveKey,
      nonce,
      sealed,
      KEEPALIVE,
      this.#opened.subarray(0, sealed.length - MAC_BYTES),
    );
    if (!plaintext) {
      this.#drop("decrypt-failed");
      return;
    }
    const low = readUint32(data, TRANSPORT_COUNTER_OFFSET);
    const high = readUint32(data, TRANSPORT_COUNTER_OFFSET + 4);
    if (!validateCounter(keypair.replay, low, high)) {
      this.#drop("replayed-counter");
      return;
    }

    const confirming = peer.keypairs.next === keypair;
    if (confirming) {
      // The initiator used the keypair we offered: it is current now (whitepaper §5.4.6).
      const dropped = confirmKeypair(peer.keypairs, keypair);
      if (dropped) this.#freeIndex(dropped.localIndex, dropped);
      this.#handshakeCompleted(peer, now);
    }
    this.#roam(peer, from);
    peer.rxBytes += data.length;
    timers.anyAuthenticatedPacketReceived(peer.timers);
    timers.anyAuthenticatedPacketTraversal(peer.timers, now);
    this.#keepKeyFreshReceiving(peer, now);

    if (plaintext.length > 0) {
      timers.dataReceived(peer.timers, this.#settings, now);
      const version = plaintext[0]! >>> 4;
      const packet = innerPacket(plaintext);
      if (version !== 4 && version !== 6 && this.#onControl)
        this.#onControl(peer.remote.publicKey, plaintext, from);
      else if (!packet) this.#drop("bad-inner-packet");
      else if (lookupPacketSource(this.#allowedIps, packet) !== peer)
        this.#drop("source-not-allowed");
      else this.#tun.write(packet);
    }
    if (confirming && peer.staged.length > 0) this.#sendStaged(peer);
    this.#armTimer(peer);
  }

  /** A peer's endpoint follows the source of its latest authenticated packet (whitepaper §2.1). */
  #roam(peer: Peer, from: Endpoint): void {
    if (peer.lastSource?.address !== from.address || peer.lastSource.port !== from.port) {
      peer.lastSource = { address: from.address, port: from.port };
      this.#onEvent({
        type: "source-changed",
        publicKey: peer.remote.publicKey,
        endpoint: peer.lastSource,
      });
    }
    if (!peer.roaming) return;
    if (peer.endpoint?.address !== from.address || peer.endpoint.port !== from.port) {
      peer.endpoint = { address: from.address, port: from.port };
      this.#onEvent({
        type: "endpoint-changed",
        publicKey: peer.remote.publicKey,
        endpoint: peer.endpoint,
      });
    }
  }

  /** As initiator, rekey before the responder would have to (wireguard-go keepKeyFreshReceiving). */
  #keepKeyFreshReceiving(peer: Peer, now: number): void {
    const current = peer.keypairs.current;
    const s = this.#settings;
    if (
      current?.isInitiator &&
      now - current.createdMs >= s.rejectAfterTimeMs - s.keepaliveTimeoutMs - s.rekeyTimeoutMs
    ) {
      this.#initiateHandshake(peer, false);
    }
  }

  // ---- send path ----------------------------------------------------------------------

  #send(packet: Uint8Array): void {
    if (this.#closed) return;
    const peer = lookupPacketDestination(this.#allowedIps, packet);
    if (!peer) {
      if (!this.#onNoRoute?.(packet)) this.#drop("no-peer-for-destination");
      return;
    }
    if (packet.length > peer.mtuBytes && this.#onOversize) {
      this.#onOversize(packet, peer.mtuBytes, peer.remote.publicKey);
      return;
    }
    this.#sendToPeer(peer, packet);
  }

  /** Sends at once on a live session with nothing queued before it, else queues and handshakes. */
  #sendToPeer(peer: Peer, packet: Uint8Array): void {
    if (peer.staged.length >= STAGED_PACKETS_PER_PEER) {
      peer.staged.shift();
      this.#drop("staged-overflow");
    }
    if (peer.staged.length === 0) {
      const now = this.#clock.now();
      const keypair = this.#usableKeypair(peer, now);
      if (keypair) {
        this.#sendTransport(peer, keypair, packet, now);
        this.#afterSend(peer, keypair, now);
        return;
      }
    }
    peer.staged.push(packet.slice());
    this.#sendStaged(peer);
  }

  #usableKeypair(peer: Peer, now: number): Keypair | undefined {
    const k = peer.keypairs.current;
    if (!k || now - k.createdMs >= this.#settings.rejectAfterTimeMs) return undefined;
    if (k.sendCounter >= Number.MAX_SAFE_INTEGER) return undefined;
    return k;
  }

  #sendStaged(peer: Peer): void {
    const now = this.#clock.now();
    const keypair = this.#usableKeypair(peer, now);
    if (!keypair) {
      this.#initiateHandshake(peer, false);
      return;
    }
    const staged = peer.staged;
    peer.staged = [];
    for (const packet of staged) this.#sendTransport(peer, keypair, packet, now);
    this.#afterSend(peer, keypair, now);
  }

  #afterSend(peer: Peer, keypair: Keypair, now: number): void {
    // Rekey on the initiator's side when the session gets old or heavily used.
    const s = this.#settings;
    if (
      keypair.sendCounter >= s.rekeyAfterMessages ||
      (keypair.isInitiator && now - keypair.createdMs >= s.rekeyAfterTimeMs)
    ) {
      this.#initiateHandshake(peer, false);
    }
    this.#armTimer(peer);
  }

  #sendTransport(
    peer: Peer,
    keypair: Keypair,
    packet: Uint8Array,
    now: number,
    to: Endpoint | undefined = peer.endpoint,
    pad = true,
  ): void {
    // Padding stops at the path MTU too, or a packet that fits would be padded past it.
    const tunMtu = this.#tun.mtuBytes;
    const paddedLength = pad
      ? paddedSize(packet.length, Math.min(peer.mtuBytes, tunMtu))
      : packet.length;
    let plaintext = packet;
    if (paddedLength !== packet.length) {
      plaintext = this.#scratch.subarray(0, paddedLength);
      plaintext.set(packet);
      plaintext.fill(0, packet.length);
    }
    const message = this.#message.subarray(
      0,
      MESSAGE_TRANSPORT_HEADER_SIZE + paddedLength + MAC_BYTES,
    );
    message[0] = MESSAGE_TRANSPORT_TYPE;
    writeUint32(message, TRANSPORT_RECEIVER_OFFSET, keypair.remoteIndex);
    const counter = keypair.sendCounter++;
    writeUint32(message, TRANSPORT_COUNTER_OFFSET, counter >>> 0);
    writeUint32(message, TRANSPORT_COUNTER_OFFSET + 4, Math.floor(counter / 2 ** 32));
    this.#nonce.set(message.subarray(TRANSPORT_COUNTER_OFFSET, MESSAGE_TRANSPORT_HEADER_SIZE), 4);
    this.#crypto.aeadSeal(
      keypair.sendKey,
      this.#nonce,
      plaintext,
      KEEPALIVE,
      message.subarray(MESSAGE_TRANSPORT_HEADER_SIZE),
    );
    this.#sendRaw(peer, message, to);
    if (packet.length > 0) timers.dataSent(peer.timers, this.#settings, now, this.#random);
  }

  #sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(KEEPALIVE);
    this.#sendStaged(peer);
  }

  /** Sends an authenticated message to the peer's endpoint; false when it has none. */
  #sendRaw(peer: Peer, message: Uint8Array, to: Endpoint | undefined = peer.endpoint): boolean {
    if (!to) {
      this.#drop("no-endpoint");
      return false;
    }
    this.#conn.send(message, to);
    peer.txBytes += message.length;
    const now = this.#clock.now();
    timers.anyAuthenticatedPacketTraversal(peer.timers, now);
    timers.anyAuthenticatedPacketSent(peer.timers);
    return true;
  }

  #initiateHandshake(peer: Peer, isRetry: boolean): void {
    const now = this.#clock.now();
    // One initiation per REKEY_TIMEOUT unless the retransmit timer asks (whitepaper §6.1).
    if (!isRetry && now - peer.lastInitiationSentMs < this.#settings.rekeyTimeoutMs) return;
    peer.lastInitiationSentMs = now;
    if (!peer.endpoint) {
      this.#log("debug", `cannot start a handshake with ${this.#name(peer)}: no endpoint known`);
      this.#drop("no-endpoint");
      return;
    }
    if (peer.pending) this.#freeIndex(peer.pending.localIndex, undefined);
    const localIndex = this.#allocateIndex({ peer, keypair: undefined });
    const created = createInitiation(
      this.#crypto,
      this.#local,
      peer.remote,
      localIndex,
      this.#clock.wallNow(),
    );
    if (!created) {
      this.#indices.delete(localIndex);
      return;
    }
    peer.pending = created.pending;
    addMacs(this.#crypto, peer.cookie, created.message, now);
    this.#log(
      "debug",
      `sending handshake initiation to ${this.#name(peer)} at ${endpointKey(peer.endpoint)}`,
    );
    this.#sendRaw(peer, created.message);
    timers.handshakeInitiated(peer.timers, this.#settings, now, this.#random);
    this.#armTimer(peer);
  }

  #handshakeCompleted(peer: Peer, now: number): void {
    timers.handshakeComplete(peer.timers);
    timers.sessionDerived(peer.timers, this.#settings, now);
    peer.lastHandshakeMs = now;
    peer.handshakesCompleted++;
    this.#log("info", `handshake completed with ${this.#name(peer)}`);
    this.#onEvent({ type: "handshake-completed", publicKey: peer.remote.publicKey });
  }

  // ---- timers -------------------------------------------------------------------------

  /** Arms the one clock timer of a peer for its earliest protocol deadline. */
  #armTimer(peer: Peer): void {
    if (this.#closed) return;
    const deadline = timers.nextDeadline(peer.timers);
    if (deadline === peer.armedDeadline) return;
    peer.cancelTimer?.();
    peer.cancelTimer = undefined;
    peer.armedDeadline = deadline;
    if (deadline === undefined) return;
    peer.cancelTimer = this.#clock.setTimer(Math.max(0, deadline - this.#clock.now()), () => {
      peer.cancelTimer = undefined;
      peer.armedDeadline = undefined;
      this.#onTimers(peer);
    });
  }

  #onTimers(peer: Peer): void {
    if (this.#closed || !this.#peers.has(peer.id)) return;
    const now = this.#clock.now();
    for (const name of timers.takeExpired(peer.timers, now)) {
      switch (name) {
        case "retransmitHandshake":
          this.#retransmitHandshake(peer, now);
          break;
        case "sendKeepalive":
          this.#sendKeepalive(peer);
          if (peer.timers.needAnotherKeepalive) {
            peer.timers.needAnotherKeepalive = false;
            peer.timers.deadlines.sendKeepalive = now + this.#settings.keepaliveTimeoutMs;
          }
          break;
        case "newHandshake":
          this.#log(
            "debug",
            `no data from ${this.#name(peer)} after sending some: starting a new handshake`,
          );
          this.#initiateHandshake(peer, false);
          break;
        case "zeroKeyMaterial":
          this.#log(
            "debug",
            `no new handshake with ${this.#name(peer)} for a long time: wiping its keys`,
          );
          this.#zeroKeyMaterial(peer);
          break;
        case "persistentKeepalive":
          if (peer.timers.persistentKeepaliveMs > 0) this.#sendKeepalive(peer);
          break;
      }
    }
    this.#armTimer(peer);
  }

  #retransmitHandshake(peer: Peer, now: number): void {
    const max = timers.maxHandshakeAttempts(this.#settings);
    if (peer.timers.handshakeAttempts >= max) {
      this.#log(
        "warn",
        `handshake with ${this.#name(peer)} did not complete after ${max + 1} attempts: giving up until there is data to send (wrong public key or endpoint, or the peer does not know us)`,
      );
      peer.staged = [];
      if (peer.pending) this.#freeIndex(peer.pending.localIndex, undefined);
      peer.pending = undefined;
      peer.timers.handshakeAttempts = 0;
      peer.timers.deadlines.zeroKeyMaterial ??= now + this.#settings.rejectAfterTimeMs * 3;
      return;
    }
    peer.timers.handshakeAttempts++;
    this.#log(
      "debug",
      `no handshake response from ${this.#name(peer)}, retrying (attempt ${peer.timers.handshakeAttempts + 1})`,
    );
    this.#initiateHandshake(peer, true);
  }

  #zeroKeyMaterial(peer: Peer): void {
    for (const k of clearKeypairs(peer.keypairs)) this.#freeIndex(k.localIndex, k);
    if (peer.pending) {
      this.#freeIndex(peer.pending.localIndex, undefined);
      peer.pending.state.ephemeralPrivate.fill(0);
      peer.pending = undefined;
    }
  }

  // ---- indices and bookkeeping --------------------------------------------------------

  #allocateIndex(entry: IndexEntry): number {
    for (;;) {
      const bytes = this.#crypto.randomBytes(4);
      const index = readUint32(bytes, 0);
      if (!this.#indices.has(index)) {
        this.#indices.set(index, entry);
        return index;
      }
    }
  }

  /** Frees an index if it still names the given keypair (or a pending handshake). */
  #freeIndex(index: number, keypair: Keypair | undefined): void {
    if (this.#indices.get(index)?.keypair === keypair) this.#indices.delete(index);
  }

  #drop(reason: DropReason): void {
    this.#drops.set(reason, (this.#drops.get(reason) ?? 0) + 1);
  }

  #name(peer: Peer): string {
    return toBase64(peer.remote.publicKey).slice(0, 8);
  }
}

/**
 * The IP packet inside decrypted plaintext: its length comes from its own header, and the
 * padding after it is cut off. Undefined when the header is not IPv4 or IPv6 or claims
 * more bytes than there are.
 */
function innerPacket(plaintext: Uint8Array): Uint8Array | undefined {
  const version = plaintext[0]! >>> 4;
  let length: number;
  if (version === 4 && plaintext.length >= 20) length = (plaintext[2]! << 8) | plaintext[3]!;
  else if (version === 6 && plaintext.length >= 40)
    length = 40 + ((plaintext[4]! << 8) | plaintext[5]!);
  else return undefined;
  if (length > plaintext.length || length < (version === 4 ? 20 : 40)) return undefined;
  return plaintext.subarray(0, length);
}

/** Plaintext padded to a multiple of 16, but never beyond the MTU (wireguard-go calculatePaddingSize). */
function paddedSize(length: number, mtu: number): number {
  const padded = Math.ceil(length / PADDING_MULTIPLE) * PADDING_MULTIPLE;
  if (mtu <= 0 || length > mtu) return padded;
  return Math.min(padded, mtu);
}
