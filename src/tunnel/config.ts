/**
 * The configuration file of `wg setconf` and `wg showconf`: an `[Interface]` section
 * (PrivateKey, ListenPort, FwMark) and any number of `[Peer]` sections (PublicKey,
 * PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive).
 *
 * Reading follows wireguard-tools' `config.c`: `#` starts a comment anywhere on a line,
 * all whitespace on a line is dropped before it is read (so `Allowed IPs` is read as
 * `AllowedIPs`, and `10.0.0.0 / 8` as `10.0.0.0/8`), section and key names are
 * case-insensitive, a key given twice keeps its last value, except AllowedIPs, which
 * adds up. Where `wg` hands text to libc we are stricter, and say so in the message:
 * ListenPort is a number (no service names), Endpoint as `parseEndpoint` reads it.
 *
 * Writing follows `showconf.c`: the same section order, key order and spellings, so a
 * file we write reads the same in `wg setconf`.
 */
import { assertBytes, fromBase64, KEY_BYTES, toBase64 } from "../crypto/index.ts";
import {
  formatEndpoint,
  formatPrefix,
  type HostPort,
  type IpPrefix,
  parseEndpoint,
  parseIp,
  parsePrefix,
} from "../net/ip.ts";

/** One `[Peer]` section. */
export interface WgPeerConfig {
  readonly publicKey: Uint8Array;
  /** Absent means none; `wg` treats 32 zero bytes the same way. */
  readonly presharedKey?: Uint8Array;
  /** In the order written; host bits are kept as written (the kernel masks them). */
  readonly allowedIps: readonly IpPrefix[];
  readonly endpoint?: HostPort;
  /** 1 to 65535; absent when disabled (`0` or `off` in the file). */
  readonly persistentKeepaliveSeconds?: number;
}

/** A whole file: the `[Interface]` keys and the peers in file order. */
export interface WgConfig {
  readonly privateKey?: Uint8Array;
  /** 0 to 65535; 0 lets the system choose. */
  readonly listenPort?: number;
  /** 0 to 0xffffffff; 0 (`off`) means no mark. */
  readonly fwMark?: number;
  readonly peers: readonly WgPeerConfig[];
}

/** What was wrong, stable for callers to test; `message` says it to people. */
export type ConfigErrorCode =
  | "unknown-section"
  | "unknown-key"
  | "key-outside-section"
  | "missing-equals"
  | "empty-value"
  | "invalid-key"
  | "port-out-of-range"
  | "invalid-value"
  | "missing-public-key"
  | "duplicate-peer";

export interface ConfigError {
  readonly code: ConfigErrorCode;
  /** 1-based line of the file. */
  readonly line: number;
  /** Starts with `line N: `; never contains a PrivateKey or PresharedKey. */
  readonly message: string;
}

export type ParseWgConfigResult =
  | { readonly ok: true; readonly config: WgConfig }
  | { readonly ok: false; readonly error: ConfigError };

type Section = "Interface" | "Peer";
type InterfaceKey = (typeof INTERFACE_KEYS)[number];
type PeerKey = (typeof PEER_KEYS)[number];

const INTERFACE_KEYS = ["PrivateKey", "ListenPort", "FwMark"] as const;
const PEER_KEYS = [
  "PublicKey",
  "PresharedKey",
  "AllowedIPs",
  "Endpoint",
  "PersistentKeepalive",
] as const;
/** Keys of `wg-quick` files that `wg setconf` refuses; named so the message can say why. */
const WG_QUICK_KEYS = [
  "Address",
  "DNS",
  "MTU",
  "Table",
  "PreUp",
  "PostUp",
  "PreDown",
  "PostDown",
  "SaveConfig",
];

// config.c drops these characters (its char_is_space) from every line before reading it.
const SPACES = /[\t\n\v\f\r ]/g;
const DECIMAL = /^[0-9]+$/;
const HEX = /^0x[0-9A-Fa-f]+$/;
const MAX_PORT = 65535;
const MAX_FWMARK = 0xffffffff;
const MAX_KEEPALIVE_SECONDS = 65535;
/** Longest name an error quotes; a key line that lost its "=" is 44 characters or more. */
const MAX_SHOWN_NAME = 24;

/** A peer while its section is read. */
interface PeerDraft {
  headerLine: number;
  publicKey?: Uint8Array;
  publicKeyLine: number;
  presharedKey?: Uint8Array;
  allowedIps: IpPrefix[];
  endpoint?: HostPort;
  persistentKeepaliveSeconds?: number;
}

/** The interface keys while the file is read. */
interface InterfaceDraft {
  privateKey?: Uint8Array;
  listenPort?: number;
  fwMark?: number;
}

/** A problem found in one value: the code, and the message without its line prefix. */
interface ValueProblem {
  readonly code: ConfigErrorCode;
  readonly text: string;
}

