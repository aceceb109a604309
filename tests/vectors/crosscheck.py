#!/usr/bin/env python3
"""Independent cross-check of the test vectors in docs/PROTOCOL.md.

Recomputes every vector from the fixed inputs with implementations that share no code with roam or
libsodium's C: Python's hashlib (BLAKE2b, SHA-512), hmac, struct, and the `cryptography` package's
X25519, Ed25519 and ChaCha20-Poly1305 (with HChaCha20 written out here, for XChaCha20) when it is
installed (otherwise the X25519 outputs are taken from the document and only
checked for consistency with the rest). Exit status: 0 all match, 1 a mismatch, 77 cannot run.

Usage: crosscheck.py docs/PROTOCOL.md
"""
import hashlib
import hmac
import re
import struct
import sys


def read_vectors(path):
    vectors = {}
    in_section = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("## "):
                in_section = line.strip() == "## Test vectors"
            if not in_section:
                continue
            m = re.match(r"^([a-z0-9_]+)\s+= ([0-9a-f]+)\s*$", line)
            if m:
                vectors[m.group(1)] = bytes.fromhex(m.group(2))
    return vectors


def be64(v):
    return struct.pack(">Q", v)


def frame(ftype, payload):
    return bytes([ftype]) + struct.pack(">I", len(payload))[1:] + payload


def hmac_sha512_256(key, *parts):
    """libsodium's crypto_auth_hmacsha512256: HMAC-SHA-512 truncated to 32 bytes."""
    return hmac.new(key, b"".join(parts), hashlib.sha512).digest()[:32]


def kdf(prk, subkey_id, context=b"roam-v1_"):
    """libsodium's crypto_kdf_derive_from_key (BLAKE2b): key = master key, salt = id as
    little-endian u64 padded to 16 bytes, personal = context padded to 16 bytes, empty message."""
    return hashlib.blake2b(b"", digest_size=32, key=prk,
                           salt=struct.pack("<Q", subkey_id) + bytes(8),
                           person=context + bytes(8)).digest()


def hchacha20(key, nonce16):
    """HChaCha20 (draft-irtf-cfrg-xchacha §2.2), written out here: the subkey of XChaCha20."""
    def rotl(v, n):
        return ((v << n) & 0xffffffff) | (v >> (32 - n))

    def qr(x, a, b, c, d):
        x[a] = (x[a] + x[b]) & 0xffffffff; x[d] = rotl(x[d] ^ x[a], 16)
        x[c] = (x[c] + x[d]) & 0xffffffff; x[b] = rotl(x[b] ^ x[c], 12)
        x[a] = (x[a] + x[b]) & 0xffffffff; x[d] = rotl(x[d] ^ x[a], 8)
        x[c] = (x[c] + x[d]) & 0xffffffff; x[b] = rotl(x[b] ^ x[c], 7)

    x = list(struct.unpack("<4I", b"expand 32-byte k") + struct.unpack("<8I", key) +
             struct.unpack("<4I", nonce16))
    for _ in range(10):
        qr(x, 0, 4, 8, 12); qr(x, 1, 5, 9, 13); qr(x, 2, 6, 10, 14); qr(x, 3, 7, 11, 15)
        qr(x, 0, 5, 10, 15); qr(x, 1, 6, 11, 12); qr(x, 2, 7, 8, 13); qr(x, 3, 4, 9, 14)
    return struct.pack("<8I", *(x[0:4] + x[12:16]))


