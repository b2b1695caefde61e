/**
 * Containers attached by network namespace (`weft attach`, `weft detach`): a veth pair
 * between this host and the namespace, the namespace's mesh address and routes, and its
 * resolver pointed at the mesh DNS server. The namespace is a name from `ip netns add`, a
 * process id (a container's process) or the path of a namespace file.
 *
 *   namespace                              host (weft's own namespace)
 *   weft0  ADDRESS/32  <─────── veth ───────>  wvINODE  169.254.1.1/32 scope link
 *   169.254.1.1 dev weft0 scope link           ADDRESS/32 dev wvINODE src HOST_ADDRESS
 *   MESH_RANGE via 169.254.1.1 src ADDRESS     MESH_RANGE dev weft0 (weft's TUN)
 *
 * The gateway is Calico's: every host-side veth holds the same link-local address, which
 * the namespace finds by ARP on its only link, so a namespace needs no subnet of its own
 * and its address is a /32 taken straight from IPAM. A real address on the host end was
 * chosen over proxy ARP because proxy ARP answers only when the host has a route to the
 * gateway address out of another interface (a default route), answers for every address,
 * and is a per-interface sysctl more to keep right.
 *
 * Names follow the namespace, not the caller: the host end is `wv` and the namespace
 * file's inode in hex, which is the same whichever way the namespace is named (name, PID
 * or path) and unique while it lives; when a namespace goes, its veth pair goes with it.
 * The host end's alias says `weft:ID`, which marks it as ours.
 *
 * Every step reads the current state first and changes only what differs, so attaching
 * twice changes nothing, and attaching with a new address replaces the old one.
 * Configuration goes through iproute2's `ip` (`Runtime.runCommand`), inside the
 * namespace through util-linux's `nsenter --net=FILE` (`ip -n` takes only names), so
 * the same code serves Node, Deno and Bun, and `ip`'s own error text reaches the user.
 */
