/** Native and noble providers must agree bit for bit, and both must refuse altered messages. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { AEAD_TAG_BYTES, nobleCrypto } from "../../src/crypto/index.ts";
import { providers } from "../helpers/providers.ts";

const native = providers[1]![1];
const bytes = (length: number) => fc.uint8Array({ minLength: length, maxLength: length });
const aeadInput = fc.record({
  key: bytes(32),
  nonce: bytes(12),
  aad: fc.uint8Array({ maxLength: 64, size: "max" }),
  // size "max": without it fast-check never generates more than 10 elements.
  plaintext: fc.uint8Array({ maxLength: 2000, size: "max" }),
});

describe("native and noble providers", () => {
  test("report which implementation serves each algorithm", () => {
    console.log(`native provider: ${JSON.stringify(native.implementations)}`);
    for (const name of Object.values(native.implementations)) {
      assert.ok(name === "noble" || name === "node:crypto");
    }
  });

  test("ChaCha20-Poly1305 seal gives identical bytes and each opens the other's", () => {
    fc.assert(
      fc.property(aeadInput, ({ key, nonce, aad, plaintext }) => {
        const a = nobleCrypto.aeadSeal(key, nonce, plaintext, aad);
        const b = native.aeadSeal(key, nonce, plaintext, aad);
        assert.deepEqual(b, a);
        assert.deepEqual(native.aeadOpen(key, nonce, a, aad), plaintext);
        assert.deepEqual(nobleCrypto.aeadOpen(key, nonce, b, aad), plaintext);
      }),
      { numRuns: 300 },
    );
  });

  test("seal and open write into a caller's buffer", () => {
    for (const [, crypto] of providers) {
      const key = crypto.randomBytes(32);
      const nonce = new Uint8Array(12);
      const plaintext = crypto.randomBytes(100);
      const message = new Uint8Array(16 + plaintext.length + AEAD_TAG_BYTES);
      const out = message.subarray(16);
      assert.equal(crypto.aeadSeal(key, nonce, plaintext, new Uint8Array(0), out), out);
      const opened = new Uint8Array(plaintext.length);
      assert.equal(crypto.aeadOpen(key, nonce, out, new Uint8Array(0), opened), opened);
      assert.deepEqual(opened, plaintext);
    }
  });

  test("X25519 public keys and shared secrets agree", () => {
    fc.assert(
      fc.property(bytes(32), bytes(32), (a, b) => {
        assert.deepEqual(native.publicKey(a), nobleCrypto.publicKey(a));
        const bPublic = nobleCrypto.publicKey(b);
        assert.deepEqual(native.dh(a, bPublic), nobleCrypto.dh(a, bPublic));
      }),
      { numRuns: 100 },
    );
  });

  for (const [name, crypto] of providers) {
    describe(name, () => {
      test("a flipped bit in ciphertext, tag or AAD fails to open", () => {
        fc.assert(
          fc.property(
            aeadInput,
            fc.nat(),
            fc.integer({ min: 0, max: 7 }),
            fc.boolean(),
            ({ key, nonce, aad, plaintext }, where, bit, inAad) => {
              const sealed = crypto.aeadSeal(key, nonce, plaintext, aad);
              if (inAad && aad.length > 0) {
                const bad = aad.slice();
                bad[where % bad.length]! ^= 1 << bit;
                assert.equal(crypto.aeadOpen(key, nonce, sealed, bad), null);
              } else {
                const bad = sealed.slice();
                bad[where % bad.length]! ^= 1 << bit;
                assert.equal(crypto.aeadOpen(key, nonce, bad, aad), null);
              }
            },
          ),
          { numRuns: 300 },
        );
      });

      test("a wrong key or nonce, or a message shorter than a tag, fails to open", () => {
        const key = crypto.randomBytes(32);
        const nonce = new Uint8Array(12);
        const sealed = crypto.aeadSeal(key, nonce, new Uint8Array(10), new Uint8Array(0));
        const otherKey = key.slice();
        otherKey[0]! ^= 1;
        assert.equal(crypto.aeadOpen(otherKey, nonce, sealed, new Uint8Array(0)), null);
        assert.equal(
          crypto.aeadOpen(key, new Uint8Array(12).fill(1), sealed, new Uint8Array(0)),
          null,
        );
        assert.equal(crypto.aeadOpen(key, nonce, sealed.subarray(0, 15), new Uint8Array(0)), null);
      });

      test("arguments of the wrong size throw a RangeError naming them", () => {
        assert.throws(
          () =>
            crypto.aeadSeal(
              new Uint8Array(31),
              new Uint8Array(12),
              new Uint8Array(0),
              new Uint8Array(0),
            ),
          { name: "RangeError", message: /"key" to be 32 bytes/ },
        );
        assert.throws(
          () =>
            crypto.aeadOpen(
              new Uint8Array(32),
              new Uint8Array(8),
              new Uint8Array(16),
              new Uint8Array(0),
            ),
          { name: "RangeError", message: /"nonce" to be 12 bytes/ },
        );
        assert.throws(() => crypto.dh(new Uint8Array(32), new Uint8Array(33)), {
          name: "RangeError",
          message: /"publicKey"/,
        });
        assert.throws(
          () =>
            crypto.aeadSeal(
              "key" as unknown as Uint8Array,
              new Uint8Array(12),
              new Uint8Array(0),
              new Uint8Array(0),
            ),
          {
            name: "TypeError",
          },
        );
      });

      test("DH with a low-order public key returns null", () => {
        const key = crypto.generatePrivateKey();
        // u = 0 and u = 1 are points of small order (RFC 7748 §6, whitepaper §5.4.7).
        assert.equal(crypto.dh(key, new Uint8Array(32)), null);
        const one = new Uint8Array(32);
        one[0] = 1;
        assert.equal(crypto.dh(key, one), null);
      });

      test("generated private keys are clamped and random", () => {
        const a = crypto.generatePrivateKey();
        const b = crypto.generatePrivateKey();
        assert.notDeepEqual(a, b);
        for (const k of [a, b]) {
          assert.equal(k[0]! & 7, 0);
          assert.equal(k[31]! & 0x80, 0);
          assert.equal(k[31]! & 0x40, 0x40);
        }
      });

      test("XChaCha20-Poly1305 round-trips and refuses a flipped bit", () => {
        const key = crypto.randomBytes(32);
        const nonce = crypto.randomBytes(24);
        const sealed = crypto.xaeadSeal(key, nonce, new Uint8Array([1, 2, 3]), new Uint8Array([9]));
        assert.deepEqual(
          crypto.xaeadOpen(key, nonce, sealed, new Uint8Array([9])),
          new Uint8Array([1, 2, 3]),
        );
        sealed[0]! ^= 1;
        assert.equal(crypto.xaeadOpen(key, nonce, sealed, new Uint8Array([9])), null);
      });
    });
  }
});
