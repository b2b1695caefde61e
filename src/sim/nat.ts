/**
 * A NAT for the simulated network, in the terms of RFC 4787 (NAT behavioural requirements
 * for unicast UDP): a gateway (`SimNetwork.attachGateway`) with one public address and a
 * private network behind it. Hosts behind it open ordinary conns on their private
 * addresses; what they send out leaves from the public address and a mapped port, and what
 * arrives at a mapped port goes in if the filter lets it.
 *
 * Behaviours, each a separate option as RFC 4787 separates them:
 *
 * - Mapping (§4.1): which outbound datagrams share an external port. Endpoint-independent
 *   reuses one per internal endpoint X:x; address-dependent one per (X:x, remote address
 *   Y); address-and-port-dependent one per (X:x, Y:y). RFC 4787 REQ-1 wants the first.
 * - Port assignment (§4.2.1): the internal port itself when free ("port preservation"),
 *   else the next free port after the last one assigned (sequential: a later symmetric
 *   mapping is predictable) or a random free one. A port belongs to one mapping at a time
 *   (no "port overloading").
 * - Filtering (§5): which inbound datagrams to a mapping's port pass. Endpoint-independent
 *   lets anyone in; address-dependent only addresses the mapping has sent to; address-and-
 *   port-dependent only the exact endpoints it has sent to. Each permission lives
 *   `mappingLifetimeMs` from the last datagram sent to that remote.
 * - Refresh (§4.3): a mapping lives `mappingLifetimeMs` after its last outbound datagram
 *   (REQ-6: outbound refresh is required); `inboundRefresh` makes inbound ones count too.
 *   RFC 4787 REQ-5 asks for at least 2 minutes (5 recommended), but deployed NATs often
 *   keep idle UDP for 30 s (Linux conntrack's `nf_conntrack_udp_timeout`), which is the
 *   default here: keepalives must cope with the short one.
 * - Hairpinning (§6): a datagram from behind to the public address and a mapped port is
 *   translated as outbound (source: the sender's mapping, REQ-9a) and then as inbound,
 *   filter included, and delivered back inside. REQ-9 requires it; it can be turned off.
 *
 * The classic names (RFC 3489 §5) are pairs of these; `CLASSIC_NAT_TYPES` holds them:
 *
 * | RFC 3489 name         | mapping                  | filtering                |
 * | --------------------- | ------------------------ | ------------------------ |
 * | full cone             | endpoint-independent     | endpoint-independent     |
 * | restricted cone       | endpoint-independent     | address-dependent        |
 * | port-restricted cone  | endpoint-independent     | address-and-port-dep.    |
 * | symmetric             | address-and-port-dep.    | address-and-port-dep.    |
 *
 * Per datagram the gateway receives:
 *
 * ```
 * from inside ─► to the public address? ─► hairpinning on? ─► outbound mapping ─┐
 *      │                                   (no: drop "hairpin")                  ▼
 *      └─► outbound mapping (find or make; "portsExhausted") ─► send out   inbound check ─► send in
 * from outside ─► inbound check: live mapping at port? ("noMapping", "expired")
 *                 ─► filter ("filtered") ─► send in to the mapping's internal endpoint
 * ```
 *
 * Mappings expire lazily, checked against the network clock on each datagram, so a NAT
 * sets no timers. Private addresses must be unique in the whole simulation (hosts are
 * named by address), so two NATs need two private networks; a NAT's public address may be
 * behind another NAT, which nests them.
 */
import { type Endpoint, endpointKey } from "../net/packet-conn.ts";
import type { SimGatewayPort, SimNetwork } from "./network.ts";
import type { Random } from "./random.ts";

/** RFC 4787 §4.1 mapping and §5 filtering behaviours: what a remote must match. */
export type NatBehavior = "endpointIndependent" | "addressDependent" | "addressAndPortDependent";

/** How a port is picked when the internal one is not kept (RFC 4787 §4.2.1). */
export type PortAllocation = "sequential" | "random";

/** A mapping and a filtering behaviour: the two halves of a NAT "type". */
export interface NatType {
  readonly mapping: NatBehavior;
  readonly filtering: NatBehavior;
}

