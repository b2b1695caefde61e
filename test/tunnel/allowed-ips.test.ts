/**
 * Cryptokey routing: handcrafted cases for IPv4 and IPv6 (the kinds wireguard-go's
 * `allowedips_test.go` checks), and a property test against a list of prefixes scanned
 * for the longest match, with the trie's shape checked after every run.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  type AllowedIps,
  allowedIpsOf,
  createAllowedIps,
  insertAllowedIp,
  lookupAddress,
  lookupPacketDestination,
  lookupPacketSource,
  removeAllowedIp,
  removeAllowedIpsOf,
} from "../../src/tunnel/allowed-ips.ts";

interface Peer {
  readonly name: string;
}

function v4(text: string): Uint8Array {
  const parts = text.split(".").map(Number);
  assert.equal(parts.length, 4, text);
  return new Uint8Array(parts);
}

function v6(text: string): Uint8Array {
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const [head, tail] = text.split("::");
  const words =
    tail === undefined
      ? groups(head!)
      : [
          ...groups(head!),
          ...new Array<number>(8 - groups(head!).length - groups(tail).length).fill(0),
          ...groups(tail),
        ];
  assert.equal(words.length, 8, text);
  const bytes = new Uint8Array(16);
  words.forEach((word, i) => {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

/** "10.0.0.0/8" or "2001:db8::/32" into an address and a prefix length. */
function prefix(text: string): [Uint8Array, number] {
  const [address, length] = text.split("/");
  return [address!.includes(":") ? v6(address!) : v4(address!), Number(length)];
}

function insert(table: AllowedIps<Peer>, text: string, peer: Peer): void {
  insertAllowedIp(table, ...prefix(text), peer);
}

function lookup(table: AllowedIps<Peer>, text: string): string | undefined {
  return lookupAddress(table, text.includes(":") ? v6(text) : v4(text))?.name;
}

function format(address: Uint8Array, prefixLength: number): string {
  if (address.length === 4) return `${address.join(".")}/${prefixLength}`;
  const words = [];
  for (let i = 0; i < 16; i += 2) words.push(((address[i]! << 8) | address[i + 1]!).toString(16));
  return `${words.join(":")}/${prefixLength}`;
}

function listed(table: AllowedIps<Peer>, peer: Peer): string[] {
  return allowedIpsOf(table, peer).map((p) => format(p.address, p.prefixLength));
}

function ipv4Packet(source: string, destination: string, length = 20): Uint8Array {
  const packet = new Uint8Array(length);
  packet[0] = 0x45;
  packet.set(v4(source), 12);
  packet.set(v4(destination), 16);
  return packet;
}

function ipv6Packet(source: string, destination: string, length = 40): Uint8Array {
  const packet = new Uint8Array(length);
  packet[0] = 0x60;
  packet.set(v6(source), 8);
  packet.set(v6(destination), 24);
  return packet;
}

