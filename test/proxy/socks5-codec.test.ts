/**
 * The SOCKS5 codec (RFC 1928, RFC 1929): fixed byte vectors for every message both ways,
 * every message split at every position (a prefix is "more", never an error), and random
 * bytes that never throw.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  encodeAddress,
  encodeAuthStatus,
  encodeCredentials,
  encodeGreeting,
  encodeMethodSelection,
  encodeReply,
  encodeRequest,
  encodeUdpDatagram,
  type Parsed,
  parseAuthStatus,
  parseCredentials,
  parseGreeting,
  parseMethodSelection,
  parseReply,
  parseRequest,
  parseUdpDatagram,
  SOCKS_REPLY,
  socksAddress,
} from "../../src/proxy/socks5-codec.ts";

const hex = (text: string) =>
  Uint8Array.from(text.match(/../g) ?? [], (h) => Number.parseInt(h, 16));

interface Vector<T> {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly value: T;
  readonly parse: (bytes: Uint8Array) => Parsed<T>;
  readonly encode: (value: T) => Uint8Array;
}

const vectors: Vector<unknown>[] = [
  {
    name: "greeting, no auth",
    bytes: hex("050100"),
    value: { methods: [0] },
    parse: parseGreeting,
    encode: (v) => encodeGreeting((v as { methods: number[] }).methods),
  },
  {
    name: "greeting, three methods",
    bytes: hex("0503000102"),
    value: { methods: [0, 1, 2] },
    parse: parseGreeting,
    encode: (v) => encodeGreeting((v as { methods: number[] }).methods),
  },
  {
    name: "method selection",
    bytes: hex("0500"),
    value: 0,
    parse: parseMethodSelection,
    encode: (v) => encodeMethodSelection(v as number),
  },
  {
    name: "no acceptable method",
    bytes: hex("05ff"),
    value: 0xff,
    parse: parseMethodSelection,
    encode: (v) => encodeMethodSelection(v as number),
  },
  {
    name: "credentials",
    bytes: hex("0103616c6903707721"),
    value: { username: "ali", password: "pw!" },
    parse: parseCredentials,
    encode: (v) => encodeCredentials(v as { username: string; password: string }),
  },
  {
    name: "credentials, empty",
    bytes: hex("010000"),
    value: { username: "", password: "" },
    parse: parseCredentials,
    encode: (v) => encodeCredentials(v as { username: string; password: string }),
  },
  {
    name: "auth status",
    bytes: hex("0101"),
    value: 1,
    parse: parseAuthStatus,
    encode: (v) => encodeAuthStatus(v as number),
  },
  {
    name: "CONNECT IPv4",
    bytes: hex("050100010a2800020050"),
    value: { command: 1, address: { type: "ipv4", host: "10.40.0.2", port: 80 } },
    parse: parseRequest,
    encode: (v) => encodeRequest(v as never),
  },
  {
    name: "CONNECT domain",
    bytes: hex("05010003096578616d706c652e781f90"),
    value: { command: 1, address: { type: "domain", host: "example.x", port: 8080 } },
    parse: parseRequest,
    encode: (v) => encodeRequest(v as never),
  },
  {
    name: "CONNECT IPv6",
    bytes: hex("05010004fd000000000000000000000000000002ffff"),
    value: { command: 1, address: { type: "ipv6", host: "fd00::2", port: 65535 } },
    parse: parseRequest,
    encode: (v) => encodeRequest(v as never),
  },
  {
    name: "BIND",
    bytes: hex("05020001000000000000"),
    value: { command: 2, address: { type: "ipv4", host: "0.0.0.0", port: 0 } },
    parse: parseRequest,
    encode: (v) => encodeRequest(v as never),
  },
  {
    name: "UDP ASSOCIATE",
    bytes: hex("05030001c0a801011234"),
    value: { command: 3, address: { type: "ipv4", host: "192.168.1.1", port: 0x1234 } },
    parse: parseRequest,
    encode: (v) => encodeRequest(v as never),
  },
  {
    name: "reply succeeded",
    bytes: hex("050000017f000001c001"),
    value: { reply: 0, address: { type: "ipv4", host: "127.0.0.1", port: 49153 } },
    parse: parseReply,
    encode: (v) => encodeReply(v as never),
  },
  {
    name: "reply refused, IPv6",
    bytes: hex("0505000400000000000000000000000000000001 0016".replace(" ", "")),
    value: { reply: 5, address: { type: "ipv6", host: "::1", port: 22 } },
    parse: parseReply,
    encode: (v) => encodeReply(v as never),
  },
  {
    name: "reply with a domain",
    bytes: hex("05000003016101bb"),
    value: { reply: 0, address: { type: "domain", host: "a", port: 443 } },
    parse: parseReply,
    encode: (v) => encodeReply(v as never),
  },
];

describe("SOCKS5 codec: vectors", () => {
  for (const v of vectors) {
    test(`${v.name}: parses and encodes`, () => {
      const parsed = v.parse(v.bytes);
      assert.equal(parsed.status, "ok");
      if (parsed.status !== "ok") return;
      assert.deepEqual(parsed.value, v.value);
      assert.equal(parsed.length, v.bytes.length);
      assert.deepEqual(v.encode(v.value), v.bytes);
    });

    test(`${v.name}: every split is "more", trailing bytes are left alone`, () => {
      for (let cut = 0; cut < v.bytes.length; cut++) {
        assert.deepEqual(v.parse(v.bytes.subarray(0, cut)), { status: "more" }, `cut at ${cut}`);
      }
      const longer = new Uint8Array([...v.bytes, 0xde, 0xad]);
      const parsed = v.parse(longer);
      assert.equal(parsed.status, "ok");
      if (parsed.status === "ok") assert.equal(parsed.length, v.bytes.length);
    });
  }

  test("UDP datagrams: IPv4, domain and IPv6 headers with data", () => {
    const cases = [
      {
        bytes: hex("000000017f00000100356869"),
        value: { fragment: 0, address: { type: "ipv4", host: "127.0.0.1", port: 53 } },
        data: "6869",
      },
      {
        bytes: hex("00000103026e7300350a"),
        value: { fragment: 1, address: { type: "domain", host: "ns", port: 53 } },
        data: "0a",
      },
      {
        bytes: hex("0000000400000000000000000000000000000001 0035".replace(" ", "")),
        value: { fragment: 0, address: { type: "ipv6", host: "::1", port: 53 } },
        data: "",
      },
    ] as const;
    for (const c of cases) {
      const parsed = parseUdpDatagram(c.bytes);
      assert.equal(parsed.status, "ok");
      if (parsed.status !== "ok") continue;
      assert.equal(parsed.value.fragment, c.value.fragment);
      assert.deepEqual(parsed.value.address, c.value.address);
      assert.deepEqual(parsed.value.data, hex(c.data));
      assert.deepEqual(encodeUdpDatagram({ ...c.value, data: hex(c.data) } as never), c.bytes);
      // A datagram is never "more": a cut one is an error.
      for (let cut = 0; cut < c.bytes.length - c.data.length / 2; cut++) {
        assert.equal(parseUdpDatagram(c.bytes.subarray(0, cut)).status, "error", `cut ${cut}`);
      }
    }
    assert.equal(parseUdpDatagram(hex("010000017f0000010035")).status, "error");
  });
});

describe("SOCKS5 codec: bad input", () => {
  test("a wrong version is an error with no reply code", () => {
    for (const parse of [parseGreeting, parseMethodSelection, parseRequest, parseReply]) {
      const result = parse(hex("0401000100"));
      assert.equal(result.status, "error");
      if (result.status === "error") assert.equal(result.reply, undefined);
    }
    assert.equal(parseCredentials(hex("05")).status, "error");
    assert.equal(parseAuthStatus(hex("0500")).status, "error");
  });

  test("a greeting with no method is an error", () => {
    assert.equal(parseGreeting(hex("0500")).status, "error");
  });

  test("an unknown address type answers 0x08; an empty or binary name 0x04", () => {
    assert.deepEqual(parseRequest(hex("05010005")), {
      status: "error",
      error: "unknown address type 5",
      reply: SOCKS_REPLY.ADDRESS_TYPE_NOT_SUPPORTED,
    });
    const empty = parseRequest(hex("050100030000"));
    assert.equal(empty.status === "error" && empty.reply, SOCKS_REPLY.HOST_UNREACHABLE);
    const binary = parseRequest(hex("05010003020a000050"));
    assert.equal(binary.status === "error" && binary.reply, SOCKS_REPLY.HOST_UNREACHABLE);
  });

  test("an unknown command parses (the server answers 0x07)", () => {
    const parsed = parseRequest(hex("050900010102030400ff"));
    assert.equal(parsed.status === "ok" && parsed.value.command, 9);
  });

  test("credentials that are not UTF-8 are an error", () => {
    assert.equal(parseCredentials(hex("0101ff00")).status, "error");
  });

  test("random bytes never throw, and ok lengths are within the input", () => {
    const parsers = [
      parseGreeting,
      parseMethodSelection,
      parseCredentials,
      parseAuthStatus,
      parseRequest,
      parseReply,
      parseUdpDatagram,
    ] as ((b: Uint8Array) => Parsed<unknown>)[];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, socksHead) => {
        if (socksHead && bytes.length > 0) bytes[0] = 5;
        for (const parse of parsers) {
          const result = parse(bytes);
          if (result.status === "ok") assert.ok(result.length <= bytes.length);
        }
      }),
      { numRuns: 3000, seed: 1928 },
    );
  });

  test("encoders refuse what the wire cannot carry", () => {
    assert.throws(() => encodeGreeting([]), RangeError);
    assert.throws(() => encodeAddress({ type: "domain", host: "", port: 1 }), RangeError);
    assert.throws(
      () => encodeAddress({ type: "domain", host: "a".repeat(256), port: 1 }),
      RangeError,
    );
    assert.throws(() => encodeAddress({ type: "ipv4", host: "::1", port: 1 }), RangeError);
    assert.throws(() => encodeAddress({ type: "ipv4", host: "1.2.3.4", port: 65536 }), RangeError);
    assert.throws(() => encodeMethodSelection(256), RangeError);
  });

  test("socksAddress picks the type from the text", () => {
    assert.deepEqual(socksAddress("10.0.0.1", 1), { type: "ipv4", host: "10.0.0.1", port: 1 });
    assert.deepEqual(socksAddress("FD00::0002", 2), { type: "ipv6", host: "fd00::2", port: 2 });
    assert.deepEqual(socksAddress("db.mesh", 3), { type: "domain", host: "db.mesh", port: 3 });
  });
});