import { mkdirSync, readFileSync, rmdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import { writeFileAtomic } from "../../runtimes/file-store.ts";
import { DEFAULT_TUN_MTU } from "../../runtimes/tun-linux.ts";
import { formatIp, formatPrefix, IPV4_BYTES, parseIp, parsePrefix } from "../net/ip.ts";
import type { Runtime } from "../runtime.ts";

/** The interface's name inside the namespace. */
export const CONTAINER_INTERFACE = "weft0";
/** The address every host-side veth holds and every namespace routes the mesh through. */
export const GATEWAY_ADDRESS = "169.254.1.1";
/** Host-side veth names: this, then the namespace's inode in hex. */
export const HOST_INTERFACE_PREFIX = "wv";
/** The host-side veth's alias starts with this, then the attachment's id. */
export const ALIAS_PREFIX = "weft:";
/** Where `ip netns add` keeps its names (`/var/run` links here). */
const NETNS_RUN_DIRS = ["/run/netns", "/var/run/netns"];
/** Where `ip netns exec NAME` finds files to show as the namespace's /etc. */
const NETNS_ETC_DIR = "/etc/netns";
const IP_FORWARD_PATH = "/proc/sys/net/ipv4/ip_forward";
/** The first line of a resolver file weft wrote; detach removes only such a file. */
const RESOLV_MARKER = "# Written by weft attach";
/** Then one of these, and for "file" the previous file's lines, each after `#| `. */
const PREVIOUS_NONE = "# weft-previous: none";
const PREVIOUS_FILE = "# weft-previous: file";
const PREVIOUS_LINE = "#| ";
/** IFNAMSIZ less the NUL. */
const MAX_INTERFACE_NAME_BYTES = 15;
const NAMESPACE_NAME = /^[A-Za-z0-9_.-]+$/;
const DOMAIN = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?$/;
const ID = /^\S{1,200}$/;

/** What attaching needs. */
export interface AttachOptions {
  /** A name from `ip netns add`, a process id (its /proc/PID/ns/net), or a namespace file's path. */
  readonly netns: string;
  /** The namespace's IPv4 mesh address (from IPAM), set as ADDRESS/32 on its `weft0`. */
  readonly address: string;
  /** The mesh range as "address/length" ("10.40.0.0/16"), routed from the namespace to the host. */
  readonly meshRange: string;
  /** This peer's own overlay address: the source of the host's packets into the namespace. */
  readonly hostAddress: string;
  /** The mesh DNS server, for the namespace's resolv.conf (usually `hostAddress`). */
  readonly dnsServer: string;
  /** The mesh domain, the resolver's search domain ("weft.internal"). */
  readonly searchDomain: string;
  /** Who the attachment is for (an IPAM handle, a container id): kept in the veth's alias and the resolver file. */
  readonly id: string;
  /** Both veth ends' MTU in bytes; default the TUN's, so nothing grows too big for the tunnel. */
  readonly mtu?: number;
}

/** What `attachNamespace` set up. */
export interface Attachment {
  /** The host end of the veth pair, `wv` + the namespace's inode in hex. */
  readonly hostIf: string;
  /** The namespace's end, `weft0`. */
  readonly containerIf: string;
  /** The namespace file the interface went into. */
  readonly namespacePath: string;
  /** The namespace's address (without length: it is a /32). */
  readonly address: string;
  /** The namespace's next hop for the mesh range, held by the host end. */
  readonly gateway: string;
  /** The resolver file written, or undefined where the namespace has none of its own (see `resolverPath`). */
  readonly resolvConf: string | undefined;
  /** Whether this call turned IPv4 forwarding on (it was off); it is never turned off again. */
  readonly forwardingEnabled: boolean;
  /** Whether anything was changed: false when all of it was in place already. */
  readonly changed: boolean;
}

/** What detaching needs. */
export interface DetachOptions {
  /** As given to `attachNamespace`. */
  readonly netns: string;
  /**
   * The host end from the attachment, used when the namespace's file is gone (a deleted
   * name can outlive its file while a process holds the namespace).
   */
  readonly hostIf?: string;
}

/** What `detachNamespace` removed. */
export interface Detachment {
  /** The host end looked for; undefined when the namespace is gone and no `hostIf` was given. */
  readonly hostIf: string | undefined;
  /** Whether the veth pair was there and is now deleted (its routes and addresses go with it). */
  readonly linkRemoved: boolean;
  /** The resolver file removed, or put back as it was before attach; undefined when there was none of ours. */
  readonly resolvConf: string | undefined;
  /** Whether anything was changed. */
  readonly changed: boolean;
}

/** Stable codes of the errors attaching and detaching fail with. */
export type AttachErrorCode =
  | "NAMESPACE_NOT_FOUND"
  | "HOST_NAMESPACE"
  | "NEEDS_ROOT"
  | "NAME_CLASH"
  | "TOOL_MISSING"
  | "STEP_FAILED";

/** Why a namespace could not be attached or detached: one line naming the step and the tool's message. */
export class AttachError extends Error {
  readonly code: AttachErrorCode;

  constructor(code: AttachErrorCode, message: string) {
    super(message);
    this.name = "AttachError";
    this.code = code;
  }
}

/** A namespace located on this host. */
interface Namespace {
  /** The nsfs file: `/run/netns/NAME`, `/proc/PID/ns/net` or as given. */
  readonly path: string;
  readonly inode: number;
  /** For a name from `ip netns add`. */
  readonly name?: string;
  /** For a process. */
  readonly pid?: number;
}

/** The part of `ip -j -d address show` read here. */
interface LinkState {
  readonly ifindex: number;
  readonly link_index?: number;
  readonly ifname: string;
  readonly flags: readonly string[];
  readonly mtu: number;
  readonly ifalias?: string;
  readonly linkinfo?: { readonly info_kind?: string };
  readonly addr_info?: readonly {
    readonly family: string;
    readonly local: string;
    readonly prefixlen: number;
  }[];
}

/** The part of `ip -j route show` read here. */
interface RouteState {
  readonly dst: string;
  readonly gateway?: string;
  readonly prefsrc?: string;
  readonly scope?: string;
}

/** A route wanted on a link: its `ip route replace` arguments and how to recognise it. */
interface WantedRoute {
  readonly args: readonly string[];
  /** The step's name in errors. */
  readonly step: string;
  matches(route: RouteState): boolean;
}

/** Runs `ip` on this host or in a namespace, naming the step and the action in errors. */
interface Steps {
  readonly run: Runtime["runCommand"];
  /** "attaching network namespace "c1"", the start of every error message. */
  readonly action: string;
  /** Set once a step changed something. */
  changed: boolean;
}

/**
 * Attaches a network namespace to the mesh: a veth pair (host end `wvINODE`, namespace
 * end `weft0`), ADDRESS/32 and routes for the mesh range in the namespace, a /32 route to
 * it on the host, IPv4 forwarding on, and the namespace's resolv.conf naming the mesh DNS
 * server. Idempotent; a new address replaces the old one. Throws `TypeError`,
 * `RangeError` or `SyntaxError` for bad options, and rejects with an `AttachError`
 * saying which step failed and why.
 *
 * @example
 * ```ts
 * const attached = await attachNamespace(runtime, {
 *   netns: "c1", // ip netns add c1
 *   address: "10.40.0.7",
 *   meshRange: "10.40.0.0/16",
 *   hostAddress: "10.40.0.1",
 *   dnsServer: "10.40.0.1",
 *   searchDomain: "weft.internal",
 *   id: "netns:c1",
 * });
 * attached.hostIf; // "wvf0000123"
 * ```
 */
export async function attachNamespace(
  runtime: Pick<Runtime, "runCommand">,
  options: AttachOptions,
): Promise<Attachment> {
  const settings = attachSettings(options);
  const steps: Steps = {
    run: runtime.runCommand,
    action: `attaching network namespace "${options.netns}"`,
    changed: false,
  };
  const namespace = locateNamespace(options.netns, steps.action);
  if (namespace === undefined) throw notFound(options.netns, steps.action);
  if (namespace.inode === ownNamespaceInode()) {
    throw new AttachError(
      "HOST_NAMESPACE",
      `${steps.action} failed: it is this host's own network namespace; give a container's`,
    );
  }
  const hostIf = hostInterfaceName(namespace.inode);
  const { host, container, created } = await ensureVethPair(steps, namespace, hostIf);
  let forwardingEnabled: boolean;
  let resolvConf: string | undefined;
  try {
    await configureHostEnd(steps, host, settings, `${ALIAS_PREFIX}${options.id}`);
    await configureNamespaceEnd(steps, namespace, container, settings);
    forwardingEnabled = enableForwarding(steps.action);
    resolvConf = resolverPath(namespace);
    if (resolvConf !== undefined) {
      const written = writeResolver(resolvConf, options, steps.action);
      steps.changed ||= written;
    }
  } catch (error) {
    // A pair made by this call but not configured would look attached: it goes again.
    if (created) await steps.run("ip", ["link", "del", "dev", hostIf]).catch(() => {});
    throw error;
  }
  return {
    hostIf,
    containerIf: CONTAINER_INTERFACE,
    namespacePath: namespace.path,
    address: settings.address,
    gateway: GATEWAY_ADDRESS,
    resolvConf,
    forwardingEnabled,
    changed: steps.changed || forwardingEnabled,
  };
}

/** The host end: up with its alias and MTU, the gateway address, and a /32 route to the namespace only. */
async function configureHostEnd(
  steps: Steps,
  host: LinkState,
  settings: AttachSettings,
  alias: string,
): Promise<void> {
  if (host.ifalias !== alias || host.mtu !== settings.mtu || !host.flags.includes("UP")) {
    await change(steps, `setting up ${host.ifname}`, [
      "link",
      "set",
      "dev",
      host.ifname,
      "mtu",
      `${settings.mtu}`,
      "alias",
      alias,
      "up",
    ]);
  }
  if (!hasAddress(host, GATEWAY_ADDRESS, 32)) {
    await change(steps, `adding the gateway address to ${host.ifname}`, [
      ...["address", "replace", `${GATEWAY_ADDRESS}/32`, "dev", host.ifname, "scope", "link"],
    ]);
  }
  await convergeRoutes(steps, host.ifname, undefined, [
    {
      args: [`${settings.address}/32`, "dev", host.ifname, "src", settings.hostAddress],
      step: `routing ${settings.address}/32 to ${host.ifname} from ${settings.hostAddress} (hostAddress must be this host's overlay address)`,
      matches: (r) => r.dst === settings.address && r.prefsrc === settings.hostAddress,
    },
  ]);
}

/** The namespace's end: up, lo up, exactly ADDRESS/32, the gateway and the mesh route. */
async function configureNamespaceEnd(
  steps: Steps,
  namespace: Namespace,
  container: LinkState,
  settings: AttachSettings,
): Promise<void> {
  if (container.mtu !== settings.mtu || !container.flags.includes("UP")) {
    await change(
      steps,
      `setting up ${CONTAINER_INTERFACE} in the namespace`,
      ["link", "set", "dev", CONTAINER_INTERFACE, "mtu", `${settings.mtu}`, "up"],
      namespace,
    );
  }
  const loopback = await showLink(steps, "lo", namespace);
  if (loopback !== undefined && !loopback.flags.includes("UP")) {
    await change(
      steps,
      "bringing lo up in the namespace",
      ["link", "set", "dev", "lo", "up"],
      namespace,
    );
  }
  for (const info of container.addr_info ?? []) {
    if (info.family !== "inet" || (info.local === settings.address && info.prefixlen === 32)) {
      continue;
    }
    await change(
      steps,
      `removing the old address ${info.local} in the namespace`,
      ["address", "del", `${info.local}/${info.prefixlen}`, "dev", CONTAINER_INTERFACE],
      namespace,
    );
  }
  if (!hasAddress(container, settings.address, 32)) {
    await change(
      steps,
      `adding ${settings.address}/32 in the namespace`,
      ["address", "add", `${settings.address}/32`, "dev", CONTAINER_INTERFACE],
      namespace,
    );
  }
  // After the addresses: deleting an address takes the routes that use it as source.
  await convergeRoutes(steps, CONTAINER_INTERFACE, namespace, [
    {
      args: [`${GATEWAY_ADDRESS}/32`, "dev", CONTAINER_INTERFACE, "scope", "link"],
      step: `routing the gateway ${GATEWAY_ADDRESS} to ${CONTAINER_INTERFACE} in the namespace`,
      matches: (r) => r.dst === GATEWAY_ADDRESS && r.gateway === undefined && r.scope === "link",
    },
    {
      args: [
        ...[settings.meshRange, "via", GATEWAY_ADDRESS, "dev", CONTAINER_INTERFACE],
        ...["src", settings.address],
      ],
      step: `routing ${settings.meshRange} via ${GATEWAY_ADDRESS} in the namespace`,
      matches: (r) =>
        r.dst === settings.meshRange &&
        r.gateway === GATEWAY_ADDRESS &&
        r.prefsrc === settings.address,
    },
  ]);
}

/**
 * Undoes `attachNamespace`: deletes the veth pair (both ends, and with them the routes
 * and addresses on them) and removes the resolver file it wrote, or puts back the file
 * that was there before, when the file is still ours. Idempotent: a namespace never
 * attached, or gone, is fine. Rejects with an `AttachError` when a step fails or when
 * the host end's name is held by an interface weft did not make.
 */
export async function detachNamespace(
  runtime: Pick<Runtime, "runCommand">,
  options: DetachOptions,
): Promise<Detachment> {
  if (typeof options.netns !== "string") throw new TypeError(`Expected "netns" to be a string`);
  const steps: Steps = {
    run: runtime.runCommand,
    action: `detaching network namespace "${options.netns}"`,
    changed: false,
  };
  const namespace = locateNamespace(options.netns, steps.action);
  const hostIf = namespace ? hostInterfaceName(namespace.inode) : options.hostIf;
  let linkRemoved = false;
  if (hostIf !== undefined) {
    const host = await showLink(steps, hostIf);
    if (host !== undefined) {
      if (!isOurs(host)) throw clash(steps.action, hostIf, host);
      await change(steps, `deleting the veth pair ${hostIf}`, ["link", "del", "dev", hostIf]);
      linkRemoved = true;
    }
  }
  // A deleted name's resolver file outlives it, so it is found by name alone.
  const name =
    namespace?.name ??
    (NAMESPACE_NAME.test(options.netns) && !/^[0-9]+$/.test(options.netns)
      ? options.netns
      : undefined);
  const path = namespace ? resolverPath(namespace) : name && namedResolverPath(name);
  const resolvConf = path !== undefined && removeResolver(path, steps.action) ? path : undefined;
  return { hostIf, linkRemoved, resolvConf, changed: steps.changed || resolvConf !== undefined };
}

/**
 * The host-side veth a namespace gets (or has), which names the namespace for as long as
 * it lives; undefined when no such namespace exists. Throws an AttachError when it
 * cannot tell (no permission).
 */
export function namespaceInterface(netns: string): string | undefined {
  const namespace = locateNamespace(netns, `looking up network namespace "${netns}"`);
  return namespace === undefined ? undefined : hostInterfaceName(namespace.inode);
}

/** The host end's name for a namespace file's inode: `wv` and the inode in hex. */
export function hostInterfaceName(inode: number): string {
  const name = `${HOST_INTERFACE_PREFIX}${inode.toString(16)}`;
  if (name.length > MAX_INTERFACE_NAME_BYTES) {
    throw new RangeError(`Namespace inode ${inode} makes the interface name "${name}" too long`);
  }
  return name;
}

/**
 * Where a namespace's resolver file goes: for a name, `/etc/netns/NAME/resolv.conf`
 * (which `ip netns exec` shows as /etc/resolv.conf); for a process, its own
 * `/etc/resolv.conf` through `/proc/PID/root`, when it has an /etc and that /etc is not
 * this host's (a process in the host's file system, such as one started by `unshare -n`,
 * would have the host's resolver replaced). Undefined otherwise, and for a bare path.
 */
export function resolverPath(namespace: {
  readonly name?: string;
  readonly pid?: number;
}): string | undefined {
  if (namespace.name !== undefined) return namedResolverPath(namespace.name);
  if (namespace.pid === undefined) return undefined;
  const etc = `/proc/${namespace.pid}/root/etc`;
  const target = `${etc}/resolv.conf`;
  if (!isDirectory(etc) || sameFile(etc, "/etc") || sameFile(target, "/etc/resolv.conf")) {
    return undefined;
  }
  return target;
}

function namedResolverPath(name: string): string {
  return `${NETNS_ETC_DIR}/${name}/resolv.conf`;
}

/** The options checked, addresses in canonical form. */
interface AttachSettings {
  readonly address: string;
  readonly meshRange: string;
  readonly hostAddress: string;
  readonly mtu: number;
}

function attachSettings(options: AttachOptions): AttachSettings {
  for (const key of [
    "netns",
    "address",
    "meshRange",
    "hostAddress",
    "dnsServer",
    "searchDomain",
    "id",
  ] as const) {
    if (typeof options[key] !== "string") throw new TypeError(`Expected "${key}" to be a string`);
  }
  const range = parsePrefix(options.meshRange);
  if (
    range === undefined ||
    range.address.length !== IPV4_BYTES ||
    !options.meshRange.includes("/")
  ) {
    throw new SyntaxError(
      `Expected "meshRange" to be an IPv4 range such as "10.40.0.0/16", got "${options.meshRange}"`,
    );
  }
  const address = ipv4(options.address, "address");
  const hostAddress = ipv4(options.hostAddress, "hostAddress");
  ipv4(options.dnsServer, "dnsServer");
  if (!inRange(address, range.address, range.prefixLength)) {
    throw new RangeError(
      `Expected "address" to be in the mesh range ${options.meshRange}, got "${options.address}"`,
    );
  }
  if (formatIp(address) === formatIp(hostAddress)) {
    throw new RangeError(
      `Expected "address" to differ from "hostAddress", both are "${options.address}"`,
    );
  }
  if (!DOMAIN.test(options.searchDomain)) {
    throw new SyntaxError(
      `Expected "searchDomain" to be a domain name, got "${options.searchDomain}"`,
    );
  }
  if (!ID.test(options.id)) {
    throw new SyntaxError(
      `Expected "id" to be 1 to 200 characters without spaces, got "${options.id}"`,
    );
  }
  const mtu = options.mtu ?? DEFAULT_TUN_MTU;
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new RangeError(`Expected "mtu" to be an integer from 68 to 65535, got ${mtu}`);
  }
  // The network's own address, as ip prints a route's destination.
  const network = range.address.map((byte, i) => byte & maskByte(range.prefixLength, i));
  return {
    address: formatIp(address),
    meshRange: formatPrefix({ address: network, prefixLength: range.prefixLength }),
    hostAddress: formatIp(hostAddress),
    mtu,
  };
}

