/**
 * `weft up`: one peer of the mesh as a long-running process. It wires the core's layers
 * to the runtime and to each other:
 *
 * ```
 *  state dir ─► identity, IPAM ring + allocations, own DNS names, known peers
 *  UDP socket ─► Mesh (WireGuard device, gossip, relaying) ◄─► TUN (after IPAM gives us
 *                  │  │                                        our address)
 *                  │  └─ channel "ipam" ─► Allocator ─► ranges per owner ─► allowed IPs
 *                  └──── channel "dns"  ─► DnsEntries ─► DnsServer on <overlay>:53
 *  control socket (HTTP/JSON, 0600) and Prometheus metrics ─► status, commands
 * ```
 */
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { decode as cborDecode, encode as cborEncode } from "cbor-x";
import { writeFileAtomic } from "../../runtimes/file-store.ts";
import { toHex } from "../crypto/bytes.ts";
import { fromBase64, toBase64 } from "../crypto/index.ts";
import type { DnsDelta } from "../dns/entries.ts";
import { createForwarder, DnsEntries, DnsServer, parseResolvConf } from "../dns/index.ts";
import type { DnsReplication } from "../dns/replicate.ts";
import { replicateDns } from "../dns/replicate.ts";
import {
  type Address,
  type Allocator,
  attachAllocator,
  type Bootstrap,
  formatAddress,
  parseAddress,
  parseRange,
} from "../ipam/index.ts";
import { rangesToPrefixes } from "../ipam/prefixes.ts";
import type { InvitationBook } from "../membership/invitations.ts";
import { splitJoinTraffic } from "../membership/join-demux.ts";
import { JoinResponder } from "../membership/join-responder.ts";
import type { Members } from "../membership/members.ts";
import { type MembershipReplication, replicateMembers } from "../membership/replicate.ts";
import type { PeerKey } from "../mesh/gossip-state.ts";
import { Mesh } from "../mesh/mesh.ts";
import type { MulticastCarrier } from "../mesh/multicast.ts";
import { type IpPrefix, parseIp, parsePrefix } from "../net/ip.ts";
import { type Endpoint, endpointKey, type PacketConn } from "../net/packet-conn.ts";
import type { StreamListener } from "../net/stream.ts";
import type { Runtime } from "../runtime.ts";
import type { Store } from "../store.ts";
import { VERSION } from "../version.ts";
import {
  attachNamespace,
  detachNamespace,
  enableForwarding,
  namespaceInterface,
} from "./attach.ts";
import type { DaemonConfig } from "./config.ts";
import { establishMembership } from "./establish.ts";
import { LateTun } from "./late-tun.ts";
import type { Logger } from "./log.ts";
import { admitJoiner, invitationView, knownPeersFor, loadInvitations } from "./membership-glue.ts";
import {
  loadOrCreateSigningKey,
  type MeshIdentity,
  meshIdText,
  saveMembers,
} from "./mesh-identity.ts";
import {
  type MulticastStatus,
  multicastStatus,
  startMulticast,
  withoutAddress,
} from "./multicast-glue.ts";
import { type PeerSpec, parsePeerSpec, resolveSpec } from "./peer-spec.ts";
import {
  ensureStateDir,
  loadOrCreateKeyFile,
  lockStateDir,
  readFileIfExists,
} from "./state-dir.ts";
import { UnderlayMtu } from "./underlay-mtu.ts";
import { UserspaceNetwork, type UserspaceStatus } from "./userspace.ts";
import type {
  AttachView,
  InvitationView,
  InviteView,
  MembersView,
  WireguardInviteView,
} from "./views.ts";
import { renderWgQuick } from "./wireguard-leaf.ts";

/** The handle of this peer's own overlay address in IPAM. */
export const SELF_HANDLE = "weft:self";
const ROUTES_SYNC_MS = 500;
const ADDRESS_RETRY_MS = 5_000;
const SAVE_PEERS_MS = 30_000;
const DNS_PORT = 53;

export interface PeerView {
  readonly publicKey: PeerKey;
  readonly nickname: string;
  /** Its overlay address, from its DNS registration. */
  readonly address: string | undefined;
  readonly path: "direct" | "relayed" | "unreachable";
  readonly endpoint: string | undefined;
  /** The direct path was found by hole punching through NATs. */
  readonly punched: boolean;
  /** Relays in order (keys), and their nicknames. */
  readonly via: readonly PeerKey[];
  readonly viaNicknames: readonly string[];
  readonly hops: number | undefined;
  readonly connected: boolean;
  readonly rttMs: number | undefined;
  readonly handshakeAgeMs: number | undefined;
  readonly handshakes: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  /** The largest IP packet its path carries (`MeshPeerStatus.pathMtu`). */
  readonly pathMtu: number | undefined;
}

export interface DaemonStatus {
  readonly self: {
    readonly publicKey: PeerKey;
    readonly nickname: string;
    readonly address: string | undefined;
    readonly port: number;
    readonly tun: string | undefined;
    readonly dns: string | undefined;
    /** Where others may reach this peer: listen addresses, then where peers saw it. */
    readonly endpoints: readonly string[];
    readonly domain: string;
    readonly range: string;
    /** The mesh id, as `weft members` shows it. */
    readonly meshId: string;
    readonly stateDir: string;
    readonly runtime: string;
    readonly version: string;
    readonly uptimeSeconds: number;
  };
  readonly peers: readonly PeerView[];
  /** Multicast and broadcast through the mesh: settings and counters. */
  readonly multicast?: MulticastStatus;
  /** The userspace stack (`weft up --userspace`) once it is up: its services and counters. */
  readonly userspace?: UserspaceStatus;
  /** Stock WireGuard clients reaching the mesh through this peer. */
  readonly leaves: readonly { name: string; publicKey: PeerKey; address: string }[];
}

interface SavedPeers {
  /** Peers named with --peer or `connect`: reconnected on every start. */
  static: { publicKey: string; endpoint: Endpoint }[];
  /** Endpoints seen in gossip, so `host:port` finds the key of a peer known before. */
  known: { publicKey: string; endpoints: Endpoint[] }[];
}

