/** The wg-quick file and QR code `weft invite --wireguard` prints for a stock WireGuard client. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { encode } from "uqr";
import { renderQr, renderWgQuick } from "../../src/daemon/wireguard-leaf.ts";

const CONFIG = {
  privateKey: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
  address: "10.40.128.1",
  gatewayKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
  endpoint: "192.0.2.1:51820",
  meshRange: "10.40.0.0/16",
  dnsServer: "10.40.128.0",
  domain: "weft.internal.",
  comment: "weft leaf phone\nof mesh x",
};

test("the wg-quick file has the interface, DNS through the gateway and the gateway as its only peer", () => {
  const text = renderWgQuick(CONFIG);
  const lines = text.split("\n");
  assert.equal(
    lines[0],
    "# weft leaf phone of mesh x",
    "a newline in the comment cannot start a line",
  );
  assert.deepEqual(lines.slice(1, 5), [
    "[Interface]",
    `PrivateKey = ${CONFIG.privateKey}`,
    "Address = 10.40.128.1/32",
    "DNS = 10.40.128.0, weft.internal.",
  ]);
  assert.deepEqual(lines.slice(6, 11), [
    "[Peer]",
    `PublicKey = ${CONFIG.gatewayKey}`,
    "Endpoint = 192.0.2.1:51820",
    "AllowedIPs = 10.40.0.0/16",
    "PersistentKeepalive = 25",
  ]);
  assert.equal(text.match(/^\[Peer\]$/gm)?.length, 1, "one peer: the gateway");
  assert.ok(
    !/^DNS/m.test(renderWgQuick({ ...CONFIG, dnsServer: undefined })),
    "no DNS line without a DNS server",
  );
});

test("the QR code is a square of half blocks as big as the encoded configuration needs", () => {
  const text = renderWgQuick(CONFIG);
  const qr = renderQr(text).trimEnd().split("\n");
  const size = encode(text, { border: 2 }).size;
  assert.equal(qr.length, Math.ceil(size / 2), "two modules per text row");
  for (const row of qr) assert.equal([...row].length, size, "one character per module column");
  assert.ok(
    qr.every((row) => /^[ ▀▄█]+$/.test(row)),
    "only half-block characters",
  );
  assert.ok(size >= 41, `a config of ${text.length} bytes needs version 6 or more (size ${size})`);
});