function ipv4(text: string, key: string): Uint8Array {
  const bytes = parseIp(text);
  if (bytes === undefined || bytes.length !== IPV4_BYTES) {
    throw new SyntaxError(`Expected "${key}" to be an IPv4 address, got "${text}"`);
  }
  return bytes;
}

function maskByte(prefixLength: number, index: number): number {
  const bits = Math.min(8, Math.max(0, prefixLength - index * 8));
  return (0xff << (8 - bits)) & 0xff;
}

function inRange(address: Uint8Array, network: Uint8Array, prefixLength: number): boolean {
  return address.every(
    (byte, i) => (byte & maskByte(prefixLength, i)) === (network[i]! & maskByte(prefixLength, i)),
  );
}

/**
 * Finds the namespace file for `netns`: a process id, a path, or an `ip netns` name.
 * Undefined when there is no such file; throws an `AttachError` when it cannot be read.
 */
function locateNamespace(netns: string, action: string): Namespace | undefined {
  let path: string;
  let name: string | undefined;
  let pid: number | undefined;
  const procPath = /^\/proc\/([1-9][0-9]*)\/ns\/net$/.exec(netns);
  if (/^[1-9][0-9]*$/.test(netns) || procPath) {
    pid = Number(procPath ? procPath[1] : netns);
    path = `/proc/${pid}/ns/net`;
  } else if (netns.startsWith("/")) {
    path = netns;
    if (NETNS_RUN_DIRS.includes(dirname(netns))) name = basename(netns);
  } else if (NAMESPACE_NAME.test(netns) && netns !== "." && netns !== "..") {
    name = netns;
    path = `${NETNS_RUN_DIRS[0]}/${netns}`;
  } else {
    throw new SyntaxError(
      `Expected "netns" to be a namespace name, a process id or a path, got "${netns}"`,
    );
  }
  try {
    return { path, inode: statSync(path).ino, name, pid };
  } catch (error) {
    const code = errorCode(error);
    if (code === "ENOENT" || code === "ENOTDIR" || code === "ESRCH") return undefined;
    if (code === "EACCES" || code === "EPERM") {
      throw new AttachError("NEEDS_ROOT", `${action} needs root: cannot read ${path} (${code})`);
    }
    throw new AttachError("STEP_FAILED", `${action} failed: reading ${path}: ${message(error)}`);
  }
}

