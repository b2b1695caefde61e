/** The `wg setconf` / `wg showconf` file format: reading as config.c does, writing as showconf.c. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { fromBase64, toBase64 } from "../../src/crypto/index.ts";
import { formatIp, parsePrefix } from "../../src/net/ip.ts";
import {
  type ConfigErrorCode,
  formatWgConfig,
  parseWgConfig,
  type WgConfig,
  type WgPeerConfig,
} from "../../src/tunnel/config.ts";

// The keys of the example in wg(8).
const PRIVATE_KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PEER_A = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const PEER_B = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";
const PEER_C = "gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA=";
const PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=";

/** As a person writes it: comments, odd case and spacing, AllowedIPs over two lines. */
const HANDWRITTEN = `# wg0 on the gateway
[Interface]
PrivateKey = ${PRIVATE_KEY}
listenport=51820   # the well-known port
FwMark = 0x1234

[Peer]  # laptop
PublicKey = ${PEER_A}
PresharedKey = ${PSK}
AllowedIPs = 10.192.122.3/32,  fd00::3/128
AllowedIPs = 192.168.0.0 / 16
Endpoint = 192.95.5.67:1234
PersistentKeepalive = 25

[peer]
\tPublicKey\t=\t${PEER_B}
\tEndpoint = [2607:5300:60:6b0::c05f:543]:2468
\tAllowedIPs = 10.192.122.4/32, 2001:DB8:0:0::/64
\tPersistentKeepalive = off

[PEER]
PublicKey = ${PEER_C}
Endpoint = test.wireguard.com:18981
AllowedIPs = 0.0.0.0/0, ::/0
`;

/** What `wg showconf` prints for the same configuration. */
const SHOWCONF = `[Interface]
ListenPort = 51820
FwMark = 0x1234
PrivateKey = ${PRIVATE_KEY}

[Peer]
PublicKey = ${PEER_A}
PresharedKey = ${PSK}
AllowedIPs = 10.192.122.3/32, fd00::3/128, 192.168.0.0/16
Endpoint = 192.95.5.67:1234
PersistentKeepalive = 25

[Peer]
PublicKey = ${PEER_B}
AllowedIPs = 10.192.122.4/32, 2001:db8::/64
Endpoint = [2607:5300:60:6b0::c05f:543]:2468

[Peer]
PublicKey = ${PEER_C}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = test.wireguard.com:18981
`;

function prefixes(...texts: string[]) {
  return texts.map((text) => parsePrefix(text)!);
}

function parsed(text: string): WgConfig {
  const result = parseWgConfig(text);
  if (!result.ok) assert.fail(result.error.message);
  return result.config;
}

