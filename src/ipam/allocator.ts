/**
 * The allocator: one peer's addresses. It owns the ring replica (`gossip` is what the
 * engine drives) and the local space, and serves `allocate`, `claim` and `release` from
 * space it owns, instantly and without network traffic.
 *
 * ```
 *  allocate(h) ─► free space? ─yes─► address (free counts reported later, batched)
 *                    │no
 *                    ▼
 *          ring seeded? ─no─► bootstrap (seed / consensus / wait for gossip)
 *                    │yes
 *                    ▼
 *   ask the reachable peer reporting most free space ──► donor grants a block in its
 *   (again every DONATION_RETRY_MS, maybe another)       own entries and broadcasts them
 *                    │                                              │
 *   ring merge makes us owner of new space ◄─────────────────────────┘
 *                    ▼
 *   serve waiting requests in order; after `timeoutMs` a waiting request fails
 * ```
 *
 * Safety rests on the ring: we hand out only addresses inside entries we own, and those
 * are exact on our own replica (only we change them, and merge refuses anyone else's
 * change). A donor gives only free addresses, so no address is ever used by two peers.
 */
import type { CancelTimer, Clock } from "../clock.ts";
import type { GossipState, PeerKey } from "../mesh/gossip-state.ts";
import type { Store } from "../store.ts";
import {
  type Address,
  type AddressRange,
  formatAddress,
  formatRange,
  rangeContains,
} from "./address.ts";
import {
  ALLOCATE_TIMEOUT_MS,
  DONATION_RETRY_MS,
  DONOR_BACKOFF_MS,
  FREE_REPORT_DELAY_MS,
  IPAM_STORE_NAME,
  MAX_HANDLE_LENGTH,
} from "./constants.ts";
import { chooseDonation } from "./donation.ts";
import { IpamError } from "./errors.ts";
import { decodeIpamMessage, encodeIpamMessage } from "./messages.ts";
import { type AcceptorState, PaxosNode, type SeedSet } from "./paxos.ts";
import { chooseHeir, type Removal } from "./reclaim.ts";
import { Ring } from "./ring.ts";
import type { RingDelta } from "./ring-entries.ts";
import { Space } from "./space.ts";
import { decodeIpamState, encodeIpamState, type IpamSnapshot } from "./state-codec.ts";

/** How this peer's ring comes to exist. */
export type Bootstrap =
  /** The first peer of a new mesh (`weft up`): it seeds the ring and owns the whole range. */
  | { readonly kind: "seed" }
  /** A peer joining an existing mesh: the ring arrives by gossip. */
  | { readonly kind: "join" }
  /** Peers started together from a static list agree on the seeds (Paxos among them). */
  | { readonly kind: "consensus"; readonly peers: readonly PeerKey[]; readonly quorum?: number }
  /** Never owns space: knows the ring for `ownerOf`, refuses to allocate. */
  | { readonly kind: "observer" };

/** What the allocator needs from the mesh (a `GossipChannel` plus reachability). */
export interface AllocatorLink {
  /** Peers reachable now, directly or relayed (without us). */
  reachablePeers(): Iterable<PeerKey>;
  /** Sends an IPAM message to one peer; false when it is unreachable. */
  unicast(peer: PeerKey, message: Uint8Array): boolean;
  /** Sends a ring change to every reachable peer (anti-entropy repairs what is lost). */
  broadcast(delta: RingDelta): void;
}

export interface AllocatorOptions {
  readonly me: PeerKey;
  readonly range: AddressRange;
  readonly clock: Clock;
  readonly link: AllocatorLink;
  readonly bootstrap: Bootstrap;
  /** How long a request waits for space before failing; default ALLOCATE_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** A float in [0, 1) for Paxos retry jitter; deterministic in simulations. */
  readonly random?: () => number;
  /** Called with every unicast message refused as malformed, for logs and counters. */
  readonly onBadMessage?: (from: PeerKey, error: string) => void;
  /**
   * Where the ring, the allocations and the Paxos acceptor's promises survive a restart.
   * Loaded once by the constructor (which throws an `IpamError` "STATE_INVALID" for a
   * saved state it cannot use); saved after every change, before anything that depends
   * on the change leaves this peer and before `allocate` resolves.
   */
  readonly store?: Store;
}