const [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map((name): Peer => ({ name })) as [
  Peer,
  Peer,
  Peer,
  Peer,
  Peer,
];

describe("allowed IPs: IPv4", () => {
  test("an empty table matches nothing", () => {
    const table = createAllowedIps<Peer>();
    assert.equal(lookup(table, "10.0.0.1"), undefined);
    assert.equal(lookup(table, "::1"), undefined);
  });

  test("the default route 0.0.0.0/0 matches every IPv4 address and no IPv6 one", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "0.0.0.0/0", a);
    for (const address of ["0.0.0.0", "10.1.2.3", "128.0.0.0", "255.255.255.255"]) {
      assert.equal(lookup(table, address), "a", address);
    }
    assert.equal(lookup(table, "::"), undefined);
  });

  test("a /32 matches its one address", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "192.168.4.4/32", a);
    assert.equal(lookup(table, "192.168.4.4"), "a");
    assert.equal(lookup(table, "192.168.4.5"), undefined);
    assert.equal(lookup(table, "192.168.4.3"), undefined);
    assert.equal(lookup(table, "64.168.4.4"), undefined);
  });

  test("the longest of overlapping prefixes wins", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "10.0.0.0/8", a);
    insert(table, "10.1.2.3/32", c);
    insert(table, "10.1.0.0/16", b);
    assert.equal(lookup(table, "10.2.0.1"), "a");
    assert.equal(lookup(table, "10.1.9.9"), "b");
    assert.equal(lookup(table, "10.1.2.3"), "c");
    assert.equal(lookup(table, "10.1.2.4"), "b");
    assert.equal(lookup(table, "11.0.0.0"), undefined);
    insert(table, "0.0.0.0/0", d);
    assert.equal(lookup(table, "11.0.0.0"), "d");
    assert.equal(lookup(table, "10.1.2.3"), "c");
  });

  test("the kernel's selftest table", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "192.168.4.0/24", a);
    insert(table, "192.168.4.4/32", b);
    insert(table, "192.168.0.0/16", c);
    insert(table, "192.95.5.64/27", d);
    insert(table, "192.95.5.65/27", c); // same prefix as the line above: replaces d
    insert(table, "0.0.0.0/0", e);
    insert(table, "10.0.0.0/25", a);
    insert(table, "10.0.0.128/25", b);
    insert(table, "10.1.0.0/30", a);
    insert(table, "10.1.0.4/30", b);
    insert(table, "10.1.0.8/29", c);
    insert(table, "10.1.0.16/29", d);
    const expected: [string, string][] = [
      ["192.168.4.20", "a"],
      ["192.168.4.0", "a"],
      ["192.168.4.4", "b"],
      ["192.168.200.182", "c"],
      ["192.95.5.68", "c"],
      ["192.95.5.96", "e"],
      ["10.0.0.127", "a"],
      ["10.0.0.128", "b"],
      ["10.1.0.3", "a"],
      ["10.1.0.4", "b"],
      ["10.1.0.15", "c"],
      ["10.1.0.16", "d"],
      ["10.1.0.24", "e"],
    ];
    for (const [address, name] of expected) assert.equal(lookup(table, address), name, address);
    assert.deepEqual(listed(table, d), ["10.1.0.16/29"]);
  });

  test("host bits beyond the prefix are masked off", () => {
    const table = createAllowedIps<Peer>();
    const address = v4("192.168.1.77");
    insertAllowedIp(table, address, 24, a);
    assert.deepEqual(address, v4("192.168.1.77"), "the caller's address is not changed");
    assert.deepEqual(listed(table, a), ["192.168.1.0/24"]);
    assert.equal(lookup(table, "192.168.1.1"), "a");
    insert(table, "192.168.1.200/24", b);
    assert.deepEqual(listed(table, a), []);
    assert.deepEqual(listed(table, b), ["192.168.1.0/24"]);
    assert.equal(removeAllowedIp(table, ...prefix("192.168.1.5/24")), true);
    assert.equal(lookup(table, "192.168.1.1"), undefined);
  });

  test("inserting an identical prefix replaces its value", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "10.0.0.0/8", a);
    insert(table, "10.0.0.0/16", a);
    insert(table, "10.0.0.0/8", b);
    assert.equal(lookup(table, "10.9.9.9"), "b");
    assert.equal(lookup(table, "10.0.9.9"), "a");
    assert.deepEqual(listed(table, a), ["10.0.0.0/16"]);
    assert.deepEqual(listed(table, b), ["10.0.0.0/8"]);
    insert(table, "10.0.0.0/8", b);
    assert.deepEqual(listed(table, b), ["10.0.0.0/8"], "listed once");
  });

  test("removing a prefix keeps the longer and shorter ones around it", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "10.0.0.0/8", a);
    insert(table, "10.1.0.0/16", b);
    insert(table, "10.1.2.0/24", c);
    insert(table, "10.1.128.0/24", d);
    assert.equal(removeAllowedIp(table, ...prefix("10.1.0.0/16")), true);
    assert.equal(lookup(table, "10.1.9.9"), "a");
    assert.equal(lookup(table, "10.1.2.9"), "c");
    assert.equal(lookup(table, "10.1.128.9"), "d");
    assert.equal(removeAllowedIp(table, ...prefix("10.1.0.0/16")), false, "already gone");
    assert.equal(removeAllowedIp(table, ...prefix("10.1.0.0/17")), false, "a fork, not a route");
    assert.equal(removeAllowedIp(table, ...prefix("10.1.2.0/25")), false, "never inserted");
    assert.equal(removeAllowedIp(table, ...prefix("10.1.2.0/24")), true);
    assert.equal(removeAllowedIp(table, ...prefix("10.0.0.0/8")), true);
    assert.equal(lookup(table, "10.1.2.9"), undefined);
    assert.equal(lookup(table, "10.1.128.9"), "d");
    assert.equal(removeAllowedIp(table, ...prefix("10.1.128.0/24")), true);
    assert.equal(table.ipv4.root, null, "the trie is empty again");
  });

  test("removing a value removes all its prefixes and nothing else", () => {
    const table = createAllowedIps<Peer>();
    for (const text of ["1.0.0.0/32", "64.0.0.0/32", "128.0.0.0/32", "192.0.0.0/32"]) {
      insert(table, text, a);
    }
    insert(table, "255.0.0.0/32", a);
    insert(table, "192.0.0.0/8", b);
    insert(table, "::/0", a);
    assert.deepEqual(listed(table, a), [
      "1.0.0.0/32",
      "64.0.0.0/32",
      "128.0.0.0/32",
      "192.0.0.0/32",
      "255.0.0.0/32",
      "0:0:0:0:0:0:0:0/0",
    ]);
    assert.equal(removeAllowedIpsOf(table, a), 6);
    assert.deepEqual(listed(table, a), []);
    for (const address of ["1.0.0.0", "64.0.0.0", "128.0.0.0", "255.0.0.0", "::1"]) {
      assert.equal(lookup(table, address), undefined, address);
    }
    assert.equal(lookup(table, "192.0.0.0"), "b");
    assert.equal(removeAllowedIpsOf(table, a), 0);
    assert.equal(removeAllowedIpsOf(table, b), 1);
    assert.equal(table.ipv4.root, null);
    assert.equal(table.ipv6.root, null);
    assert.equal(table.nodesByValue.size, 0);
  });
});

