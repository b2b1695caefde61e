/**
 * Cryptokey routing (whitepaper §2): the table from IP prefixes to the peer allowed to
 * use them. Sending, a packet's destination address picks the peer to encrypt for;
 * receiving, a decrypted packet's source address must belong to the peer that sent it.
 *
 * One path-compressed binary trie per address family (as wireguard-go
 * `device/allowedips.go` and the kernel's `allowedips.c`): each node is a prefix, a node
 * without a value exists only to fork two subtrees, so a lookup visits at most one node
 * per address bit and compares 32 bits at a time. Prefixes are kept as big-endian 32-bit
 * words: one for IPv4, four for IPv6.
 *
 * The table is mutated in place; lookups allocate nothing, reading the address straight
 * from the caller's bytes into a scratch buffer owned by the table.
 */
import { assertBytes } from "../crypto/index.ts";

const IPV4_BYTES = 4;
const IPV6_BYTES = 16;
/** IPv4 header (RFC 791 §3.1): minimum size and where the source and destination sit. */
const IPV4_HEADER_BYTES = 20;
const IPV4_SOURCE_OFFSET = 12;
const IPV4_DESTINATION_OFFSET = 16;
/** IPv6 header (RFC 8200 §3): fixed size and where the source and destination sit. */
const IPV6_HEADER_BYTES = 40;
const IPV6_SOURCE_OFFSET = 8;
const IPV6_DESTINATION_OFFSET = 24;

/** One prefix in a trie. */
interface TrieNode<T> {
  /** The prefix as big-endian 32-bit words, bits beyond `prefixLength` zero. */
  readonly words: Uint32Array;
  readonly prefixLength: number;
  /** The value for this prefix; undefined on a node that only forks its two children. */
  value: T | undefined;
  parent: TrieNode<T> | null;
  /** Children by the address bit at position `prefixLength`. */
  readonly children: [TrieNode<T> | null, TrieNode<T> | null];
}

/** The prefixes of one address family. */
interface Trie<T> {
  root: TrieNode<T> | null;
  /** Address length in bits: 32 or 128. */
  readonly bits: number;
}

/**
 * A cryptokey routing table from IPv4 and IPv6 prefixes to values of type `T` (peers).
 * Treat it as opaque and change it only through this module's functions.
 */
export interface AllowedIps<T> {
  readonly ipv4: Trie<T>;
  readonly ipv6: Trie<T>;
  /** The nodes holding each value, in insertion order, for listing and removing a peer. */
  readonly nodesByValue: Map<T, Set<TrieNode<T>>>;
  /** The address being looked up, as words; reused so that lookups allocate nothing. */
  readonly scratch: Uint32Array;
}

/** A prefix as listed by `allowedIpsOf`: 4 or 16 address bytes, host bits zero. */
export interface AllowedIp {
  readonly address: Uint8Array;
  readonly prefixLength: number;
}

/** An empty table. */
export function createAllowedIps<T>(): AllowedIps<T> {
  return {
    ipv4: { root: null, bits: IPV4_BYTES * 8 },
    ipv6: { root: null, bits: IPV6_BYTES * 8 },
    nodesByValue: new Map(),
    scratch: new Uint32Array(IPV6_BYTES / 4),
  };
}

/**
 * Routes `address/prefixLength` to `value`, replacing the value of an identical prefix.
 * Bits of `address` beyond the prefix are ignored, as `wg` does, so 10.1.2.3/8 is 10.0.0.0/8.
 *
 * @example
 * const table = createAllowedIps<Peer>();
 * insertAllowedIp(table, new Uint8Array([10, 0, 0, 0]), 8, peer);
 * lookupAddress(table, new Uint8Array([10, 1, 2, 3])); // peer
 */
export function insertAllowedIp<T>(
  table: AllowedIps<T>,
  address: Uint8Array,
  prefixLength: number,
  value: T,
): void {
  const trie = trieOf(table, address);
  checkPrefixLength(prefixLength, trie.bits);
  if (value === undefined) throw new TypeError(`Expected "value" to be defined, got undefined`);
  const key = maskedWords(address, prefixLength);
  let parent: TrieNode<T> | null = null;
  let node = trie.root;
  while (node !== null && node.prefixLength <= prefixLength && matches(node, key, 0)) {
    if (node.prefixLength === prefixLength) {
      if (node.value !== undefined) untrack(table, node);
      node.value = value;
      track(table, node);
      return;
    }
    parent = node;
    node = node.children[bitAt(key, node.prefixLength)];
  }
  const added = createNode(key, prefixLength, value);
  track(table, added);
  if (node === null) {
    link(trie, parent, added);
    return;
  }
  // `node` is where the new prefix belongs but is not inside it: they share `common`
  // leading bits, fewer than node has. Either the new prefix covers node, or a fork at
  // `common` bits takes both as children.
  const common = Math.min(commonBits(node.words, key), prefixLength);
  if (common === prefixLength) {
    link(trie, parent, added);
    link(trie, added, node);
    return;
  }
  const fork = createNode(maskedWords(address, common), common, undefined);
  link(trie, parent, fork);
  link(trie, fork, node);
  link(trie, fork, added);
}

