/**
 * The gossip engine: named channels, each carrying one replicated `GossipState`, over a
 * transport the mesh provides. It knows nothing of WireGuard; the mesh hands it what
 * arrives and tells it when neighbours come and go. Wire format in `gossip-wire.ts`.
 *
 * Two paths keep replicas equal:
 *
 * ```
 * change:  broadcast(delta) ──► every neighbour ──merge──► changed part ──► every other
 *          neighbour ... (a merge of known data returns null, so flooding stops by itself)
 *
 * repair:  A ──digests──► B                 every intervalMs to `fanout` random neighbours,
 *          A ◄─summary─── B  (if different)  and at once when a connection comes up
 *          A ──delta────► B  what B lacks in each summary part's key range
 *          A ──request──► B  keys where B is newer
 *          A ◄─delta───── B  what A asked for
 * ```
 *
 * Outgoing changes wait `flushDelayMs` per neighbour and channel, so a burst of updates
 * leaves as one message. Nothing received can throw out of `receive` or tear anything
 * down: bad input is dropped and counted in `stats()`.
 */
import type { CancelTimer, Clock } from "../clock.ts";
import {
  type GossipChannel,
  GossipRejected,
  type GossipState,
  type PeerKey,
} from "./gossip-state.ts";
import {
  decodeMessage,
  deltaItemBudget,
  encodeUnicast,
  encodeValue,
  GOSSIP_PROTOCOL_VERSION,
  type GossipMessage,
  inRange,
  type MessageKindName,
  packDelta,
  packDigests,
  packRequest,
  packSummary,
  packTree,
  treeItemBudget,
  unicastPayloadBudget,
} from "./gossip-wire.ts";

/** What the mesh gives the engine. */
export interface GossipTransport {
  /** Peers with an established direct connection now. */
  neighbours(): readonly PeerKey[];
  /**
   * Sends one gossip message to a peer: a neighbour, or for unicast any reachable peer
   * (the mesh relays). False if there is no path. Messages are at most `maxMessageBytes`.
   */
  send(peer: PeerKey, message: Uint8Array): boolean;
  /**
   * With both tree functions, broadcasts travel along per-origin spanning trees (each
   * peer gets an update once, O(peers) messages) instead of flooding every connection
   * (O(connections)). `broadcastChildren(self)` must be every neighbour.
   */
  broadcastChildren?(origin: PeerKey): readonly PeerKey[];
  /** The only neighbour a tree broadcast from `origin` is forwarded from (reverse path). */
  broadcastParent?(origin: PeerKey): PeerKey | undefined;
}

export interface GossipOptions {
  self: PeerKey;
  transport: GossipTransport;
  clock: Clock;
  /** A float in [0, 1): picks neighbours and jitters the period. */
  random: () => number;
  /**
   * Anti-entropy period. Weave gossips full state every 30 s; we send a digest of a few
   * dozen bytes instead, so 5 s costs little and repairs a lost update 6 times sooner.
   */
  intervalMs?: number;
  /** Random neighbours that get our digests each period. */
  fanout?: number;
  /** How long changes wait to be batched into one message per neighbour and channel. */
  flushDelayMs?: number;
  /** Nothing larger is sent or decoded. */
  maxMessageBytes?: number;
  log?: (level: "debug" | "info" | "warn", message: string) => void;
}

/** How long keys learned by anti-entropy gather before going out along our tree. */
const RELEARNED_DELAY_MS = 250;

export const GOSSIP_DEFAULTS = {
  intervalMs: 5_000,
  fanout: 3,
  flushDelayMs: 50,
  maxMessageBytes: 32 * 1024,
} as const;

/** Periods vary by this fraction either way, so peers do not gossip in lockstep. */
const INTERVAL_JITTER = 0.25;
const MAX_CHANNEL_NAME_BYTES = 64;
/** Bounds the set of peers already warned about a version mismatch. */
const MAX_VERSION_WARNINGS = 4096;

/** Why a received message, or part of one, was dropped. */
export type GossipDropReason =
  | "oversize"
  | "malformed"
  | "version"
  | "kind"
  | "shape"
  | "channel"
  | "rejected"
  | "stateError"
  | "noHandler"
  | "handlerError"
  | "closed";