describe("allowed IPs: IPv6", () => {
  test("the default route ::/0 matches every IPv6 address and no IPv4 one", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "::/0", a);
    for (const address of ["::", "::1", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]) {
      assert.equal(lookup(table, address), "a", address);
    }
    assert.equal(lookup(table, "0.0.0.0"), undefined);
  });

  test("a /128 matches its one address", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "2001:db8::1/128", a);
    assert.equal(lookup(table, "2001:db8::1"), "a");
    assert.equal(lookup(table, "2001:db8::"), undefined);
    assert.equal(lookup(table, "2001:db8::3"), undefined);
    assert.equal(lookup(table, "2001:db9::1"), undefined);
  });

  test("the longest of overlapping prefixes wins, across word boundaries", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "2607:5300:6000:6b00::c05f:543/128", d);
    insert(table, "2607:5300:6000:6b00::/64", c);
    insert(table, "::/0", e);
    insert(table, "2404:6800::/32", b);
    insert(table, "2404:6800:4004:800:dead:beef:dead:beef/64", a);
    insert(table, "2404:6800:4004:800:dead:beef:dead:beef/128", d);
    insert(table, "2444:6800:f0e4:800:eeae:beef::/98", b);
    const expected: [string, string][] = [
      ["2607:5300:6000:6b00::c05f:543", "d"],
      ["2607:5300:6000:6b00::c02e:1ee", "c"],
      ["2607:5300:6000:6b01::", "e"],
      ["2404:6800:4004:806::1006", "b"],
      ["2404:6800:4004:806:0:1234:0:5678", "b"],
      ["2404:67ff:4004:806:0:1234:0:5678", "e"],
      ["2404:6801:4004:806:0:1234:0:5678", "e"],
      ["2404:6800:4004:800:0:1234:0:5678", "a"],
      ["2404:6800:4004:800::", "a"],
      ["2404:6800:4004:800:1010:1010:1010:1010", "a"],
      ["2404:6800:4004:800:dead:beef:dead:beef", "d"],
      ["2444:6800:f0e4:800:eeae:beef:1010:1010", "b"],
      ["2444:6800:f0e4:800:eeae:beef:4000:0", "e"],
    ];
    for (const [address, name] of expected) assert.equal(lookup(table, address), name, address);
  });

  test("replacement, removal and removal by value", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "fd00::/8", a);
    insert(table, "fd00:1::/32", b);
    insert(table, "fd00:1::5/128", c);
    insert(table, "fd00:1::/32", c);
    assert.equal(lookup(table, "fd00:1::9"), "c");
    assert.deepEqual(listed(table, b), []);
    assert.deepEqual(listed(table, c), ["fd00:1:0:0:0:0:0:5/128", "fd00:1:0:0:0:0:0:0/32"]);
    assert.equal(removeAllowedIp(table, ...prefix("fd00:1::/32")), true);
    assert.equal(lookup(table, "fd00:1::9"), "a");
    assert.equal(lookup(table, "fd00:1::5"), "c");
    assert.equal(removeAllowedIpsOf(table, c), 1);
    assert.equal(lookup(table, "fd00:1::5"), "a");
    assert.equal(removeAllowedIp(table, ...prefix("fd00::/8")), true);
    assert.equal(table.ipv6.root, null);
  });
});