export class Daemon {
  readonly config: DaemonConfig;
  readonly mesh: Mesh;
  readonly identity: MeshIdentity;
  readonly members: Members;
  readonly #replication: MembershipReplication;
  readonly #invitations: InvitationBook;
  readonly #joins: JoinResponder;
  #attachments: SavedAttachment[];
  #leaves: SavedLeaf[];
  readonly allocator: Allocator;
  readonly dnsEntries: DnsEntries;
  readonly multicast: MulticastCarrier;
  readonly #runtime: Runtime;
  readonly #log: Logger;
  readonly #store: Store;
  readonly #dns: DnsReplication;
  readonly #tun: LateTun;
  readonly #unlock: () => void;
  readonly #rangePrefix: IpPrefix;
  readonly #startedMs: number;
  readonly #timers: (() => void)[] = [];
  readonly #routes = new Map<PeerKey, string>();
  readonly #removed = new Set<PeerKey>();
  #saved: SavedPeers;
  #address: Address | undefined;
  #dnsServer: DnsServer | undefined;
  #userspace: UserspaceNetwork | undefined;
  #dnsEndpoint: string | undefined;
  #stopping: Promise<void> | undefined;
  /** Why the daemon stopped on its own, if it did: the CLI exits non-zero with it. */
  failure: string | undefined;
  #resolveStopped!: () => void;
  /** Resolves once the daemon has stopped (by `stop`, a signal or `weft down`). */
  readonly stopped: Promise<void>;