/**
 * Removes the route for exactly `address/prefixLength` (host bits ignored), whatever its
 * value. Returns false when there was none; longer and shorter prefixes stay.
 */
export function removeAllowedIp<T>(
  table: AllowedIps<T>,
  address: Uint8Array,
  prefixLength: number,
): boolean {
  const trie = trieOf(table, address);
  checkPrefixLength(prefixLength, trie.bits);
  const key = maskedWords(address, prefixLength);
  let node = trie.root;
  while (node !== null && node.prefixLength <= prefixLength && matches(node, key, 0)) {
    if (node.prefixLength === prefixLength) {
      if (node.value === undefined) return false;
      removeNode(table, trie, node);
      return true;
    }
    node = node.children[bitAt(key, node.prefixLength)];
  }
  return false;
}

/** Removes every route to `value`, as when a peer is removed; returns how many there were. */
export function removeAllowedIpsOf<T>(table: AllowedIps<T>, value: T): number {
  const nodes = table.nodesByValue.get(value);
  if (nodes === undefined) return 0;
  const count = nodes.size;
  for (const node of [...nodes]) {
    removeNode(table, node.words.length === 1 ? table.ipv4 : table.ipv6, node);
  }
  return count;
}

/** The prefixes routed to `value`, in the order they were inserted, for config output. */
export function allowedIpsOf<T>(table: AllowedIps<T>, value: T): AllowedIp[] {
  const nodes = table.nodesByValue.get(value);
  if (nodes === undefined) return [];
  return [...nodes].map((node) => ({
    address: wordsToBytes(node.words),
    prefixLength: node.prefixLength,
  }));
}

/**
 * The value of the longest prefix containing `address` (4 or 16 bytes), or undefined.
 * Allocates nothing; its cost grows with the address length, not with the table.
 */
export function lookupAddress<T>(table: AllowedIps<T>, address: Uint8Array): T | undefined {
  const trie = trieOf(table, address);
  readWords(address, 0, trie.bits >>> 5, table.scratch);
  return lookupWords(trie, table.scratch);
}

/**
 * The value routing an outgoing IP packet: the longest prefix containing its destination
 * address, read in place. Undefined when nothing matches, when the version nibble is
 * neither 4 nor 6, or when the packet is shorter than the IPv4 or IPv6 header.
 */
export function lookupPacketDestination<T>(
  table: AllowedIps<T>,
  packet: Uint8Array,
): T | undefined {
  return lookupPacketAddress(table, packet, IPV4_DESTINATION_OFFSET, IPV6_DESTINATION_OFFSET);
}

/**
 * The value owning a received IP packet's source address, read in place; the receiver
 * drops the packet unless this is the peer it came from. Undefined as for
 * `lookupPacketDestination`.
 */
export function lookupPacketSource<T>(table: AllowedIps<T>, packet: Uint8Array): T | undefined {
  return lookupPacketAddress(table, packet, IPV4_SOURCE_OFFSET, IPV6_SOURCE_OFFSET);
}

function lookupPacketAddress<T>(
  table: AllowedIps<T>,
  packet: Uint8Array,
  ipv4Offset: number,
  ipv6Offset: number,
): T | undefined {
  assertBytes(packet, undefined, "packet");
  if (packet.length === 0) return undefined;
  const version = packet[0]! >>> 4;
  if (version === 4) {
    if (packet.length < IPV4_HEADER_BYTES) return undefined;
    readWords(packet, ipv4Offset, IPV4_BYTES / 4, table.scratch);
    return lookupWords(table.ipv4, table.scratch);
  }
  if (version === 6) {
    if (packet.length < IPV6_HEADER_BYTES) return undefined;
    readWords(packet, ipv6Offset, IPV6_BYTES / 4, table.scratch);
    return lookupWords(table.ipv6, table.scratch);
  }
  return undefined;
}

/**
 * Longest-prefix match of `key` (its first bits/32 words). Every node on the way already
 * matched the bits above its parent's prefix length, so each node compares only from the
 * word holding its parent's last bit.
 */
function lookupWords<T>(trie: Trie<T>, key: Uint32Array): T | undefined {
  let found: T | undefined;
  let node = trie.root;
  let fromWord = 0;
  while (node !== null && matches(node, key, fromWord)) {
    if (node.value !== undefined) found = node.value;
    const prefixLength = node.prefixLength;
    if (prefixLength === trie.bits) break;
    fromWord = prefixLength >>> 5;
    node = node.children[bitAt(key, prefixLength)];
  }
  return found;
}

/**
 * Takes out `node`'s value and restores the trie's shape: a node without a value keeps
 * two children, so one with a single child gives way to it, a leaf goes, and a fork the
 * leaf leaves with one child gives way to that child.
 */