/** The RFC 3489 names as (mapping, filtering) pairs; see the module comment's table. */
export const CLASSIC_NAT_TYPES = Object.freeze({
  fullCone: { mapping: "endpointIndependent", filtering: "endpointIndependent" },
  restrictedCone: { mapping: "endpointIndependent", filtering: "addressDependent" },
  portRestrictedCone: { mapping: "endpointIndependent", filtering: "addressAndPortDependent" },
  symmetric: { mapping: "addressAndPortDependent", filtering: "addressAndPortDependent" },
} as const satisfies Record<string, NatType>);

/** The names of `CLASSIC_NAT_TYPES`. */
export type ClassicNatType = keyof typeof CLASSIC_NAT_TYPES;

export interface SimNatOptions extends NatType {
  /** The NAT's address on the outside: every translated datagram leaves from it. */
  readonly publicAddress: string;
  /** The prefix of the hosts behind the NAT, such as "192.168.1.0/24". */
  readonly privateNetwork: string;
  /** Keep the internal port as the external one when it is free. Default true. */
  readonly preservePort?: boolean;
  /** How other ports are picked. Default "sequential"; "random" needs `random`. */
  readonly portAllocation?: PortAllocation;
  /** For `portAllocation: "random"`. */
  readonly random?: Random;
  /** External ports to use, inclusive. Default 1024 to 65535. */
  readonly portRange?: { readonly first: number; readonly last: number };
  /** How long a mapping, and each permission, lives after the datagram that refreshed it. */
  readonly mappingLifetimeMs?: number;
  /** Let inbound datagrams that pass the filter refresh the mapping too. Default false. */
  readonly inboundRefresh?: boolean;
  /** Translate datagrams from behind to the public address back inside. Default true. */
  readonly hairpinning?: boolean;
}

/** 30 s: what Linux conntrack keeps idle UDP for (see the module comment on REQ-5). */
export const DEFAULT_NAT_MAPPING_LIFETIME_MS = 30_000;
/** The ports a NAT assigns by default: all but the well-known ones. */
export const DEFAULT_NAT_PORT_RANGE = Object.freeze({ first: 1024, last: 65535 });
/** Random picks before a random allocation scans for a free port from a random start. */
const RANDOM_PORT_TRIES = 16;

/** Why the NAT dropped a datagram. */
export type NatDropCause =
  /** Inbound to a port no mapping has (or had, since the port was last reassigned). */
  | "noMapping"
  /** Inbound to the port of a mapping that expired. */
  | "expired"
  /** The mapping's filter refuses the sender. */
  | "filtered"
  /** From behind to the public address, with hairpinning off. */
  | "hairpin"
  /** A new mapping was needed and every port in the range is taken. */
  | "portsExhausted";

const NAT_DROP_CAUSES: readonly NatDropCause[] = [
  "noMapping",
  "expired",
  "filtered",
  "hairpin",
  "portsExhausted",
];

/**
 * Running totals. Every datagram the gateway receives is one of `outbound`, `inbound`,
 * `hairpinned` or a drop.
 */
export interface NatCounters {
  /** Translated from behind and sent out. */
  readonly outbound: number;
  /** Translated from outside and sent in. */
  readonly inbound: number;
  /** Sent from behind to the public address and delivered back inside. */
  readonly hairpinned: number;
  readonly mappingsCreated: number;
  readonly mappingsExpired: number;
  readonly dropped: Readonly<Record<NatDropCause, number>>;
}

/** A live mapping, as `SimNat.mappings()` reports it. */
export interface NatMapping {
  readonly internal: Endpoint;
  readonly external: Endpoint;
  /** The remote address an address-dependent or address-and-port-dependent mapping is for. */
  readonly remoteAddress?: string;
  /** The remote port an address-and-port-dependent mapping is for. */
  readonly remotePort?: number;
  /** Virtual time at which it expires unless refreshed. */
  readonly expiresAtMs: number;
}