describe("parseWgConfig", () => {
  test("reads a handwritten file", () => {
    const expected: WgConfig = {
      privateKey: fromBase64(PRIVATE_KEY),
      listenPort: 51820,
      fwMark: 0x1234,
      peers: [
        {
          publicKey: fromBase64(PEER_A),
          presharedKey: fromBase64(PSK),
          allowedIps: prefixes("10.192.122.3/32", "fd00::3/128", "192.168.0.0/16"),
          endpoint: { host: "192.95.5.67", port: 1234 },
          persistentKeepaliveSeconds: 25,
        },
        {
          publicKey: fromBase64(PEER_B),
          allowedIps: prefixes("10.192.122.4/32", "2001:db8::/64"),
          endpoint: { host: "2607:5300:60:6b0::c05f:543", port: 2468 },
        },
        {
          publicKey: fromBase64(PEER_C),
          allowedIps: prefixes("0.0.0.0/0", "::/0"),
          endpoint: { host: "test.wireguard.com", port: 18981 },
        },
      ],
    };
    assert.deepEqual(parsed(HANDWRITTEN), expected);
  });

  test("round-trips a realistic file through showconf's form", () => {
    assert.equal(formatWgConfig(parsed(HANDWRITTEN)), SHOWCONF);
    assert.equal(formatWgConfig(parsed(SHOWCONF)), SHOWCONF);
    assert.deepEqual(parsed(SHOWCONF), parsed(HANDWRITTEN));
  });

  test("reads an empty file, and CRLF line ends", () => {
    assert.deepEqual(parsed(""), { peers: [] });
    assert.deepEqual(parsed("# nothing\n\n"), { peers: [] });
    assert.deepEqual(parsed(SHOWCONF.replaceAll("\n", "\r\n")), parsed(SHOWCONF));
    assert.deepEqual(parsed(`\uFEFF${SHOWCONF}`), parsed(SHOWCONF));
  });

  test("keeps the last value of a repeated key, as wg does", () => {
    const config = parsed(`[Interface]\nListenPort = 1\nListenPort = 2\n[Interface]\nFwMark = 7`);
    assert.deepEqual(config, { listenPort: 2, fwMark: 7, peers: [] });
    const peer = parsed(
      `[Peer]\nPublicKey = ${PEER_A}\nPersistentKeepalive = 5\nPersistentKeepalive = 0`,
    );
    assert.deepEqual(peer.peers, [{ publicKey: fromBase64(PEER_A), allowedIps: [] }]);
  });

  test("reads FwMark and PersistentKeepalive spellings as config.c does", () => {
    const marks: [string, number][] = [
      ["off", 0],
      ["OFF", 0],
      ["0", 0],
      ["42", 42],
      ["0x2a", 42],
      ["0x2A", 42],
      ["0755", 755],
      ["4294967295", 0xffffffff],
      ["0xffffffff", 0xffffffff],
    ];
    for (const [text, mark] of marks) {
      assert.equal(parsed(`[Interface]\nFwMark = ${text}`).fwMark, mark, text);
    }
    const keepalives: [string, number | undefined][] = [
      ["off", undefined],
      ["0", undefined],
      ["1", 1],
      ["025", 25],
      ["65535", 65535],
    ];
    for (const [text, seconds] of keepalives) {
      const config = parsed(`[Peer]\nPublicKey = ${PEER_A}\nPersistentKeepalive = ${text}`);
      assert.equal(config.peers[0]!.persistentKeepaliveSeconds, seconds, text);
    }
    assert.equal(parsed("[Interface]\nListenPort = 0").listenPort, 0);
  });

  test("keeps host bits of AllowedIPs as written", () => {
    const config = parsed(`[Peer]\nPublicKey = ${PEER_A}\nAllowedIPs = 10.1.2.3/8`);
    assert.deepEqual(config.peers[0]!.allowedIps, prefixes("10.1.2.3/8"));
  });

  /** [file, line, code, text the message must contain]. */
  const errors: [string, number, ConfigErrorCode, string][] = [
    ["[Interface]\n[Tunnel]\nListenPort = 1", 2, "unknown-section", 'unknown section "[Tunnel]"'],
    ["[Interface\nListenPort = 1", 1, "unknown-section", 'unknown section "[Interface"'],
    ["[Interface]\n\nMTU = 1420", 3, "unknown-key", 'unknown key "MTU" in [Interface] (a wg-quick'],
    ["[Interface]\nListenPrt = 1", 2, "unknown-key", 'unknown key "ListenPrt" in [Interface]'],
    ["[Interface]\nEndpoint = a:1", 2, "unknown-key", "(it belongs in [Peer])"],
    [`[Peer]\nPublicKey = ${PEER_A}\nFwMark = 1`, 3, "unknown-key", "(it belongs in [Interface])"],
    [
      "# top\nListenPort = 51820\n[Interface]",
      2,
      "key-outside-section",
      '"ListenPort" comes before',
    ],
    ["[Interface]\nListenPort 51820", 2, "missing-equals", 'expected "Key = value"'],
    ["[Interface]\nListenPort =  # none", 2, "empty-value", "ListenPort has no value"],
    ["[Interface]\nPrivateKey = abc", 2, "invalid-key", "invalid PrivateKey: expected 32 bytes"],
    ["[Interface]\nPrivateKey = AAAA", 2, "invalid-key", "invalid PrivateKey: decodes to 3 bytes"],
    [
      `[Peer]\nPublicKey = ${PEER_A.slice(0, 42)}B=`,
      2,
      "invalid-key",
      `invalid PublicKey "${PEER_A.slice(0, 42)}B=": not canonical base64`,
    ],
    [`[Peer]\nPublicKey = ${PEER_A}\nPresharedKey = ${PSK}A`, 3, "invalid-key", "PresharedKey: "],
    ["[Interface]\nListenPort = 65536", 2, "port-out-of-range", "ListenPort 65536 is out of range"],
    ["[Interface]\nListenPort = http", 2, "invalid-value", 'invalid ListenPort "http"'],
    ["[Interface]\nListenPort = -1", 2, "invalid-value", 'invalid ListenPort "-1"'],
    ["[Interface]\nFwMark = 0x100000000", 2, "invalid-value", 'invalid FwMark "0x100000000"'],
    ["[Interface]\nFwMark = 0X10", 2, "invalid-value", 'invalid FwMark "0X10"'],
    ["[Interface]\nFwMark = on", 2, "invalid-value", 'invalid FwMark "on"'],
    [
      `[Peer]\nPublicKey = ${PEER_A}\n\n# note\nAllowedIPs = 10.0.0.1/32\nAllowedIPs = 10.0.0.0/8, 10.0.0.0/33`,
      6,
      "invalid-value",
      'invalid AllowedIPs "10.0.0.0/33": prefix length must be a number from 0 to 32',
    ],
    [`[Peer]\nAllowedIPs = fd00::/129`, 2, "invalid-value", 'AllowedIPs "fd00::/129"'],
    [`[Peer]\nAllowedIPs = 10.0.0.1,`, 2, "invalid-value", 'AllowedIPs "": empty entry'],
    [`[Peer]\nAllowedIPs = 10.0.0.256`, 2, "invalid-value", "not an IPv4 or IPv6 address"],
    [`[Peer]\nAllowedIPs = +10.0.0.0/8`, 2, "invalid-value", "wg set"],
    [`[Peer]\nEndpoint = 192.0.2.1:65536`, 2, "port-out-of-range", "Endpoint port 65536 is out"],
    [`[Peer]\nEndpoint = 192.0.2.1:0`, 2, "port-out-of-range", "Endpoint port 0 is out"],
    [`[Peer]\nEndpoint = 192.0.2.1`, 2, "invalid-value", 'invalid Endpoint "192.0.2.1"'],
    [`[Peer]\nEndpoint = fd00::1:51820`, 2, "invalid-value", "needs brackets"],
    [`[Peer]\nPersistentKeepalive = 65536`, 2, "invalid-value", 'PersistentKeepalive "65536"'],
    [`[Peer]\nPersistentKeepalive = -1`, 2, "invalid-value", 'PersistentKeepalive "-1"'],
    [`[Interface]\n\n[Peer]\nAllowedIPs = 10.0.0.1`, 3, "missing-public-key", "[Peer] has no"],
    [`[Peer]\nPublicKey = ${PEER_A}\n[Peer]\n# none\n[Interface]`, 3, "missing-public-key", ""],
    [
      `[Peer]\nPublicKey = ${PEER_A}\n\n[Peer]\nPublicKey = ${PEER_B}\n[Peer]\nPublicKey = ${PEER_A}`,
      7,
      "duplicate-peer",
      `duplicate peer PublicKey "${PEER_A}" (first at line 2)`,
    ],
  ];

  for (const [text, line, code, fragment] of errors) {
    test(`reports ${code} at line ${line}: ${JSON.stringify(text.split("\n")[line - 1])}`, () => {
      const result = parseWgConfig(text);
      assert.equal(result.ok, false);
      if (result.ok) return;
      assert.equal(result.error.code, code);
      assert.equal(result.error.line, line);
      assert.ok(result.error.message.startsWith(`line ${line}: `), result.error.message);
      assert.ok(result.error.message.includes(fragment), result.error.message);
    });
  }

  test("never repeats a secret key in an error", () => {
    const secret = PRIVATE_KEY.slice(0, 43);
    const cases = [
      `[Interface]\nPrivateKey = ${secret}`,
      `[Interface]\nPrivateKey ${PRIVATE_KEY}`,
      `[Peer]\nPresharedKey = ${secret}`,
      `PrivateKey ${PRIVATE_KEY}`,
      `[Peer]PrivateKey = ${PRIVATE_KEY}`,
    ];
    for (const text of cases) {
      const result = parseWgConfig(text);
      assert.equal(result.ok, false);
      if (!result.ok) assert.ok(!result.error.message.includes(secret), result.error.message);
    }
  });

  test("never throws on arbitrary text", () => {
    const line = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.constantFrom(
        "[Interface]",
        "[Peer]",
        "#",
        "=",
        "[",
        "AllowedIPs=,",
        `PublicKey=${PEER_A}`,
      ),
      fc
        .tuple(
          fc.constantFrom("PrivateKey", "ListenPort", "FwMark", "PublicKey", "AllowedIPs"),
          fc.string(),
        )
        .map(([key, value]) => `${key}=${value}`),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
        const result = parseWgConfig(lines.join("\n"));
        if (!result.ok) assert.match(result.error.message, /^line \d+: /);
      }),
      { numRuns: 1000 },
    );
  });
});