  private constructor(parts: {
    config: DaemonConfig;
    runtime: Runtime;
    log: Logger;
    store: Store;
    mesh: Mesh;
    tun: LateTun;
    allocator: Allocator;
    dnsEntries: DnsEntries;
    dns: DnsReplication;
    multicast: MulticastCarrier;
    unlock: () => void;
    saved: SavedPeers;
    identity: MeshIdentity;
    replication: MembershipReplication;
    invitations: InvitationBook;
    joins: JoinResponder;
  }) {
    this.identity = parts.identity;
    this.members = parts.replication.members;
    this.#replication = parts.replication;
    this.#invitations = parts.invitations;
    this.#joins = parts.joins;
    this.#attachments = loadAttachments(parts.store, parts.log);
    this.#leaves = loadJsonList<SavedLeaf>(parts.store, "leaves", parts.log).filter(
      (l) => typeof l.publicKey === "string" && typeof l.address === "string",
    );
    this.config = parts.config;
    this.#runtime = parts.runtime;
    this.#log = parts.log;
    this.#store = parts.store;
    this.mesh = parts.mesh;
    this.#tun = parts.tun;
    this.allocator = parts.allocator;
    this.dnsEntries = parts.dnsEntries;
    this.#dns = parts.dns;
    this.multicast = parts.multicast;
    this.#unlock = parts.unlock;
    this.#saved = parts.saved;
    this.#rangePrefix = parsePrefix(parts.config.range)!;
    this.#startedMs = parts.runtime.clock.now();
    this.stopped = new Promise((resolve) => {
      this.#resolveStopped = resolve;
    });
  }

  /**
   * Starts a peer: takes the state directory, binds the UDP port, joins the mesh and
   * starts IPAM and DNS. The overlay address, the TUN and DNS serving follow as soon as
   * IPAM grants the address (at once on a seed, after a donation on a joiner).
   * Throws an Error with a one-line reason when it cannot start; nothing is left behind.
   */
  static async start(config: DaemonConfig, runtime: Runtime, log: Logger): Promise<Daemon> {
    ensureStateDir(config.stateDir);
    const unlock = lockStateDir(config.stateDir);
    const undo: (() => unknown)[] = [unlock];
    try {
      const privateKey = loadOrCreateKey(config.stateDir, runtime, log);
      const signingSecret = loadOrCreateSigningKey(config.stateDir, log);
      const publicKey = runtime.crypto.publicKey(privateKey);
      const store = runtime.openStore(config.stateDir);
      const saved = loadSavedPeers(config.stateDir);
      let socket: PacketConn;
      try {
        socket = await runtime.listenUdp({ port: config.port, address: config.listenAddress });
      } catch (error) {
        throw new Error(`Cannot bind UDP port ${config.port}: ${(error as Error).message}`);
      }
      undo.push(() => socket.close());
      // Join messages share the WireGuard port; the mesh never sees them.
      const { mesh: conn, join: joinConn } = splitJoinTraffic(socket);
      const { identity, members, nickname } = await establishMembership({
        config,
        runtime,
        log,
        store,
        saved,
        conn: joinConn,
        privateKey,
        publicKey,
        signingSecret,
      });
      // The mesh's own range and domain win over this peer's options.
      config = { ...config, range: identity.range, domain: identity.domain, nickname };
      const tun = new LateTun(config.tun?.name ?? "none", config.tun?.mtu ?? 1420);
      const inviter = identity.inviter;
      // What the host's routes allow towards each peer caps its path MTU (underlay-mtu.ts).
      const underlay = new UnderlayMtu({
        runCommand: (command, args) => runtime.runCommand(command, args),
        clock: runtime.clock,
        log: (message) => log("debug", "mesh", message),
      });
      undo.push(() => underlay.close());
      const mesh = new Mesh({
        crypto: runtime.crypto,
        clock: runtime.clock,
        conn,
        privateKey,
        tun,
        nickname: config.nickname,
        advertise: advertisedEndpoints(config, conn.localPort),
        // Only members get in; the member that let us in is trusted until the records
        // that prove it arrive (or its removal does).
        isMember: (key) => members.isMember(key) || (key === inviter && !members.isRemoved(key)),
        connectionLimit: config.connectionLimit,
        underlayMtu: (address) => underlay.get(address),
        initialVersion: Date.now(),
        log: (level, message) => log(level, "mesh", message),
      });
      undo.push(() => mesh.close());
      const multicast = startMulticast(mesh, tun, config, runtime.clock);
      const replication = replicateMembers(members, mesh, {
        meshId: identity.meshId,
        self: publicKey,
        signingSecret,
        now: () => runtime.clock.wallNow(),
      });
      const invitations = loadInvitations(store, runtime, log);
      const joins = new JoinResponder({
        crypto: runtime.crypto,
        clock: runtime.clock,
        privateKey,
        meshId: identity.meshId,
        invitations,
        send: (data, to) => joinConn.send(data, to),
        admit: (request) => admitJoiner(replication, publicKey, request),
        settings: () => ({ domain: identity.domain, range: identity.range, nickname }),
        peers: () => knownPeersFor(mesh),
        log: (level, message) => log(level, "join", message),
      });
      joinConn.onReceive((data, from) => joins.receive(data, from));
      undo.push(() => joins.close());
      privateKey.fill(0);
      const range = parseRange(config.range);
      if (!range.ok) throw new Error(`Invalid range: ${range.error}`);
      const allocator = attachAllocator(mesh, {
        range: range.range,
        clock: runtime.clock,
        bootstrap: chooseBootstrap(config, store, identity),
        store,
        onBadMessage: (from, error) => log("debug", "ipam", `bad message from ${from}: ${error}`),
      });
      undo.push(() => allocator.close());
      const dnsEntries = new DnsEntries({ self: mesh.key, clock: runtime.clock });
      restoreOwnNames(dnsEntries, store, log);
      const dns = replicateDns(dnsEntries, mesh);
      const daemon = new Daemon({
        config,
        runtime,
        log,
        store,
        mesh,
        tun,
        allocator,
        dnsEntries,
        dns,
        multicast,
        unlock,
        saved,
        identity,
        replication,
        invitations,
        joins,
      });
      undo.length = 0; // from here on, stop() undoes everything
      daemon.#begin();
      return daemon;
    } catch (error) {
      for (const step of undo.reverse()) await step();
      throw error;
    }
  }

  #begin(): void {
    const { clock } = this.#runtime;
    const { config } = this;
    this.#log(
      "info",
      "daemon",
      `weft ${VERSION} on ${this.#runtime.name} ${this.#runtime.version}: peer ${this.config.nickname} ${this.mesh.key}, UDP port ${this.mesh.localPort}, state ${config.stateDir}`,
    );
    this.#replication.onChange((change) => this.#onMembershipChange(change));
    for (const leaf of this.#leaves) {
      if (!this.members.isMember(leaf.publicKey)) continue;
      this.mesh.addLeaf(fromBase64(leaf.publicKey), [parsePrefix(`${leaf.address}/32`)!]);
    }
    for (const entry of this.#saved.static) {
      if (this.members.isRemoved(entry.publicKey)) continue;
      this.mesh.addPeer({ publicKey: fromBase64(entry.publicKey), endpoint: entry.endpoint });
    }
    for (const entry of this.#saved.known) {
      this.mesh.addKnownPeer(fromBase64(entry.publicKey), entry.endpoints);
    }
    for (const text of config.peers) {
      this.connect(text).catch((error) =>
        this.#log("error", "daemon", `--peer ${text}: ${(error as Error).message}`),
      );
    }
    this.#every(ROUTES_SYNC_MS, () => {
      this.#syncRoutes();
      this.#applyRemovals();
    });
    this.#every(SAVE_PEERS_MS, () => this.#savePeers());
    this.#timers.push(clock.setTimer(0, () => void this.#acquireAddress()));
  }

  #every(intervalMs: number, action: () => void): void {
    const { clock } = this.#runtime;
    let cancel = () => {};
    const tick = () => {
      try {
        action();
      } catch (error) {
        this.#log("error", "daemon", `periodic task failed: ${(error as Error).message}`);
      }
      cancel = clock.setTimer(intervalMs, tick);
    };
    cancel = clock.setTimer(intervalMs, tick);
    this.#timers.push(() => cancel());
  }

  /** Asks IPAM for our address until it comes, then brings the TUN and DNS up on it. */
  async #acquireAddress(): Promise<void> {
    if (this.config.bootstrap.kind === "observer") {
      this.#log("info", "ipam", "observer: this peer owns no address space and takes no address");
      await this.#serveDns(undefined);
      return;
    }
    while (!this.#stopping) {
      try {
        this.#address = await this.allocator.allocate(SELF_HANDLE);
        break;
      } catch (error) {
        if (this.#stopping) return;
        this.#log("warn", "ipam", `no address yet: ${(error as Error).message}; retrying`);
        await new Promise<void>((resolve) =>
          this.#timers.push(this.#runtime.clock.setTimer(ADDRESS_RETRY_MS, resolve)),
        );
      }
    }
    if (this.#stopping || this.#address === undefined) return;
    const address = formatAddress(this.#address);
    this.#log("info", "ipam", `overlay address ${address}/${this.#rangePrefix.prefixLength}`);
    try {
      if (this.config.tun) await this.#openTun(address);
      else if (this.config.userspace) await this.#openUserspace(address);
      this.#registerOwnName(address);
      await this.#serveDns(address);
    } catch (error) {
      const message = (error as Error).message;
      this.#log("error", "daemon", message);
      this.failure = this.config.tun
        ? `${message} (weft up --userspace or --no-tun runs without a TUN)`
        : message;
      void this.stop("a part of the peer could not start");
    }
  }

  async #openTun(address: string): Promise<void> {
    const { name, mtu } = this.config.tun!;
    const device = await this.#runtime.openTun({
      name,
      mtu,
      addresses: [`${address}/${this.#rangePrefix.prefixLength}`],
      multicast: this.config.multicast.enabled,
    });
    if (this.#stopping) {
      await device.close();
      return;
    }
    this.#tun.attach(device);
    this.#log(
      "info",
      "tun",
      `${device.name} up with ${address}/${this.#rangePrefix.prefixLength}, MTU ${device.mtuBytes}`,
    );
  }

  /** `--userspace`: the overlay address on a stack in this process, and its services. */
  async #openUserspace(address: string): Promise<void> {
    const network = new UserspaceNetwork({
      runtime: this.#runtime,
      tun: this.#tun,
      address,
      mtuBytes: this.config.userspace!.mtu,
      range: this.#rangePrefix,
      lookup: (name) => this.dnsLookup(name).addresses,
      log: (level, message) => this.#log(level, "userspace", message),
    });
    this.#userspace = network;
    this.#log(
      "info",
      "userspace",
      `userspace stack up with ${address}/${this.#rangePrefix.prefixLength}, MTU ${network.netstack.mtuBytes} (no TUN)`,
    );
    await network.startServices(this.config.userspace!);
  }

  /** The userspace stack (`--userspace`), once this peer has its address. */
  get userspace(): UserspaceNetwork | undefined {
    return this.#userspace;
  }

  #registerOwnName(address: string): void {
    const name = `${this.config.nickname}.${this.config.domain}`;
    for (const record of this.dnsEntries.list()) {
      // A name of ours left from an address we no longer have (a reclaimed ring) goes.
      if (
        record.owner === this.mesh.key &&
        !record.deleted &&
        record.name === name &&
        record.address !== address
      ) {
        this.#dns.remove(record.name, record.address);
      }
    }
    if (this.#dns.add(name, address)) this.#log("info", "dns", `registered ${name} ${address}`);
    this.#saveOwnNames();
  }

  async #serveDns(address: string | undefined): Promise<void> {
    const listen = this.config.dnsListen
      ? parseListen(this.config.dnsListen)
      : address && this.config.tun
        ? { address, port: DNS_PORT }
        : undefined;
    const runtime = this.#runtime;
    let udp: PacketConn;
    let tcp: StreamListener | undefined;
    if (listen) {
      udp = await runtime.listenUdp(listen);
      tcp = await runtime.listenTcp(listen).catch(async (error) => {
        await udp.close();
        throw error;
      });
    } else if (address && this.#userspace) {
      // Mesh peers ask a userspace peer on its overlay address, as they would a TUN peer.
      udp = this.#userspace.udpConn(DNS_PORT);
    } else {
      return;
    }
    const served = listen ?? { address: address!, port: DNS_PORT };
    const own = new Set([served.address, address]);
    const upstreams = parseResolvConf(readFileIfExists("/etc/resolv.conf") ?? "").filter(
      (server) => !own.has(server.address),
    );
    this.#dnsServer = new DnsServer({
      udp,
      tcp,
      names: this.dnsEntries,
      clock: runtime.clock,
      domain: this.config.domain,
      ttlSeconds: this.config.dnsTtlSeconds,
      reverseRanges: [this.#rangePrefix],
      forwarder:
        upstreams.length === 0
          ? undefined
          : createForwarder({
              upstreams,
              listenUdp: (options) => runtime.listenUdp(options),
              dialTcp: runtime.dialTcp,
              clock: runtime.clock,
              randomBytes: (n) => runtime.crypto.randomBytes(n),
            }),
    });
    this.#dnsEndpoint = `${served.address}:${udp.localPort}`;
    this.#log(
      "info",
      "dns",
      `serving ${this.config.domain} on ${this.#dnsEndpoint} (${tcp ? "UDP and TCP" : "UDP"})`,
    );
  }

  /** Every member's IPAM ranges become its routes: the packet path's `ownerOf`. */
  #syncRoutes(): void {
    const ring = this.allocator.ring;
    const bounds = new Set<number>();
    for (const entry of ring.entries()) {
      bounds.add(entry.token);
      bounds.add(entry.end);
    }
    const sorted = [...bounds].sort((a, b) => a - b);
    const rangesByOwner = new Map<PeerKey, { start: number; end: number }[]>();
    for (let i = 0; i + 1 < sorted.length; i++) {
      const owner = ring.ownerOf(sorted[i]!);
      if (owner === undefined || owner === this.mesh.key) continue;
      const ranges = rangesByOwner.get(owner) ?? [];
      ranges.push({ start: sorted[i]!, end: sorted[i + 1]! });
      rangesByOwner.set(owner, ranges);
    }
    for (const [owner, ranges] of rangesByOwner) {
      const prefixes = rangesToPrefixes(withoutAddress(ranges, this.allocator.range.end - 1));
      const text = prefixes.map((p) => `${p.address.join(".")}/${p.prefixLength}`).join(",");
      if (this.#routes.get(owner) === text) continue;
      this.#routes.set(owner, text);
      this.mesh.setAllowedIps(owner, prefixes);
      this.#log("debug", "routes", `${owner} owns ${text}`);
    }
    for (const owner of this.#routes.keys()) {
      if (rangesByOwner.has(owner)) continue;
      this.#routes.delete(owner);
      this.mesh.setAllowedIps(owner, []);
    }
  }

  /**
   * A peer removed from the ring (`weft ipam rmpeer` anywhere) is removed from the mesh:
   * its DNS names go on every peer as the removal record reaches it, and it is no longer
   * pursued. (Signed membership removals replace this when invitations land.)
   */
  #applyRemovals(): void {
    for (const { dead } of this.allocator.ring.removals()) {
      if (this.#removed.has(dead) || dead === this.mesh.key) continue;
      this.#removed.add(dead);
      this.dnsEntries.removePeer(dead);
      this.mesh.removePeer(dead);
      this.#log("info", "daemon", `${dead} was removed from the mesh: its names are gone`);
    }
  }

  // ---- commands (the control API calls these) -------------------------------------------

  /** Connects to `PUBKEY@host:port` or `host:port` (a key we know), and keeps it across restarts. */
  async connect(text: string): Promise<{ publicKey: PeerKey; endpoint: Endpoint }> {
    const spec = parsePeerSpec(text);
    const endpoint = await resolveSpec(spec);
    const publicKey = spec.publicKey ?? this.#knownKeyAt(endpoint, spec);
    if (publicKey === this.mesh.key) throw new Error(`${text} is this peer itself`);
    this.mesh.addPeer({ publicKey: fromBase64(publicKey), endpoint });
    this.#saved.static = [
      ...this.#saved.static.filter((p) => p.publicKey !== publicKey),
      { publicKey, endpoint },
    ];
    this.#savePeers();
    this.#log(
      "info",
      "daemon",
      `connecting to ${publicKey} at ${endpoint.address}:${endpoint.port}`,
    );
    return { publicKey, endpoint };
  }

  #knownKeyAt(endpoint: Endpoint, spec: PeerSpec): PeerKey {
    const same = (e: Endpoint) => e.address === endpoint.address && e.port === endpoint.port;
    for (const key of this.mesh.topology.peers()) {
      if (this.mesh.topology.entry(key)?.endpoints.some(same)) return key;
    }
    for (const entry of [
      ...this.#saved.static.map((p) => ({ publicKey: p.publicKey, endpoints: [p.endpoint] })),
      ...this.#saved.known,
    ]) {
      if (entry.endpoints.some(same)) return entry.publicKey;
    }
    throw new Error(
      `No known peer at ${spec.host}:${spec.port}: give its key once, as PUBKEY@${spec.host}:${spec.port}`,
    );
  }

  /** Stops connecting to a peer (by key, key prefix or nickname); it stays a member. */
  disconnect(name: string): PeerKey {
    const key = this.resolvePeer(name);
    this.mesh.removePeer(key);
    this.#dropSaved(key);
    this.#log("info", "daemon", `disconnected from ${key}`);
    return key;
  }

  #dropSaved(key: PeerKey): void {
    this.#saved.static = this.#saved.static.filter((p) => p.publicKey !== key);
    this.#saved.known = this.#saved.known.filter((p) => p.publicKey !== key);
    this.#savePeers();
  }

  /**
   * Removes a member for good (by key, key prefix or nickname): a signed removal that
   * every member applies as it arrives, refusing the key from then on. Its address space
   * goes to an heir and its DNS names go with it.
   */
  forget(name: string): { peer: PeerKey; nickname: string; heir: PeerKey | undefined } {
    const key = this.resolvePeer(name);
    const nickname = this.#nicknameOf(key);
    if (!this.members.isRemoved(key)) this.#replication.remove(fromBase64(key));
    let heir: PeerKey | undefined;
    if (this.allocator.ring.entries().some((e) => e.owner === key)) {
      heir = this.allocator.removePeer(key).heir;
    }
    // The signed removal's change handler (#onMembershipChange) and the ring's removal
    // record (#applyRemovals) clean up names, sessions and saved endpoints.
    this.#applyRemovals();
    this.#log("warn", "members", `removed ${nickname || key} (${key}) from the mesh`);
    return { peer: key, nickname, heir };
  }

  /** A member removed (here or anywhere): its names, sessions and saved endpoints go. */
  #onRemoved(key: PeerKey): void {
    const leaf = this.#leaves.find((l) => l.publicKey === key);
    if (leaf) {
      this.mesh.removeLeaf(fromBase64(key));
      this.allocator.release(leaf.handle);
      this.dnsRemove(leaf.name, leaf.address);
      this.#leaves = this.#leaves.filter((l) => l !== leaf);
      this.#saveLeaves();
    }
    this.dnsEntries.removePeer(key);
    this.mesh.removePeer(key);
    if (
      this.#saved.static.some((p) => p.publicKey === key) ||
      this.#saved.known.some((p) => p.publicKey === key)
    ) {
      this.#dropSaved(key);
    }
  }

  #onMembershipChange(change: { admitted: PeerKey[]; removed: PeerKey[] }): void {
    saveMembers(this.#store, this.members);
    for (const key of change.admitted) {
      this.#log("info", "members", `${this.#nicknameOf(key) || key} (${key}) is a member`);
    }
    for (const key of change.removed) {
      if (key === this.mesh.key) {
        const by = this.members.removed().find((r) => r.key === key)?.removedBy;
        this.failure = `this peer was removed from mesh ${meshIdText(this.identity.meshId)}${by ? ` by ${this.#nicknameOf(by) || by}` : ""}: it needs a new invitation and a new --state-dir`;
        this.#log("error", "members", this.failure);
        void this.stop("removed from the mesh");
        return;
      }
      this.#onRemoved(key);
      this.#log(
        "info",
        "members",
        `${this.#nicknameOf(key) || key} (${key}) was removed from the mesh`,
      );
    }
  }

  /**
   * Gives a network namespace (a name, a container's PID or a path) a veth into this
   * host, an address from IPAM (the same one each time for the same namespace, or `ip`),
   * routes to the mesh and the mesh's DNS in its resolver; registers `name` in DNS.
   */
  async attach(
    netns: string,
    name: string | undefined,
    ip: string | undefined,
  ): Promise<AttachView> {
    const overlay = this.#address === undefined ? undefined : formatAddress(this.#address);
    if (!this.config.tun || !this.#tun.attached || overlay === undefined) {
      throw new Error(
        "weft attach needs this peer's TUN and overlay address (weft up without --no-tun, once it has its address)",
      );
    }
    const hostIf = namespaceInterface(netns);
    if (hostIf === undefined) throw new Error(`No network namespace "${netns}"`);
    const handle = `netns:${hostIf}`;
    const current = this.allocator.allocations().get(handle);
    if (ip !== undefined && current !== undefined && formatAddress(current) !== ip) {
      this.allocator.release(handle);
    }
    const address = await this.allocate(handle, ip);
    const attachment = await attachNamespace(this.#runtime, {
      netns,
      address,
      meshRange: this.config.range,
      hostAddress: overlay,
      dnsServer: overlay,
      searchDomain: this.config.domain,
      id: handle,
      mtu: this.config.tun.mtu,
    });
    const previous = this.#attachments.find((a) => a.handle === handle);
    if (previous?.name && (previous.name !== name || previous.address !== address)) {
      this.dnsRemove(previous.name, previous.address);
    }
    if (name !== undefined) this.dnsAdd(name, address);
    this.#attachments = [
      ...this.#attachments.filter((a) => a.handle !== handle),
      { netns, hostIf, handle, address, name: name ?? null },
    ];
    this.#saveAttachments();
    this.#log(
      "info",
      "attach",
      `${netns} attached as ${address}${name ? ` (${name}.${this.config.domain})` : ""} through ${hostIf}`,
    );
    return {
      netns,
      address,
      name: name ?? null,
      hostInterface: hostIf,
      changed: attachment.changed,
    };
  }

  /** Undoes `attach`: the veth, routes and resolver file go, the address and name are released. */
  async detach(
    netns: string,
  ): Promise<{ netns: string; address: string | null; changed: boolean }> {
    const hostIf = namespaceInterface(netns);
    const saved = this.#attachments.find(
      (a) => a.netns === netns || (hostIf !== undefined && a.hostIf === hostIf),
    );
    if (!saved && hostIf === undefined)
      throw new Error(`No network namespace "${netns}" is attached`);
    const detachment = await detachNamespace(this.#runtime, { netns, hostIf: saved?.hostIf });
    if (saved) {
      this.allocator.release(saved.handle);
      if (saved.name) this.dnsRemove(saved.name, saved.address);
      this.#attachments = this.#attachments.filter((a) => a !== saved);
      this.#saveAttachments();
    }
    this.#log("info", "attach", `${netns} detached`);
    return { netns, address: saved?.address ?? null, changed: detachment.changed || !!saved };
  }

  /** The namespaces attached here. */
  attachments(): readonly SavedAttachment[] {
    return this.#attachments;
  }

  #saveAttachments(): void {
    this.#store.save("attachments", new TextEncoder().encode(JSON.stringify(this.#attachments)));
  }

  /**
   * A stock WireGuard client as a leaf member reaching the mesh through this peer: a key
   * pair made here, an address from IPAM, NAME in DNS, a signed admission (so every member
   * knows it, and `weft forget NAME` anywhere revokes it), and the `wg-quick` file for it.
   */
  async inviteWireguard(name: string, endpoint: string | undefined): Promise<WireguardInviteView> {
    const overlay = this.#address === undefined ? undefined : formatAddress(this.#address);
    if (!this.config.tun || !this.#tun.attached || overlay === undefined) {
      throw new Error(
        "weft invite --wireguard needs this peer's TUN and overlay address: the leaf's packets go through it",
      );
    }
    if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(name)) {
      throw new Error(`Invalid leaf name "${name}": a DNS label`);
    }
    if (this.#leaves.some((l) => l.name === name)) {
      throw new Error(`There is already a leaf "${name}" here (weft forget ${name} first)`);
    }
    const where =
      endpoint === undefined
        ? advertisedEndpoints(this.config, this.mesh.localPort)[0]
        : parseListen(endpoint);
    if (where === undefined || !Number.isInteger(where.port)) {
      throw new Error("No endpoint to give the leaf: pass --endpoint HOST:PORT");
    }
    const { crypto } = this.#runtime;
    const privateKey = crypto.generatePrivateKey();
    const publicKey = crypto.publicKey(privateKey);
    const key = toBase64(publicKey);
    const handle = `wg:${name}`;
    const address = await this.allocate(handle, undefined);
    this.#replication.admit({
      member: publicKey,
      // A leaf signs nothing: its signing key is one nobody holds.
      signingKey: ed25519.getPublicKey(ed25519.utils.randomSecretKey()),
      nickname: name,
      invitation: null,
    });
    this.dnsAdd(name, address);
    this.mesh.addLeaf(publicKey, [parsePrefix(`${address}/32`)!]);
    this.#leaves = [...this.#leaves, { publicKey: key, name, address, handle }];
    this.#saveLeaves();
    const forwarding = enableForwarding(`inviting WireGuard leaf "${name}"`);
    if (forwarding)
      this.#log("info", "members", "turned IPv4 forwarding on for the leaf's packets");
    this.#log("info", "members", `WireGuard leaf ${name} (${key}) at ${address}`);
    const config = renderWgQuick({
      privateKey: toBase64(privateKey),
      address,
      gatewayKey: this.mesh.key,
      endpoint: endpointKey(where),
      meshRange: this.config.range,
      dnsServer: overlay,
      domain: this.config.domain,
      comment: `weft leaf ${name} of mesh ${meshIdText(this.identity.meshId)} through ${this.config.nickname}`,
    });
    privateKey.fill(0);
    return { name, publicKey: key, address, config };
  }

  #saveLeaves(): void {
    this.#store.save("leaves", new TextEncoder().encode(JSON.stringify(this.#leaves)));
  }

  /** The members and removed keys, as `weft members` lists them. */
  membersList(): MembersView {
    const nick = (key: PeerKey | null) =>
      key === null ? null : this.#nicknameOf(key) || key.slice(0, 8);
    return {
      meshId: meshIdText(this.identity.meshId),
      members: this.members.members().map((m) => ({
        publicKey: m.key,
        nickname: m.nickname,
        admittedBy: m.admittedBy,
        admittedByNickname: nick(m.admittedBy),
        invitation: m.invitation === null ? null : toHex(m.invitation),
        at: new Date(m.at).toISOString(),
        self: m.key === this.mesh.key,
      })),
      removed: this.members.removed().map((r) => ({
        publicKey: r.key,
        nickname: nick(r.key),
        removedBy: r.removedBy,
        removedByNickname: nick(r.removedBy),
        at: new Date(r.at).toISOString(),
      })),
    };
  }

  /** A new invitation: the token to hand to the joiner, and what it grants. */
  invite(options: {
    ttlMs: number;
    uses: number;
    nickname: string | undefined;
    endpoints: readonly string[];
  }): InviteView {
    const endpoints = [
      ...options.endpoints.map(parseListen),
      ...advertisedEndpoints(this.config, this.mesh.localPort),
    ];
    if (endpoints.length === 0) endpoints.push({ address: "127.0.0.1", port: this.mesh.localPort });
    const unique = [...new Map(endpoints.map((e) => [`${e.address}:${e.port}`, e])).values()];
    const created = this.#invitations.create({
      ttlMs: options.ttlMs,
      uses: options.uses,
      nickname: options.nickname ?? null,
      endpoints: unique.slice(0, 16).map((e) => ({ host: e.address, port: e.port })),
      meshId: this.identity.meshId,
      inviterKey: this.mesh.publicKey,
      now: this.#runtime.clock.wallNow(),
    });
    this.#log(
      "info",
      "members",
      `invitation ${toHex(created.invitation.id)} for ${options.uses} use(s) until ${new Date(created.invitation.expiresAt).toISOString()}`,
    );
    return {
      token: created.token,
      ...invitationView(created.invitation, this.#runtime.clock.wallNow()),
    };
  }

  invitations(): InvitationView[] {
    const now = this.#runtime.clock.wallNow();
    return this.#invitations.list().map((i) => invitationView(i, now));
  }

  revokeInvitation(id: string): number {
    const count = this.#invitations.revoke(id, this.#runtime.clock.wallNow());
    if (count === 0) throw new Error(`No open invitation "${id}" (see weft invite list)`);
    this.#log("info", "members", `revoked ${count} invitation(s) ${id}`);
    return count;
  }

  /** A member's key from its key, a unique key prefix (4+ characters) or its nickname. */
  resolvePeer(name: string): PeerKey {
    const members = new Set([
      ...this.members.members().map((m) => m.key),
      ...this.mesh.members(),
      ...this.allocator.ring.entries().map((e) => e.owner),
    ]);
    members.delete(this.mesh.key);
    if (members.has(name)) return name;
    const byNick = [...members].filter((k) => this.#nicknameOf(k) === name);
    if (byNick.length === 1) return byNick[0]!;
    if (byNick.length > 1) throw new Error(`Several peers are called "${name}": use a key`);
    const byPrefix = name.length >= 4 ? [...members].filter((k) => k.startsWith(name)) : [];
    if (byPrefix.length === 1) return byPrefix[0]!;
    if (byPrefix.length > 1) throw new Error(`"${name}" starts several peers' keys: give more`);
    throw new Error(`No peer "${name}" (give a nickname, a public key or its first characters)`);
  }

  #nicknameOf(key: PeerKey): string {
    return (
      this.mesh.topology.entry(key)?.nickname ||
      this.members.members().find((m) => m.key === key)?.nickname ||
      // A removed member is no longer listed, but its admission is still held.
      this.members
        .records()
        .map((r) => r.record)
        .flatMap((r) =>
          r.kind === "admission" && toBase64(r.member) === key ? [r.nickname] : [],
        )[0] ||
      ""
    );
  }

  dnsAdd(name: string, address: string): boolean {
    const changed = this.#dns.add(this.#qualify(name), address);
    if (changed) this.#saveOwnNames();
    return changed;
  }

  dnsRemove(name: string, address: string | undefined): number {
    const fqdn = this.#qualify(name);
    const ours = this.dnsEntries
      .lookup(fqdn)
      .filter((r) => r.owner === this.mesh.key && (address === undefined || r.address === address));
    for (const record of ours) this.#dns.remove(record.name, record.address);
    if (ours.length > 0) this.#saveOwnNames();
    return ours.length;
  }

  /** A bare name is in the mesh domain; a name with dots is taken as written. */
  #qualify(name: string): string {
    if (name.endsWith(".")) return name;
    return name.includes(".") ? `${name}.` : `${name}.${this.config.domain}`;
  }

  /** The addresses of a name, or for an IP address the names that have it (reverse lookup). */
  dnsLookup(name: string): { addresses: string[]; names: string[] } {
    if (parseIp(name) !== undefined) {
      return { addresses: [], names: this.dnsEntries.reverseLookup(name).map((r) => r.name) };
    }
    return {
      addresses: this.dnsEntries.lookup(this.#qualify(name)).map((r) => r.address),
      names: [],
    };
  }

  async allocate(handle: string, address: string | undefined): Promise<string> {
    if (address === undefined) return formatAddress(await this.allocator.allocate(handle));
    const parsed = parseAddress(address);
    if (parsed === undefined) throw new Error(`Invalid address "${address}"`);
    return formatAddress(await this.allocator.claim(handle, parsed));
  }

  release(handle: string): boolean {
    if (handle === SELF_HANDLE) throw new Error(`"${SELF_HANDLE}" is this peer's own address`);
    return this.allocator.release(handle);
  }

  rmpeer(name: string): { peer: PeerKey; heir: PeerKey } {
    const key = this.resolvePeer(name);
    const removal = this.allocator.removePeer(key);
    this.#applyRemovals();
    this.#log("warn", "ipam", `removed ${key} from the ring; its ranges go to ${removal.heir}`);
    return { peer: key, heir: removal.heir };
  }

  status(): DaemonStatus {
    const mesh = this.mesh.status();
    const devicePeers = new Map(
      this.mesh.device.peers().map((p) => [toBase64(p.publicKey), p.handshakesCompleted]),
    );
    const nick = (key: PeerKey) =>
      mesh.peers.find((p) => p.publicKey === key)?.nickname || key.slice(0, 8);
    const self = this.mesh.key;
    const byDnsOwner = new Map<PeerKey, string>();
    for (const record of this.dnsEntries.list()) {
      if (record.deleted) continue;
      const nickname = mesh.peers.find((p) => p.publicKey === record.owner)?.nickname;
      // DNS names compare without regard to case (RFC 4343); nicknames keep theirs.
      if (
        nickname &&
        record.name.toLowerCase() === `${nickname}.${this.config.domain}`.toLowerCase()
      ) {
        byDnsOwner.set(record.owner, record.address);
      }
    }
    return {
      self: {
        publicKey: self,
        nickname: this.config.nickname,
        address: this.#address === undefined ? undefined : formatAddress(this.#address),
        port: this.mesh.localPort,
        tun: this.#tun.attached ? this.config.tun?.name : undefined,
        dns: this.#dnsEndpoint,
        endpoints: mesh.endpoints,
        domain: this.config.domain,
        range: this.config.range,
        meshId: meshIdText(this.identity.meshId),
        stateDir: this.config.stateDir,
        runtime: `${this.#runtime.name} ${this.#runtime.version}`,
        version: VERSION,
        uptimeSeconds: Math.round((this.#runtime.clock.now() - this.#startedMs) / 1000),
      },
      multicast: multicastStatus(this.multicast),
      ...(this.#userspace ? { userspace: this.#userspace.status() } : {}),
      peers: mesh.peers.map((p) => ({
        publicKey: p.publicKey,
        nickname: p.nickname,
        address: byDnsOwner.get(p.publicKey),
        path: p.path,
        endpoint: p.endpoint,
        punched: p.punched,
        via: p.via,
        viaNicknames: p.via.map(nick),
        hops: p.hops,
        connected: p.connected,
        rttMs: p.rttMs,
        handshakeAgeMs: p.handshakeAgeMs,
        handshakes: devicePeers.get(p.publicKey) ?? 0,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        pathMtu: p.pathMtu,
      })),
      leaves: this.#leaves.map((l) => ({
        name: l.name,
        publicKey: l.publicKey,
        address: l.address,
      })),
    };
  }

  /** What the join responder did, by outcome, for the metrics endpoint. */
  joinCounters(): Record<string, number> {
    return { ...this.#joins.counters };
  }

  /** Counters for the metrics endpoint. */
  dnsCounters() {
    return this.#dnsServer?.counters();
  }

  // ---- persistence ----------------------------------------------------------------------

  #saveOwnNames(): void {
    const all = this.dnsEntries.deltaFor(new Map());
    const own: DnsDelta = { chunks: (all?.chunks ?? []).filter((c) => c.owner === this.mesh.key) };
    this.#store.save("dns", cborEncode(this.dnsEntries.encode(own, 1 << 20)));
  }

  #savePeers(): void {
    const known = this.mesh.topology
      .peers()
      .filter((key) => key !== this.mesh.key)
      .map((key) => ({
        publicKey: key,
        endpoints: [...(this.mesh.topology.entry(key)?.endpoints ?? [])],
      }))
      .filter((p) => p.endpoints.length > 0);
    if (known.length > 0) this.#saved.known = known;
    writeFileAtomic(
      join(this.config.stateDir, "peers.json"),
      new TextEncoder().encode(`${JSON.stringify(this.#saved, null, 1)}\n`),
    );
  }

  /** Stops everything, saves state, removes the TUN and releases the state directory. Idempotent. */
  stop(why = "stopping"): Promise<void> {
    this.#stopping ??= (async () => {
      this.#log("info", "daemon", `shutting down: ${why}`);
      for (const cancel of this.#timers) cancel();
      try {
        this.#savePeers();
      } catch (error) {
        this.#log("warn", "daemon", `could not save peers: ${(error as Error).message}`);
      }
      await this.#dnsServer?.close();
      this.#joins.close();
      this.allocator.close();
      await this.#userspace?.close();
      await this.mesh.close();
      await this.#tun.close();
      this.#unlock();
      this.#log("info", "daemon", "stopped");
      this.#resolveStopped();
    })();
    return this.#stopping;
  }
}