describe("allowed IPs: packets", () => {
  test("reads the destination and source of IPv4 and IPv6 headers in place", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "10.0.0.0/8", a);
    insert(table, "192.168.0.0/16", b);
    insert(table, "fd00::/8", c);
    insert(table, "2001:db8::/32", d);
    const four = ipv4Packet("192.168.1.1", "10.9.9.9", 60);
    assert.equal(lookupPacketDestination(table, four)?.name, "a");
    assert.equal(lookupPacketSource(table, four)?.name, "b");
    const six = ipv6Packet("2001:db8::1", "fd00::2", 1280);
    assert.equal(lookupPacketDestination(table, six)?.name, "c");
    assert.equal(lookupPacketSource(table, six)?.name, "d");
    // A view into a larger buffer, as a packet in a message buffer is.
    const buffer = new Uint8Array(100).fill(0xff);
    buffer.set(six.subarray(0, 40), 16);
    assert.equal(lookupPacketDestination(table, buffer.subarray(16, 56))?.name, "c");
    assert.equal(lookupPacketDestination(table, ipv4Packet("10.0.0.1", "172.16.0.1")), undefined);
  });

  test("refuses packets that are too short or of another version", () => {
    const table = createAllowedIps<Peer>();
    insert(table, "0.0.0.0/0", a);
    insert(table, "::/0", b);
    assert.equal(lookupPacketDestination(table, ipv4Packet("1.1.1.1", "2.2.2.2", 20))?.name, "a");
    assert.equal(lookupPacketDestination(table, ipv6Packet("::1", "::2", 40))?.name, "b");
    for (const packet of [
      new Uint8Array(0),
      ipv4Packet("1.1.1.1", "2.2.2.2", 20).subarray(0, 19),
      ipv6Packet("::1", "::2", 40).subarray(0, 39),
      ipv6Packet("::1", "::2", 40).subarray(0, 20), // an IPv6 packet as long as an IPv4 header
    ]) {
      assert.equal(lookupPacketDestination(table, packet), undefined, `${packet.length} bytes`);
      assert.equal(lookupPacketSource(table, packet), undefined, `${packet.length} bytes`);
    }
    for (const version of [0, 5, 7, 15]) {
      const packet = ipv6Packet("::1", "::2");
      packet[0] = version << 4;
      assert.equal(lookupPacketDestination(table, packet), undefined, `version ${version}`);
      assert.equal(lookupPacketSource(table, packet), undefined, `version ${version}`);
    }
  });
});