function notFound(netns: string, action: string): AttachError {
  const hint = /^[0-9]+$/.test(netns)
    ? `no process ${netns}`
    : netns.startsWith("/")
      ? `no file ${netns}`
      : `no ${NETNS_RUN_DIRS[0]}/${netns} (see ip netns list; a container's is found by its process id)`;
  return new AttachError(
    "NAMESPACE_NOT_FOUND",
    `${action} failed: network namespace not found: ${hint}`,
  );
}

function ownNamespaceInode(): number | undefined {
  try {
    return statSync("/proc/self/ns/net").ino;
  } catch {
    return undefined;
  }
}

/**
 * Makes sure the veth pair exists and its ends belong together, creating it (the
 * namespace's end straight inside, since the host may have a `weft0` of its own), and
 * returns both ends' state.
 */
async function ensureVethPair(
  steps: Steps,
  namespace: Namespace,
  hostIf: string,
): Promise<{ host: LinkState; container: LinkState; created: boolean }> {
  let host = await showLink(steps, hostIf);
  let container = await showLink(steps, CONTAINER_INTERFACE, namespace);
  if (host !== undefined && !isOurs(host)) throw clash(steps.action, hostIf, host);
  const paired =
    host !== undefined &&
    container !== undefined &&
    container.linkinfo?.info_kind === "veth" &&
    host.link_index === container.ifindex &&
    container.link_index === host.ifindex;
  if (paired) return { host: host!, container: container!, created: false };
  if (container !== undefined) {
    throw new AttachError(
      "NAME_CLASH",
      `${steps.action} failed: the namespace already has an interface ${CONTAINER_INTERFACE} (${container.linkinfo?.info_kind ?? "unknown kind"}) that is not weft's veth from this host: remove it`,
    );
  }
  if (host !== undefined) {
    // Our host end without its namespace end: left over, so made anew.
    await change(steps, `deleting the stale ${hostIf}`, ["link", "del", "dev", hostIf]);
  }
  await change(steps, `creating the veth pair ${hostIf}`, [
    ...["link", "add", hostIf, "type", "veth"],
    ...["peer", "name", CONTAINER_INTERFACE, "netns", namespace.path],
  ]);
  host = await showLink(steps, hostIf);
  container = await showLink(steps, CONTAINER_INTERFACE, namespace);
  if (host === undefined || container === undefined) {
    throw new AttachError(
      "STEP_FAILED",
      `${steps.action} failed: the veth pair ${hostIf} vanished as it was made (was the namespace deleted?)`,
    );
  }
  return { host, container, created: true };
}