/**
 * Reads a `wg setconf` file. Stops at the first problem and names its line; never throws.
 *
 * @example
 * ```ts
 * const result = parseWgConfig("[Interface]\nListenPort = 51820\n");
 * if (result.ok) result.config.listenPort; // 51820
 * else console.error(result.error.message); // e.g. line 7: invalid AllowedIPs "10.0.0.0/33": ...
 * ```
 */
export function parseWgConfig(text: string): ParseWgConfigResult {
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  const device: InterfaceDraft = {};
  const peers: WgPeerConfig[] = [];
  const peerLines = new Map<string, number>();
  let section: Section | undefined;
  let peer: PeerDraft | undefined;

  const finishPeer = (): ConfigError | undefined => {
    if (peer === undefined) return undefined;
    const draft = peer;
    peer = undefined;
    if (draft.publicKey === undefined) {
      return configError(draft.headerLine, "missing-public-key", "[Peer] has no PublicKey");
    }
    const key = toBase64(draft.publicKey);
    const first = peerLines.get(key);
    if (first !== undefined) {
      const message = `duplicate peer PublicKey "${key}" (first at line ${first})`;
      return configError(draft.publicKeyLine, "duplicate-peer", message);
    }
    peerLines.set(key, draft.publicKeyLine);
    peers.push(finishedPeer(draft, draft.publicKey));
    return undefined;
  };

  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const raw = lines[index]!;
    const comment = raw.indexOf("#");
    const line = (comment < 0 ? raw : raw.slice(0, comment)).replace(SPACES, "");
    if (line === "") continue;

    if (line.startsWith("[")) {
      const name = sectionName(line);
      if (name === undefined) {
        return failure(lineNumber, "unknown-section", `unknown section ${shown(line)}`);
      }
      const problem = finishPeer();
      if (problem !== undefined) return { ok: false, error: problem };
      section = name;
      if (name === "Peer") peer = { headerLine: lineNumber, publicKeyLine: 0, allowedIps: [] };
      continue;
    }

    const equals = line.indexOf("=");
    if (equals < 0) {
      // Not quoted: the line may be a key with its "=" lost, and the key may be secret.
      return failure(lineNumber, "missing-equals", 'expected "Key = value" or a section header');
    }
    const written = line.slice(0, equals);
    const value = line.slice(equals + 1);
    if (section === undefined) {
      const message = `key ${shown(written)} comes before any [Interface] or [Peer] section`;
      return failure(lineNumber, "key-outside-section", message);
    }
    const key = section === "Interface" ? interfaceKey(written) : peerKey(written);
    if (key === undefined) {
      return failure(lineNumber, "unknown-key", unknownKeyMessage(section, written));
    }
    if (value === "") return failure(lineNumber, "empty-value", `${key} has no value`);

    const problem =
      section === "Interface"
        ? readInterfaceValue(device, key as InterfaceKey, value)
        : readPeerValue(peer!, key as PeerKey, value, lineNumber);
    if (problem !== undefined) return failure(lineNumber, problem.code, problem.text);
  }

  const problem = finishPeer();
  if (problem !== undefined) return { ok: false, error: problem };
  return { ok: true, config: { ...device, peers } };
}

/**
 * A section or key name quoted for a message, unless it is long enough to hold much of a
 * key: `PrivateKey yAnz...=` reads as the key name `PrivateKeyyAnz...`, and keys are secret.
 */
function shown(name: string): string {
  if (name.length <= MAX_SHOWN_NAME) return `"${name}"`;
  return `of ${name.length} characters (not shown, as it may hold a key: is an "=" missing?)`;
}

function configError(line: number, code: ConfigErrorCode, text: string): ConfigError {
  return { code, line, message: `line ${line}: ${text}` };
}

function failure(line: number, code: ConfigErrorCode, text: string): ParseWgConfigResult {
  return { ok: false, error: configError(line, code, text) };
}

/** `[Interface]` or `[Peer]` in any case, or undefined for any other bracketed text. */
function sectionName(line: string): Section | undefined {
  const lower = line.toLowerCase();
  if (lower === "[interface]") return "Interface";
  if (lower === "[peer]") return "Peer";
  return undefined;
}

/** The canonical spelling of an `[Interface]` key, matched without case. */
function interfaceKey(written: string): InterfaceKey | undefined {
  return INTERFACE_KEYS.find((key) => key.toLowerCase() === written.toLowerCase());
}

/** The canonical spelling of a `[Peer]` key, matched without case. */
function peerKey(written: string): PeerKey | undefined {
  return PEER_KEYS.find((key) => key.toLowerCase() === written.toLowerCase());
}