/** Left out of what we send: items a state encoded too large or not as plain data. */
export type GossipUnsendableReason = "tooLarge" | "notPlain" | "noPath";

export interface TrafficCounter {
  messages: number;
  bytes: number;
}

/** Per channel, then per message kind; digests cover every channel and count under "*". */
export type TrafficByChannel = Record<string, Partial<Record<MessageKindName, TrafficCounter>>>;

export interface MergeCounter {
  /** Deltas that changed this replica (and were passed on). */
  changed: number;
  /** Deltas with nothing new. */
  unchanged: number;
  /** Deltas the state refused with GossipRejected. */
  rejected: number;
}

export interface GossipStats {
  sent: TrafficByChannel;
  received: TrafficByChannel;
  dropped: Partial<Record<GossipDropReason, number>>;
  unsent: Partial<Record<GossipUnsendableReason, number>>;
  merges: Record<string, MergeCounter>;
}

/** The pseudo-channel under which digest messages (which cover all channels) count. */
export const ALL_CHANNELS = "*";

interface Channel {
  readonly name: string;
  readonly state: GossipState<unknown>;
  handler: ((from: PeerKey, message: Uint8Array) => void) | undefined;
}

/**
 * One peer's gossip engine. After `close()` it sends nothing, drops what it receives
 * (counted as "closed"), `broadcast` does nothing and `unicast` returns false.
 *
 * @example Wiring a state
 * ```ts
 * const gossip = new Gossip({ self, transport, clock, random: Math.random });
 * const dns = gossip.channel("dns", dnsState);
 * dns.broadcast(dnsState.register("web", address)); // after changing the state
 * // mesh: on a gossip message, gossip.receive(peer, bytes); on connect, gossip.neighbourUp(peer)
 * ```
 */
export class Gossip {
  readonly #self: PeerKey;
  readonly #transport: GossipTransport;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #intervalMs: number;
  readonly #fanout: number;
  readonly #flushDelayMs: number;
  readonly #maxMessageBytes: number;
  readonly #log: NonNullable<GossipOptions["log"]>;
  readonly #channels = new Map<string, Channel>();
  /** Encoded delta items waiting for the flush, per neighbour then channel. */
  readonly #outbox = new Map<PeerKey, Map<string, Uint8Array[]>>();
  /** Tree broadcasts waiting for the flush, per neighbour then origin and channel. */
  readonly #treeOutbox = new Map<
    PeerKey,
    Map<string, { channel: string; origin: PeerKey; items: Uint8Array[] }>
  >();
  readonly #warnedVersion = new Set<PeerKey>();
  readonly #stats: GossipStats = { sent: {}, received: {}, dropped: {}, unsent: {}, merges: {} };
  #cancelFlush: CancelTimer | undefined;
  /** Keys learned by anti-entropy, to broadcast along our tree once the window closes. */
  readonly #relearned = new Map<string, Set<string>>();
  #cancelRelearned: CancelTimer | undefined;
  #cancelTick: CancelTimer | undefined;
  #closed = false;

