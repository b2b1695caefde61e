/**
 * What `weft up` is told: its options with their defaults, checked once so that the
 * daemon can trust them. Every check throws an Error whose message names the option.
 */
import { hostname } from "node:os";
import { DEFAULT_DOMAIN, DEFAULT_TTL_SECONDS } from "../dns/constants.ts";
import { normaliseName } from "../dns/names.ts";
import { parseRange } from "../ipam/address.ts";
import { DEFAULT_RANGE } from "../ipam/constants.ts";
import { decodeToken } from "../membership/token.ts";
import { DEFAULT_MULTICAST_PACKETS_PER_SECOND } from "../mesh/multicast.ts";
import { parseEndpoint, parseIp } from "../net/ip.ts";
import {
  type ExposeSpec,
  type ForwardSpec,
  parseExposeSpec,
  parseForwardSpec,
} from "../proxy/forward.ts";
import { isLevel, type Level } from "./log.ts";
import { parsePeerSpec } from "./peer-spec.ts";
import { defaultStateDir } from "./state-dir.ts";

export const DEFAULT_PORT = 51820;
export const DEFAULT_TUN_NAME = "weft0";
/** 1500-byte Ethernet minus IPv6 (40), UDP (8) and WireGuard (32) overheads, as wg-quick. */
export const DEFAULT_MTU = 1420;
export const DEFAULT_METRICS = "127.0.0.1:9586";
/** Where `--userspace` serves SOCKS5 unless told otherwise (RFC 1928's customary port). */
export const DEFAULT_SOCKS5 = "127.0.0.1:1080";

/** How this peer's IPAM starts (see the README's IPAM section). */
export type BootstrapMode =
  | { readonly kind: "auto" }
  | { readonly kind: "seed" }
  | { readonly kind: "join" }
  | { readonly kind: "observer" }
  | { readonly kind: "consensus"; readonly quorum: number };

export interface DaemonConfig {
  readonly stateDir: string;
  readonly port: number;
  /** The UDP bind address; every address when absent. */
  readonly listenAddress: string | undefined;
  /** The kernel TUN to bring up, or undefined to carry only the mesh's own traffic. */
  readonly tun: { readonly name: string; readonly mtu: number } | undefined;
  /** The userspace TCP/IP stack instead of a TUN (`--userspace`), or undefined. */
  readonly userspace: UserspaceConfig | undefined;
  readonly peers: readonly string[];
  /** An invite token to join a mesh with (ignored once this peer is a member of that mesh). */
  readonly join: string | undefined;
  /** The mesh's range: taken from the mesh once this peer belongs to one. */
  readonly range: string;
  /** Whether --range was given (a joiner takes the mesh's range; a differing one is reported). */
  readonly rangeGiven: boolean;
  readonly domain: string;
  readonly dnsTtlSeconds: number;
  /** Where DNS is served; the overlay address, port 53, when absent and a TUN is up. */
  readonly dnsListen: string | undefined;
  readonly metrics: string | undefined;
  readonly nickname: string;
  /** Whether --name was given: else a joiner takes the name its invitation gives it. */
  readonly nameGiven: boolean;
  readonly bootstrap: BootstrapMode;
  /** Endpoints other peers may reach us at besides our interface addresses. */
  readonly advertise: readonly string[];
  readonly connectionLimit: number | undefined;
  /**
   * Multicast and broadcast through the mesh (on by default, as Weave's), at most
   * `packetsPerSecond` per member with a burst of twice that (src/mesh/multicast.ts).
   */
  readonly multicast: { readonly enabled: boolean; readonly packetsPerSecond: number };
  readonly logLevel: Level;
  /** Log lines as JSON objects. */
  readonly logJson: boolean;
}