function removeNode<T>(table: AllowedIps<T>, trie: Trie<T>, node: TrieNode<T>): void {
  untrack(table, node);
  node.value = undefined;
  const [zero, one] = node.children;
  if (zero !== null && one !== null) return;
  const parent = node.parent;
  const child = zero ?? one;
  node.parent = null;
  if (child !== null) {
    link(trie, parent, child);
    return;
  }
  if (parent === null) {
    trie.root = null;
    return;
  }
  parent.children[bitAt(node.words, parent.prefixLength)] = null;
  if (parent.value === undefined) {
    const sibling = parent.children[0] ?? parent.children[1];
    link(trie, parent.parent, sibling!);
    parent.parent = null;
  }
}

/** Makes `child` the root (when `parent` is null) or the child of `parent` on its side. */
function link<T>(trie: Trie<T>, parent: TrieNode<T> | null, child: TrieNode<T>): void {
  child.parent = parent;
  if (parent === null) trie.root = child;
  else parent.children[bitAt(child.words, parent.prefixLength)] = child;
}

function createNode<T>(
  words: Uint32Array,
  prefixLength: number,
  value: T | undefined,
): TrieNode<T> {
  return { words, prefixLength, value, parent: null, children: [null, null] };
}

function track<T>(table: AllowedIps<T>, node: TrieNode<T>): void {
  const value = node.value as T;
  let nodes = table.nodesByValue.get(value);
  if (nodes === undefined) {
    nodes = new Set();
    table.nodesByValue.set(value, nodes);
  }
  nodes.add(node);
}

function untrack<T>(table: AllowedIps<T>, node: TrieNode<T>): void {
  const value = node.value as T;
  const nodes = table.nodesByValue.get(value);
  if (nodes === undefined) return;
  nodes.delete(node);
  if (nodes.size === 0) table.nodesByValue.delete(value);
}

/** True when `key` lies inside `node`'s prefix, comparing words from `fromWord` on. */
function matches<T>(node: TrieNode<T>, key: Uint32Array, fromWord: number): boolean {
  const prefixLength = node.prefixLength;
  if (prefixLength === 0) return true;
  const lastWord = (prefixLength - 1) >>> 5;
  const words = node.words;
  for (let w = fromWord; w < lastWord; w++) {
    if (words[w] !== key[w]) return false;
  }
  // Only the bits inside the prefix count; the key may have any bits beyond it.
  const mask = -1 << (32 - (prefixLength - (lastWord << 5)));
  return ((key[lastWord]! ^ words[lastWord]!) & mask) === 0;
}

/** How many leading bits two keys of the same family share. */
function commonBits(a: Uint32Array, b: Uint32Array): number {
  for (let w = 0; w < a.length; w++) {
    const difference = a[w]! ^ b[w]!;
    if (difference !== 0) return (w << 5) + Math.clz32(difference);
  }
  return a.length << 5;
}

/** Bit `index` of a key, counting from the most significant bit of its first word. */
function bitAt(words: Uint32Array, index: number): 0 | 1 {
  return ((words[index >>> 5]! >>> (31 - (index & 31))) & 1) as 0 | 1;
}

/** Reads `count` big-endian 32-bit words of `bytes` from `offset` into `out`. */
function readWords(bytes: Uint8Array, offset: number, count: number, out: Uint32Array): void {
  for (let w = 0; w < count; w++) {
    const i = offset + (w << 2);
    out[w] = (bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!;
  }
}

/** A new key holding the first `prefixLength` bits of `address`, the rest zero. */
function maskedWords(address: Uint8Array, prefixLength: number): Uint32Array {
  const words = new Uint32Array(address.length >>> 2);
  readWords(address, 0, words.length, words);
  for (let w = 0; w < words.length; w++) {
    const kept = prefixLength - (w << 5);
    if (kept <= 0) words[w] = 0;
    else if (kept < 32) words[w] = words[w]! & (-1 << (32 - kept));
  }
  return words;
}

function wordsToBytes(words: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(words.length << 2);
  for (let w = 0; w < words.length; w++) {
    const word = words[w]!;
    bytes[w << 2] = word >>> 24;
    bytes[(w << 2) + 1] = word >>> 16;
    bytes[(w << 2) + 2] = word >>> 8;
    bytes[(w << 2) + 3] = word;
  }
  return bytes;
}

/** The trie for `address`'s family; throws unless it is 4 or 16 bytes. */
function trieOf<T>(table: AllowedIps<T>, address: Uint8Array): Trie<T> {
  assertBytes(address, undefined, "address");
  if (address.length === IPV4_BYTES) return table.ipv4;
  if (address.length === IPV6_BYTES) return table.ipv6;
  throw new RangeError(`Expected "address" to be 4 or 16 bytes, got ${address.length}`);
}

function checkPrefixLength(prefixLength: number, bits: number): void {
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > bits) {
    throw new RangeError(
      `Expected "prefixLength" to be an integer from 0 to ${bits}, got ${prefixLength}`,
    );
  }
}