function unknownKeyMessage(section: Section, written: string): string {
  const message = `unknown key ${shown(written)} in [${section}]`;
  const other = section === "Interface" ? "Peer" : "Interface";
  const elsewhere = other === "Peer" ? peerKey(written) : interfaceKey(written);
  if (elsewhere !== undefined) return `${message} (it belongs in [${other}])`;
  const lower = written.toLowerCase();
  if (WG_QUICK_KEYS.some((key) => key.toLowerCase() === lower)) {
    return `${message} (a wg-quick key, which wg setconf does not read: see wg-quick strip)`;
  }
  return message;
}

function readInterfaceValue(
  device: InterfaceDraft,
  key: InterfaceKey,
  value: string,
): ValueProblem | undefined {
  switch (key) {
    case "PrivateKey": {
      const bytes = readKey(value);
      if (typeof bytes === "string")
        return { code: "invalid-key", text: `invalid ${key}: ${bytes}` };
      device.privateKey = bytes;
      return undefined;
    }
    case "ListenPort": {
      if (!DECIMAL.test(value)) {
        const text = `invalid ListenPort "${value}": expected a number from 0 to ${MAX_PORT}`;
        return { code: "invalid-value", text };
      }
      const port = Number(value);
      if (port > MAX_PORT) {
        const text = `ListenPort ${value} is out of range 0 to ${MAX_PORT}`;
        return { code: "port-out-of-range", text };
      }
      device.listenPort = port;
      return undefined;
    }
    case "FwMark": {
      const mark = readFwMark(value);
      if (mark === undefined) {
        const text = `invalid FwMark "${value}": expected off or a number from 0 to 0xffffffff`;
        return { code: "invalid-value", text };
      }
      device.fwMark = mark;
      return undefined;
    }
  }
}

function readPeerValue(
  peer: PeerDraft,
  key: PeerKey,
  value: string,
  lineNumber: number,
): ValueProblem | undefined {
  switch (key) {
    case "PublicKey":
    case "PresharedKey": {
      const bytes = readKey(value);
      if (typeof bytes === "string") {
        // A preshared key is a secret: never repeat it, even when malformed.
        const shown = key === "PublicKey" ? ` "${value}"` : "";
        return { code: "invalid-key", text: `invalid ${key}${shown}: ${bytes}` };
      }
      if (key === "PublicKey") {
        peer.publicKey = bytes;
        peer.publicKeyLine = lineNumber;
      } else {
        peer.presharedKey = bytes;
      }
      return undefined;
    }
    case "AllowedIPs":
      for (const entry of value.split(",")) {
        const prefix = parsePrefix(entry);
        if (prefix === undefined) {
          const text = `invalid AllowedIPs "${entry}": ${prefixProblem(entry)}`;
          return { code: "invalid-value", text };
        }
        peer.allowedIps.push(prefix);
      }
      return undefined;
    case "Endpoint": {
      const endpoint = parseEndpoint(value);
      if (endpoint === undefined) return endpointProblem(value);
      peer.endpoint = endpoint;
      return undefined;
    }
    case "PersistentKeepalive": {
      const seconds = readKeepalive(value);
      if (seconds === undefined) {
        const text = `invalid PersistentKeepalive "${value}": expected off or 0 to ${MAX_KEEPALIVE_SECONDS}`;
        return { code: "invalid-value", text };
      }
      peer.persistentKeepaliveSeconds = seconds === 0 ? undefined : seconds;
      return undefined;
    }
  }
}

/** 32 bytes from base64, or what is wrong with the text (which it does not repeat). */
function readKey(value: string): Uint8Array | string {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64(value);
  } catch {
    // wg's key_from_base64 refuses stray bits in the last digit too: one key, one spelling.
    if (/^[A-Za-z0-9+/]{43}=$/.test(value)) return "not canonical base64 (a mistyped last digit?)";
    return `expected ${KEY_BYTES} bytes of base64, 44 characters ending in "="`;
  }
  if (bytes.length !== KEY_BYTES) {
    return `decodes to ${bytes.length} bytes, expected ${KEY_BYTES}`;
  }
  return bytes;
}

/** `off`, decimal, or hex after a lowercase `0x`, as config.c's parse_fwmark reads it. */
function readFwMark(value: string): number | undefined {
  if (value.toLowerCase() === "off") return 0;
  let mark: number;
  if (HEX.test(value)) mark = Number.parseInt(value.slice(2), 16);
  else if (DECIMAL.test(value)) mark = Number(value);
  else return undefined;
  return mark <= MAX_FWMARK ? mark : undefined;
}

/** Seconds, with 0 for `off` or `0`, which both disable the keepalive. */
function readKeepalive(value: string): number | undefined {
  if (value.toLowerCase() === "off") return 0;
  if (!DECIMAL.test(value)) return undefined;
  const seconds = Number(value);
  return seconds <= MAX_KEEPALIVE_SECONDS ? seconds : undefined;
}