const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const ipBytes = fc.oneof(
  fc.uint8Array({ minLength: 4, maxLength: 4 }),
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
);
const prefix = ipBytes.chain((address) =>
  fc
    .integer({ min: 0, max: address.length * 8 })
    .map((prefixLength) => ({ address, prefixLength })),
);
const endpoint = fc
  .tuple(
    fc.oneof(
      ipBytes.map(formatIp),
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => `${formatIp(bytes)}%wg0`),
      fc.domain(),
    ),
    fc.integer({ min: 1, max: 65535 }),
  )
  .map(([host, port]) => ({ host, port }));

/** Builds a record with only the optional properties that are defined, as the parser does. */
function defined<T extends object>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as T;
}

const peer = fc
  .tuple(
    key,
    fc.option(key, { nil: undefined }),
    fc.array(prefix, { maxLength: 5 }),
    fc.option(endpoint, { nil: undefined }),
    fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
  )
  .map(
    ([publicKey, presharedKey, allowedIps, endpoint, persistentKeepaliveSeconds]): WgPeerConfig =>
      defined({ publicKey, presharedKey, allowedIps, endpoint, persistentKeepaliveSeconds }),
  );

const config = fc
  .tuple(
    fc.option(key, { nil: undefined }),
    fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
    fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
    fc.uniqueArray(peer, { maxLength: 6, selector: (p) => toBase64(p.publicKey) }),
  )
  .map(
    ([privateKey, listenPort, fwMark, peers]): WgConfig =>
      ({ ...defined({ privateKey, listenPort, fwMark }), peers }) as WgConfig,
  );