export interface AllocatorStatus {
  readonly seeded: boolean;
  readonly seeds: readonly PeerKey[];
  readonly owned: number;
  readonly free: number;
  readonly allocated: number;
  readonly waiting: number;
  readonly donationsGiven: number;
  readonly badMessages: number;
}

interface Waiting {
  readonly handle: string;
  /** A specific address for `claim`; undefined for `allocate`. */
  readonly address: Address | undefined;
  readonly resolve: (address: Address) => void;
  readonly reject: (error: IpamError) => void;
  readonly cancelTimeout: CancelTimer;
}

/**
 * One peer's IPAM. Hand `gossip` to the gossip engine's IPAM channel and route that
 * channel's unicast messages to `onUnicast`.
 *
 * @example
 * ```ts
 * const ipam = new Allocator({ me, range, clock, link, bootstrap: { kind: "seed" } });
 * const address = await ipam.allocate("container-1"); // 10.40.0.1
 * ```
 */
export class Allocator {
  readonly me: PeerKey;
  readonly range: AddressRange;
  readonly ring: Ring;
  /** The ring as the gossip engine sees it; merges also update the local space. */
  readonly gossip: GossipState<RingDelta>;
  readonly #options: AllocatorOptions;
  readonly #space: Space;
  readonly #byHandle = new Map<string, Address>();
  readonly #byAddress = new Map<Address, string>();
  #waiting: Waiting[] = [];
  #paxos: PaxosNode | undefined;
  #askTimer: CancelTimer | undefined;
  #reportTimer: CancelTimer | undefined;
  readonly #askedAt = new Map<PeerKey, number>();
  #donationsGiven = 0;
  #badMessages = 0;
  #closed = false;
  /** The acceptor state last saved, to save again only when Paxos changed it. */
  #savedAcceptor: AcceptorState = { promised: null, accepted: null };

