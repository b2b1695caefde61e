/**
 * Signed membership records: the canonical encoding pinned, sign then verify, any flipped
 * bit fails, and the decoder refuses bad bytes with a reason, never throwing.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { equalBytes, fromHex, toHex } from "../../src/crypto/bytes.ts";
import {
  canonicalCbor,
  decodeSignedRecord,
  encodeSignedRecord,
  MAX_SIGNED_RECORD_BYTES,
  recordToWire,
  signedMessage,
  signRecord,
  verifyRecord,
} from "../../src/membership/records.ts";
import { admission, admit, genesis, identity, MESH_ID, OTHER_MESH_ID, remove } from "./helpers.ts";

const A = identity(0);
const B = identity(1);

describe("membership records", () => {
  it("encodes a fixed record canonically (pinned bytes)", () => {
    const record = { ...admission(B, A), nickname: "b" };
    assert.equal(
      toHex(canonicalCbor(recordToWire(record))),
      "880101582002020202020202020202020202020202020202020202020202020202020202025820d5" +
        "af25e204ad03d0a26e236996404f1be51a60948bcc026cd084a83690b756d3616258200101010101" +
        "01010101010101010101010101010101010101010101010101010150070707070707070707070707" +
        "070707071b0000018bcfe56800",
    );
    assert.equal(
      toHex(signedMessage(MESH_ID, record)).slice(0, 2 + 2 + 36 + 2 + 32),
      `83${"72"}${toHex(new TextEncoder().encode("weft membership v1"))}50${toHex(MESH_ID)}`,
    );
  });

  it("pins the signed bytes of a fixed genesis (Ed25519 is deterministic)", () => {
    const signed = genesis(A);
    assert.equal(toHex(signed.bytes), PINNED_GENESIS_HEX);
    assert.equal(toHex(encodeSignedRecord(signed)), PINNED_GENESIS_HEX);
  });

  it("verifies what it signed, round-trips through bytes, and refuses another mesh", () => {
    for (const signed of [genesis(A), admit(B, A), remove(B, A)]) {
      assert.ok(verifyRecord(MESH_ID, signed), "a fresh signature verifies");
      assert.ok(!verifyRecord(OTHER_MESH_ID, signed), "the signature is bound to the mesh id");
      const decoded = decodeSignedRecord(signed.bytes);
      assert.ok(decoded.ok, `decodes: ${decoded.ok ? "" : decoded.error}`);
      assert.deepEqual(decoded.value.record, signed.record);
      assert.deepEqual(decoded.value.hash, signed.hash);
      assert.ok(verifyRecord(MESH_ID, decoded.value), "the decoded record verifies");
    }
  });

  it("fails verification, or decoding, with any single bit flipped", () => {
    for (const signed of [admit(B, A), remove(B, A)]) {
      for (let bit = 0; bit < signed.bytes.length * 8; bit++) {
        const bytes = signed.bytes.slice();
        bytes[bit >> 3]! ^= 1 << (bit & 7);
        const decoded = decodeSignedRecord(bytes);
        if (!decoded.ok) continue;
        assert.ok(!verifyRecord(MESH_ID, decoded.value), `bit ${bit} flipped still verifies`);
      }
    }
  });

  it("refuses a valid signature moved onto a different record", () => {
    const signed = admit(B, A);
    const other = signRecord(MESH_ID, { ...admission(B, A), nickname: "mallory" }, A.signingSecret);
    const forged = { ...other, signature: signed.signature };
    assert.ok(!verifyRecord(MESH_ID, forged), "a signature of another record does not verify");
  });

  it("refuses malformed records with a reason", () => {
    const cases: Array<[unknown, RegExp]> = [
      ["text", /not bytes/],
      [new Uint8Array(0), /not CBOR/],
      [new Uint8Array(MAX_SIGNED_RECORD_BYTES + 1), /more than 512/],
      [canonicalCbor([1, 2]), /3-element/],
      [canonicalCbor([[1, 2, 3], new Uint8Array(32), new Uint8Array(64)]), /version/],
      [canonicalCbor([[3, 1], new Uint8Array(32), new Uint8Array(64)]), /unknown record kind 3/],
      [
        canonicalCbor([
          [2, 1, new Uint8Array(32), new Uint8Array(31), 5],
          new Uint8Array(32),
          new Uint8Array(64),
        ]),
        /removal keys/,
      ],
      [
        canonicalCbor([
          [2, 1, new Uint8Array(32), new Uint8Array(32), -5],
          new Uint8Array(32),
          new Uint8Array(64),
        ]),
        /at is not/,
      ],
      [
        canonicalCbor([
          [2, 1, new Uint8Array(32), new Uint8Array(32), 5],
          new Uint8Array(32),
          new Uint8Array(63),
        ]),
        /signature/,
      ],
      [
        canonicalCbor([
          recordToWire({ ...admission(B, A), nickname: "x".repeat(65) }),
          new Uint8Array(32),
          new Uint8Array(64),
        ]),
        /nickname is longer/,
      ],
      [
        canonicalCbor([
          recordToWire({ ...admission(B, A), nickname: "a\nb" }),
          new Uint8Array(32),
          new Uint8Array(64),
        ]),
        /control/,
      ],
      [
        canonicalCbor([
          recordToWire({ ...admission(B, A), invitation: new Uint8Array(3) }),
          new Uint8Array(32),
          new Uint8Array(64),
        ]),
        /invitation/,
      ],
      // 0x18 0x05: the integer 5 in a longer form than needed.
      [Uint8Array.from([0x83, 0x85, 0x02, 0x01, 0x40, 0x40, 0x18, 0x05, 0x40, 0x40]), /CBOR|keys/],
    ];
    for (const [bytes, reason] of cases) {
      const decoded = decodeSignedRecord(bytes);
      assert.ok(!decoded.ok, `accepted ${String(bytes)}`);
      assert.match(decoded.error, reason);
    }
  });

  it("refuses a non-canonical encoding of a valid record", () => {
    const signed = remove(B, A);
    // The record's kind, 2, spelt in two bytes (0x18 0x02) instead of one.
    const hex = toHex(signed.bytes);
    assert.ok(hex.startsWith("83850201"), "a removal starts as expected");
    const decoded = decodeSignedRecord(fromHex(`8385180201${hex.slice(8)}`));
    assert.ok(!decoded.ok, "a longer spelling of an integer is refused");
  });

  it("never throws on random, truncated or extended bytes", () => {
    const valid = admit(B, A).bytes;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc.integer({ min: 0, max: valid.length - 1 }).map((n) => valid.slice(0, n)),
          fc
            .uint8Array({ minLength: 1, maxLength: 40 })
            .map((tail) => Uint8Array.from([...valid, ...tail])),
          fc
            .tuple(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 1, max: 255 }))
            .map(([i, x]) => {
              const b = valid.slice();
              b[i]! ^= x;
              return b;
            }),
        ),
        (bytes) => {
          const decoded = decodeSignedRecord(bytes);
          if (decoded.ok && !equalBytes(bytes, valid)) {
            assert.ok(!verifyRecord(MESH_ID, decoded.value), "a changed record does not verify");
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

const PINNED_GENESIS_HEX =
  "83880101582001010101010101010101010101010101010101010101010101010101010101015820" +
  "97ffc883c80bee7237ef95d9b9b703d4ad63e60a21e605867682b75b8b3f4303666e6f64652d30f6f6" +
  "1b0000018bcfe56800582097ffc883c80bee7237ef95d9b9b703d4ad63e60a21e605867682b75b8b3f" +
  "43035840be19d2f0dba5beef3945238cd25ee40e44daedfa0da955d8c6aac6d60dfe1024fd44d2ae7a" +
  "2be926eaf138a34df6245cb84d8d71672dd863325a27ec59b32e0c";