function loadOrCreateKey(stateDir: string, runtime: Runtime, log: Logger): Uint8Array {
  const path = join(stateDir, "private.key");
  return loadOrCreateKeyFile(
    path,
    () => runtime.crypto.generatePrivateKey(),
    () => log("info", "daemon", `created a new identity in ${path}`),
  );
}

/** A namespace attached here, saved so that detach works after a restart. */
interface SavedAttachment {
  readonly netns: string;
  readonly hostIf: string;
  readonly handle: string;
  readonly address: string;
  readonly name: string | null;
}

/** A stock WireGuard client that reaches the mesh through this peer. */
interface SavedLeaf {
  readonly publicKey: PeerKey;
  readonly name: string;
  readonly address: string;
  readonly handle: string;
}

function loadAttachments(store: Store, log: Logger): SavedAttachment[] {
  return loadJsonList<SavedAttachment>(store, "attachments", log).filter(
    (a) => typeof a?.handle === "string" && typeof a.hostIf === "string",
  );
}

/** A JSON list saved in the store; empty (and a warning) when missing or unreadable. */
function loadJsonList<T>(store: Store, name: string, log: Logger): T[] {
  const bytes = store.load(name);
  if (bytes === undefined) return [];
  try {
    const list = JSON.parse(new TextDecoder().decode(bytes)) as T[];
    return Array.isArray(list)
      ? list.filter((item) => item !== null && typeof item === "object")
      : [];
  } catch (error) {
    log("warn", "daemon", `saved ${name} unreadable: ${(error as Error).message}`);
    return [];
  }
}