/** A host link is ours when it is a veth with weft's alias. */
function isOurs(link: LinkState): boolean {
  return link.linkinfo?.info_kind === "veth" && (link.ifalias ?? "").startsWith(ALIAS_PREFIX);
}

function clash(action: string, hostIf: string, link: LinkState): AttachError {
  return new AttachError(
    "NAME_CLASH",
    `${action} failed: this host has an interface ${hostIf} (${link.linkinfo?.info_kind ?? "unknown kind"}${link.ifalias ? `, alias "${link.ifalias}"` : ""}) that weft did not make: remove or rename it`,
  );
}

function hasAddress(link: LinkState, address: string, prefixLength: number): boolean {
  return (link.addr_info ?? []).some(
    (info) => info.family === "inet" && info.local === address && info.prefixlen === prefixLength,
  );
}

/** Makes the IPv4 routes of the main table on `dev` exactly `wanted`. */
async function convergeRoutes(
  steps: Steps,
  dev: string,
  namespace: Namespace | undefined,
  wanted: readonly WantedRoute[],
): Promise<void> {
  const where = namespace ? " in the namespace" : "";
  const output = await ip(
    steps,
    `listing the routes of ${dev}${where}`,
    ["-j", "route", "show", "dev", dev],
    namespace,
  );
  const routes = parseJson<RouteState[]>(output ?? "", steps.action) ?? [];
  for (const route of routes) {
    if (wanted.some((w) => w.matches(route))) continue;
    await change(
      steps,
      `removing the old route ${route.dst}${where}`,
      ["route", "del", route.dst, "dev", dev],
      namespace,
    );
  }
  for (const route of wanted) {
    if (routes.some((r) => route.matches(r))) continue;
    await change(steps, route.step, ["route", "replace", ...route.args], namespace);
  }
}

