/**
 * A peer of the mesh: one WireGuard Device whose peers are the mesh's members, plus the
 * machinery that lets members without a direct path reach each other through others.
 *
 *   Device ─send(msg, virtual endpoint of P)─► Mesh path choice:
 *       confirmed direct path to P ─► UDP to P's address
 *       else next hop H on the shortest path ─► relay frame {P, us, msg} inside H's session
 *       else P's candidate addresses (the first handshake with a configured peer)
 *   UDP / relay frame for us ─► Device (authenticates end to end) ─► IP packet ─► Tun
 *                                                                └► control frame ─► Mesh
 *
 * A relay only ever sees the end-to-end WireGuard message, sealed for the destination:
 * it holds no key of that session, and the destination still checks the inner source
 * address against the sender's allowed IPs (cryptokey routing is untouched).
 *
 * Topology and, later, IPAM and DNS ride on the gossip engine over connections.
 *
 * Admission: with `isMember` (the membership CRDT's verdict) a key gets in only while it
 * is a member, wherever it would get in: an initiation from another key is refused before
 * any session state exists; topology gossip, static configuration and relay frames never
 * make a key a member; and `revalidateMembers()` throws out whoever stopped being one.
 */
import type { CancelTimer, Clock } from "../clock.ts";
import { type Crypto, fromBase64, toBase64, toHex } from "../crypto/index.ts";
import type { IpPrefix } from "../net/ip.ts";
import {
  type Endpoint,
  endpointKey,
  type PacketConn,
  type ReceiveHandler,
} from "../net/packet-conn.ts";
import type { Tun } from "../net/tun.ts";
import { MESSAGE_INITIATION_TYPE } from "../tunnel/constants.ts";
import { Device, type DeviceEvent, type LogLevel } from "../tunnel/device.ts";
import type { TimerSettings } from "../tunnel/timers.ts";
import { DEFAULT_MAX_FRAME_BYTES, fragment, Reassembler } from "./fragments.ts";
import {
  DEFAULT_HOP_LIMIT,
  decodeFrame,
  encodeFrame,
  encodeRelay,
  type Frame,
  MAX_CANDIDATES,
  MESH_PROTOCOL_VERSION,
  PING_NONCE_BYTES,
  RELAY_HEADER_BYTES,
} from "./frames.ts";
import { Gossip, type GossipOptions } from "./gossip.ts";
import type { GossipChannel, GossipState, PeerKey } from "./gossip-state.ts";
import { createIcmpRateLimiter, handleOversize } from "./oversize.ts";
import {
  createPathMtu,
  directCeilingBytes,
  type PathMtuState,
  pathMtuBytes,
  probeAnswered,
  probeSent,
  relayedPathMtu,
  tickPathMtu,
} from "./path-mtu.ts";
import {
  backoffMs,
  candidateEndpoints,
  createPeerState,
  isUnicastCandidate,
  type PeerState,
  sameEndpoint,
  uniqueEndpoints,
  virtualPeerKey,
} from "./peer-state.ts";
import { computeRoutes, type Routes } from "./routes.ts";
import type { MeshPeerStatus, MeshStatus } from "./status.ts";
import { Topology } from "./topology.ts";

export interface MeshOptions {
  readonly crypto: Crypto;
  readonly clock: Clock;
  /** The underlay socket. The mesh owns its receive handler. */
  readonly conn: PacketConn;
  readonly privateKey: Uint8Array;
  /** Where IP packets go; without one the mesh carries only its own datagrams. */
  readonly tun?: Tun;
  readonly nickname: string;
  /** Addresses other peers can reach us at, told in hellos and the topology. */
  readonly advertise?: readonly Endpoint[];
  /** The mesh-wide secret mixed into every handshake (admission until invitations exist). */
  readonly presharedKey?: Uint8Array;
  /**
   * Whether a key we have never heard of may handshake with us, and so join. By default
   * only when a mesh secret (`presharedKey`) is set: the secret is the admission ticket,
   * as Weave's password is, until invitations replace it.
   */
  readonly acceptUnknownPeers?: boolean;
  /**
   * Who may be a peer at all (the membership set, `src/membership/`). When given it is the
   * only admission rule: `acceptUnknownPeers`, topology gossip and `addPeer` admit no one
   * by themselves, a non-member is never put into the Device, dialled or relayed for, and
   * its handshakes, relay frames and control frames are dropped (counted). Call
   * `revalidateMembers()` whenever its answers change. Called per relay and control
   * frame: it must be cheap and must not throw.
   */
  readonly isMember?: (key: PeerKey) => boolean;
  /** Random numbers for jitter and peer choice; Math.random by default. */
  readonly random?: () => number;
  readonly log?: (level: LogLevel, message: string) => void;
  readonly timers?: Partial<TimerSettings>;
  /** Most direct connections to peers learned by gossip (static peers always count). */
  readonly connectionLimit?: number;
  /** Largest plaintext of one transport message; bigger control frames are fragmented. */
  readonly maxFrameBytes?: number;
  /** This peer's first topology version: must grow across restarts (a clock reading will do). */
  readonly initialVersion?: number;
  /** How long a peer that no one can reach is remembered. */
  readonly forgetAfterMs?: number;
  readonly gossip?: Partial<Pick<GossipOptions, "intervalMs" | "fanout" | "flushDelayMs">>;
  /**
   * The underlay's MTU towards an address, as the host routes it (the interface's MTU, or
   * a path MTU its kernel learned), or `undefined` when not known (yet). Called often, so
   * it must answer from a cache at once; the daemon's asks `ip route get` in the background.
   * Without it only probing finds a path's MTU (see `path-mtu.ts`).
   */
  readonly underlayMtu?: (address: string) => number | undefined;
}

/** A peer the operator names: always kept connected, retried with backoff forever. */
export interface StaticPeer {
  readonly publicKey: Uint8Array;
  readonly endpoint?: Endpoint;
  readonly allowedIps?: readonly IpPrefix[];
}

export type DatagramHandler = (
  from: PeerKey,
  port: number,
  data: Uint8Array,
  info: { readonly broadcast: boolean },
) => void;

/**
 * A handler of one datagram port (`onPort`), ahead of the `onDatagram` one. For a broadcast,
 * returning false also stops this peer from forwarding it down its tree (the multicast
 * carrier does so for what it rejects: duplicates, floods, forgeries).
 */
export type PortHandler = (
  from: PeerKey,
  port: number,
  data: Uint8Array,
  info: { readonly broadcast: boolean },
) => boolean | undefined;

/** Timing of the path machinery; tests may shorten it. */
const TICK_MS = 250;
const ACTIVE_PING_MS = 1_000;
const IDLE_PING_MS = 10_000;
/** A path in use pings every second; three unanswered pings (~3 s) declare it dead. */
const MAX_PINGS_OUTSTANDING = 3;
const ACTIVE_WINDOW_MS = 5_000;
const HELLO_RETRY_MS = 1_000;
const ATTEMPT_BASE_MS = 1_000;
/**
 * Retries of a direct path back off to this cap while a session exists (a retry is then
 * a few pings, cheap: a healed partition is found within seconds), and to the longer
 * one when a retry is a handshake, which costs the other side a few DH operations.
 */
const PING_ATTEMPT_CAP_MS = 5_000;
const ATTEMPT_CAP_MS = 30_000;
const CANDIDATES_PROBED = 4;
/** Candidates a peer offered that one punch pings, at most. */
const PUNCH_PINGS = 8;
/** A punch is answered (pings back, our candidates sent) at most this often per peer. */
const PUNCH_MIN_INTERVAL_MS = 1_000;
/** A direct path found this soon after we punched toward the peer counts as punched. */
const PUNCH_WINDOW_MS = 10_000;
/**
 * Our own addresses as peers saw them (pongs say where our pings came from, as STUN
 * does): the most recent few are offered to others, each for this long after last seen.
 * A NAT with endpoint-dependent mapping shows each observer another port; those go stale
 * and drop out.
 */