function loadSavedPeers(stateDir: string): SavedPeers {
  const path = join(stateDir, "peers.json");
  const text = readFileIfExists(path);
  if (text === undefined) return { static: [], known: [] };
  try {
    const parsed = JSON.parse(text) as SavedPeers;
    const isEndpoint = (e: Endpoint) => typeof e?.address === "string" && Number.isInteger(e?.port);
    return {
      static: (parsed.static ?? []).filter(
        (p) => typeof p.publicKey === "string" && isEndpoint(p.endpoint),
      ),
      known: (parsed.known ?? []).filter(
        (p) => typeof p.publicKey === "string" && Array.isArray(p.endpoints),
      ),
    };
  } catch (error) {
    throw new Error(`${path} is not valid JSON (${(error as Error).message}): fix or remove it`);
  }
}

function restoreOwnNames(entries: DnsEntries, store: Store, log: Logger): void {
  const bytes = store.load("dns");
  if (bytes === undefined) return;
  try {
    const delta = entries.decode(cborDecode(bytes) as unknown[]);
    entries.merge(delta, delta.chunks[0]?.owner ?? "");
  } catch (error) {
    log(
      "warn",
      "dns",
      `saved names unreadable, starting without them: ${(error as Error).message}`,
    );
  }
}

function chooseBootstrap(config: DaemonConfig, store: Store, identity: MeshIdentity): Bootstrap {
  const mode = config.bootstrap;
  switch (mode.kind) {
    case "seed":
    case "join":
    case "observer":
      return { kind: mode.kind };
    case "consensus": {
      const keys = config.peers.map(parsePeerSpec).map((s) => s.publicKey);
      if (keys.some((k) => k === undefined)) {
        throw new Error("--ipalloc consensus=N needs every --peer as PUBKEY@HOST:PORT");
      }
      return { kind: "consensus", peers: keys as string[], quorum: mode.quorum };
    }
    case "auto":
      // The founder of a mesh seeds its range; whoever joined by invitation gets space by
      // donation. A restarted peer has its ring in the store, and resumes from that.
      return identity.inviter === null && store.load("ipam") === undefined
        ? { kind: "seed" }
        : { kind: "join" };
  }
}

/** Our interface addresses with our port, and any the operator added. */
function advertisedEndpoints(config: DaemonConfig, port: number): Endpoint[] {
  const endpoints: Endpoint[] = config.advertise.map(parseListen);
  const bound = config.listenAddress;
  if (bound !== undefined && bound !== "::" && bound !== "0.0.0.0") {
    // Bound to one address: packets to any other would never reach us.
    return [...endpoints, { address: bound, port }];
  }
  const tunName = config.tun?.name;
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (name === tunName) continue;
    for (const info of addresses ?? []) {
      // Link-local addresses reach no other host's socket through routing (169.254.1.1 is
      // also every attached container's gateway, on each of their veths).
      if (info.internal || info.address.startsWith("fe80") || info.address.startsWith("169.254."))
        continue;
      endpoints.push({ address: info.address, port });
    }
  }
  return endpoints.slice(0, 16);
}

function parseListen(text: string): Endpoint {
  const colon = text.lastIndexOf(":");
  return {
    address: text.slice(0, colon).replace(/^\[|\]$/g, ""),
    port: Number(text.slice(colon + 1)),
  };
}