describe("formatWgConfig", () => {
  test("writes showconf's layout", () => {
    assert.equal(formatWgConfig({ peers: [] }), "[Interface]\n\n");
    assert.equal(
      formatWgConfig({ fwMark: 0, listenPort: 0, peers: [] }),
      "[Interface]\nListenPort = 0\nFwMark = off\n\n",
    );
    const onePeer = formatWgConfig({
      peers: [{ publicKey: fromBase64(PEER_A), allowedIps: [], persistentKeepaliveSeconds: 0 }],
    });
    assert.equal(onePeer, `[Interface]\n\n[Peer]\nPublicKey = ${PEER_A}\n`);
  });

  test("throws on values no file can hold", () => {
    const publicKey = fromBase64(PEER_A);
    const bad: WgConfig[] = [
      { listenPort: 65536, peers: [] },
      { fwMark: -1, peers: [] },
      { privateKey: new Uint8Array(31), peers: [] },
      { peers: [{ publicKey: new Uint8Array(33), allowedIps: [] }] },
      { peers: [{ publicKey, allowedIps: [], persistentKeepaliveSeconds: 65536 }] },
      { peers: [{ publicKey, allowedIps: [], endpoint: { host: "a b", port: 1 } }] },
      { peers: [{ publicKey, allowedIps: [{ address: new Uint8Array(4), prefixLength: 33 }] }] },
    ];
    for (const c of bad) assert.throws(() => formatWgConfig(c), RangeError);
  });

  test("parsing what it writes gives the same config", () => {
    fc.assert(
      fc.property(config, (c) => assert.deepEqual(parsed(formatWgConfig(c)), c)),
      { numRuns: 500 },
    );
  });

  test("case, spacing and comments do not change what a file means", () => {
    const noise = fc
      .array(fc.constantFrom(" ", "\t", "  "), { maxLength: 2 })
      .map((a) => a.join(""));
    const variant = fc.tuple(config, fc.infiniteStream(fc.tuple(fc.boolean(), noise, noise)));
    fc.assert(
      fc.property(variant, ([c, choices]) => {
        const text = formatWgConfig(c)
          .split("\n")
          .map((line) => {
            const [upper, before, after] = choices.next().value as [boolean, string, string];
            const [name = "", value] = line.split(" = ");
            const spelled = upper ? name.toUpperCase() : name.toLowerCase();
            if (value === undefined) return `${before}${spelled}${after}# ${line}`;
            return `${before}${spelled}${after}=${before}${value.replaceAll(", ", `,${after}`)}`;
          })
          .join("\n");
        assert.deepEqual(parsed(text), c);
      }),
      { numRuns: 300 },
    );
  });
});