const MAX_REFLEXIVE = 4;
const REFLEXIVE_TTL_MS = 5 * 60_000;
const FORGET_CHECK_MS = 5_000;
const PUBLISH_DELAY_MS = 250;
/** A transport message's header (16) and authentication tag (16). */
const TRANSPORT_OVERHEAD_BYTES = 32;
const ROUTES_MIN_INTERVAL_MS = 100;
/** How long the relay a peer's frames came by stands in for a route to it. */
const RELAYED_VIA_TRUST_MS = 10_000;
const DEFAULT_CONNECTION_LIMIT = 64;
/** Tries of a member learned by gossip before its slot goes to another (about a minute). */
const MAX_ATTEMPTS = 8;
const GIVE_UP_MS = 5 * 60_000;
const MAX_PINGS_IN_FLIGHT = 16;
/** Unknown keys admitted to try a handshake: bounded, and dropped unless it completes. */
const MAX_TENTATIVE_PEERS = 64;
const TENTATIVE_TIMEOUT_MS = 15_000;
/** How often every peer's path MTU (relayed ones too) is handed to the Device. */
const PATH_MTU_APPLY_MS = 1_000;

const NULL_TUN: Tun = {
  name: "none",
  mtuBytes: 1420,
  write: () => {},
  onPacket: () => {},
  close: async () => {},
};

/** Counted reasons for dropping what peers sent us. */
export type MeshDropReason =
  | "malformed-frame"
  | "fragment-error"
  | "relayed-control"
  | "unknown-peer"
  | "relay-unknown-source"
  | "relay-unknown-destination"
  | "relay-hop-limit"
  | "relay-no-route"
  | "relay-spoofed-source"
  | "no-path"
  | "unexpected-pong"
  | "broadcast-not-from-parent"
  | "version-mismatch"
  /** With `isMember`: an initiation from a key that is not a member, refused before any session. */
  | "handshake-not-member"
  /** With `isMember`: a control frame in the session of a peer that is no longer a member. */
  | "control-not-member"
  /** With `isMember`: a relay frame whose source is not a member (at a relay or the destination). */
  | "relay-source-not-member"
  /** With `isMember`: a relay frame for a destination that is not a member. */
  | "relay-destination-not-member"
  /** With `isMember`: a broadcast datagram whose origin is not a member. */
  | "broadcast-not-member"
  /** A packet from the Tun too big for its path that is not IP, or no error may answer. */
  | "oversize-malformed"
  | "oversize-refused"
  /** A packet from the Tun too big for its path while its far end's ICMP errors are rate-limited. */
  | "oversize-rate-limited";

