/** IP address, prefix and endpoint text: what glibc's inet_pton accepts, RFC 5952 output. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { toHex } from "../../src/crypto/index.ts";
import {
  formatEndpoint,
  formatIp,
  formatPrefix,
  parseEndpoint,
  parseIp,
  parsePrefix,
} from "../../src/net/ip.ts";

/** Expected bytes as hex; the invalid cases were checked against glibc's inet_pton. */
const VALID_IPS: [string, string][] = [
  ["0.0.0.0", "00000000"],
  ["10.0.0.1", "0a000001"],
  ["192.168.100.255", "c0a864ff"],
  ["255.255.255.255", "ffffffff"],
  ["::", "00000000000000000000000000000000"],
  ["::1", "00000000000000000000000000000001"],
  ["1::", "00010000000000000000000000000000"],
  ["fd00::", "fd000000000000000000000000000000"],
  ["2001:db8::1", "20010db8000000000000000000000001"],
  ["2001:DB8:0:0:0:0:0:1", "20010db8000000000000000000000001"],
  ["2001:0db8:0000:0000:0000:0000:0000:0001", "20010db8000000000000000000000001"],
  ["1:2:3:4:5:6:7:8", "00010002000300040005000600070008"],
  ["1:2:3:4:5:6:7::", "00010002000300040005000600070000"],
  ["::2:3:4:5:6:7:8", "00000002000300040005000600070008"],
  ["fe80::1:2", "fe800000000000000000000000010002"],
  ["::ffff:1.2.3.4", "00000000000000000000ffff01020304"],
  ["::1.2.3.4", "00000000000000000000000001020304"],
  ["::0:1.2.3.4", "00000000000000000000000001020304"],
  ["1:2:3:4:5:6:1.2.3.4", "00010002000300040005000601020304"],
  ["64:ff9b::192.0.2.33", "0064ff9b0000000000000000c0000221"],
];

const INVALID_IPS = [
  "",
  " 10.0.0.1",
  "10.0.0.1 ",
  "1.2.3",
  "1.2.3.4.5",
  "10.1",
  "256.0.0.0",
  "1.2.3.04",
  "01.2.3.4",
  "00.1.2.3",
  "0x1.2.3.4",
  "1..2.3",
  "1.2.3.-4",
  "１.2.3.4",
  ":",
  ":::",
  ":1::",
  "1:",
  ":1",
  "1:::2",
  "1::2::3",
  "1::2:3:4:5:6:7:8",
  "1:2:3:4:5:6:7:8::",
  "::1:2:3:4:5:6:7:8",
  "1:2:3:4:5:6:7",
  "1:2:3:4:5:6:7:8:9",
  "00001::",
  "g::",
  "fe80::1%eth0",
  "::ffff:01.2.3.4",
  "::ffff:256.1.1.1",
  "::ffff:1.2.3.4.5",
  "::1.2.3",
  "::1.2.3.4:5",
  "1.2.3.4::",
  "1:2:3:4:5:6:7:1.2.3.4",
  "1:2:3:4:5:1.2.3.4",
  "[::1]",
  "::1/128",
  "0000:0000:0000:0000:0000:0000:0000:0000:0",
];

/** RFC 5952 §4 and §5 examples, plus edges of the zero-run rule. */
const CANONICAL: [string, string][] = [
  ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
  ["2001:0db8::0001", "2001:db8::1"],
  ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
  ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
  ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
  ["2001:DB8::AAAA", "2001:db8::aaaa"],
  ["0:0:0:0:0:0:0:0", "::"],
  ["0:0:0:0:0:0:0:1", "::1"],
  ["1:0:0:0:0:0:0:0", "1::"],
  ["1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"],
  ["0:1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7"],
  ["1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"],
  ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
  ["::ffff:c000:201", "::ffff:192.0.2.1"],
  ["::ffff:0:0", "::ffff:0.0.0.0"],
  // IPv4-compatible addresses are deprecated (RFC 4291 §2.5.5.1): plain hex, unlike glibc.
  ["::192.0.2.1", "::c000:201"],
  ["::ffff:0:c000:201", "::ffff:0:c000:201"],
  ["10.0.0.1", "10.0.0.1"],
];

const ipv4Bytes = fc.uint8Array({ minLength: 4, maxLength: 4 });
// Groups biased to zero, so runs of zeros of every length and position turn up.
const ipv6Bytes = fc
  .array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
    minLength: 8,
    maxLength: 8,
  })
  .map((groups) => {
    const out = new Uint8Array(16);
    const view = new DataView(out.buffer);
    for (const [i, group] of groups.entries()) view.setUint16(2 * i, group);
    return out;
  });