/** Why `parsePrefix` refused one AllowedIPs entry, in words. */
function prefixProblem(entry: string): string {
  if (entry === "") return "empty entry (a stray comma?)";
  if (entry.startsWith("+") || entry.startsWith("-")) {
    return "a leading + or - adds or removes with wg set, it has no place in a file";
  }
  const slash = entry.indexOf("/");
  const address = parseIp(slash < 0 ? entry : entry.slice(0, slash));
  if (address === undefined) return "not an IPv4 or IPv6 address";
  return `prefix length must be a number from 0 to ${address.length * 8}`;
}

/** Why `parseEndpoint` refused `value`, with the code for a port out of range. */
function endpointProblem(value: string): ValueProblem {
  const port = /:([0-9]+)$/.exec(value)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > MAX_PORT)) {
    const text = `Endpoint port ${port} is out of range 1 to ${MAX_PORT}`;
    return { code: "port-out-of-range", text };
  }
  const host = value.slice(0, Math.max(0, value.lastIndexOf(":")));
  const hint =
    !value.startsWith("[") && host.includes(":")
      ? "an IPv6 address needs brackets, as in [fd00::1]:51820"
      : "expected host:port or [IPv6 address]:port, with a port from 1 to 65535";
  return { code: "invalid-value", text: `invalid Endpoint "${value}": ${hint}` };
}

/** The record for a finished peer, without properties for absent keys. */
function finishedPeer(draft: PeerDraft, publicKey: Uint8Array): WgPeerConfig {
  return {
    publicKey,
    ...(draft.presharedKey !== undefined && { presharedKey: draft.presharedKey }),
    allowedIps: draft.allowedIps,
    ...(draft.endpoint !== undefined && { endpoint: draft.endpoint }),
    ...(draft.persistentKeepaliveSeconds !== undefined && {
      persistentKeepaliveSeconds: draft.persistentKeepaliveSeconds,
    }),
  };
}

/**
 * The file `wg showconf` would print for `config`: `[Interface]` with ListenPort, FwMark
 * (in hex) and PrivateKey, a blank line, then each `[Peer]` with PublicKey, PresharedKey,
 * AllowedIPs joined by ", ", Endpoint and PersistentKeepalive, peers separated by a
 * blank line. Unlike showconf, which reads a live device, it writes every key that is
 * present, so ListenPort 0 and FwMark 0 (as `off`) survive the round trip.
 *
 * Throws `TypeError`/`RangeError` for a value that no file could hold (a key that is
 * not 32 bytes, a port out of range): those are programmer errors.
 *
 * @example
 * ```ts
 * formatWgConfig({ listenPort: 51820, peers: [] }); // "[Interface]\nListenPort = 51820\n\n"
 * ```
 */
export function formatWgConfig(config: WgConfig): string {
  const device = ["[Interface]"];
  if (config.listenPort !== undefined) {
    checkInteger(config.listenPort, 0, MAX_PORT, "listenPort");
    device.push(`ListenPort = ${config.listenPort}`);
  }
  if (config.fwMark !== undefined) {
    checkInteger(config.fwMark, 0, MAX_FWMARK, "fwMark");
    device.push(`FwMark = ${config.fwMark === 0 ? "off" : `0x${config.fwMark.toString(16)}`}`);
  }
  if (config.privateKey !== undefined) {
    device.push(`PrivateKey = ${keyText(config.privateKey, "privateKey")}`);
  }
  const peers = config.peers.map((peer) => `${formatPeer(peer).join("\n")}\n`);
  return `${device.join("\n")}\n\n${peers.join("\n")}`;
}

function formatPeer(peer: WgPeerConfig): string[] {
  const lines = ["[Peer]", `PublicKey = ${keyText(peer.publicKey, "publicKey")}`];
  if (peer.presharedKey !== undefined) {
    lines.push(`PresharedKey = ${keyText(peer.presharedKey, "presharedKey")}`);
  }
  if (peer.allowedIps.length > 0) {
    lines.push(`AllowedIPs = ${peer.allowedIps.map(formatPrefix).join(", ")}`);
  }
  if (peer.endpoint !== undefined) lines.push(`Endpoint = ${formatEndpoint(peer.endpoint)}`);
  const seconds = peer.persistentKeepaliveSeconds;
  if (seconds !== undefined) {
    checkInteger(seconds, 0, MAX_KEEPALIVE_SECONDS, "persistentKeepaliveSeconds");
    if (seconds > 0) lines.push(`PersistentKeepalive = ${seconds}`);
  }
  return lines;
}

function keyText(key: Uint8Array, title: string): string {
  assertBytes(key, KEY_BYTES, title);
  return toBase64(key);
}

function checkInteger(value: number, min: number, max: number, title: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Expected "${title}" to be an integer from ${min} to ${max}, got ${value}`,
    );
  }
}