/** A link's state, or undefined when there is no such link. */
async function showLink(
  steps: Steps,
  dev: string,
  namespace?: Namespace,
): Promise<LinkState | undefined> {
  const where = namespace ? " in the namespace" : "";
  const output = await ip(
    steps,
    `looking up ${dev}${where}`,
    ["-j", "-d", "address", "show", "dev", dev],
    namespace,
    /does not exist|Cannot find device/,
  );
  if (output === undefined) return undefined;
  return parseJson<LinkState[]>(output, steps.action)?.[0];
}

/** Runs an `ip` command that changes something, and notes that it did. */
async function change(
  steps: Steps,
  step: string,
  args: readonly string[],
  namespace?: Namespace,
): Promise<void> {
  await ip(steps, step, args, namespace);
  steps.changed = true;
}

/**
 * Runs `ip ARGS` on this host, or inside `namespace` through `nsenter`; resolves with its
 * stdout, or undefined when it failed with a message matching `absent`; rejects with an
 * `AttachError` naming `step` otherwise.
 */
async function ip(
  steps: Steps,
  step: string,
  args: readonly string[],
  namespace: Namespace | undefined,
  absent?: RegExp,
): Promise<string | undefined> {
  const [command, commandArgs] = namespace
    ? ["nsenter", [`--net=${namespace.path}`, "ip", ...args]]
    : ["ip", args];
  let result: Awaited<ReturnType<Runtime["runCommand"]>>;
  try {
    result = await steps.run(command, commandArgs);
  } catch (error) {
    const tool =
      command === "ip"
        ? "the ip command from iproute2 (apt-get install iproute2)"
        : "nsenter from util-linux (apt-get install util-linux)";
    throw new AttachError("TOOL_MISSING", `${steps.action} needs ${tool}: ${message(error)}`);
  }
  if (result.code === 0) return result.stdout;
  const reason =
    (result.stderr.trim() || result.stdout.trim()).replaceAll("\n", "; ") ||
    `${command} exited with code ${result.code}`;
  if (absent?.test(reason)) return undefined;
  if (/Operation not permitted|Permission denied/i.test(reason)) {
    throw new AttachError(
      "NEEDS_ROOT",
      `${steps.action} needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): ${step}: ${reason}`,
    );
  }
  if (namespace && /^nsenter: cannot open/.test(reason)) {
    throw new AttachError("NAMESPACE_NOT_FOUND", `${steps.action} failed: ${step}: ${reason}`);
  }
  throw new AttachError("STEP_FAILED", `${steps.action} failed: ${step}: ${reason}`);
}