describe("allowed IPs: arguments", () => {
  test("throws RangeError naming an address that is not 4 or 16 bytes", () => {
    const table = createAllowedIps<Peer>();
    for (const length of [0, 3, 5, 15, 17]) {
      const address = new Uint8Array(length);
      const expected = { name: "RangeError", message: /"address"/ };
      assert.throws(() => insertAllowedIp(table, address, 0, a), expected);
      assert.throws(() => removeAllowedIp(table, address, 0), expected);
      assert.throws(() => lookupAddress(table, address), expected);
    }
    assert.throws(() => lookupAddress(table, [10, 0, 0, 1] as unknown as Uint8Array), {
      name: "TypeError",
      message: /"address"/,
    });
  });

  test("throws RangeError naming a prefix length out of range", () => {
    const table = createAllowedIps<Peer>();
    const expected = { name: "RangeError", message: /"prefixLength"/ };
    for (const [address, length] of [
      [v4("10.0.0.0"), 33],
      [v6("::"), 129],
      [v4("10.0.0.0"), -1],
      [v4("10.0.0.0"), 8.5],
      [v6("::"), Number.NaN],
    ] as const) {
      assert.throws(() => insertAllowedIp(table, address, length, a), expected);
      assert.throws(() => removeAllowedIp(table, address, length), expected);
    }
    insertAllowedIp(table, v4("10.0.0.1"), 32, a);
    insertAllowedIp(table, v6("::1"), 128, a);
    assert.equal(allowedIpsOf(table, a).length, 2);
  });

  test("refuses undefined as a value, which lookups use for no match", () => {
    const table = createAllowedIps<Peer | undefined>();
    assert.throws(() => insertAllowedIp(table, v4("10.0.0.0"), 8, undefined), {
      name: "TypeError",
      message: /"value"/,
    });
  });
});

// The reference model: every route in a list, scanned for the longest match.

interface Route {
  address: Uint8Array;
  prefixLength: number;
  peer: Peer;
}

function bit(bytes: Uint8Array, index: number): number {
  return (bytes[index >> 3]! >> (7 - (index & 7))) & 1;
}

function masked(address: Uint8Array, prefixLength: number): Uint8Array {
  const out = new Uint8Array(address.length);
  for (let i = 0; i < prefixLength; i++) out[i >> 3]! |= bit(address, i) << (7 - (i & 7));
  return out;
}

function contains(route: Route, address: Uint8Array): boolean {
  if (route.address.length !== address.length) return false;
  for (let i = 0; i < route.prefixLength; i++) {
    if (bit(route.address, i) !== bit(address, i)) return false;
  }
  return true;
}

function sameRoute(route: Route, address: Uint8Array, prefixLength: number): boolean {
  return (
    route.prefixLength === prefixLength &&
    route.address.length === address.length &&
    route.address.every((byte, i) => byte === address[i])
  );
}

function modelLookup(routes: Route[], address: Uint8Array): Peer | undefined {
  let best: Route | undefined;
  for (const route of routes) {
    if (
      contains(route, address) &&
      (best === undefined || route.prefixLength > best.prefixLength)
    ) {
      best = route;
    }
  }
  return best?.peer;
}

type Node = NonNullable<AllowedIps<Peer>["ipv4"]["root"]>;

/** The trie's shape: parent links, children inside and longer than their parent, forks full. */
function checkShape(table: AllowedIps<Peer>): void {
  let valued = 0;
  function walk(node: Node, parent: Node | null, bits: number): void {
    assert.equal(node.parent, parent, "parent link");
    assert.ok(node.prefixLength <= bits);
    if (node.value !== undefined) valued++;
    else assert.ok(node.children[0] && node.children[1], "a node without value forks two");
    const bytes = wordBytes(node.words);
    assert.deepEqual(bytes, masked(bytes, node.prefixLength), "host bits zero");
    node.children.forEach((child, side) => {
      if (child === null) return;
      assert.ok(child.prefixLength > node.prefixLength, "child longer than parent");
      const childBytes = wordBytes(child.words);
      assert.deepEqual(masked(childBytes, node.prefixLength), bytes, "child inside parent");
      assert.equal(bit(childBytes, node.prefixLength), side, "child on its side");
      walk(child, node, bits);
    });
  }
  if (table.ipv4.root) walk(table.ipv4.root, null, 32);
  if (table.ipv6.root) walk(table.ipv6.root, null, 128);
  let tracked = 0;
  for (const nodes of table.nodesByValue.values()) tracked += nodes.size;
  assert.equal(tracked, valued, "every valued node is tracked once");
}

function wordBytes(words: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(words.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i]!);
  return bytes;
}