  constructor(options: GossipOptions) {
    this.#self = options.self;
    this.#transport = options.transport;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#intervalMs = positive(options.intervalMs ?? GOSSIP_DEFAULTS.intervalMs, "intervalMs");
    this.#fanout = positive(options.fanout ?? GOSSIP_DEFAULTS.fanout, "fanout");
    this.#flushDelayMs = options.flushDelayMs ?? GOSSIP_DEFAULTS.flushDelayMs;
    if (!(this.#flushDelayMs >= 0)) {
      throw new RangeError(`Expected "flushDelayMs" to be 0 or more, got ${this.#flushDelayMs}`);
    }
    this.#maxMessageBytes = options.maxMessageBytes ?? GOSSIP_DEFAULTS.maxMessageBytes;
    if (!Number.isInteger(this.#maxMessageBytes) || this.#maxMessageBytes < 512) {
      throw new RangeError(
        `Expected "maxMessageBytes" to be an integer of 512 or more, got ${this.#maxMessageBytes}`,
      );
    }
    this.#log = options.log ?? (() => {});
    this.#scheduleTick();
  }

  /** Registers a state under a unique name; its owner broadcasts and unicasts through it. */
  channel<D>(name: string, state: GossipState<D>): GossipChannel<D> {
    const nameBytes = new TextEncoder().encode(name).length;
    if (typeof name !== "string" || nameBytes === 0 || nameBytes > MAX_CHANNEL_NAME_BYTES) {
      throw new RangeError(`Expected "name" to have 1 to ${MAX_CHANNEL_NAME_BYTES} bytes`);
    }
    if (name === ALL_CHANNELS) throw new RangeError(`Gossip channel name "${name}" is reserved`);
    if (this.#channels.has(name)) throw new Error(`Gossip channel "${name}" is already registered`);
    const channel: Channel = {
      name,
      state: state as GossipState<unknown>,
      handler: undefined,
    };
    this.#channels.set(name, channel);
    this.#stats.merges[name] = { changed: 0, unchanged: 0, rejected: 0 };
    return {
      name,
      broadcast: (update: D) => {
        if (!this.#closed) this.#spread(channel, update, undefined);
      },
      unicast: (peer: PeerKey, message: Uint8Array) => this.#unicast(channel, peer, message),
      onUnicast: (handler) => {
        channel.handler = handler;
      },
    };
  }

  /** The largest unicast payload `channel` can carry. */
  maxUnicastBytes(channel: string): number {
    return unicastPayloadBudget(channel, this.#maxMessageBytes);
  }

  /** Handles one gossip message from `from`, the peer the mesh authenticated. Never throws. */
  receive(from: PeerKey, message: Uint8Array): void {
    if (this.#closed) {
      this.#drop("closed");
      return;
    }
    const decoded = decodeMessage(message, this.#maxMessageBytes);
    if (!decoded.ok) {
      if (decoded.reason === "version") this.#warnVersion(from, decoded.version);
      this.#drop(decoded.reason);
      return;
    }
    try {
      this.#handle(from, decoded.message, message.length);
    } catch (error) {
      // A state or transport broke its contract; the message goes, the engine stays.
      this.#drop("stateError");
      this.#log("warn", `gossip from ${from} failed: ${describe(error)}`);
    }
  }

  /** A new connection: exchange digests with it now rather than at the next period. */
  neighbourUp(peer: PeerKey): void {
    if (this.#closed || peer === this.#self) return;
    this.#sendDigests(peer);
  }

  /** A lost connection: forget what was waiting for it. */
  neighbourDown(peer: PeerKey): void {
    this.#outbox.delete(peer);
    this.#treeOutbox.delete(peer);
    this.#warnedVersion.delete(peer);
  }

  /** A snapshot of the counters. */
  stats(): GossipStats {
    return structuredClone(this.#stats);
  }

  /** Stops the timers and drops what is waiting; see the class comment for afterwards. */
  close(): void {
    this.#closed = true;
    this.#cancelTick?.();
    this.#cancelFlush?.();
    this.#cancelRelearned?.();
    this.#outbox.clear();
    this.#treeOutbox.clear();
  }

  #handle(from: PeerKey, message: GossipMessage, bytes: number): void {
    if (message.kind === "digests") {
      this.#count("received", ALL_CHANNELS, "digests", bytes);
      for (const [name, digest] of message.digests) {
        const channel = this.#channels.get(name);
        if (channel === undefined) this.#drop("channel");
        else if (!equalBytes(channel.state.digest(), digest)) this.#sendSummary(channel, from);
      }
      return;
    }
    const channel = this.#channels.get(message.channel);
    if (channel === undefined) {
      this.#drop("channel");
      return;
    }
    this.#count("received", channel.name, message.kind, bytes);
    if (message.kind === "summary") this.#onSummary(channel, from, message);
    else if (message.kind === "request") this.#onRequest(channel, from, message.keys);
    else if (message.kind === "delta") this.#onDelta(channel, from, message.items);
    else if (message.kind === "tree") this.#onTree(channel, from, message.origin, message.items);
    else this.#onUnicast(channel, from, message.payload);
  }

  /** Sends what `from` lacks in the summary's range, and asks for what we lack. */
  #onSummary(
    channel: Channel,
    from: PeerKey,
    part: Extract<GossipMessage, { kind: "summary" }>,
  ): void {
    const ours = channel.state.summary();
    // Outside the range, pretend they match us, so deltaFor stays within the range.
    const theirs = new Map<string, number>();
    for (const [key, version] of ours) {
      if (!inRange(key, part.fromKey, part.toKey)) theirs.set(key, version);
    }
    const wanted: string[] = [];
    for (const [key, version] of part.entries) {
      theirs.set(key, version);
      const mine = ours.get(key);
      if (mine === undefined || mine < version) wanted.push(key);
    }
    this.#sendDelta(channel, from, channel.state.deltaFor(theirs));
    if (wanted.length > 0) {
      const packed = packRequest(channel.name, wanted, this.#maxMessageBytes);
      this.#sendAll(from, channel.name, "request", packed.messages);
    }
  }

  #onRequest(channel: Channel, from: PeerKey, keys: readonly string[]): void {
    // Our own summary without the requested keys: deltaFor then returns exactly those.
    const theirs = new Map(channel.state.summary());
    for (const key of keys) theirs.delete(key);
    this.#sendDelta(channel, from, channel.state.deltaFor(theirs));
  }

  /** Decodes and merges items, counting the outcome; null when nothing changed or refused. */
  #merge(channel: Channel, from: PeerKey, items: readonly unknown[]): unknown {
    const merges = this.#stats.merges[channel.name]!;
    let changed: unknown;
    try {
      changed = channel.state.merge(channel.state.decode(items), from);
    } catch (error) {
      if (!(error instanceof GossipRejected)) throw error;
      merges.rejected++;
      this.#drop("rejected");
      this.#log("debug", `gossip ${channel.name} from ${from} rejected: ${error.message}`);
      return null;
    }
    if (changed === null) merges.unchanged++;
    else merges.changed++;
    return changed;
  }

  #onDelta(channel: Channel, from: PeerKey, items: readonly unknown[]): void {
    const before = this.#hasTrees() ? channel.state.summary() : undefined;
    const changed = this.#merge(channel, from, items);
    if (changed === null) return;
    // Learned by anti-entropy (a heal, a join): pass it on as our own broadcast.
    if (!before) {
      this.#enqueue(channel, changed, from);
      return;
    }
    // With trees, what several syncs teach us at once (a peer connecting to many) goes
    // out once per window, latest versions only, rather than once per sync.
    let keys = this.#relearned.get(channel.name);
    if (!keys) {
      keys = new Set();
      this.#relearned.set(channel.name, keys);
    }
    for (const [key, version] of channel.state.summary())
      if (before.get(key) !== version) keys.add(key);
    if (this.#cancelRelearned === undefined)
      this.#cancelRelearned = this.#clock.setTimer(RELEARNED_DELAY_MS, () =>
        this.#spreadRelearned(),
      );
  }

  #spreadRelearned(): void {
    this.#cancelRelearned = undefined;
    for (const [name, keys] of this.#relearned) {
      const channel = this.#channels.get(name);
      if (!channel) continue;
      const theirs = new Map(channel.state.summary());
      for (const key of keys) theirs.delete(key);
      const delta = channel.state.deltaFor(theirs);
      if (delta !== null) this.#enqueueTree(channel, delta, this.#self, undefined);
    }
    this.#relearned.clear();
  }

  #hasTrees(): boolean {
    return (
      this.#transport.broadcastChildren !== undefined &&
      this.#transport.broadcastParent !== undefined
    );
  }

  /**
   * A tree broadcast: merged always; what changed us goes on to our children in the
   * origin's tree (each peer gets it once when views agree, at most a few times when
   * they do not).
   */
  #onTree(channel: Channel, from: PeerKey, origin: PeerKey, items: readonly unknown[]): void {
    const changed = this.#merge(channel, from, items);
    if (changed === null || origin === this.#self) return;
    // Forwarding only what changed us is what makes this loop-free, even when views of
    // the topology disagree. An origin our routes do not know yet (it just joined, or our
    // routes lag the gossip) has no tree here: pass the change to every other neighbour.
    if (this.#transport.broadcastParent?.(origin) === undefined)
      this.#enqueue(channel, changed, from);
    else this.#enqueueTree(channel, changed, origin, from);
  }

  /** Sends a change everywhere: along our own tree when the mesh has trees, else flooding. */
  #spread(channel: Channel, delta: unknown, except: PeerKey | undefined): void {
    if (this.#hasTrees()) this.#enqueueTree(channel, delta, this.#self, except);
    else this.#enqueue(channel, delta, except);
  }

  /** Queues a tree broadcast for our children in `origin`'s tree, to leave at the next flush. */
  #enqueueTree(channel: Channel, delta: unknown, origin: PeerKey, except: PeerKey | undefined) {
    const items = this.#encodeItems(
      channel,
      delta,
      treeItemBudget(channel.name, this.#maxMessageBytes),
    );
    if (items.length === 0) return;
    const children = this.#transport.broadcastChildren?.(origin) ?? [];
    for (const peer of children) {
      if (peer === except || peer === this.#self) continue;
      let byOrigin = this.#treeOutbox.get(peer);
      if (byOrigin === undefined) {
        byOrigin = new Map();
        this.#treeOutbox.set(peer, byOrigin);
      }
      const key = `${origin}\n${channel.name}`;
      const queued = byOrigin.get(key);
      if (queued === undefined)
        byOrigin.set(key, { channel: channel.name, origin, items: [...items] });
      else queued.items.push(...items);
    }
    this.#armFlush();
  }

  #onUnicast(channel: Channel, from: PeerKey, payload: Uint8Array): void {
    if (channel.handler === undefined) {
      this.#drop("noHandler");
      return;
    }
    try {
      channel.handler(from, payload);
    } catch (error) {
      this.#drop("handlerError");
      this.#log("warn", `gossip ${channel.name} unicast handler failed: ${describe(error)}`);
    }
  }

  #unicast(channel: Channel, peer: PeerKey, payload: Uint8Array): boolean {
    if (this.#closed) return false;
    const message = encodeUnicast(channel.name, payload, this.#maxMessageBytes);
    if (message === null) {
      throw new RangeError(
        `Expected "message" of at most ${this.maxUnicastBytes(channel.name)} bytes, got ${payload.length}`,
      );
    }
    return this.#sendAll(peer, channel.name, "unicast", [message]);
  }

  /** Queues a delta for every neighbour but `except`, to leave at the next flush. */
  #enqueue(channel: Channel, delta: unknown, except: PeerKey | undefined): void {
    const items = this.#encodeItems(channel, delta);
    if (items.length === 0) return;
    for (const peer of this.#transport.neighbours()) {
      if (peer === except || peer === this.#self) continue;
      let byChannel = this.#outbox.get(peer);
      if (byChannel === undefined) {
        byChannel = new Map();
        this.#outbox.set(peer, byChannel);
      }
      const queued = byChannel.get(channel.name);
      if (queued === undefined) byChannel.set(channel.name, [...items]);
      else queued.push(...items);
    }
    this.#armFlush();
  }

  #armFlush(): void {
    if (this.#cancelFlush !== undefined || (this.#outbox.size === 0 && this.#treeOutbox.size === 0))
      return;
    this.#cancelFlush = this.#clock.setTimer(this.#flushDelayMs, () => this.#flush());
  }

  #flush(): void {
    this.#cancelFlush = undefined;
    const outbox = [...this.#outbox];
    this.#outbox.clear();
    const treeOutbox = [...this.#treeOutbox];
    this.#treeOutbox.clear();
    for (const [peer, byOrigin] of treeOutbox) {
      for (const { channel, origin, items } of byOrigin.values()) {
        const packed = packTree(channel, origin, items, this.#maxMessageBytes);
        this.#sendAll(peer, channel, "tree", packed.messages);
      }
    }
    for (const [peer, byChannel] of outbox) {
      for (const [name, items] of byChannel) {
        const packed = packDelta(name, items, this.#maxMessageBytes);
        this.#sendAll(peer, name, "delta", packed.messages);
      }
    }
  }

  #sendDelta(channel: Channel, peer: PeerKey, delta: unknown): void {
    if (delta === null) return;
    const items = this.#encodeItems(channel, delta);
    const packed = packDelta(channel.name, items, this.#maxMessageBytes);
    this.#sendAll(peer, channel.name, "delta", packed.messages);
  }

  /** A state's items as CBOR, leaving out (and counting) any that could never be sent. */
  #encodeItems(
    channel: Channel,
    delta: unknown,
    budget = deltaItemBudget(channel.name, this.#maxMessageBytes),
  ): Uint8Array[] {
    const encoded: Uint8Array[] = [];
    for (const item of channel.state.encode(delta, budget)) {
      const bytes = encodeValue(item);
      if (bytes === null) this.#unsent("notPlain", channel, "an item that is not plain data");
      else if (bytes.length > budget)
        this.#unsent("tooLarge", channel, `a ${bytes.length}-byte item`);
      else encoded.push(bytes);
    }
    return encoded;
  }

  #sendSummary(channel: Channel, peer: PeerKey): void {
    const packed = packSummary(channel.name, channel.state.summary(), this.#maxMessageBytes);
    if (packed.skipped > 0) this.#unsent("tooLarge", channel, `${packed.skipped} summary keys`);
    this.#sendAll(peer, channel.name, "summary", packed.messages);
  }

  #sendDigests(peer: PeerKey): void {
    const digests: Array<[string, Uint8Array]> = [];
    for (const channel of this.#channels.values())
      digests.push([channel.name, channel.state.digest()]);
    if (digests.length === 0) return;
    const packed = packDigests(digests, this.#maxMessageBytes);
    this.#sendAll(peer, ALL_CHANNELS, "digests", packed.messages);
  }

  #sendAll(peer: PeerKey, channel: string, kind: MessageKindName, messages: Uint8Array[]): boolean {
    let delivered = true;
    for (const message of messages) {
      if (this.#trySend(peer, message)) {
        this.#count("sent", channel, kind, message.length);
      } else {
        this.#stats.unsent.noPath = (this.#stats.unsent.noPath ?? 0) + 1;
        delivered = false;
      }
    }
    return delivered;
  }

  /** A transport that throws breaks its contract; treat it as no path, not as our failure. */
  #trySend(peer: PeerKey, message: Uint8Array): boolean {
    try {
      return this.#transport.send(peer, message);
    } catch (error) {
      this.#log("warn", `gossip send to ${peer} failed: ${describe(error)}`);
      return false;
    }
  }

  #scheduleTick(): void {
    const jitter = 1 + INTERVAL_JITTER * (2 * this.#random() - 1);
    this.#cancelTick = this.#clock.setTimer(this.#intervalMs * jitter, () => {
      this.#scheduleTick();
      try {
        for (const peer of this.#pickNeighbours()) this.#sendDigests(peer);
      } catch (error) {
        this.#log("warn", `gossip anti-entropy failed: ${describe(error)}`);
      }
    });
  }

  /** Up to `fanout` distinct neighbours, uniformly at random (a partial Fisher-Yates). */
  #pickNeighbours(): PeerKey[] {
    const pool = this.#transport.neighbours().filter((peer) => peer !== this.#self);
    const count = Math.min(this.#fanout, pool.length);
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(this.#random() * (pool.length - i));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    return pool.slice(0, count);
  }

  #warnVersion(peer: PeerKey, version: number | undefined): void {
    if (this.#warnedVersion.has(peer) || this.#warnedVersion.size >= MAX_VERSION_WARNINGS) return;
    this.#warnedVersion.add(peer);
    this.#log(
      "warn",
      `peer ${peer} speaks gossip protocol version ${version}, we speak ${GOSSIP_PROTOCOL_VERSION}: its gossip is ignored`,
    );
  }

  #count(direction: "sent" | "received", channel: string, kind: MessageKindName, bytes: number) {
    const byChannel = this.#stats[direction];
    const byKind = byChannel[channel] ?? {};
    byChannel[channel] = byKind;
    const counter = byKind[kind] ?? { messages: 0, bytes: 0 };
    byKind[kind] = counter;
    counter.messages++;
    counter.bytes += bytes;
  }

  #drop(reason: GossipDropReason): void {
    this.#stats.dropped[reason] = (this.#stats.dropped[reason] ?? 0) + 1;
  }

  #unsent(reason: GossipUnsendableReason, channel: Channel, what: string): void {
    this.#stats.unsent[reason] = (this.#stats.unsent[reason] ?? 0) + 1;
    this.#log("warn", `gossip ${channel.name}: ${what} cannot be sent (${reason})`);
  }
}

function positive(value: number, title: string): number {
  if (!(Number.isFinite(value) && value > 0)) {
    throw new RangeError(`Expected "${title}" to be a positive number, got ${value}`);
  }
  return value;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