const anyIpBytes = fc.oneof(ipv4Bytes, ipv6Bytes);

describe("parseIp", () => {
  test("reads every valid spelling to the expected bytes", () => {
    for (const [text, hex] of VALID_IPS) assert.equal(toHex(parseIp(text)!), hex, text);
  });

  test("refuses what inet_pton refuses, without throwing", () => {
    for (const text of INVALID_IPS) assert.equal(parseIp(text), undefined, text);
  });

  test("never throws on arbitrary text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (text) => {
        const bytes = parseIp(text);
        assert.ok(bytes === undefined || bytes.length === 4 || bytes.length === 16);
      }),
    );
  });

  test("reads the uncompressed, uppercase, zero-padded spelling of any IPv6 address", () => {
    fc.assert(
      fc.property(ipv6Bytes, (bytes) => {
        const view = new DataView(bytes.buffer);
        const groups = Array.from({ length: 8 }, (_, i) =>
          view
            .getUint16(2 * i)
            .toString(16)
            .toUpperCase()
            .padStart(4, "0"),
        );
        assert.deepEqual(parseIp(groups.join(":")), bytes);
      }),
    );
  });
});

describe("formatIp", () => {
  test("writes RFC 5952 canonical text", () => {
    for (const [input, expected] of CANONICAL) assert.equal(formatIp(parseIp(input)!), expected);
  });

  test("reads back to the same bytes, and is already canonical", () => {
    fc.assert(
      fc.property(anyIpBytes, (bytes) => {
        const text = formatIp(bytes);
        assert.deepEqual(parseIp(text), bytes);
        assert.equal(formatIp(parseIp(text)!), text);
        assert.equal(text, text.toLowerCase());
        assert.ok(text.length <= 39, text);
        // RFC 5952 §4.2.2: `::` never stands for a single zero group.
        if (text.includes("::")) assert.ok(text.split(":").length < 9, text);
      }),
      { numRuns: 2000 },
    );
  });

  test("writes a subarray's own bytes", () => {
    const buffer = new Uint8Array([9, 9, 0x20, 0x01, 0x0d, 0xb8, ...new Uint8Array(11), 1, 9]);
    assert.equal(formatIp(buffer.subarray(2, 18)), "2001:db8::1");
    assert.equal(formatIp(buffer.subarray(0, 4)), "9.9.32.1");
  });

  test("throws on bytes that are not an address", () => {
    assert.throws(() => formatIp(new Uint8Array(5)), RangeError);
    assert.throws(() => formatIp("10.0.0.1" as unknown as Uint8Array), TypeError);
  });
});

describe("parsePrefix and formatPrefix", () => {
  test("read valid prefixes", () => {
    const cases: [string, string, number][] = [
      ["10.0.0.0/8", "0a000000", 8],
      ["0.0.0.0/0", "00000000", 0],
      ["192.168.1.7", "c0a80107", 32],
      ["192.168.1.7/32", "c0a80107", 32],
      ["10.0.0.0/08", "0a000000", 8],
      ["10.1.2.3/8", "0a010203", 8],
      ["fd00::/64", "fd000000000000000000000000000000", 64],
      ["::/0", "00000000000000000000000000000000", 0],
      ["::1", "00000000000000000000000000000001", 128],
      ["::ffff:10.0.0.0/104", "00000000000000000000ffff0a000000", 104],
    ];
    for (const [text, hex, prefixLength] of cases) {
      const prefix = parsePrefix(text);
      assert.ok(prefix, text);
      assert.equal(toHex(prefix.address), hex, text);
      assert.equal(prefix.prefixLength, prefixLength, text);
    }
  });

  test("refuse invalid prefixes", () => {
    const cases = [
      "",
      "/8",
      "10.0.0.0/",
      "10.0.0.0/33",
      "fd00::/129",
      "10.0.0.0/-1",
      "10.0.0.0/+8",
      "10.0.0.0/8/8",
      "10.0.0.0/ 8",
      "10.0.0.0/8.0",
      "10.0.0.0/0x8",
      "10.0.0/8",
      "fd00::/1e2",
      "fd00::%eth0/64",
    ];
    for (const text of cases) assert.equal(parsePrefix(text), undefined, text);
  });

  test("format with the length always written", () => {
    assert.equal(formatPrefix(parsePrefix("10.0.0.1")!), "10.0.0.1/32");
    assert.equal(formatPrefix(parsePrefix("FD00:0::/64")!), "fd00::/64");
    assert.equal(formatPrefix(parsePrefix("10.0.0.0/08")!), "10.0.0.0/8");
  });

  test("formatting refuses an impossible length", () => {
    const address = new Uint8Array(4);
    assert.throws(() => formatPrefix({ address, prefixLength: 33 }), RangeError);
    assert.throws(() => formatPrefix({ address, prefixLength: -1 }), RangeError);
    assert.throws(() => formatPrefix({ address, prefixLength: 1.5 }), RangeError);
  });

  test("round-trip any prefix", () => {
    const prefix = anyIpBytes.chain((address) =>
      fc
        .integer({ min: 0, max: address.length * 8 })
        .map((prefixLength) => ({ address, prefixLength })),
    );
    fc.assert(
      fc.property(prefix, (p) => assert.deepEqual(parsePrefix(formatPrefix(p)), p)),
      { numRuns: 1000 },
    );
  });
});

