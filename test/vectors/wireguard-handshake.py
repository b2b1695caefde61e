#!/usr/bin/env python3
"""Independent reference for test/vectors/wireguard-handshake.json.

Computes a WireGuard handshake (whitepaper section 5.4) from fixed keys, ephemerals, indices
and timestamp with pyca/cryptography and hashlib, written from the whitepaper alone, so the
TypeScript implementation is checked against code that shares nothing with it.
Run: python3 test/vectors/wireguard-handshake.py > test/vectors/wireguard-handshake.json
"""
import hashlib
import hmac
import json
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization

RAW = serialization.Encoding.Raw


def h(*parts):
    d = hashlib.blake2s()
    for p in parts:
        d.update(p)
    return d.digest()


def mac(key, data):
    return hashlib.blake2s(data, key=key, digest_size=16).digest()


def hm(key, data):
    return hmac.new(key, data, hashlib.blake2s).digest()


def kdf(n, key, data):
    t0 = hm(key, data)
    out, prev = [], b""
    for i in range(1, n + 1):
        prev = hm(t0, prev + bytes([i]))
        out.append(prev)
    return out


def pub(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(RAW, serialization.PublicFormat.Raw)


def dh(priv, pub_):
    return X25519PrivateKey.from_private_bytes(priv).exchange(X25519PublicKey.from_public_bytes(pub_))


def aead(key, counter, pt, ad):
    return ChaCha20Poly1305(key).encrypt(b"\0" * 4 + struct.pack("<Q", counter), pt, ad)


def tai64n(wall_ms):
    secs = wall_ms // 1000
    nanos = ((wall_ms % 1000) * 1_000_000) & ~(0x1000000 - 1)
    return struct.pack(">QI", 2**62 + secs, nanos)


CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"

i_static = bytes(range(1, 33))
r_static = bytes(range(101, 133))
i_eph = bytes(range(201, 233))
r_eph = bytes((x * 7) % 256 for x in range(32))
psk = bytes([0x42] * 32)
i_index, r_index = 0x11223344, 0xAABBCCDD
wall_ms = 1_700_000_000_123

Si, Sr, Ei, Er = pub(i_static), pub(r_static), pub(i_eph), pub(r_eph)

# Initiation (whitepaper 5.4.2).
C = h(CONSTRUCTION)
H = h(h(C, IDENTIFIER), Sr)
C = kdf(1, C, Ei)[0]
H = h(H, Ei)
C, k = kdf(2, C, dh(i_eph, Sr))
enc_static = aead(k, 0, Si, H)
H = h(H, enc_static)
C, k = kdf(2, C, dh(i_static, Sr))
enc_ts = aead(k, 0, tai64n(wall_ms), H)
H = h(H, enc_ts)
init = struct.pack("<I", 1) + struct.pack("<I", i_index) + Ei + enc_static + enc_ts
init += mac(h(b"mac1----", Sr), init) + b"\0" * 16
assert len(init) == 148

# Response (5.4.3).
C = kdf(1, C, Er)[0]
H = h(H, Er)
C = kdf(1, C, dh(r_eph, Ei))[0]
C = kdf(1, C, dh(r_eph, Si))[0]
C, tau, k = kdf(3, C, psk)
H = h(H, tau)
enc_empty = aead(k, 0, b"", H)
H = h(H, enc_empty)
resp = struct.pack("<I", 2) + struct.pack("<I", r_index) + struct.pack("<I", i_index) + Er + enc_empty
resp += mac(h(b"mac1----", Si), resp) + b"\0" * 16
assert len(resp) == 92

# Transport keys (5.4.5).
i_send, i_recv = kdf(2, C, b"")

print(json.dumps({
    "source": "test/vectors/wireguard-handshake.py: an independent Python implementation of the WireGuard whitepaper section 5.4 on pyca/cryptography and hashlib",
    "vectors": [{
        "initiator_static_private": i_static.hex(),
        "responder_static_private": r_static.hex(),
        "initiator_ephemeral_private": i_eph.hex(),
        "responder_ephemeral_private": r_eph.hex(),
        "preshared_key": psk.hex(),
        "initiator_index": i_index,
        "responder_index": r_index,
        "wall_ms": wall_ms,
        "initiation": init.hex(),
        "response": resp.hex(),
        "initiator_send_key": i_send.hex(),
        "initiator_receive_key": i_recv.hex(),
    }],
}, indent=2))
