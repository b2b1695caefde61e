/** Noise_IKpsk2 against the cacophony test vector (generic prologue), with both providers. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fromHex, toHex } from "../../src/crypto/index.ts";
import {
  initialState,
  readInitiation,
  readResponse,
  split,
  writeInitiation,
  writeResponse,
} from "../../src/tunnel/noise.ts";
import { providers } from "../helpers/providers.ts";
import { loadVectors } from "../helpers/vectors.ts";

interface NoiseVector {
  protocol_name: string;
  init_prologue: string;
  init_psks: string[];
  init_static: string;
  init_ephemeral: string;
  init_remote_static: string;
  resp_static: string;
  resp_ephemeral: string;
  handshake_hash: string;
  messages: Array<{ payload: string; ciphertext: string }>;
}

const vector = loadVectors<NoiseVector>("noise-ikpsk2")[0]!;

function nonce(counter: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(counter), true);
  return n;
}

for (const [providerName, crypto] of providers) {
  describe(`Noise_IKpsk2 (${providerName} provider)`, () => {
    test("reproduces the cacophony vector byte for byte, both directions", () => {
      assert.equal(vector.protocol_name, "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s");
      const prologue = fromHex(vector.init_prologue);
      const psk = fromHex(vector.init_psks[0]!);
      const initStatic = fromHex(vector.init_static);
      const respStatic = fromHex(vector.resp_static);
      const respPublic = crypto.publicKey(respStatic);
      assert.equal(toHex(respPublic), vector.init_remote_static);
      const [m1, m2, ...transport] = vector.messages;

      const start = initialState(crypto, vector.protocol_name, prologue, respPublic);
      const written = writeInitiation(
        crypto,
        start,
        initStatic,
        crypto.publicKey(initStatic),
        respPublic,
        fromHex(vector.init_ephemeral),
        fromHex(m1!.payload),
      )!;
      const b = written.body;
      assert.equal(
        toHex(b.ephemeralPublic) + toHex(b.encryptedStatic) + toHex(b.encryptedPayload),
        m1!.ciphertext,
      );

      const read = readInitiation(crypto, start, respStatic, b)!;
      assert.equal(toHex(read.payload), m1!.payload);
      assert.deepEqual(read.initiatorStatic, crypto.publicKey(initStatic));

      const response = writeResponse(
        crypto,
        read,
        psk,
        fromHex(vector.resp_ephemeral),
        fromHex(m2!.payload),
      )!;
      assert.equal(
        toHex(response.body.ephemeralPublic) + toHex(response.body.encryptedPayload),
        m2!.ciphertext,
      );
      const readBack = readResponse(crypto, written.state, initStatic, psk, response.body)!;
      assert.equal(toHex(readBack.payload), m2!.payload);
      assert.equal(toHex(readBack.state.hash), vector.handshake_hash);
      assert.equal(toHex(response.state.hash), vector.handshake_hash);

      const [initSend, initReceive] = split(crypto, readBack.state);
      const [respReceive, respSend] = split(crypto, response.state);
      assert.deepEqual(initSend, respReceive);
      assert.deepEqual(initReceive, respSend);
      const counters = [0, 0];
      transport.forEach((message, i) => {
        const fromInitiator = i % 2 === 0;
        const n = counters[i % 2]!++;
        const sealed = crypto.aeadSeal(
          fromInitiator ? initSend : respSend,
          nonce(n),
          fromHex(message.payload),
          new Uint8Array(0),
        );
        assert.equal(toHex(sealed), message.ciphertext, `transport message ${i}`);
      });
    });

    test("a wrong responder key or a wrong psk fails to authenticate", () => {
      const prologue = new Uint8Array(0);
      const i = crypto.generatePrivateKey();
      const r = crypto.generatePrivateKey();
      const other = crypto.generatePrivateKey();
      const rPublic = crypto.publicKey(r);
      const start = initialState(crypto, vector.protocol_name, prologue, rPublic);
      const w = writeInitiation(
        crypto,
        start,
        i,
        crypto.publicKey(i),
        rPublic,
        crypto.generatePrivateKey(),
        new Uint8Array(12),
      )!;
      assert.equal(readInitiation(crypto, start, other, w.body), null);
      const read = readInitiation(crypto, start, r, w.body)!;
      const psk = crypto.randomBytes(32);
      const resp = writeResponse(
        crypto,
        read,
        psk,
        crypto.generatePrivateKey(),
        new Uint8Array(0),
      )!;
      assert.equal(readResponse(crypto, w.state, i, crypto.randomBytes(32), resp.body), null);
      assert.ok(readResponse(crypto, w.state, i, psk, resp.body));
    });
  });
}
