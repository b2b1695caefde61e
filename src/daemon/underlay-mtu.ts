/**
 * The underlay MTU towards a peer's address, as this host routes it, for the mesh's
 * `underlayMtu` option (issue #9, "Path MTU"): `ip -o route get ADDRESS` names the
 * interface and any path MTU the kernel has cached or the route pins (`mtu 1280`,
 * `mtu lock 1280`), and `ip -o link show dev DEV` the interface's MTU.
 *
 * Why the mesh needs this besides probing: Linux UDP sockets default to
 * IP_PMTUDISC_WANT, so the kernel itself fragments a datagram larger than the local
 * interface (or a path MTU it learned), and a probe of any size gets through in pieces;
 * the limit is invisible to probing. Deno's and Bun's sockets cannot set
 * IP_MTU_DISCOVER to forbid that, so we ask the routing table instead.
 *
 * The mesh asks synchronously and often; answers come from a cache, refreshed in the
 * background: at once for an address not seen before, then when an answer is older than
 * REFRESH_MS (30 s) and asked for again. Addresses not asked for go stale and are
 * forgotten past MAX_ENTRIES. Only IP addresses reach `ip` (never anything that could
 * read as an option), and a failing `ip` (not Linux, not installed) means "not known".
 */
import type { Clock } from "../clock.ts";
import { formatIp, parseIp } from "../net/ip.ts";
import type { Runtime } from "../runtime.ts";

export const REFRESH_MS = 30_000;
const MAX_ENTRIES = 1024;

interface Entry {
  mtu: number | undefined;
  atMs: number;
  refreshing: boolean;
}

/** What `ip -o route get` says: the interface, and an MTU the route or its cache holds. */
export function parseRouteGet(stdout: string): { device?: string; mtu?: number } {
  const device = /\bdev (\S+)/.exec(stdout)?.[1];
  const mtuText = /\bmtu (?:lock )?(\d+)/.exec(stdout)?.[1];
  const mtu = mtuText === undefined ? undefined : Number(mtuText);
  return {
    ...(device === undefined ? {} : { device }),
    ...(mtu === undefined || !(mtu > 0) ? {} : { mtu }),
  };
}

/** The MTU in `ip -o link show` output, or undefined. */
export function parseLinkMtu(stdout: string): number | undefined {
  const text = /\bmtu (\d+)/.exec(stdout)?.[1];
  const mtu = text === undefined ? undefined : Number(text);
  return mtu !== undefined && mtu > 0 ? mtu : undefined;
}

export class UnderlayMtu {
  readonly #run: Runtime["runCommand"];
  readonly #clock: Clock;
  readonly #refreshMs: number;
  readonly #log: (message: string) => void;
  readonly #entries = new Map<string, Entry>();
  #closed = false;

  constructor(options: {
    readonly runCommand: Runtime["runCommand"];
    readonly clock: Clock;
    readonly refreshMs?: number;
    readonly log?: (message: string) => void;
  }) {
    this.#run = options.runCommand;
    this.#clock = options.clock;
    this.#refreshMs = options.refreshMs ?? REFRESH_MS;
    this.#log = options.log ?? (() => {});
  }

  /** The cached underlay MTU towards `address`; starts a refresh when unknown or stale. */
  get(address: string): number | undefined {
    let entry = this.#entries.get(address);
    const now = this.#clock.now();
    if (entry === undefined) {
      const ip = parseIp(address);
      if (ip === undefined || this.#closed) return undefined;
      if (this.#entries.size >= MAX_ENTRIES)
        this.#entries.delete(this.#entries.keys().next().value!);
      entry = { mtu: undefined, atMs: Number.NEGATIVE_INFINITY, refreshing: false };
      this.#entries.set(address, entry);
    }
    if (!entry.refreshing && !this.#closed && now - entry.atMs >= this.#refreshMs) {
      entry.refreshing = true;
      void this.#refresh(address, entry);
    }
    return entry.mtu;
  }

  /** Starts no more commands. */
  close(): void {
    this.#closed = true;
  }

  async #refresh(address: string, entry: Entry): Promise<void> {
    let mtu: number | undefined;
    try {
      mtu = await this.#lookup(formatIp(parseIp(address)!));
    } catch (error) {
      this.#log(`cannot learn the underlay MTU towards ${address}: ${(error as Error).message}`);
    }
    if (mtu !== entry.mtu) this.#log(`underlay MTU towards ${address}: ${mtu ?? "unknown"}`);
    entry.mtu = mtu;
    entry.atMs = this.#clock.now();
    entry.refreshing = false;
  }

  async #lookup(address: string): Promise<number | undefined> {
    const route = await this.#run("ip", ["-o", "route", "get", address]);
    if (route.code !== 0) throw new Error(route.stderr.trim() || `ip exited ${route.code}`);
    const { device, mtu } = parseRouteGet(route.stdout);
    if (device === undefined) return mtu;
    const link = await this.#run("ip", ["-o", "link", "show", "dev", device]);
    const linkMtu = link.code === 0 ? parseLinkMtu(link.stdout) : undefined;
    if (mtu === undefined) return linkMtu;
    return linkMtu === undefined ? mtu : Math.min(mtu, linkMtu);
  }
}