function parseJson<T>(text: string, action: string): T | undefined {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new AttachError(
      "STEP_FAILED",
      `${action} failed: ip printed no JSON (iproute2 too old?): ${text.slice(0, 200)}`,
    );
  }
}

/**
 * Turns IPv4 forwarding on in this namespace if it is off: packets between the veth and
 * the TUN are forwarded. Returns whether it changed it. Never turned off again: other
 * attachments and other software may rely on it.
 */
export function enableForwarding(action: string): boolean {
  try {
    if (readFileSync(IP_FORWARD_PATH, "utf8").trim() === "1") return false;
    writeFileSync(IP_FORWARD_PATH, "1\n");
    return true;
  } catch (error) {
    const code = errorCode(error);
    if (code === "EACCES" || code === "EPERM") {
      throw new AttachError(
        "NEEDS_ROOT",
        `${action} needs root: setting ${IP_FORWARD_PATH} (${code})`,
      );
    }
    throw new AttachError(
      "STEP_FAILED",
      `${action} failed: setting ${IP_FORWARD_PATH} to 1: ${message(error)}`,
    );
  }
}

/**
 * The resolver file for a namespace: a marker line, the mesh DNS server and search
 * domain, then the file that was there before (as comments, so detach can put it back
 * and nothing else needs keeping).
 */