/** `weft up --userspace`: the overlay address on a stack in this process (userspace.ts). */
export interface UserspaceConfig {
  readonly mtu: number;
  /** Where the SOCKS5 proxy listens; undefined with `--socks5 off`. */
  readonly socks5: { readonly address: string; readonly port: number } | undefined;
  /** `--forward`: local TCP ports forwarded to mesh services. */
  readonly forwards: readonly ForwardSpec[];
  /** `--expose`: local TCP services offered on the overlay address. */
  readonly exposes: readonly ExposeSpec[];
}

/** The options as the CLI hands them over: strings, unchecked. */
export interface RawUpOptions {
  stateDir?: string;
  port?: string;
  listen?: string;
  tun?: string | boolean;
  mtu?: string;
  userspace?: boolean;
  socks5?: string;
  forward?: string[];
  expose?: string[];
  peer?: string[];
  join?: string;
  range?: string;
  domain?: string;
  dnsTtl?: string;
  dnsListen?: string;
  metrics?: string | boolean;
  name?: string;
  ipalloc?: string;
  advertise?: string[];
  connectionLimit?: string;
  multicast?: string;
  multicastRate?: string;
  logLevel?: string;
  json?: boolean;
}

export function buildConfig(raw: RawUpOptions, env = process.env): DaemonConfig {
  const port = integer(raw.port, "--port", DEFAULT_PORT, 0, 65535); // 0: any free port
  const mtu = integer(raw.mtu, "--mtu", DEFAULT_MTU, 1280, 65535);
  const tunName = raw.tun === undefined || raw.tun === true ? DEFAULT_TUN_NAME : raw.tun;
  if (tunName !== false && !/^[A-Za-z0-9_.-]{1,15}$/.test(tunName)) {
    throw new Error(`Invalid --tun "${tunName}": 1 to 15 letters, digits, "_", "." or "-"`);
  }
  for (const peer of raw.peer ?? []) parsePeerSpec(peer);
  const range = raw.range ?? DEFAULT_RANGE;
  const parsed = parseRange(range);
  if (!parsed.ok) throw new Error(`Invalid --range "${range}": ${parsed.error}`);
  const domain = normaliseName(raw.domain ?? DEFAULT_DOMAIN);
  if (domain === undefined) throw new Error(`Invalid --domain "${raw.domain}": not a DNS name`);
  for (const [option, value] of [
    ["--dns-listen", raw.dnsListen],
    ["--metrics", typeof raw.metrics === "string" ? raw.metrics : undefined],
    ...(raw.advertise ?? []).map((a) => ["--advertise", a] as const),
  ] as const) {
    if (value !== undefined && parseEndpoint(value) === undefined) {
      throw new Error(`Invalid ${option} "${value}": expected HOST:PORT`);
    }
  }
  const join = raw.join ?? env.WEFT_JOIN_TOKEN;
  if (join !== undefined) {
    const token = decodeToken(join);
    if (!token.ok) throw new Error(`Invalid invite token: ${token.error}`);
  }
  const userspace = userspaceConfig(raw, mtu);
  const multicast = raw.multicast ?? "on";
  if (multicast !== "on" && multicast !== "off") {
    throw new Error(`Invalid --multicast "${multicast}": on or off`);
  }
  const logLevel = raw.logLevel ?? "info";
  if (!isLevel(logLevel)) {
    throw new Error(`Invalid --log-level "${logLevel}": one of debug, info, warn, error`);
  }
  const nickname = raw.name ?? hostname();
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(nickname)) {
    throw new Error(
      `Invalid --name "${nickname}": a DNS label (letters, digits, inner dashes, at most 63)`,
    );
  }
  return {
    stateDir: raw.stateDir ?? env.WEFT_STATE_DIR ?? defaultStateDir(env),
    port,
    listenAddress: raw.listen,
    tun: tunName === false || userspace !== undefined ? undefined : { name: tunName, mtu },
    userspace,
    peers: raw.peer ?? [],
    join,
    range,
    rangeGiven: raw.range !== undefined,
    domain,
    dnsTtlSeconds: integer(raw.dnsTtl, "--dns-ttl", DEFAULT_TTL_SECONDS, 0, 86_400),
    dnsListen: raw.dnsListen,
    metrics: raw.metrics === true ? DEFAULT_METRICS : raw.metrics || undefined,
    nickname,
    nameGiven: raw.name !== undefined,
    bootstrap: parseBootstrap(raw.ipalloc ?? "auto"),
    advertise: raw.advertise ?? [],
    connectionLimit:
      raw.connectionLimit === undefined
        ? undefined
        : integer(raw.connectionLimit, "--connection-limit", 64, 0, 10_000),
    multicast: {
      enabled: multicast === "on",
      packetsPerSecond: integer(
        raw.multicastRate,
        "--multicast-rate",
        DEFAULT_MULTICAST_PACKETS_PER_SECOND,
        1,
        1_000_000,
      ),
    },
    logLevel,
    logJson: raw.json === true,
  };
}