type Operation =
  | { kind: "insert"; address: number; flip: number; prefixLength: number; peer: number }
  | { kind: "remove"; address: number; flip: number; prefixLength: number }
  | { kind: "removePeer"; peer: number }
  | { kind: "lookup"; address: number; flip: number };

/**
 * Operations on addresses drawn from a few base addresses, each maybe with one bit
 * flipped, so that prefixes overlap, share long stems and fork at every depth.
 */
function operations(bits: number): fc.Arbitrary<Operation[]> {
  const address = fc.nat(3);
  const flip = fc.integer({ min: -1, max: bits - 1 });
  const prefixLength = fc.oneof(
    fc.integer({ min: 0, max: bits }),
    fc.constantFrom(...[0, 8, 24, 31, 32, 64, 127, 128].filter((length) => length <= bits)),
  );
  const peer = fc.nat(3);
  return fc.array(
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant("insert" as const),
          address,
          flip,
          prefixLength,
          peer,
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({ kind: fc.constant("remove" as const), address, flip, prefixLength }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("removePeer" as const), peer }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant("lookup" as const), address, flip }) },
    ) as fc.Arbitrary<Operation>,
    { maxLength: 120, size: "max" },
  );
}

function propertyFor(bytes: 4 | 16): void {
  const bits = bytes * 8;
  const byte = fc.oneof(fc.constantFrom(0, 0xff, 0x80, 0x7f, 10), fc.integer({ min: 0, max: 255 }));
  const base = fc.uint8Array({ minLength: bytes, maxLength: bytes }).chain((random) =>
    fc.array(byte, { minLength: bytes, maxLength: bytes }).map((chosen) =>
      // Half the bases random, half from a handful of byte values, to share stems.
      random[0]! & 1 ? random : new Uint8Array(chosen),
    ),
  );
  test(`agrees with a scan of all routes over random operations (${bits}-bit addresses)`, () => {
    fc.assert(
      fc.property(
        fc.array(base, { minLength: 4, maxLength: 4 }),
        operations(bits),
        (bases, ops) => {
          const peers = ["p0", "p1", "p2", "p3"].map((name): Peer => ({ name }));
          const table = createAllowedIps<Peer>();
          let routes: Route[] = [];
          const seen: Uint8Array[] = [];
          const addressOf = (index: number, flip: number): Uint8Array => {
            const address = Uint8Array.from(bases[index]!);
            if (flip >= 0) address[flip >> 3]! ^= 1 << (7 - (flip & 7));
            seen.push(address);
            return address;
          };
          for (const op of ops) {
            if (op.kind === "insert") {
              const address = addressOf(op.address, op.flip);
              const peer = peers[op.peer]!;
              insertAllowedIp(table, address, op.prefixLength, peer);
              const key = masked(address, op.prefixLength);
              const existing = routes.find((r) => sameRoute(r, key, op.prefixLength));
              if (existing) existing.peer = peer;
              else routes.push({ address: key, prefixLength: op.prefixLength, peer });
            } else if (op.kind === "remove") {
              const address = addressOf(op.address, op.flip);
              const key = masked(address, op.prefixLength);
              const count = routes.length;
              routes = routes.filter((r) => !sameRoute(r, key, op.prefixLength));
              assert.equal(removeAllowedIp(table, address, op.prefixLength), routes.length < count);
            } else if (op.kind === "removePeer") {
              const peer = peers[op.peer]!;
              const count = routes.length;
              routes = routes.filter((r) => r.peer !== peer);
              assert.equal(removeAllowedIpsOf(table, peer), count - routes.length);
            } else {
              const address = addressOf(op.address, op.flip);
              assert.equal(lookupAddress(table, address), modelLookup(routes, address));
            }
          }
          for (const address of seen) {
            assert.equal(lookupAddress(table, address), modelLookup(routes, address));
          }
          for (const peer of peers) {
            const expected = routes
              .filter((r) => r.peer === peer)
              .map((r) => format(r.address, r.prefixLength))
              .sort();
            assert.deepEqual(listed(table, peer).sort(), expected, peer.name);
          }
          checkShape(table);
        },
      ),
      { numRuns: 200 },
    );
  });
}

describe("allowed IPs against a scan of all routes", () => {
  propertyFor(4);
  propertyFor(16);
});