function resolverText(options: AttachOptions, previous: string | undefined): string {
  const lines = [
    `${RESOLV_MARKER} for ${options.id}; weft detach puts back what was here before`,
    `nameserver ${options.dnsServer}`,
    `search ${options.searchDomain.replace(/\.$/, "")}`,
  ];
  if (previous === undefined) {
    lines.push(PREVIOUS_NONE);
  } else {
    lines.push(PREVIOUS_FILE, ...previous.split("\n").map((line) => `${PREVIOUS_LINE}${line}`));
  }
  return `${lines.join("\n")}\n`;
}

/** The previous file kept in one of our resolver files; undefined for none. */
function previousOf(ours: string): string | undefined {
  const lines = ours.replace(/\n$/, "").split("\n");
  const start = lines.indexOf(PREVIOUS_FILE);
  if (start < 0) return undefined;
  return lines
    .slice(start + 1)
    .map((line) => line.slice(PREVIOUS_LINE.length))
    .join("\n");
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
}

/** Writes the resolver file unless it already says the same; returns whether it wrote. */
function writeResolver(path: string, options: AttachOptions, action: string): boolean {
  try {
    const current = readText(path);
    const previous = current?.startsWith(RESOLV_MARKER) ? previousOf(current) : current;
    const text = resolverText(options, previous);
    if (current === text) return false;
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    replaceFile(path, text);
    return true;
  } catch (error) {
    throw new AttachError("STEP_FAILED", `${action} failed: writing ${path}: ${message(error)}`);
  }
}

/** Removes our resolver file, or puts back the one it replaced; returns whether it did. */
function removeResolver(path: string, action: string): boolean {
  try {
    const current = readText(path);
    if (current === undefined || !current.startsWith(RESOLV_MARKER)) return false;
    const previous = previousOf(current);
    if (previous !== undefined) {
      replaceFile(path, previous);
    } else {
      try {
        unlinkSync(path);
      } catch (error) {
        // A bind-mounted file (Docker's) cannot go; emptied, it means what no file means.
        if (errorCode(error) !== "EBUSY") throw error;
        writeFileSync(path, "");
      }
      if (path.startsWith(`${NETNS_ETC_DIR}/`)) removeIfEmpty(dirname(path));
    }
    return true;
  } catch (error) {
    throw new AttachError("STEP_FAILED", `${action} failed: removing ${path}: ${message(error)}`);
  }
}

/**
 * Replaces `path` with `text` atomically (the file store's write), mode 0644 since every
 * process in the namespace reads it. A file bind-mounted in place (Docker's resolv.conf)
 * cannot be renamed over (EBUSY): it is overwritten instead.
 */
function replaceFile(path: string, text: string): void {
  try {
    writeFileAtomic(path, new TextEncoder().encode(text), 0o644);
  } catch (error) {
    // A bind-mounted file (a container's) cannot be renamed over: write it in place.
    if (errorCode((error as Error).cause ?? error) !== "EBUSY") throw error;
    writeFileSync(path, text);
  }
}

function removeIfEmpty(directory: string): void {
  try {
    rmdirSync(directory);
  } catch {
    // not empty (someone else's files), or gone already
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function sameFile(a: string, b: string): boolean {
  try {
    const one = statSync(a);
    const other = statSync(b);
    return one.dev === other.dev && one.ino === other.ino;
  } catch {
    return false;
  }
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replaceAll("\n", "; ");
}