function userspaceConfig(raw: RawUpOptions, mtu: number): UserspaceConfig | undefined {
  if (raw.userspace !== true) {
    for (const [option, given] of [
      ["--socks5", raw.socks5 !== undefined],
      ["--forward", (raw.forward ?? []).length > 0],
      ["--expose", (raw.expose ?? []).length > 0],
    ] as const) {
      if (given) {
        throw new Error(
          `${option} needs --userspace (with a TUN, programs reach the mesh's addresses directly)`,
        );
      }
    }
    return undefined;
  }
  const socks5Text = raw.socks5 ?? DEFAULT_SOCKS5;
  let socks5: UserspaceConfig["socks5"];
  if (socks5Text !== "off") {
    socks5 = parseIpPort(socks5Text);
    if (socks5 === undefined) {
      throw new Error(
        `Invalid --socks5 "${socks5Text}": expected IP:PORT (port 0: any free) or off`,
      );
    }
  }
  const spec = <T>(option: string, text: string, parse: (text: string) => T): T => {
    try {
      return parse(text);
    } catch (error) {
      throw new Error(`Invalid ${option} "${text}": ${(error as Error).message}`);
    }
  };
  const exposes = (raw.expose ?? []).map((text) => spec("--expose", text, parseExposeSpec));
  const ports = exposes.map((e) => e.meshPort);
  const twice = ports.find((port, i) => ports.indexOf(port) !== i);
  if (twice !== undefined) throw new Error(`Invalid --expose: mesh port ${twice} given twice`);
  return {
    mtu,
    socks5,
    forwards: (raw.forward ?? []).map((text) => spec("--forward", text, parseForwardSpec)),
    exposes,
  };
}

/** `IP:PORT` or `[IPv6]:PORT` with port 0 to 65535 (0: the system picks), for local listeners. */
export function parseIpPort(text: string): { address: string; port: number } | undefined {
  const colon = text.lastIndexOf(":");
  const host = text.slice(0, colon);
  const port = text.slice(colon + 1);
  const address = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (colon < 0 || !/^\d{1,5}$/.test(port) || Number(port) > 65535) return undefined;
  if (parseIp(address) === undefined || (address.includes(":") && !host.startsWith("["))) {
    return undefined;
  }
  return { address, port: Number(port) };
}

/** `auto`, `seed`, `join`, `observer` or `consensus=N`, in the manner of Weave's --ipalloc-init. */
export function parseBootstrap(text: string): BootstrapMode {
  if (text === "auto" || text === "seed" || text === "join" || text === "observer") {
    return { kind: text };
  }
  const match = /^consensus=(\d{1,3})$/.exec(text);
  if (match && Number(match[1]) >= 1) return { kind: "consensus", quorum: Number(match[1]) };
  throw new Error(
    `Invalid --ipalloc "${text}": one of auto, seed, join, observer, consensus=N (N peers)`,
  );
}

function integer(
  text: string | undefined,
  option: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new Error(`Invalid ${option} "${text}": expected a whole number from ${min} to ${max}`);
  }
  return Number(text);
}