describe("parseEndpoint and formatEndpoint", () => {
  test("read valid endpoints, keeping the host as written", () => {
    const cases: [string, string, number][] = [
      ["192.0.2.1:51820", "192.0.2.1", 51820],
      ["[2001:db8::1]:51820", "2001:db8::1", 51820],
      ["[2001:DB8::1]:1", "2001:DB8::1", 1],
      ["[fe80::1%eth0]:51820", "fe80::1%eth0", 51820],
      ["[::ffff:192.0.2.1]:65535", "::ffff:192.0.2.1", 65535],
      ["vpn.example.com:51820", "vpn.example.com", 51820],
      ["vpn.example.com.:51820", "vpn.example.com.", 51820],
      ["localhost:8080", "localhost", 8080],
      ["peer-1_x.internal:051820", "peer-1_x.internal", 51820],
    ];
    for (const [text, host, port] of cases) {
      assert.deepEqual(parseEndpoint(text), { host, port }, text);
    }
  });

  test("refuse invalid endpoints", () => {
    const cases = [
      "",
      "192.0.2.1",
      "192.0.2.1:",
      ":51820",
      "192.0.2.1:0",
      "192.0.2.1:65536",
      "192.0.2.1:-1",
      "192.0.2.1:http",
      "192.0.2.1:5 1",
      "10.1:51820",
      "256.0.0.1:51820",
      "2001:db8::1:51820",
      "[2001:db8::1]",
      "[2001:db8::1]:",
      "[2001:db8::1]51820",
      "[2001:db8::1:51820",
      "[192.0.2.1]:51820",
      "[vpn.example.com]:51820",
      "[fe80::1%]:51820",
      "[fe80::1%eth 0]:51820",
      "host name:51820",
      "-vpn.example.com:51820",
      "vpn..example.com:51820",
      `${"a".repeat(64)}.com:51820`,
      `${"a.".repeat(127)}a:51820`,
    ];
    for (const text of cases) assert.equal(parseEndpoint(text), undefined, text);
  });

  test("format with brackets around IPv6 hosts", () => {
    assert.equal(formatEndpoint({ host: "192.0.2.1", port: 51820 }), "192.0.2.1:51820");
    assert.equal(formatEndpoint({ host: "2001:db8::1", port: 51820 }), "[2001:db8::1]:51820");
    assert.equal(formatEndpoint({ host: "fe80::1%wg0", port: 1 }), "[fe80::1%wg0]:1");
    assert.equal(formatEndpoint({ host: "example.com", port: 65535 }), "example.com:65535");
  });

  test("formatting refuses what would not read back", () => {
    assert.throws(() => formatEndpoint({ host: "192.0.2.1", port: 0 }), RangeError);
    assert.throws(() => formatEndpoint({ host: "192.0.2.1", port: 1.5 }), RangeError);
    assert.throws(() => formatEndpoint({ host: "not a host", port: 1 }), RangeError);
  });

  test("round-trip endpoints of addresses and names", () => {
    const host = fc.oneof(anyIpBytes.map(formatIp), fc.domain());
    const port = fc.integer({ min: 1, max: 65535 });
    const endpoint = fc.tuple(host, port).map(([host, port]) => ({ host, port }));
    fc.assert(
      fc.property(endpoint, (e) => assert.deepEqual(parseEndpoint(formatEndpoint(e)), e)),
      { numRuns: 1000 },
    );
  });

  test("never throw on arbitrary text", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (text) => {
        parseEndpoint(text);
        parsePrefix(text);
      }),
    );
  });
});