interface Mapping {
  readonly key: string;
  readonly internal: Endpoint;
  readonly externalPort: number;
  /** The remote it was made for (its first), which the key depends on per mapping behaviour. */
  readonly remote: Endpoint;
  expiresAtMs: number;
  /** Remote endpoint key → when that permission expires (address-and-port-dependent filter). */
  readonly endpointPermissions: Map<string, number>;
  /** Remote address → when that permission expires (address-dependent filter). */
  readonly addressPermissions: Map<string, number>;
}

/**
 * A NAT on a SimNetwork. It attaches itself as the gateway of `privateNetwork` at
 * `publicAddress` when constructed, and stays for the network's life.
 *
 * @example A peer behind a port-restricted cone NAT
 * ```ts
 * const network = new SimNetwork({ clock, random: createRandom(1) });
 * const nat = new SimNat(network, {
 *   publicAddress: "203.0.113.1",
 *   privateNetwork: "192.168.1.0/24",
 *   ...CLASSIC_NAT_TYPES.portRestrictedCone,
 * });
 * const peer = network.listen("192.168.1.2", 51820);
 * peer.send(data, { address: "198.51.100.7", port: 3478 }); // arrives from 203.0.113.1:51820
 * ```
 */
export class SimNat {
  /** The NAT's public address, canonical. */
  readonly publicAddress: string;
  readonly #type: NatType;
  readonly #preservePort: boolean;
  readonly #allocation: PortAllocation;
  readonly #random: Random | undefined;
  readonly #firstPort: number;
  readonly #lastPort: number;
  readonly #lifetimeMs: number;
  readonly #inboundRefresh: boolean;
  readonly #hairpinning: boolean;
  readonly #port: SimGatewayPort;
  readonly #byKey = new Map<string, Mapping>();
  readonly #byPort = new Map<number, Mapping>();
  /** Ports whose mapping expired and that no mapping has taken since: inbound there is "expired". */
  readonly #expiredPorts = new Set<number>();
  /** No mapping expires before this; sweeping waits for it. */
  #sweepAtMs = Number.POSITIVE_INFINITY;
  /** Where a sequential search for a free port starts: after the last port assigned. */
  #nextPort: number;
  #outbound = 0;
  #inbound = 0;
  #hairpinned = 0;
  #mappingsCreated = 0;
  #mappingsExpired = 0;
  readonly #dropped = Object.fromEntries(NAT_DROP_CAUSES.map((cause) => [cause, 0])) as Record<
    NatDropCause,
    number
  >;

