/**
 * WireGuard handshake messages from fixed keys, ephemerals, indices and timestamp must
 * match, byte for byte, an independent Python implementation of the whitepaper
 * (test/vectors/wireguard-handshake.py), on every runtime and with both providers.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fromHex, toHex } from "../../src/crypto/index.ts";
import { addMacs, createCookieGenerator } from "../../src/tunnel/cookie.ts";
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createLocalIdentity,
  createRemoteIdentity,
  createResponse,
} from "../../src/tunnel/handshake.ts";
import { providers } from "../helpers/providers.ts";
import { loadVectors } from "../helpers/vectors.ts";

interface HandshakeVector {
  initiator_static_private: string;
  responder_static_private: string;
  initiator_ephemeral_private: string;
  responder_ephemeral_private: string;
  preshared_key: string;
  initiator_index: number;
  responder_index: number;
  wall_ms: number;
  initiation: string;
  response: string;
  initiator_send_key: string;
  initiator_receive_key: string;
}

const v = loadVectors<HandshakeVector>("wireguard-handshake")[0]!;

for (const [name, crypto] of providers) {
  describe(`WireGuard handshake known answer (${name} provider)`, () => {
    test("initiation, response and transport keys match the reference byte for byte", () => {
      const psk = fromHex(v.preshared_key);
      const initiator = createLocalIdentity(crypto, fromHex(v.initiator_static_private));
      const responder = createLocalIdentity(crypto, fromHex(v.responder_static_private));
      const responderAsPeer = createRemoteIdentity(crypto, initiator, responder.publicKey, psk);
      const initiatorAsPeer = createRemoteIdentity(crypto, responder, initiator.publicKey, psk);

      const init = createInitiation(
        crypto,
        initiator,
        responderAsPeer,
        v.initiator_index,
        v.wall_ms,
        fromHex(v.initiator_ephemeral_private),
      )!;
      addMacs(crypto, createCookieGenerator(crypto, responder.publicKey), init.message, 0);
      assert.equal(toHex(init.message), v.initiation);

      const consumed = consumeInitiation(crypto, responder, init.message, (key) =>
        toHex(key) === toHex(initiator.publicKey) ? initiatorAsPeer.staticShared : undefined,
      );
      assert.ok(!("refused" in consumed));
      const response = createResponse(
        crypto,
        initiatorAsPeer,
        consumed,
        v.responder_index,
        fromHex(v.responder_ephemeral_private),
      )!;
      addMacs(crypto, createCookieGenerator(crypto, initiator.publicKey), response.message, 0);
      assert.equal(toHex(response.message), v.response);

      const keys = consumeResponse(
        crypto,
        initiator,
        responderAsPeer,
        init.pending,
        response.message,
      )!;
      assert.equal(toHex(keys.sendKey), v.initiator_send_key);
      assert.equal(toHex(keys.receiveKey), v.initiator_receive_key);
      assert.deepEqual(response.keys.receiveKey, keys.sendKey);
      assert.deepEqual(response.keys.sendKey, keys.receiveKey);
      assert.equal(keys.remoteIndex, v.responder_index);
      assert.equal(response.keys.remoteIndex, v.initiator_index);
    });
  });
}