  constructor(options: AllocatorOptions) {
    this.me = options.me;
    this.range = options.range;
    this.#options = options;
    this.ring = new Ring({ me: options.me, range: options.range });
    // The first and last address of the range are its network and broadcast addresses.
    this.#space = new Space([options.range.start, options.range.end - 1]);
    const ring = this.ring;
    this.gossip = {
      digest: () => ring.digest(),
      summary: () => ring.summary(),
      deltaFor: (theirs) => ring.deltaFor(theirs),
      encode: (delta, maxItemBytes) => ring.encode(delta, maxItemBytes),
      decode: (items) => ring.decode(items),
      merge: (delta, from) => {
        const changed = ring.merge(delta, from);
        if (changed !== null) this.#ringChanged();
        return changed;
      },
    } satisfies GossipState<RingDelta>;

    const restored = this.#restore();
    const { bootstrap } = options;
    if (bootstrap.kind === "seed") {
      this.#seed([this.me]);
    } else if (bootstrap.kind === "consensus") {
      this.#paxos = new PaxosNode({
        me: this.me,
        participants: bootstrap.peers,
        quorum: bootstrap.quorum,
        clock: options.clock,
        random: options.random ?? Math.random,
        acceptorState: restored?.acceptor,
        send: (to, paxos) => {
          // A promise or acceptance must be on disk before anyone hears of it.
          const acceptor = this.#paxos?.acceptorState();
          if (
            acceptor !== undefined &&
            (acceptor.promised !== this.#savedAcceptor.promised ||
              acceptor.accepted !== this.#savedAcceptor.accepted)
          ) {
            this.#persist();
          }
          options.link.unicast(to, encodeIpamMessage({ kind: "paxos", paxos }));
        },
        onDecide: (seeds) => this.#seed(seeds),
      });
    }
  }

  /**
   * An address for `handle` (a container id, a namespace, a host name): the one it has,
   * else the lowest free address we own, at once. Without free space it waits for a
   * donation (or for the ring to be seeded) up to `timeoutMs`, then fails with an
   * `IpamError` saying why.
   */
  allocate(handle: string): Promise<Address> {
    return this.#request(handle, undefined);
  }

  /**
   * `address` for `handle`, if we own it and it is free (or already this handle's). Waits
   * only for the ring to be seeded; an address another peer owns fails at once.
   */
  claim(handle: string, address: Address): Promise<Address> {
    if (!rangeContains(this.range, address)) {
      return Promise.reject(
        new IpamError(
          "ADDRESS_OUTSIDE_RANGE",
          `Cannot claim ${formatAddress(address)}: outside the mesh range ${formatRange(this.range)}`,
        ),
      );
    }
    return this.#request(handle, address);
  }

  /** Frees `handle`'s address; false when it had none. */
  release(handle: string): boolean {
    const address = this.#byHandle.get(handle);
    if (address === undefined) return false;
    this.#byHandle.delete(handle);
    this.#byAddress.delete(address);
    this.#space.release(address);
    this.#persist();
    this.#scheduleFreeReport();
    return true;
  }

  addressOf(handle: string): Address | undefined {
    return this.#byHandle.get(handle);
  }

  /** Every handle with its address (a copy). */
  allocations(): Map<string, Address> {
    return new Map(this.#byHandle);
  }

  /** The peer that owns `address` as far as this peer knows: the packet path's lookup. */
  ownerOf(address: Address): PeerKey | undefined {
    return this.ring.ownerOf(address);
  }

  /** Starts bootstrap consensus now rather than at the first request (no-op otherwise). */
  bootstrap(): void {
    if (!this.ring.isSeeded()) this.#paxos?.propose();
  }

  /** Handles a unicast message on the IPAM channel; malformed ones are counted and dropped. */
  onUnicast(from: PeerKey, bytes: Uint8Array): void {
    if (this.#closed) return;
    const decoded = decodeIpamMessage(bytes);
    if (!decoded.ok) {
      this.#badMessages++;
      this.#options.onBadMessage?.(from, decoded.error);
      return;
    }
    const { message } = decoded;
    if (message.kind === "space-request") this.#donateTo(from);
    else this.#paxos?.receive(from, message.paxos);
  }

  /**
   * Reclaims `dead`, a peer that is gone for good (`weft rmpeer`): records its removal
   * with the heir `chooseHeir` names, which then takes its ranges over (at once, if the
   * heir is us). The addresses `dead` handed out become free at the heir, so use it only
   * for a peer that will never come back with its state; if it does, it refuses to
   * allocate. Running it on both sides of a partition names the same heir.
   */
  removePeer(dead: PeerKey): Removal {
    const refuse = (why: string) =>
      new IpamError("CANNOT_REMOVE", `Cannot remove peer ${dead}: ${why}`);
    if (this.#closed) throw new IpamError("CLOSED", "Allocator is closed");
    if (dead === this.me) throw refuse("it is this peer; run rmpeer on another peer");
    if (!this.ring.isSeeded()) throw refuse("the ring is not seeded yet");
    const removed = new Set(this.ring.removals().map((r) => r.dead));
    const heir = chooseHeir(dead, this.ring.seeds, this.ring.entries(), removed);
    if (heir === undefined) throw refuse("no other peer owns space to inherit its ranges");
    const delta = this.ring.remove({ dead, heir, by: this.me });
    this.#ringChanged();
    this.#options.link.broadcast(delta);
    return this.ring.removalOf(dead)!;
  }

  /** Writes current free counts into our ring entries and broadcasts them, now. */
  reportFree(): void {
    this.#reportTimer?.();
    this.#reportTimer = undefined;
    if (this.#closed) return;
    const changed = this.ring.reportFree((start, end) => this.#space.freeIn(start, end));
    if (changed === null) return;
    this.#persist();
    this.#options.link.broadcast(changed);
  }

  status(): AllocatorStatus {
    return {
      seeded: this.ring.isSeeded(),
      seeds: this.ring.seeds,
      owned: this.#space.ownedCount(),
      free: this.#space.freeCount(),
      allocated: this.#byHandle.size,
      waiting: this.#waiting.length,
      donationsGiven: this.#donationsGiven,
      badMessages: this.#badMessages,
    };
  }

  /** Free addresses in [start, end) that this peer owns (for checking reports). */
  freeIn(start: Address, end: number): number {
    return this.#space.freeIn(start, end);
  }

  /** Cancels timers and fails waiting requests; the allocator answers nothing afterwards. */
  close(): void {
    this.#closed = true;
    this.#paxos?.stop();
    this.#askTimer?.();
    this.#reportTimer?.();
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const request of waiting) {
      request.cancelTimeout();
      request.reject(
        new IpamError("CLOSED", `Allocator closed before "${request.handle}" got an address`),
      );
    }
  }

  #request(handle: string, address: Address | undefined): Promise<Address> {
    if (this.#closed) return Promise.reject(new IpamError("CLOSED", "Allocator is closed"));
    if (typeof handle !== "string" || handle.length === 0 || handle.length > MAX_HANDLE_LENGTH) {
      return Promise.reject(
        new RangeError(`Expected "handle" of 1 to ${MAX_HANDLE_LENGTH} characters`),
      );
    }
    if (this.#options.bootstrap.kind === "observer") {
      return Promise.reject(
        new IpamError(
          "OBSERVER",
          `Cannot allocate for "${handle}": this peer is an IPAM observer and owns no space`,
        ),
      );
    }
    const removed = this.#removedError();
    if (removed !== undefined) return Promise.reject(removed);
    return new Promise<Address>((resolve, reject) => {
      const outcome = this.#tryServe(handle, address);
      if (outcome instanceof IpamError) return reject(outcome);
      if (outcome !== undefined) return resolve(outcome);
      const timeoutMs = this.#options.timeoutMs ?? ALLOCATE_TIMEOUT_MS;
      const request: Waiting = {
        handle,
        address,
        resolve,
        reject,
        cancelTimeout: this.#options.clock.setTimer(timeoutMs, () =>
          this.#expire(request, timeoutMs),
        ),
      };
      this.#waiting.push(request);
      this.#seekSpace();
    });
  }

  /** The address to hand out now, an error to fail with now, or undefined to wait. */
  #tryServe(handle: string, address: Address | undefined): Address | IpamError | undefined {
    const removed = this.#removedError();
    if (removed !== undefined) return removed;
    const held = this.#byHandle.get(handle);
    if (held !== undefined) {
      if (address === undefined || address === held) return held;
      return new IpamError(
        "HANDLE_HAS_OTHER_ADDRESS",
        `Cannot claim ${formatAddress(address)} for "${handle}": it already has ${formatAddress(held)}; release it first`,
      );
    }
    if (!this.ring.isSeeded()) return undefined;
    if (address === undefined) {
      const taken = this.#space.take();
      if (taken !== undefined) this.#record(handle, taken);
      return taken;
    }
    const user = this.#byAddress.get(address);
    if (user !== undefined) {
      return new IpamError(
        "ADDRESS_IN_USE",
        `Cannot claim ${formatAddress(address)} for "${handle}": "${user}" has it`,
      );
    }
    if (this.#space.isReserved(address)) {
      return new IpamError(
        "ADDRESS_IN_USE",
        `Cannot claim ${formatAddress(address)}: it is the network or broadcast address of ${formatRange(this.range)}`,
      );
    }
    if (!this.#space.claim(address)) {
      const owner = this.ring.ownerOf(address);
      return new IpamError(
        "ADDRESS_OWNED_ELSEWHERE",
        `Cannot claim ${formatAddress(address)} for "${handle}": ` +
          (owner === undefined ? "no owner is known yet" : `peer ${owner} owns it`),
      );
    }
    this.#record(handle, address);
    return address;
  }

  #record(handle: string, address: Address): void {
    this.#byHandle.set(handle, address);
    this.#byAddress.set(address, handle);
    this.#persist();
    this.#scheduleFreeReport();
  }

  #expire(request: Waiting, timeoutMs: number): void {
    const index = this.#waiting.indexOf(request);
    if (index < 0) return;
    this.#waiting.splice(index, 1);
    if (!this.ring.isSeeded()) {
      request.reject(
        new IpamError(
          "NOT_SEEDED_TIMEOUT",
          `No address for "${request.handle}" after ${timeoutMs} ms: the ring is not seeded yet ` +
            "(consensus has no quorum, or no seeded peer is reachable)",
        ),
      );
      return;
    }
    const asked = [...this.#askedAt.keys()];
    request.reject(
      new IpamError(
        "NO_SPACE_TIMEOUT",
        `No free address for "${request.handle}" after ${timeoutMs} ms: this peer owns no free space and ` +
          (asked.length === 0
            ? "no reachable peer reports any"
            : `no reachable peer donated any (asked ${asked.join(", ")})`),
      ),
    );
  }

  /** Serves waiting requests in order; keeps asking for space while some still wait. */
  #serveWaiting(): void {
    const still: Waiting[] = [];
    for (const request of this.#waiting) {
      const outcome = this.#tryServe(request.handle, request.address);
      if (outcome === undefined) {
        still.push(request);
        continue;
      }
      request.cancelTimeout();
      if (outcome instanceof IpamError) request.reject(outcome);
      else request.resolve(outcome);
    }
    this.#waiting = still;
    if (still.length > 0) this.#seekSpace();
  }

  #seekSpace(): void {
    if (!this.ring.isSeeded()) {
      this.#paxos?.propose();
      return;
    }
    if (this.#askTimer !== undefined) return;
    const donor = this.#chooseDonor();
    if (donor !== undefined) {
      this.#askedAt.set(donor, this.#options.clock.now());
      this.#options.link.unicast(donor, encodeIpamMessage({ kind: "space-request" }));
    }
    this.#askTimer = this.#options.clock.setTimer(DONATION_RETRY_MS, () => {
      this.#askTimer = undefined;
      if (this.#waiting.length > 0) this.#seekSpace();
    });
  }

  /**
   * A reachable peer reporting free space, drawn with odds proportional to what it
   * reports, skipping recently asked ones if we can. Drawn rather than the largest:
   * when many peers want space at once (a mesh started together), they would all ask
   * the same donor, which can halve its space only so often before the next round.
   */
  #chooseDonor(): PeerKey | undefined {
    const free = this.ring.freeByPeer();
    const now = this.#options.clock.now();
    const fresh: [PeerKey, number][] = [];
    const stale: [PeerKey, number][] = [];
    for (const peer of this.#options.link.reachablePeers()) {
      const reported = free.get(peer) ?? 0;
      if (peer === this.me || reported < 2 || this.ring.removalOf(peer)) continue;
      const asked = this.#askedAt.get(peer) ?? Number.NEGATIVE_INFINITY;
      (now - asked >= DONOR_BACKOFF_MS ? fresh : stale).push([peer, reported]);
    }
    const candidates = (fresh.length > 0 ? fresh : stale).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const total = candidates.reduce((sum, [, reported]) => sum + reported, 0);
    let point = (this.#options.random ?? Math.random)() * total;
    for (const [peer, reported] of candidates) {
      point -= reported;
      if (point < 0) return peer;
    }
    return candidates[candidates.length - 1]?.[0];
  }

  #donateTo(peer: PeerKey): void {
    if (
      this.#options.bootstrap.kind === "observer" ||
      !this.ring.isSeeded() ||
      peer === this.me ||
      this.ring.removalOf(this.me) !== undefined
    )
      return;
    const block = chooseDonation(this.#space.donatableRanges(), this.ring.rangesOf(this.me));
    if (block === undefined) return;
    const delta = this.ring.grant(block, peer, (start, end) => this.#space.freeIn(start, end));
    this.#space.setOwned(this.ring.rangesOf(this.me));
    this.#donationsGiven++;
    // Saved before the grant leaves: a restart must never reclaim what was given away.
    this.#persist();
    this.#options.link.broadcast(delta);
  }

  #seed(seeds: SeedSet): void {
    if (this.ring.isSeeded() || this.#closed) return;
    const delta = this.ring.seed(seeds, (start, end) => this.#unusedFree(start, end));
    this.#ringChanged();
    this.#options.link.broadcast(delta);
  }

  #ringChanged(): void {
    if (this.ring.isSeeded()) this.#paxos?.stop();
    const inherited = this.#takeOverInherited();
    this.#space.setOwned(this.ring.rangesOf(this.me));
    this.#persist();
    for (const delta of inherited) this.#options.link.broadcast(delta);
    if (this.#waiting.length > 0) this.#serveWaiting();
  }

  /** Takes over the entries of removed peers whose heir we are; the deltas to gossip. */
  #takeOverInherited(): RingDelta[] {
    if (this.ring.removalOf(this.me) !== undefined || this.#closed) return [];
    const deltas: RingDelta[] = [];
    for (const { dead } of this.ring.removals()) {
      if (this.ring.heirOf(dead) !== this.me) continue;
      const delta = this.ring.takeOver(dead, (start, end) => this.#unusedFree(start, end));
      if (delta !== null) deltas.push(delta);
    }
    return deltas;
  }

  /** Free addresses in space no one uses yet: all but the range's network and broadcast. */
  #unusedFree(start: Address, end: number): number {
    let free = end - start;
    if (start === this.range.start) free--;
    if (end === this.range.end) free--;
    return Math.max(0, free);
  }

  /** Why this peer may not allocate: it was removed; undefined otherwise. */
  #removedError(): IpamError | undefined {
    const removal = this.ring.removalOf(this.me);
    if (removal === undefined) return undefined;
    return new IpamError(
      "REMOVED",
      `This peer was removed from the mesh (rmpeer ran on ${removal.by}) and its ranges now ` +
        `belong to ${this.ring.heirOf(this.me) ?? removal.heir}, which may hand out the addresses ` +
        "this peer had: it refuses to allocate. Start it with a new key and no saved IPAM state " +
        "to rejoin",
    );
  }

  /** Loads the saved state into the ring and space; throws when it cannot be used. */
  #restore(): IpamSnapshot | undefined {
    const { store } = this.#options;
    const bytes = store?.load(IPAM_STORE_NAME);
    if (bytes === undefined) return undefined;
    const decoded = decodeIpamState(bytes, { me: this.me, range: this.range });
    if (!decoded.ok) {
      throw new IpamError(
        "STATE_INVALID",
        `Cannot restore the saved IPAM state "${IPAM_STORE_NAME}": ${decoded.error}. ` +
          "Move it aside to start this peer without it: the peer then gets its ranges back " +
          "by gossip, with every address in them free again",
      );
    }
    const { snapshot } = decoded;
    if (snapshot.ring !== null) this.ring.restore(snapshot.ring);
    this.#space.setOwned(this.ring.rangesOf(this.me));
    for (const [handle, address] of snapshot.allocations) {
      this.#space.claim(address);
      this.#byHandle.set(handle, address);
      this.#byAddress.set(address, handle);
    }
    this.#savedAcceptor = snapshot.acceptor;
    return snapshot;
  }

  /** Saves everything, synchronously (see `AllocatorOptions.store`). */
  #persist(): void {
    const { store } = this.#options;
    if (store === undefined) return;
    const acceptor = this.#paxos?.acceptorState() ?? this.#savedAcceptor;
    const ring = this.ring.isSeeded()
      ? {
          range: this.range,
          seeds: this.ring.seeds,
          entries: this.ring.entries(),
          removals: this.ring.removals(),
        }
      : null;
    store.save(
      IPAM_STORE_NAME,
      encodeIpamState({
        me: this.me,
        range: this.range,
        ring,
        allocations: this.#byHandle,
        acceptor,
      }),
    );
    this.#savedAcceptor = acceptor;
  }

  #scheduleFreeReport(): void {
    if (this.#reportTimer !== undefined || this.#closed) return;
    this.#reportTimer = this.#options.clock.setTimer(FREE_REPORT_DELAY_MS, () => {
      this.#reportTimer = undefined;
      this.reportFree();
    });
  }
}