  constructor(network: SimNetwork, options: SimNatOptions) {
    this.#type = Object.freeze({ mapping: options.mapping, filtering: options.filtering });
    assertBehavior(options.mapping, "mapping");
    assertBehavior(options.filtering, "filtering");
    this.#preservePort = options.preservePort ?? true;
    this.#allocation = options.portAllocation ?? "sequential";
    if (this.#allocation !== "sequential" && this.#allocation !== "random") {
      throw new TypeError(
        `Expected "portAllocation" to be "sequential" or "random", got "${this.#allocation}"`,
      );
    }
    this.#random = options.random;
    if (this.#allocation === "random" && this.#random === undefined) {
      throw new TypeError(`Expected "random" with portAllocation "random"`);
    }
    const { first, last } = options.portRange ?? DEFAULT_NAT_PORT_RANGE;
    if (!isPort(first) || !isPort(last) || first > last) {
      throw new RangeError(
        `Expected "portRange" to be ports from 1 to 65535 with first <= last, got ${first} to ${last}`,
      );
    }
    this.#firstPort = first;
    this.#lastPort = last;
    this.#nextPort = first;
    this.#lifetimeMs = options.mappingLifetimeMs ?? DEFAULT_NAT_MAPPING_LIFETIME_MS;
    if (!Number.isFinite(this.#lifetimeMs) || this.#lifetimeMs <= 0) {
      throw new RangeError(
        `Expected "mappingLifetimeMs" to be a positive number, got ${this.#lifetimeMs}`,
      );
    }
    this.#inboundRefresh = options.inboundRefresh ?? false;
    this.#hairpinning = options.hairpinning ?? true;
    this.#port = network.attachGateway(options.publicAddress, options.privateNetwork, {
      receive: (data, from, to, fromBehind) => this.#receive(data, from, to, fromBehind),
    });
    this.publicAddress = this.#port.address;
  }

  /** The mapping and filtering behaviours this NAT was made with. */
  get type(): NatType {
    return this.#type;
  }

  /** A snapshot of the running totals. */
  counters(): NatCounters {
    return {
      outbound: this.#outbound,
      inbound: this.#inbound,
      hairpinned: this.#hairpinned,
      mappingsCreated: this.#mappingsCreated,
      mappingsExpired: this.#mappingsExpired,
      dropped: { ...this.#dropped },
    };
  }

  /** The live mappings, oldest first. */
  mappings(): readonly NatMapping[] {
    this.#sweep(this.#port.now());
    return [...this.#byKey.values()].map((m) => ({
      internal: { ...m.internal },
      external: { address: this.publicAddress, port: m.externalPort },
      ...(this.#type.mapping === "endpointIndependent" ? {} : { remoteAddress: m.remote.address }),
      ...(this.#type.mapping === "addressAndPortDependent" ? { remotePort: m.remote.port } : {}),
      expiresAtMs: m.expiresAtMs,
    }));
  }

  /** The public endpoint a datagram from `internal` to `remote` would leave from now, if mapped. */
  externalEndpointFor(internal: Endpoint, remote: Endpoint): Endpoint | undefined {
    this.#sweep(this.#port.now());
    const mapping = this.#byKey.get(this.#mappingKey(internal, remote));
    return mapping && { address: this.publicAddress, port: mapping.externalPort };
  }

  #receive(data: Uint8Array, from: Endpoint, to: Endpoint, fromBehind: boolean): void {
    const now = this.#port.now();
    this.#sweep(now);
    if (!fromBehind) {
      const admitted = this.#admit(to.port, from, now);
      if (typeof admitted === "string") {
        this.#dropped[admitted]++;
        return;
      }
      this.#inbound++;
      this.#port.send(data, from, admitted.internal);
      return;
    }
    const hairpin = to.address === this.publicAddress;
    if (hairpin && !this.#hairpinning) {
      this.#dropped.hairpin++;
      return;
    }
    const mapping = this.#outboundMapping(from, to, now);
    if (mapping === undefined) {
      this.#dropped.portsExhausted++;
      return;
    }
    const source = { address: this.publicAddress, port: mapping.externalPort };
    if (!hairpin) {
      this.#outbound++;
      this.#port.send(data, source, to);
      return;
    }
    const target = this.#admit(to.port, source, now);
    if (typeof target === "string") {
      this.#dropped[target]++;
      return;
    }
    this.#hairpinned++;
    this.#port.send(data, source, target.internal);
  }

  /** The mapping for an outbound datagram, made if needed, refreshed with a permission for `to`. */
  #outboundMapping(from: Endpoint, to: Endpoint, now: number): Mapping | undefined {
    const key = this.#mappingKey(from, to);
    let mapping = this.#byKey.get(key);
    if (mapping === undefined) {
      const externalPort = this.#allocatePort(from.port);
      if (externalPort === undefined) return undefined;
      mapping = {
        key,
        internal: { address: from.address, port: from.port },
        externalPort,
        remote: { address: to.address, port: to.port },
        expiresAtMs: now,
        endpointPermissions: new Map(),
        addressPermissions: new Map(),
      };
      this.#byKey.set(key, mapping);
      this.#byPort.set(externalPort, mapping);
      this.#expiredPorts.delete(externalPort);
      this.#mappingsCreated++;
    }
    const expiresAtMs = now + this.#lifetimeMs;
    mapping.expiresAtMs = expiresAtMs;
    mapping.endpointPermissions.set(endpointKey(to), expiresAtMs);
    mapping.addressPermissions.set(to.address, expiresAtMs);
    this.#sweepAtMs = Math.min(this.#sweepAtMs, expiresAtMs);
    return mapping;
  }

  /** The live mapping at `port` if its filter lets `from` in (refreshing it if so configured). */
  #admit(port: number, from: Endpoint, now: number): Mapping | NatDropCause {
    const mapping = this.#byPort.get(port);
    if (mapping === undefined) return this.#expiredPorts.has(port) ? "expired" : "noMapping";
    const fromKey = endpointKey(from);
    let permissions: Map<string, number> | undefined;
    let permissionKey = "";
    if (this.#type.filtering === "addressDependent") {
      permissions = mapping.addressPermissions;
      permissionKey = from.address;
    } else if (this.#type.filtering === "addressAndPortDependent") {
      permissions = mapping.endpointPermissions;
      permissionKey = fromKey;
    }
    if (permissions !== undefined && !((permissions.get(permissionKey) ?? 0) > now)) {
      return "filtered";
    }
    if (this.#inboundRefresh) {
      const expiresAtMs = now + this.#lifetimeMs;
      mapping.expiresAtMs = expiresAtMs;
      // Only permissions the sender already holds are refreshed; none is created.
      if (mapping.endpointPermissions.has(fromKey)) {
        mapping.endpointPermissions.set(fromKey, expiresAtMs);
      }
      if (mapping.addressPermissions.has(from.address)) {
        mapping.addressPermissions.set(from.address, expiresAtMs);
      }
    }
    return mapping;
  }

  #mappingKey(internal: Endpoint, remote: Endpoint): string {
    const own = endpointKey(internal);
    switch (this.#type.mapping) {
      case "endpointIndependent":
        return own;
      case "addressDependent":
        return `${own}>${remote.address}`;
      case "addressAndPortDependent":
        return `${own}>${endpointKey(remote)}`;
    }
  }

  /** A free external port: the internal one if kept, else per `portAllocation`. */
  #allocatePort(internalPort: number): number | undefined {
    let port: number | undefined;
    if (this.#preservePort && this.#isFree(internalPort)) {
      port = internalPort;
    } else if (this.#allocation === "random") {
      const span = this.#lastPort - this.#firstPort + 1;
      for (let i = 0; i < RANDOM_PORT_TRIES && port === undefined; i++) {
        const candidate = this.#firstPort + this.#random!.int(span);
        if (this.#isFree(candidate)) port = candidate;
      }
      port ??= this.#scanFrom(this.#firstPort + this.#random!.int(span));
    } else {
      port = this.#scanFrom(this.#nextPort);
    }
    if (port !== undefined) this.#nextPort = port === this.#lastPort ? this.#firstPort : port + 1;
    return port;
  }

  /** The first free port at or after `start`, wrapping around the range. */
  #scanFrom(start: number): number | undefined {
    const span = this.#lastPort - this.#firstPort + 1;
    for (let i = 0; i < span; i++) {
      const port = this.#firstPort + ((start - this.#firstPort + i) % span);
      if (this.#isFree(port)) return port;
    }
    return undefined;
  }

  #isFree(port: number): boolean {
    return port >= this.#firstPort && port <= this.#lastPort && !this.#byPort.has(port);
  }

  /** Removes mappings whose time has come, and permissions that lapsed. */
  #sweep(now: number): void {
    if (now < this.#sweepAtMs) return;
    let next = Number.POSITIVE_INFINITY;
    for (const mapping of this.#byKey.values()) {
      if (mapping.expiresAtMs <= now) {
        this.#byKey.delete(mapping.key);
        this.#byPort.delete(mapping.externalPort);
        this.#expiredPorts.add(mapping.externalPort);
        this.#mappingsExpired++;
        continue;
      }
      next = Math.min(next, mapping.expiresAtMs);
      for (const permissions of [mapping.endpointPermissions, mapping.addressPermissions]) {
        for (const [key, expiresAtMs] of permissions) {
          if (expiresAtMs <= now) permissions.delete(key);
        }
      }
    }
    this.#sweepAtMs = next;
  }
}

const NAT_BEHAVIORS: readonly NatBehavior[] = [
  "endpointIndependent",
  "addressDependent",
  "addressAndPortDependent",
];

function assertBehavior(value: unknown, title: string): void {
  if (!NAT_BEHAVIORS.includes(value as NatBehavior)) {
    throw new TypeError(
      `Expected "${title}" to be one of ${NAT_BEHAVIORS.join(", ")}, got "${value}"`,
    );
  }
}

function isPort(value: unknown): boolean {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
}