def sealed(key, epoch, seq, inner_type, payload):
    """A SEALED frame: XChaCha20-Poly1305 = ChaCha20-Poly1305 (IETF) under HChaCha20's subkey,
    nonce = 4 zero bytes || the last 8 of the 24-byte nonce epoch:u64 || seq:u64 || 0:u64."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    nonce = be64(epoch) + be64(seq) + bytes(8)
    body_len = 1 + len(payload) + 16
    ad = bytes([0x30]) + struct.pack(">I", body_len)[1:] + bytes([inner_type])
    ct = ChaCha20Poly1305(hchacha20(key, nonce[:16])).encrypt(bytes(4) + nonce[16:], payload, ad)
    return ad + ct


def sealed_gcm(key, epoch, seq, inner_type, payload):
    """A SEALED frame with AES-256-GCM (aes256gcm feature): nonce = epoch:u32 || seq:u64."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    body_len = 1 + len(payload) + 16
    ad = bytes([0x30]) + struct.pack(">I", body_len)[1:] + bytes([inner_type])
    return ad + AESGCM(key).encrypt(struct.pack(">IQ", epoch, seq), payload, ad)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 77
    doc = read_vectors(sys.argv[1])
    if not doc:
        print("no vectors found in", sys.argv[1])
        return 1
    got = {}
    cs, ss = doc["client_secret"], doc["server_secret"]
    cr, sr = doc["client_random"], doc["server_random"]
    nonce = doc["challenge_nonce"]
    assert cs == bytes(range(0x01, 0x21)) and ss == bytes(range(0x21, 0x41))
    assert cr == bytes(range(0x41, 0x61)) and sr == bytes(range(0x61, 0x81))
    assert nonce == bytes(range(0x81, 0x91))

    try:
        from cryptography.hazmat.primitives.asymmetric.x25519 import (X25519PrivateKey,
                                                                      X25519PublicKey)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        cpriv = X25519PrivateKey.from_private_bytes(cs)
        spriv = X25519PrivateKey.from_private_bytes(ss)
        raw = (Encoding.Raw, PublicFormat.Raw)
        got["client_public"] = cpriv.public_key().public_bytes(*raw)
        got["server_public"] = spriv.public_key().public_bytes(*raw)
        shared = cpriv.exchange(X25519PublicKey.from_public_bytes(got["server_public"]))
        assert shared == spriv.exchange(X25519PublicKey.from_public_bytes(got["client_public"]))
        got["shared_secret"] = shared
        print("X25519: checked with the cryptography package")
    except ImportError:
        print("X25519: the cryptography package is missing; taking public keys and shared "
              "secret from the document")
    cp = got.get("client_public", doc["client_public"])
    sp = got.get("server_public", doc["server_public"])
    shared = got.get("shared_secret", doc["shared_secret"])

    got["preamble"] = b"ROAM" + bytes([1, 0, 0, 0])
    # HELLO: features u32, buffer_cap u64, wait_ms u64, random[32], public_key[32].
    got["hello"] = frame(0x01, struct.pack(">IQQ", 0x3, 8 << 20, 10 * 60 * 1000) + cr + cp)
    reply_body = struct.pack(">IQQ", 0x3 & 0x1, 4 << 20, 2 * 3600 * 1000) + sr + sp
    transcript = got["hello"] + bytes([0x02]) + struct.pack(">I", len(reply_body) + 32)[1:] + reply_body
    got["transcript"] = transcript
    th = hashlib.blake2b(transcript, digest_size=32).digest()
    got["transcript_hash"] = th
    prk = hashlib.blake2b(th, digest_size=32, key=shared).digest()
    got["prk"] = prk
    k = {i: kdf(prk, i) for i in range(1, 6)}
    got["k_mac_c2s"], got["k_mac_s2c"], got["k_token"] = k[1], k[2], k[3]
    got["k_aead_c2s"], got["k_aead_s2c"] = k[4], k[5]
    token = hashlib.blake2b(cr + sr, digest_size=16, key=k[3]).digest()
    got["token"] = token
    c2s, s2c = k[1], k[2]
    got["hello_reply_mac"] = hmac_sha512_256(s2c, b"roam/1 s2c HELLO_REPLY", th)
    got["hello_reply"] = transcript[len(got["hello"]):] + got["hello_reply_mac"]
    got["finish"] = frame(0x03, hmac_sha512_256(c2s, b"roam/1 c2s FINISH", th))

    req, c_recv, s_recv = 1, 16, 5
    got["migrate"] = frame(0x10, token + be64(req) + be64(c_recv) + hmac_sha512_256(
        c2s, b"roam/1 c2s MIGRATE", token, be64(req), be64(c_recv)))
    got["challenge"] = frame(0x11, be64(req) + nonce + hmac_sha512_256(
        s2c, b"roam/1 s2c CHALLENGE", token, be64(req), nonce))
    got["response"] = frame(0x12, be64(req) + be64(c_recv) + hmac_sha512_256(
        c2s, b"roam/1 c2s RESPONSE", token, be64(req), nonce, be64(c_recv)))
    got["accept"] = frame(0x13, be64(req) + be64(s_recv) + hmac_sha512_256(
        s2c, b"roam/1 s2c ACCEPT", token, be64(req), be64(s_recv)))
    got["stale"] = frame(0x14, be64(req) + be64(req) + hmac_sha512_256(
        s2c, b"roam/1 s2c STALE", token, be64(req), be64(req)))
    got["refused"] = frame(0x15, be64(req) + be64(0))
    got["data_s2c_1"] = frame(0x20, b"welcome to roam\n")
    got["data_c2s"] = frame(0x20, b"ping\n")
    got["data_s2c_2"] = frame(0x20, b"more\n")
    got["ack"] = frame(0x21, be64(10))
    got["fin"] = frame(0x22, be64(5))
    got["ack_eof"] = frame(0x21, be64(6))
    got["close"] = frame(0x24, struct.pack(">H", 10) + b"bye")

    # --encrypt and server keys: Ed25519 and XChaCha20-Poly1305 from the cryptography package
    # (HChaCha20 written out above).
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        seed = bytes(range(0xa1, 0xc1))
        assert doc["sign_seed"] == seed
        sk = Ed25519PrivateKey.from_private_bytes(seed)
        got["sign_public"] = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        sig = sk.sign(b"roam/1 s2c SERVER_KEY" + th)
        got["server_key"] = frame(0x04, got["sign_public"] + sig)
        got["sealed_data_c2s"] = sealed(k[4], 0, 0, 0x20, b"ping\n")
        got["sealed_ack_s2c"] = sealed(k[5], req, 0, 0x21, be64(s_recv))
        got["gcm_data_c2s"] = sealed_gcm(k[4], 0, 0, 0x20, b"ping\n")
        got["gcm_ack_s2c"] = sealed_gcm(k[5], req, 0, 0x21, be64(s_recv))
        print("Ed25519, XChaCha20-Poly1305, AES-256-GCM: checked with the cryptography package")
    except ImportError:
        print("Ed25519, XChaCha20-Poly1305, AES-256-GCM: the cryptography package is missing; "
              "not checked")

    # HMAC-SHA-512-256 (libsodium) is HMAC-SHA-512 truncated, not HMAC over SHA-512/256.
    if "sha512_256" in hashlib.algorithms_available:
        other = hmac.new(c2s, b"roam/1 c2s FINISH" + th, "sha512_256").digest()
        assert other != got["finish"][4:], "HMAC-SHA-512/256 unexpectedly equal"
        print("HMAC: HMAC-SHA-512/256 (FIPS 180-4 SHA-512/256) gives a different tag, as expected")

    bad = 0
    for name, value in got.items():
        if name not in doc:
            print("missing in document:", name)
            bad += 1
        elif doc[name] != value:
            print(f"MISMATCH {name}:\n  doc  {doc[name].hex()}\n  here {value.hex()}")
            bad += 1
    unchecked = sorted(set(doc) - set(got) - {"client_secret", "server_secret", "client_random",
                                              "server_random", "challenge_nonce", "sign_seed"})
    if unchecked:
        print("vectors not cross-checked:", ", ".join(unchecked))
    print(f"{len(got) - bad} of {len(got)} vectors match the document")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