export class Mesh {
  readonly publicKey: Uint8Array;
  readonly key: PeerKey;
  readonly device: Device;
  readonly topology: Topology;
  readonly gossip: Gossip;
  readonly #crypto: Crypto;
  readonly #clock: Clock;
  readonly #conn: PacketConn;
  readonly #random: () => number;
  readonly #log: (level: LogLevel, message: string) => void;
  readonly #presharedKey: Uint8Array | undefined;
  readonly #nickname: string;
  readonly #advertise: readonly Endpoint[];
  readonly #connectionLimit: number;
  readonly #acceptUnknownPeers: boolean;
  readonly #isMember: ((key: PeerKey) => boolean) | undefined;
  /** A deferred `revalidateMembers()` is queued (the Device must not lose a peer mid-call). */
  #revalidatePending = false;
  /** Keys admitted for a handshake that has not completed yet, with when they came. */
  readonly #tentative = new Map<PeerKey, number>();
  readonly #maxFrameBytes: number;
  readonly #relayedMaxFrameBytes: number;
  readonly #peers = new Map<PeerKey, PeerState>();
  /** Stock WireGuard peers that reach the mesh through this one (see `addLeaf`). */
  readonly #leaves = new Set<PeerKey>();
  /** The same peers by virtual endpoint address, for the per-packet path choice. */
  readonly #byVirtualAddress = new Map<string, PeerState>();
  readonly #allowedIps = new Map<PeerKey, readonly IpPrefix[]>();
  readonly #reassemblers = new Map<PeerKey, Reassembler>();
  readonly #drops = new Map<MeshDropReason, number>();
  /** Our endpoints as peers observed them, by endpoint key, with when last reported. */
  readonly #reflexive = new Map<string, { readonly endpoint: Endpoint; seenMs: number }>();
  readonly #counters = {
    relayedIn: 0,
    relayedForwarded: 0,
    relayedOut: 0,
    broadcastsIn: 0,
    reassembled: 0,
  };
  readonly #topologyChannel: GossipChannel<unknown>;
  #deviceReceive: ReceiveHandler = () => {};
  #datagramHandler: DatagramHandler = () => {};
  readonly #portHandlers = new Map<number, PortHandler>();
  #noRouteHandler: ((packet: Uint8Array) => boolean) | undefined;
  #routes: Routes | undefined;
  #routesGeneration = -1;
  #routesComputedMs = Number.NEGATIVE_INFINITY;
  #routesUrgent = false;
  #fragmentId = 0;
  #publishPending = false;
  /** Peers the tick looks after: static ones, connected ones, and those being tried. */
  readonly #active = new Set<PeerState>();
  /** How many of `#active` are not static: bounded by `connectionLimit`. */
  #pursued = 0;
  #lastPursueScanMs = Number.NEGATIVE_INFINITY;
  #lastForgetCheckMs = 0;
  #cancelTick: CancelTimer | undefined;
  #closed = false;
  readonly #tun: Tun;
  readonly #underlayMtu: ((address: string) => number | undefined) | undefined;
  /** Path MTU probing of each direct path (`path-mtu.ts`). */
  readonly #pathMtus = new Map<PeerKey, PathMtuState>();
  /** The MTU last handed to the Device per peer. */
  readonly #appliedMtus = new Map<PeerKey, number | undefined>();
  #lastMtuApplyMs = Number.NEGATIVE_INFINITY;
  readonly #icmpLimiter = createIcmpRateLimiter();

  constructor(options: MeshOptions) {
    this.#crypto = options.crypto;
    this.#clock = options.clock;
    this.#conn = options.conn;
    this.#random = options.random ?? Math.random;
    this.#log = options.log ?? (() => {});
    this.#presharedKey = options.presharedKey;
    this.#nickname = options.nickname;
    this.#advertise = options.advertise ?? [];
    this.#connectionLimit = options.connectionLimit ?? DEFAULT_CONNECTION_LIMIT;
    this.#acceptUnknownPeers = options.acceptUnknownPeers ?? options.presharedKey !== undefined;
    this.#isMember = options.isMember;
    this.#tun = options.tun ?? NULL_TUN;
    this.#underlayMtu = options.underlayMtu;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    // Relay header, transport header and tag around it, and padding to 16 bytes.
    this.#relayedMaxFrameBytes =
      Math.floor((this.#maxFrameBytes - RELAY_HEADER_BYTES - TRANSPORT_OVERHEAD_BYTES) / 16) * 16;
    this.publicKey = this.#crypto.publicKey(options.privateKey);
    this.key = toBase64(this.publicKey);

    const mesh = this;
    const deviceConn: PacketConn = {
      get localPort() {
        return mesh.#conn.localPort;
      },
      send: (data, to) => this.#sendWire(data, to),
      onReceive: (handler) => {
        this.#deviceReceive = handler;
      },
      close: async () => {},
    };
    this.#conn.onReceive((data, from) => this.#deviceReceive(data, from));
    this.device = new Device({
      crypto: this.#crypto,
      clock: this.#clock,
      conn: deviceConn,
      tun: this.#tun,
      privateKey: options.privateKey,
      timers: options.timers,
      random: this.#random,
      log: this.#log,
      onEvent: (event) => this.#onDeviceEvent(event),
      onControl: (publicKey, payload, from) => this.#onControl(publicKey, payload, from),
      onUnknownPeer: (publicKey) => this.#admitUnknown(publicKey),
      onNoRoute: (packet) => this.#noRouteHandler?.(packet) ?? false,
      onOversize: (packet, mtu, publicKey) => this.#onOversize(packet, mtu, publicKey),
    });

    this.topology = new Topology({
      self: this.key,
      initialVersion: options.initialVersion ?? Math.max(1, Math.floor(this.#clock.wallNow())),
      nickname: this.#nickname,
      clock: this.#clock,
      forgetAfterMs: options.forgetAfterMs,
      log: this.#log,
    });
    this.gossip = new Gossip({
      self: this.key,
      clock: this.#clock,
      random: this.#random,
      log: this.#log,
      ...options.gossip,
      transport: {
        neighbours: () => this.#connectedKeys(),
        send: (peer, message) => this.#sendGossip(peer, message),
        broadcastChildren: (origin) =>
          origin === this.key
            ? this.#connectedKeys()
            : this.#currentRoutes()
                .broadcastChildren(origin)
                .filter((key) => this.#peers.get(key)?.connected),
        broadcastParent: (origin) => this.#currentRoutes().broadcastParent(origin),
      },
    });
    this.#topologyChannel = this.gossip.channel("topology", this.#topologyState());
    this.#publishLocal();
    this.#scheduleTick();
  }

  /** The UDP port of the underlay socket. */
  get localPort(): number {
    return this.#conn.localPort;
  }

  /** Adds (or reconfigures) a peer the operator names. */
  addPeer(config: StaticPeer): void {
    const key = toBase64(config.publicKey);
    if (key === this.key) throw new RangeError("A mesh peer cannot be its own peer");
    const peer = this.#peerFor(key);
    this.#deactivate(peer);
    peer.isStatic = true;
    this.#activate(peer);
    if (config.endpoint) peer.configured = [config.endpoint];
    if (config.allowedIps) {
      this.#allowedIps.set(key, config.allowedIps);
      if (peer.inDevice) this.device.setAllowedIps(peer.publicKey, config.allowedIps);
    }
    peer.nextAttemptMs = this.#clock.now();
    this.#materialize(peer);
    this.#tickPeer(peer, this.#clock.now());
  }

  /**
   * A member this peer knew before it restarted, at the endpoints it advertised then: tried
   * like a member learned by gossip (within the connection limit, given up when it never
   * answers), so a restarted relay finds its old neighbours without waiting to be found.
   */
  addKnownPeer(publicKey: Uint8Array, endpoints: readonly Endpoint[]): void {
    const key = toBase64(publicKey);
    if (key === this.key || this.#closed || this.#peers.has(key) || !this.#allowed(key)) return;
    const peer = this.#peerFor(key);
    peer.advertised = endpoints.slice(0, CANDIDATES_PROBED);
    peer.nextAttemptMs = this.#clock.now();
    if (this.#pursued < this.#connectionLimit) this.#activate(peer);
  }

  /**
   * Routes the IP prefixes to a member (the daemon passes each member's IPAM ranges):
   * packets from the Tun to them go to it, and its packets must come from them. Replaces
   * what the member had; an empty list takes every route away. A member learned by gossip
   * enters the Device here (one DH), so that packets for it are not dropped as unroutable.
   */
  setAllowedIps(key: PeerKey, prefixes: readonly IpPrefix[]): void {
    if (key === this.key || this.#closed) return;
    if (prefixes.length === 0) this.#allowedIps.delete(key);
    else this.#allowedIps.set(key, prefixes);
    const peer = this.#peers.get(key);
    if (!peer) return;
    if (peer.inDevice) this.device.setAllowedIps(peer.publicKey, prefixes);
    else if (prefixes.length > 0) this.#materialize(peer);
  }

  /**
   * Stops keeping a member: a static peer is no longer retried, and the member is
   * forgotten unless it is connected now (then gossip keeps it until it goes quiet).
   * Returns whether it was known.
   */
  removePeer(key: PeerKey): boolean {
    const peer = this.#peers.get(key);
    if (!peer) return false;
    this.#deactivate(peer); // before isStatic changes: it decides what the slot counted as
    peer.isStatic = false;
    peer.gaveUpUntilMs = this.#clock.now() + GIVE_UP_MS;
    if (!peer.connected) this.#forget(key);
    return true;
  }

  /**
   * Adds a leaf: a stock WireGuard peer (a phone, `wg-quick`) that reaches the mesh
   * through this peer only. It is a Device peer with `allowedIps` and WireGuard's own
   * roaming (it dials us; we learn its endpoint from its packets), outside the mesh's path
   * machinery: it neither gossips nor relays, so it gets no hellos, pings or relay
   * frames, and it never appears in the topology. Members route its addresses to us
   * because they lie in our address space. Replaces an earlier leaf of the same key.
   */
  addLeaf(publicKey: Uint8Array, allowedIps: readonly IpPrefix[]): void {
    const key = toBase64(publicKey);
    if (key === this.key) throw new RangeError("A mesh peer cannot be its own leaf");
    if (this.#peers.has(key)) throw new RangeError(`${key} is a mesh peer, not a leaf`);
    if (this.#leaves.has(key)) this.device.removePeer(publicKey);
    this.#leaves.add(key);
    this.device.addPeer({ publicKey, allowedIps, roaming: true });
  }

  /** Removes a leaf and its session; returns whether it was one. */
  removeLeaf(publicKey: Uint8Array): boolean {
    const key = toBase64(publicKey);
    if (!this.#leaves.delete(key)) return false;
    this.device.removePeer(publicKey);
    return true;
  }

  /** The leaves' keys. */
  leaves(): PeerKey[] {
    return [...this.#leaves];
  }

  /**
   * Applies a change of `isMember`'s answers (call it on every membership change; without
   * `isMember` it does nothing). Every peer that is no longer a member leaves the Device,
   * which wipes its session keys, so its packets fail to decrypt from now on; its direct
   * path and connection go (topology and gossip hear of it), and it is forgotten unless
   * it is a static peer (kept, but not dialled while it is not a member). Members that
   * topology gossip told us of before they were admitted are tried now. Returns the keys
   * thrown out.
   */
  revalidateMembers(): PeerKey[] {
    const evicted: PeerKey[] = [];
    if (this.#isMember === undefined || this.#closed) return evicted;
    const now = this.#clock.now();
    for (const peer of [...this.#peers.values()]) {
      if (this.#allowed(peer.key)) {
        // A static peer admitted since it was configured: dial it now, not at its backoff.
        if (peer.isStatic && !peer.inDevice) {
          peer.attempts = 0;
          peer.nextAttemptMs = now;
        }
        continue;
      }
      evicted.push(peer.key);
      this.#evict(peer);
    }
    for (const key of this.topology.peers()) {
      if (key === this.key || this.#peers.has(key) || !this.#allowed(key)) continue;
      this.#learnMember(key);
    }
    this.#routes = undefined; // routes leave non-members out
    return evicted;
  }

  /** Sends an application datagram to a member, relayed if need be; false if it is unknown. */
  sendDatagram(to: PeerKey, port: number, data: Uint8Array): boolean {
    const peer = this.#peers.get(to);
    if (!peer || this.#closed || !this.#materialize(peer)) return false;
    this.#sendFrame(peer, encodeFrame({ type: "datagram", port, data }));
    return true;
  }

  /** Sends a datagram to every reachable member once, along this peer's broadcast tree. */
  broadcastDatagram(port: number, data: Uint8Array): void {
    const frame = encodeFrame({
      type: "broadcast",
      hopLimit: DEFAULT_HOP_LIMIT,
      source: this.publicKey,
      port,
      data,
    });
    for (const child of this.#currentRoutes().broadcastChildren(this.key)) {
      const peer = this.#peers.get(child);
      if (peer) this.#sendFrame(peer, frame);
    }
  }

  onDatagram(handler: DatagramHandler): void {
    this.#datagramHandler = handler;
  }

  /** Takes one port's datagrams away from the `onDatagram` handler; undefined gives them back. */
  onPort(port: number, handler: PortHandler | undefined): void {
    if (handler) this.#portHandlers.set(port, handler);
    else this.#portHandlers.delete(port);
  }

  /**
   * Takes the Tun's packets that no member owns (the Device's `onNoRoute`): the handler
   * returns whether it carried them. The multicast carrier (`attachMulticast`) is one.
   */
  onNoRoute(handler: ((packet: Uint8Array) => boolean) | undefined): void {
    this.#noRouteHandler = handler;
  }

  /** The prefixes routed to a member (`setAllowedIps`); empty when it has none. */
  allowedIpsOf(key: PeerKey): readonly IpPrefix[] {
    return this.#allowedIps.get(key) ?? [];
  }

  /** A named gossip channel for a replicated state (IPAM, DNS). */
  channel<D>(name: string, state: GossipState<D>): GossipChannel<D> {
    return this.gossip.channel(name, state);
  }

  /** Members this peer knows of (excluding itself). */
  members(): PeerKey[] {
    return [...this.#peers.keys()].filter((key) => this.#allowed(key));
  }

  /** Members that messages can reach now, directly or through relays. */
  reachable(): PeerKey[] {
    const routes = this.#currentRoutes();
    return [...this.#peers.values()]
      .filter(
        (peer) => this.#allowed(peer.key) && (peer.direct || routes.hops(peer.key) !== undefined),
      )
      .map((peer) => peer.key);
  }

  /** What the CLI's `status` prints: every member, its path, and counters. */
  status(): MeshStatus {
    const now = this.#clock.now();
    const routes = this.#currentRoutes();
    const devicePeers = new Map(this.device.peers().map((p) => [toBase64(p.publicKey), p]));
    const peers: MeshPeerStatus[] = [];
    for (const peer of this.#peers.values()) {
      const device = devicePeers.get(peer.key);
      const via = routes.via(peer.key);
      const path = peer.direct
        ? "direct"
        : via && via.length > 1 && this.#relayHop(peer.key)
          ? "relayed"
          : "unreachable";
      peers.push({
        publicKey: peer.key,
        nickname: peer.nickname || this.topology.entry(peer.key)?.nickname || "",
        path,
        endpoint: peer.direct ? endpointKey(peer.direct.endpoint) : undefined,
        punched: peer.direct?.punched ?? false,
        via: path === "relayed" ? via!.slice(0, -1) : [],
        hops: path === "direct" ? 1 : path === "relayed" ? via!.length : undefined,
        connected: peer.connected,
        rttMs: peer.direct?.rttMs,
        handshakeAgeMs:
          device?.lastHandshakeMs === undefined ? undefined : now - device.lastHandshakeMs,
        rxBytes: device?.rxBytes ?? 0,
        txBytes: device?.txBytes ?? 0,
        pathMtu: path === "unreachable" ? undefined : this.#pathMtuOf(peer),
      });
    }
    peers.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1));
    return {
      publicKey: this.key,
      nickname: this.#nickname,
      protocolVersion: MESH_PROTOCOL_VERSION,
      endpoints: this.#selfCandidates().map(endpointKey),
      peers,
      connections: this.#connectedKeys().length,
      relayed: { ...this.#counters },
      drops: Object.fromEntries(this.#drops),
      deviceDrops: this.device.drops(),
    };
  }

  /** Counts of what was dropped, by reason. */
  drops(): Record<string, number> {
    return Object.fromEntries(this.#drops);
  }

  /** Stops timers, wipes keys and closes the underlay socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelTick?.();
    this.gossip.close();
    this.device.close();
    await this.#conn.close();
  }

  // ---- peers ---------------------------------------------------------------------------

  #peerFor(key: PeerKey): PeerState {
    let peer = this.#peers.get(key);
    if (!peer) {
      peer = createPeerState(key, fromBase64(key));
      this.#peers.set(key, peer);
      this.#byVirtualAddress.set(peer.virtualEndpoint.address, peer);
    }
    return peer;
  }

  /** Whether `key` may be a peer: a member, or anyone when no `isMember` is set. */
  #allowed(key: PeerKey): boolean {
    return this.#isMember === undefined || this.#isMember(key);
  }

  /**
   * Throws a peer that is no longer a member out of the Device (keys wiped, so its
   * packets fail to decrypt) and out of our connections; forgotten unless static.
   */
  #evict(peer: PeerState): void {
    this.#log("info", `${this.#name(peer.key)} is not a member: closing its sessions`);
    if (peer.direct) {
      peer.direct = undefined;
      peer.pings.clear();
    }
    if (peer.connected) {
      peer.connected = false;
      this.gossip.neighbourDown(peer.key);
      this.#publishLocal();
    }
    peer.helloReceived = false;
    peer.helloSeen = false;
    peer.relayedVia = undefined;
    if (peer.inDevice) {
      this.device.removePeer(peer.publicKey);
      peer.inDevice = false;
    }
    this.#tentative.delete(peer.key);
    this.#reassemblers.delete(peer.key);
    this.#pathMtus.delete(peer.key);
    this.#appliedMtus.delete(peer.key);
    if (peer.isStatic) return;
    this.#deactivate(peer);
    this.#peers.delete(peer.key);
    this.#byVirtualAddress.delete(peer.virtualEndpoint.address);
  }

  /**
   * A non-member showed up inside the Device (membership changed and nobody called
   * `revalidateMembers` yet): revalidate on the next timer turn, not now, because the
   * Device is in the middle of handling that peer's message.
   */
  #revalidateSoon(): void {
    if (this.#revalidatePending || this.#closed) return;
    this.#revalidatePending = true;
    this.#clock.setTimer(0, () => {
      this.#revalidatePending = false;
      this.revalidateMembers();
    });
  }

  /**
   * Puts a member into the Device when there is traffic for it (key derivation costs a
   * DH). False, and nothing done, for a key that is not a member.
   */
  #materialize(peer: PeerState): boolean {
    if (peer.inDevice) return true;
    if (!this.#allowed(peer.key)) return false;
    this.device.addPeer({
      publicKey: peer.publicKey,
      presharedKey: this.#presharedKey,
      allowedIps: this.#allowedIps.get(peer.key) ?? [],
      endpoint: peer.virtualEndpoint,
      roaming: false,
    });
    peer.inDevice = true;
    this.#appliedMtus.delete(peer.key); // a new Device peer has no limit yet
    return true;
  }

  /**
   * An initiation from a key the Device lacks: admit it if it is a member, or may become
   * one. With `isMember`, membership alone decides, and a refused key costs nothing beyond
   * the one DH the Device already spent to learn who it is (Noise IK hides the initiator's
   * key until then): no peer state, no key derivation.
   */
  #admitUnknown(publicKey: Uint8Array): void {
    const key = toBase64(publicKey);
    if (this.#isMember !== undefined) {
      if (key === this.key || this.#closed) return;
      if (!this.#isMember(key)) {
        this.#drop("handshake-not-member");
        return;
      }
      this.#materialize(this.#peerFor(key));
      return;
    }
    let peer = this.#peers.get(key);
    if (!peer) {
      if (!this.#acceptUnknownPeers || key === this.key) return;
      if (this.#tentative.size >= MAX_TENTATIVE_PEERS) return;
      this.#tentative.set(key, this.#clock.now());
      peer = this.#peerFor(key);
    }
    this.#materialize(peer);
  }

  /** Tentative peers whose handshake never completed (wrong secret, a scan) are dropped. */
  #expireTentative(now: number): void {
    for (const [key, since] of this.#tentative) {
      if (now - since < TENTATIVE_TIMEOUT_MS) continue;
      this.#tentative.delete(key);
      const peer = this.#peers.get(key);
      if (!peer) continue;
      this.#deactivate(peer);
      this.#peers.delete(key);
      this.#byVirtualAddress.delete(peer.virtualEndpoint.address);
      if (peer.inDevice) this.device.removePeer(peer.publicKey);
    }
  }

  #connectedKeys(): PeerKey[] {
    const keys: PeerKey[] = [];
    for (const peer of this.#peers.values()) if (peer.connected) keys.push(peer.key);
    return keys;
  }

  // ---- the path of every WireGuard message ----------------------------------------------

  #sendWire(data: Uint8Array, to: Endpoint): void {
    if (this.#closed) return;
    // By the virtual address itself: no string is cut per packet.
    const peer = this.#byVirtualAddress.get(to.address);
    if (!peer) {
      if (virtualPeerKey(to) === undefined) this.#conn.send(data, to);
      return;
    }
    const key = peer.key;
    const now = this.#clock.now();
    peer.lastSentMs = now;
    if (peer.direct) {
      this.#conn.send(data, peer.direct.endpoint);
      return;
    }
    const hop = this.#relayHop(key);
    if (hop) {
      hop.lastSentMs = now;
      this.#counters.relayedOut++;
      this.#sendFrame(hop, encodeRelay(DEFAULT_HOP_LIMIT, peer.publicKey, this.publicKey, data));
      // A handshake also tries the peer's addresses: it may answer directly.
      if (data[0] !== MESSAGE_INITIATION_TYPE) return;
    }
    const candidates = candidateEndpoints(peer, CANDIDATES_PROBED);
    if (!hop && candidates.length === 0) this.#drop("no-path");
    for (const endpoint of candidates) this.#conn.send(data, endpoint);
  }

  /** The neighbour to hand a message for `key` to, if any path exists. */
  #relayHop(key: PeerKey): PeerState | undefined {
    const next = this.#currentRoutes().nextHop(key);
    const hop = next === undefined || next === key ? undefined : this.#peers.get(next);
    if (hop?.direct) return hop;
    // No route yet (gossip has not caught up): answer the way its relay frames came,
    // for a little while only (after a partition that way is as dead as the route).
    const peer = this.#peers.get(key);
    if (!peer || this.#clock.now() - peer.relayedViaMs > RELAYED_VIA_TRUST_MS) return undefined;
    const back = peer.relayedVia;
    const via = back === undefined || back === key ? undefined : this.#peers.get(back);
    return via?.direct ? via : undefined;
  }

  /** Sends a control frame in the peer's session, in pieces when it is large. */
  #sendFrame(peer: PeerState, frame: Uint8Array, via?: Endpoint): boolean {
    if (!this.#materialize(peer)) return false;
    // Relayed, the sealed piece travels inside a relay frame that must fit one piece too:
    // cut it smaller here, so relays forward without splitting and reassembling.
    let max = peer.direct || via ? this.#maxFrameBytes : this.#relayedMaxFrameBytes;
    const pathMtu = peer.direct && !via ? this.#appliedMtus.get(peer.key) : undefined;
    if (pathMtu !== undefined && pathMtu < max) max = pathMtu;
    let pieces = [frame];
    if (frame.length > max) {
      this.#fragmentId = (this.#fragmentId + 1) >>> 0;
      pieces = fragment(frame, this.#fragmentId, max);
    }
    let sent = true;
    for (const piece of pieces) sent = this.device.sendControl(peer.publicKey, piece, via) && sent;
    return sent;
  }

  #sendGossip(key: PeerKey, message: Uint8Array): boolean {
    const peer = this.#peers.get(key);
    if (!peer || this.#closed) return false;
    if (!peer.direct && !this.#relayHop(key)) return false;
    return this.#sendFrame(peer, encodeFrame({ type: "gossip", message }));
  }

  // ---- what arrives ---------------------------------------------------------------------

  #onDeviceEvent(event: DeviceEvent): void {
    const peer = this.#peers.get(toBase64(event.publicKey));
    if (!peer) return;
    if (!this.#allowed(peer.key)) {
      this.#revalidateSoon();
      return;
    }
    if (event.type === "source-changed") {
      if (virtualPeerKey(event.endpoint) === undefined) peer.observed = event.endpoint;
    } else if (event.type === "handshake-completed") {
      this.#tentative.delete(peer.key);
      // A new session may be a restarted peer that lost our hello.
      peer.helloReceived = false;
      if (!peer.direct && this.#wantsDirect(peer)) {
        peer.nextAttemptMs = this.#clock.now();
        this.#tickPeer(peer, this.#clock.now());
      }
    }
  }

  #onControl(publicKey: Uint8Array, payload: Uint8Array, from: Endpoint): void {
    const key = toBase64(publicKey);
    const peer = this.#peers.get(key);
    if (!peer) {
      this.#drop("unknown-peer");
      return;
    }
    if (!this.#allowed(key)) {
      this.#drop("control-not-member");
      this.#revalidateSoon();
      return;
    }
    const decoded = decodeFrame(payload);
    if ("error" in decoded) {
      this.#drop("malformed-frame");
      this.#log("debug", `dropped a frame from ${this.#name(key)}: ${decoded.error}`);
      return;
    }
    if (decoded.type === "fragment") {
      let reassembler = this.#reassemblers.get(key);
      if (!reassembler) {
        reassembler = new Reassembler();
        this.#reassemblers.set(key, reassembler);
      }
      const whole = reassembler.add(
        decoded.id,
        decoded.index,
        decoded.count,
        decoded.piece,
        this.#clock.now(),
      );
      if (whole === undefined) return;
      if ("error" in whole) {
        this.#drop("fragment-error");
        return;
      }
      this.#counters.reassembled++;
      this.#handleFrame(peer, whole, from);
      return;
    }
    this.#handleFrame(peer, decoded, from);
  }

  #handleFrame(peer: PeerState, frame: Frame, from: Endpoint): void {
    const direct = virtualPeerKey(from) === undefined;
    switch (frame.type) {
      case "gossip":
        this.gossip.receive(peer.key, frame.message.slice());
        return;
      case "datagram":
        this.#deliverDatagram(peer.key, frame.port, frame.data.slice(), false);
        return;
      case "candidates":
        // End to end (usually through a relay, the point of it): the session proves who
        // sent it, and all it makes us do is a few rate-limited pings.
        this.#onCandidates(peer, frame.endpoints);
        return;
    }
    // Everything else is between neighbours only: relayed, it would be a confused deputy.
    if (!direct) {
      this.#drop("relayed-control");
      return;
    }
    switch (frame.type) {
      case "ping":
        this.#sendFrame(
          peer,
          encodeFrame({
            type: "pong",
            nonce: frame.nonce,
            helloSeen: peer.helloReceived,
            observed: from,
          }),
          from,
        );
        peer.observed = from;
        if (!peer.direct && this.#clock.now() - peer.lastReversePingMs >= ACTIVE_PING_MS) {
          // It reaches us: check the way back at once, whatever our own connection limit
          // (an inbound connection is the other side's choice; the limit is for ours).
          peer.lastReversePingMs = this.#clock.now();
          this.#ping(peer, from, this.#clock.now());
        }
        return;
      case "pong":
        if (this.#onProbePong(peer, frame.nonce, from)) return;
        this.#onPong(peer, frame.nonce, frame.helloSeen, frame.observed, from);
        return;
      case "hello":
        this.#onHello(peer, frame.hello);
        return;
      case "relay":
        this.#onRelay(peer, frame);
        return;
      case "broadcast":
        this.#onBroadcast(peer, frame);
        return;
    }
  }

  #onPong(
    peer: PeerState,
    nonce: Uint8Array,
    helloSeen: boolean,
    observed: Endpoint,
    from: Endpoint,
  ): void {
    const id = toHex(nonce);
    const ping = peer.pings.get(id);
    if (!ping || !sameEndpoint(ping.endpoint, from)) {
      this.#drop("unexpected-pong");
      return;
    }
    peer.pings.delete(id);
    const now = this.#clock.now();
    peer.helloSeen = helloSeen;
    this.#noteReflexive(observed, now);
    if (peer.direct && sameEndpoint(peer.direct.endpoint, from)) {
      peer.direct.pingsOutstanding = 0;
      peer.direct.lastPongMs = now;
      peer.direct.rttMs = now - ping.sentMs;
      return;
    }
    if (peer.direct) return; // a working path already; keep it
    peer.direct = {
      endpoint: { address: from.address, port: from.port },
      pingsOutstanding: 0,
      lastPingMs: now,
      lastPongMs: now,
      rttMs: now - ping.sentMs,
      // Also when the pong answers our reverse ping: the other side's punch got through.
      punched: ping.punch || now - peer.lastPunchMs < PUNCH_WINDOW_MS,
    };
    peer.attempts = 0;
    this.#activate(peer);
    this.#log(
      "info",
      `direct path to ${this.#name(peer.key)} at ${endpointKey(from)}${peer.direct.punched ? " (hole punched)" : ""}`,
    );
    this.#sendHello(peer, now);
    this.#maybeConnected(peer);
  }

  #onHello(
    peer: PeerState,
    hello: { version: number; nickname: string; endpoints: readonly Endpoint[] },
  ): void {
    if (hello.version !== MESH_PROTOCOL_VERSION) {
      this.#drop("version-mismatch");
      if (peer.incompatibleVersion !== hello.version)
        this.#log(
          "warn",
          `peer ${this.#name(peer.key)} speaks mesh protocol version ${hello.version}, we speak ${MESH_PROTOCOL_VERSION}: not connecting to it (upgrade one of them)`,
        );
      peer.incompatibleVersion = hello.version;
      return;
    }
    peer.incompatibleVersion = undefined;
    peer.nickname = hello.nickname;
    peer.advertised = [...hello.endpoints];
    peer.helloReceived = true;
    this.#maybeConnected(peer);
  }

  #onRelay(
    hop: PeerState,
    frame: { hopLimit: number; destination: Uint8Array; source: Uint8Array; message: Uint8Array },
  ): void {
    const source = toBase64(frame.source);
    const destination = toBase64(frame.destination);
    if (source === this.key) {
      this.#drop("relay-unknown-source");
      return;
    }
    // Only members use relays: the first relay checks that the neighbour (authenticated by
    // its session) sends as itself; later relays trust the members before them, and the
    // destination authenticates the end-to-end message anyway.
    if (frame.hopLimit === DEFAULT_HOP_LIMIT && source !== hop.key) {
      this.#drop("relay-spoofed-source");
      return;
    }
    // Members only, checked by every relay and the destination against its own view, so a
    // relay that has not heard of a removal yet is caught by the next one that has.
    if (!this.#allowed(source)) {
      this.#drop("relay-source-not-member");
      return;
    }
    if (destination !== this.key && !this.#allowed(destination)) {
      this.#drop("relay-destination-not-member");
      return;
    }
    if (destination === this.key) {
      // A member gossip has not told us about yet may be new: admit it to try a handshake.
      if (!this.#peers.has(source)) this.#admitUnknown(frame.source);
      const from = this.#peers.get(source);
      if (!from) {
        this.#drop("relay-unknown-source");
        return;
      }
      this.#counters.relayedIn++;
      from.relayedVia = hop.key;
      from.relayedViaMs = this.#clock.now();
      this.#materialize(from);
      // Copy: the frame is a view into the Device's receive buffer, which this reuses.
      this.#deviceReceive(frame.message.slice(), from.virtualEndpoint);
      return;
    }
    const sender = this.#peers.get(source);
    if (sender) {
      sender.relayedVia = hop.key;
      sender.relayedViaMs = this.#clock.now();
    }
    const target = this.#peers.get(destination);
    if (!target) {
      this.#drop("relay-unknown-destination");
      return;
    }
    if (frame.hopLimit <= 1) {
      this.#drop("relay-hop-limit");
      return;
    }
    const next = target.direct ? target : this.#relayHop(destination);
    if (!next || next === hop) {
      this.#drop("relay-no-route");
      return;
    }
    this.#counters.relayedForwarded++;
    next.lastSentMs = this.#clock.now();
    this.#sendFrame(
      next,
      encodeRelay(frame.hopLimit - 1, frame.destination, frame.source, frame.message),
    );
  }

  #onBroadcast(
    from: PeerState,
    frame: { hopLimit: number; source: Uint8Array; port: number; data: Uint8Array },
  ): void {
    const source = toBase64(frame.source);
    if (!this.#allowed(source)) {
      this.#drop("broadcast-not-member");
      return;
    }
    const routes = this.#currentRoutes();
    if (source === this.key || routes.broadcastParent(source) !== from.key) {
      this.#drop("broadcast-not-from-parent");
      return;
    }
    this.#counters.broadcastsIn++;
    const forward = this.#deliverDatagram(source, frame.port, frame.data.slice(), true);
    if (frame.hopLimit <= 1 || !forward) return;
    const forwarded = encodeFrame({
      type: "broadcast",
      ...frame,
      hopLimit: frame.hopLimit - 1,
      source: frame.source.slice(),
    });
    for (const child of routes.broadcastChildren(source)) {
      const peer = this.#peers.get(child);
      if (peer?.direct) this.#sendFrame(peer, forwarded);
    }
  }

  /** To the port's handler, else the `onDatagram` one; false when a port handler refused it. */
  #deliverDatagram(from: PeerKey, port: number, data: Uint8Array, broadcast: boolean): boolean {
    const handler = this.#portHandlers.get(port);
    if (handler) return handler(from, port, data, { broadcast }) !== false;
    this.#datagramHandler(from, port, data, { broadcast });
    return true;
  }

  // ---- connections ------------------------------------------------------------------------

  /**
   * Static peers always; peers learned by gossip while fewer than `connectionLimit` are
   * pursued (connected or being tried), so a peer of a large mesh does not try everyone.
   */
  #wantsDirect(peer: PeerState): boolean {
    if (peer.isStatic || peer.connected || this.#active.has(peer)) return true;
    if (peer.incompatibleVersion !== undefined) return false;
    if (this.#pursued >= this.#connectionLimit) return false;
    this.#activate(peer);
    return true;
  }

  /** Makes a peer one the tick looks after (static, connected, or being tried). */
  #activate(peer: PeerState): void {
    if (this.#active.has(peer)) return;
    this.#active.add(peer);
    if (!peer.isStatic) this.#pursued++;
  }

  #deactivate(peer: PeerState): void {
    if (!this.#active.delete(peer)) return;
    if (!peer.isStatic) this.#pursued--;
  }

  /** Fills free connection slots with known members worth trying, at most once a second. */
  #pursueMore(now: number): void {
    if (this.#pursued >= this.#connectionLimit || now - this.#lastPursueScanMs < 1_000) return;
    this.#lastPursueScanMs = now;
    for (const peer of this.#peers.values()) {
      if (this.#pursued >= this.#connectionLimit) return;
      if (this.#active.has(peer) || peer.incompatibleVersion !== undefined) continue;
      if (now < peer.gaveUpUntilMs || this.#tentative.has(peer.key)) continue;
      if (!this.#allowed(peer.key)) continue;
      if (candidateEndpoints(peer, 1).length === 0) continue;
      this.#activate(peer);
    }
  }

  #maybeConnected(peer: PeerState): void {
    if (peer.connected || !peer.direct || !peer.helloReceived) return;
    peer.connected = true;
    this.#log(
      "info",
      `connected to ${this.#name(peer.key)} at ${endpointKey(peer.direct.endpoint)}`,
    );
    this.#publishLocal();
    this.gossip.neighbourUp(peer.key);
  }

  #directLost(peer: PeerState, why: string): void {
    if (!peer.direct) return;
    this.#log("info", `direct path to ${this.#name(peer.key)} lost: ${why}`);
    peer.direct = undefined;
    peer.pings.clear();
    peer.nextAttemptMs =
      this.#clock.now() + backoffMs(0, ATTEMPT_BASE_MS, ATTEMPT_CAP_MS, this.#random);
    if (peer.connected) {
      peer.connected = false;
      this.gossip.neighbourDown(peer.key);
      this.#publishLocal();
    }
  }

  #ping(peer: PeerState, endpoint: Endpoint, now: number, punch = false): void {
    if (peer.pings.size >= MAX_PINGS_IN_FLIGHT) {
      // Forget the oldest: pings to dead candidates must not pile up.
      const oldest = peer.pings.keys().next().value!;
      peer.pings.delete(oldest);
    }
    const nonce = this.#crypto.randomBytes(PING_NONCE_BYTES);
    if (!this.#sendFrame(peer, encodeFrame({ type: "ping", nonce }), endpoint)) return;
    peer.pings.set(toHex(nonce), { endpoint, sentMs: now, punch });
  }

  #sendHello(peer: PeerState, now: number): void {
    peer.lastHelloSentMs = now;
    this.#sendFrame(
      peer,
      encodeFrame({
        type: "hello",
        hello: {
          version: MESH_PROTOCOL_VERSION,
          nickname: this.#nickname,
          endpoints: this.#selfCandidates(),
          features: [],
        },
      }),
    );
  }

  #tickPeer(peer: PeerState, now: number): void {
    if (this.#closed || !this.#allowed(peer.key)) return;
    const direct = peer.direct;
    if (direct) {
      const active = now - peer.lastSentMs < ACTIVE_WINDOW_MS || direct.pingsOutstanding > 0;
      if (now - direct.lastPingMs >= (active ? ACTIVE_PING_MS : IDLE_PING_MS)) {
        if (direct.pingsOutstanding >= MAX_PINGS_OUTSTANDING) {
          this.#directLost(peer, `no answer to ${MAX_PINGS_OUTSTANDING} pings`);
          return;
        }
        direct.pingsOutstanding++;
        direct.lastPingMs = now;
        this.#ping(peer, direct.endpoint, now);
      }
      if (!peer.helloSeen && now - peer.lastHelloSentMs >= HELLO_RETRY_MS)
        this.#sendHello(peer, now);
      return;
    }
    if (now < peer.nextAttemptMs || !this.#wantsDirect(peer)) return;
    if (!peer.isStatic && peer.attempts >= MAX_ATTEMPTS) {
      // Give the slot to another member; this one may be tried again later.
      peer.attempts = 0;
      peer.gaveUpUntilMs = now + GIVE_UP_MS;
      this.#deactivate(peer);
      return;
    }
    const candidates = candidateEndpoints(peer, CANDIDATES_PROBED);
    this.#materialize(peer);
    const hasSession = this.device.hasSession(peer.publicKey);
    const cap = hasSession ? PING_ATTEMPT_CAP_MS : ATTEMPT_CAP_MS;
    peer.nextAttemptMs = now + backoffMs(peer.attempts++, ATTEMPT_BASE_MS, cap, this.#random);
    if (candidates.length === 0) return;
    if (!hasSession) {
      // The handshake goes to the candidates (or through a relay); pings follow it.
      this.device.connect(peer.publicKey);
      return;
    }
    // Pings inside a session that fail twice over may mean the other side restarted and
    // lost it (WireGuard has no message to say so): a new handshake settles it at once,
    // instead of when the tunnel's own timers would (15 s without answers).
    if (peer.attempts > 2) this.device.connect(peer.publicKey);
    if (this.#relayHop(peer.key)) {
      // We talk through a relay: punch. Our candidates go to it through the relay, and it
      // answers by pinging them while we ping its own, so both NATs open at once.
      this.#sendCandidates(peer, now);
      this.#punch(peer, now);
      return;
    }
    for (const endpoint of candidates) this.#ping(peer, endpoint, now);
  }

  // ---- endpoint discovery and hole punching ---------------------------------------------

  /** Where others may reach us: our listen addresses, then where peers saw us, newest first. */
  #selfCandidates(): Endpoint[] {
    const now = this.#clock.now();
    const reflexive = [...this.#reflexive.values()]
      .filter((r) => now - r.seenMs < REFLEXIVE_TTL_MS)
      .sort((a, b) => b.seenMs - a.seenMs)
      .map((r) => r.endpoint);
    // Room is kept for the reflexive ones: across NATs they are what works.
    const local = this.#advertise.slice(0, MAX_CANDIDATES - MAX_REFLEXIVE);
    return uniqueEndpoints([...local, ...reflexive], MAX_CANDIDATES);
  }

  /**
   * A peer told us (in a pong to our ping) where our ping came from. A new address is
   * published in our topology entry and hellos; the oldest beyond MAX_REFLEXIVE goes.
   */
  #noteReflexive(observed: Endpoint, now: number): void {
    if (!isUnicastCandidate(observed)) return;
    const key = endpointKey(observed);
    const known = this.#reflexive.get(key);
    if (known) {
      known.seenMs = now;
      return;
    }
    this.#reflexive.set(key, {
      endpoint: { address: observed.address, port: observed.port },
      seenMs: now,
    });
    for (const [k, r] of this.#reflexive)
      if (now - r.seenMs >= REFLEXIVE_TTL_MS) this.#reflexive.delete(k);
    while (this.#reflexive.size > MAX_REFLEXIVE) {
      let oldest: string | undefined;
      let oldestMs = Number.POSITIVE_INFINITY;
      for (const [k, r] of this.#reflexive)
        if (r.seenMs < oldestMs) [oldest, oldestMs] = [k, r.seenMs];
      this.#reflexive.delete(oldest!);
    }
    if (this.#advertise.some((e) => endpointKey(e) === key)) return;
    this.#log("info", `peers see this peer at ${key}`);
    this.#publishLocal();
  }

  #sendCandidates(peer: PeerState, now: number): void {
    peer.lastCandidatesSentMs = now;
    this.#sendFrame(peer, encodeFrame({ type: "candidates", endpoints: this.#selfCandidates() }));
  }

  /** Pings what the peer offered and advertised, marked as a punch. */
  #punch(peer: PeerState, now: number): void {
    peer.lastPunchMs = now;
    const targets = candidateEndpoints(peer, PUNCH_PINGS).filter(isUnicastCandidate);
    for (const endpoint of targets) this.#ping(peer, endpoint, now, true);
  }

  /**
   * A peer offered its candidates (it wants a direct path and talks to us through a
   * relay): ping them now, while it pings ours, and send ours back unless we just did.
   */
  #onCandidates(peer: PeerState, endpoints: readonly Endpoint[]): void {
    peer.offered = endpoints.filter(isUnicastCandidate).slice(0, PUNCH_PINGS);
    const now = this.#clock.now();
    if (peer.direct || now - peer.lastPunchMs < PUNCH_MIN_INTERVAL_MS) return;
    if (now - peer.lastCandidatesSentMs >= PUNCH_MIN_INTERVAL_MS) this.#sendCandidates(peer, now);
    this.#punch(peer, now);
  }

  #scheduleTick(): void {
    if (this.#closed) return;
    this.#cancelTick = this.#clock.setTimer(
      Math.round(TICK_MS * (0.9 + 0.2 * this.#random())),
      () => {
        this.#tick();
        this.#scheduleTick();
      },
    );
  }

  #tick(): void {
    const now = this.#clock.now();
    this.#pursueMore(now);
    for (const peer of [...this.#active]) {
      if (peer.direct || now >= peer.nextAttemptMs) this.#tickPeer(peer, now);
    }
    this.#tickPathMtus(now);
    if (now - this.#lastForgetCheckMs >= FORGET_CHECK_MS) {
      this.#lastForgetCheckMs = now;
      this.#expireTentative(now);
      for (const key of this.topology.forgetUnreachable(now)) this.#forget(key);
    }
  }

  #forget(key: PeerKey): void {
    const peer = this.#peers.get(key);
    if (!peer || peer.isStatic || peer.connected) return;
    this.#log("info", `forgetting ${this.#name(key)}: unreachable for a long time`);
    this.#deactivate(peer);
    this.#peers.delete(key);
    this.#byVirtualAddress.delete(peer.virtualEndpoint.address);
    this.#reassemblers.delete(key);
    this.#pathMtus.delete(key);
    this.#appliedMtus.delete(key);
    if (peer.inDevice) this.device.removePeer(peer.publicKey);
  }

  // ---- path MTU (path-mtu.ts, oversize.ts) ------------------------------------------------

  /**
   * Probes every direct path and hands its MTU to the Device at once; every second also
   * the relayed peers' (their first hop's path MTU less the relay overhead).
   */
  #tickPathMtus(now: number): void {
    for (const peer of this.#active) {
      if (!peer.direct) continue;
      this.#probePath(peer, peer.direct.endpoint, now);
      this.#applyMtu(peer);
    }
    if (now - this.#lastMtuApplyMs < PATH_MTU_APPLY_MS) return;
    this.#lastMtuApplyMs = now;
    for (const peer of this.#peers.values()) {
      if (!peer.direct) this.#pathMtus.delete(peer.key);
      if (peer.inDevice) this.#applyMtu(peer);
    }
  }

  #probePath(peer: PeerState, endpoint: Endpoint, now: number): void {
    const pathKey = endpointKey(endpoint);
    const ceiling = directCeilingBytes(
      this.#tun.mtuBytes,
      endpoint.address,
      this.#underlayMtu?.(endpoint.address),
    );
    let state = this.#pathMtus.get(peer.key);
    if (state?.pathKey !== pathKey || state.ceilingBytes !== ceiling) {
      state = createPathMtu(pathKey, ceiling, now);
      this.#pathMtus.set(peer.key, state);
    }
    for (const bytes of tickPathMtu(state, now)) {
      // A ping padded with zeros to the size under test: any peer answers it (frames carry
      // their length), and it goes unpadded by the Device and unfragmented by the mesh.
      const nonce = this.#crypto.randomBytes(PING_NONCE_BYTES);
      const probe = new Uint8Array(bytes);
      probe.set(encodeFrame({ type: "ping", nonce }));
      if (this.device.sendControl(peer.publicKey, probe, endpoint))
        probeSent(state, toHex(nonce), bytes);
    }
  }

  #onProbePong(peer: PeerState, nonce: Uint8Array, from: Endpoint): boolean {
    const state = this.#pathMtus.get(peer.key);
    if (!state || state.outstanding.size === 0) return false;
    if (state.pathKey !== endpointKey(from)) return false;
    if (!probeAnswered(state, toHex(nonce), this.#clock.now())) return false;
    this.#applyMtu(peer);
    return true;
  }

  /** The largest packet the path to `peer` carries now; undefined when there is no path. */
  #pathMtuOf(peer: PeerState): number | undefined {
    if (peer.direct) {
      const state = this.#pathMtus.get(peer.key);
      return state ? pathMtuBytes(state) : undefined;
    }
    const hop = this.#relayHop(peer.key);
    if (!hop) return undefined;
    const hopMtu = this.#pathMtuOf(hop) ?? this.#tun.mtuBytes;
    return relayedPathMtu(hopMtu, this.#maxFrameBytes, RELAY_HEADER_BYTES);
  }

  #applyMtu(peer: PeerState): void {
    if (!peer.inDevice) return;
    const mtu = this.#pathMtuOf(peer);
    if (this.#appliedMtus.has(peer.key) && this.#appliedMtus.get(peer.key) === mtu) return;
    this.#appliedMtus.set(peer.key, mtu);
    this.device.setPeerMtu(peer.publicKey, mtu);
    if (mtu !== undefined) this.#log("debug", `path MTU to ${this.#name(peer.key)}: ${mtu} bytes`);
  }

  /** A packet from the Tun larger than its peer's path MTU (see `oversize.ts`). */
  #onOversize(packet: Uint8Array, mtu: number, publicKey: Uint8Array): void {
    const result = handleOversize(packet, mtu, this.#icmpLimiter, this.#clock.now());
    if (result.kind === "reply") this.#tun.write(result.packet);
    else if (result.kind === "send")
      for (const piece of result.packets) this.device.sendPacket(publicKey, piece);
    else this.#drop(`oversize-${result.reason}`);
  }

  // ---- topology ---------------------------------------------------------------------------

  /**
   * Our own entry changes at once (our routes follow it), but goes out at most once per
   * PUBLISH_DELAY_MS: a peer coming up makes dozens of connections within a second, and
   * every version broadcast crosses every edge of the mesh.
   */
  #publishLocal(): void {
    this.#routesUrgent = true;
    const delta = this.topology.setLocal({
      nickname: this.#nickname,
      endpoints: this.#selfCandidates(),
      connections: this.#connectedKeys().sort(),
    });
    if (!delta || this.#publishPending || this.#closed) return;
    this.#publishPending = true;
    this.#clock.setTimer(PUBLISH_DELAY_MS, () => {
      this.#publishPending = false;
      const own = this.topology.entry(this.key);
      if (own && !this.#closed) this.#topologyChannel.broadcast(new Map([[this.key, own]]));
    });
  }

  /** The topology as the gossip engine sees it: merges also teach us new members. */
  #topologyState(): GossipState<unknown> {
    const topology = this.topology as unknown as GossipState<unknown>;
    return {
      digest: () => topology.digest(),
      summary: () => topology.summary(),
      deltaFor: (theirs) => topology.deltaFor(theirs),
      encode: (delta, max) => topology.encode(delta, max),
      decode: (items) => topology.decode(items),
      merge: (delta, from) => {
        const changed = topology.merge(delta, from);
        if (changed) this.#learnMembers(changed as ReadonlyMap<PeerKey, unknown>);
        return changed;
      },
    };
  }

  #learnMembers(changed: ReadonlyMap<PeerKey, unknown>): void {
    for (const key of changed.keys()) {
      // A key in the topology is not a member for that (`revalidateMembers` picks it up
      // once it is one).
      if (key === this.key || !this.#allowed(key)) continue;
      this.#learnMember(key);
    }
  }

  #learnMember(key: PeerKey): void {
    const entry = this.topology.entry(key);
    const peer = this.#peerFor(key);
    if (entry) {
      if (entry.nickname) peer.nickname ||= entry.nickname;
      peer.advertised = [...entry.endpoints];
    }
  }

  /**
   * Routes follow the topology, recomputed at most every ROUTES_MIN_INTERVAL_MS while
   * gossip streams in (a 1,000-peer mesh changes many times a second while it forms),
   * but at once when our own connections change: a lost next hop must not be used.
   */
  #currentRoutes(): Routes {
    const now = this.#clock.now();
    if (
      !this.#routes ||
      (this.#routesGeneration !== this.topology.generation &&
        (this.#routesUrgent || now - this.#routesComputedMs >= ROUTES_MIN_INTERVAL_MS))
    ) {
      this.#routes = computeRoutes(this.key, this.#memberAdjacency());
      this.#routesGeneration = this.topology.generation;
      this.#routesComputedMs = now;
      this.#routesUrgent = false;
    }
    return this.#routes;
  }

  /** The topology's links between members only: no path leads through a non-member. */
  #memberAdjacency(): ReadonlyMap<PeerKey, readonly PeerKey[]> {
    const adjacency = this.topology.adjacency();
    if (this.#isMember === undefined) return adjacency;
    const members = new Map<PeerKey, readonly PeerKey[]>();
    for (const [key, neighbours] of adjacency) {
      if (key !== this.key && !this.#allowed(key)) continue;
      members.set(
        key,
        neighbours.filter((n) => n === this.key || this.#allowed(n)),
      );
    }
    return members;
  }

  #drop(reason: MeshDropReason): void {
    this.#drops.set(reason, (this.#drops.get(reason) ?? 0) + 1);
  }

  #name(key: PeerKey): string {
    const nickname = this.#peers.get(key)?.nickname;
    return nickname ? `${nickname} (${key.slice(0, 8)})` : key.slice(0, 8);
  }
}
