#!/usr/bin/env python3
"""tools/wireshark/roam.lua on a crafted capture: every frame type the protocol defines (the
encryption frames SERVER_KEY and SEALED included), an unknown frame type, several frames in one
segment, a DATA frame and a frame header split across segments. Writes a pcap (raw IPv4, TCP on the
dissector's default port 7000, addresses in 198.18.0.0/15; no packet is sent anywhere), decodes it
with tshark and checks the decoded fields by name.

usage: crafted_test.py TSHARK ROAM_LUA"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

C, S = ("198.18.0.1", 40000), ("198.18.0.2", 7000)
PREAMBLE = b"ROAM\x01\x00\x00\x00"


def frame(ftype, payload):
    return bytes([ftype]) + len(payload).to_bytes(3, "big") + payload


def u64(v):
    return v.to_bytes(8, "big")


def hello(features, reply=False):
    body = features.to_bytes(4, "big") + u64(8 << 20) + u64(600000) + b"\x11" * 32 + b"\x22" * 32
    return frame(0x02, body + b"\x33" * 32) if reply else frame(0x01, body)


def sealed(inner, n):
    return frame(0x30, bytes([inner]) + b"\xcc" * n + b"\x7a" * 16)


class Flow:
    """Both directions of one TCP connection, with sequence numbers tracked per side; packets go
    to a list that several flows may share (one capture)."""

    def __init__(self, c=C, s=S, packets=None):
        self.c, self.s = c, s
        self.seq = {c: 1000, s: 5000}
        self.packets = [] if packets is None else packets

    def handshake(self):
        self.send(self.c, b"", 0x02)  # SYN
        self.send(self.s, b"", 0x12)  # SYN-ACK
        self.send(self.c, b"", 0x10)  # ACK

    def send(self, src, payload, flags=0x18):
        dst = self.s if src == self.c else self.c
        tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], self.seq[src], self.seq[dst], 5 << 4,
                          flags, 65535, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6,
                         0, socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
        self.packets.append(ip + tcp + payload)
        self.seq[src] += len(payload) + (1 if flags & 0x02 else 0)

    def write_pcap(self, path):
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))  # LINKTYPE_RAW
            for i, p in enumerate(self.packets):
                f.write(struct.pack("<IIII", 1700000000, i * 1000, len(p), len(p)) + p)


# MSOCKS: roam socks -> roam proxy on a port no dissector owns (found by the heuristic).
M, P = ("198.18.0.5", 40100), ("198.18.0.9", 41080)
M2 = ("198.18.0.5", 40101)
# A plain SOCKS5 client on the same proxy: not roam.
PLAIN = ("198.18.0.6", 40200)


def build_msocks(packets):
    # A new session: greeting, preamble and HELLO in one segment, as roam socks sends them.
    fl = Flow(M, P, packets)
    fl.handshake()
    fl.send(M, b"\x05\x01\x80" + PREAMBLE + hello(0xf))
    fl.send(P, b"\x05\x80" + PREAMBLE + hello(0x7, reply=True) +
            frame(0x04, b"\x44" * 32 + b"\x55" * 64))
    fl.send(M, frame(0x03, b"\x66" * 32) + sealed(0x20, 18))
    fl.send(P, sealed(0x20, 10) + sealed(0x20, 300) + sealed(0x21, 8))
    # A re-attachment whose greeting arrives alone, before the preamble and MIGRATE.
    fl2 = Flow(M2, P, packets)
    fl2.handshake()
    fl2.send(M2, b"\x05\x02\x00\x80")
    fl2.send(M2, PREAMBLE + frame(0x10, b"\x77" * 16 + u64(1) + u64(310) + b"\x88" * 32))
    fl2.send(P, b"\x05\x80")
    fl2.send(P, PREAMBLE + frame(0x11, u64(1) + b"\x99" * 16 + b"\xaa" * 32))
    fl2.send(M2, frame(0x12, u64(1) + u64(310) + b"\xbb" * 32))
    fl2.send(P, frame(0x13, u64(1) + u64(18) + b"\xbb" * 32) + sealed(0x22, 8))
    # Plain SOCKS5 (no 0x80): left alone.
    fl3 = Flow(PLAIN, P, packets)
    fl3.handshake()
    fl3.send(PLAIN, b"\x05\x01\x00")
    fl3.send(P, b"\x05\x00")
    fl3.send(PLAIN, b"\x05\x01\x00\x01\xc6\x12\x00\x07\x00\x50")


def build(path):
    fl = Flow()
    fl.handshake()
    fl.send(C, PREAMBLE + hello(0x7))
    fl.send(S, PREAMBLE + hello(0x7, reply=True) + frame(0x04, b"\x44" * 32 + b"\x55" * 64))
    # Several frames in one segment: FINISH, a sealed DATA of 10 bytes, a sealed ACK.
    fl.send(C, frame(0x03, b"\x66" * 32) + sealed(0x20, 10) + sealed(0x21, 8))
    # A 5000-byte DATA frame across three segments.
    data = frame(0x20, bytes(range(256)) * 19 + b"\x00" * 136)
    fl.send(C, data[:1000])
    fl.send(C, data[1000:3000])
    fl.send(C, data[3000:])
    # An unknown frame type, then a frame whose header is split across two segments.
    ack = frame(0x21, u64(42))
    fl.send(C, frame(0x7F, b"abc") + ack[:2])
    fl.send(C, ack[2:])
    # The migrate family and the end.
    fl.send(C, frame(0x10, b"\x77" * 16 + u64(3) + u64(1234) + b"\x88" * 32))
    fl.send(S, frame(0x11, u64(3) + b"\x99" * 16 + b"\xaa" * 32))
    fl.send(C, frame(0x12, u64(3) + u64(777) + b"\xbb" * 32))
    fl.send(S, frame(0x13, u64(3) + u64(5010) + b"\xbb" * 32) + frame(0x20, b"x" * 7))
    fl.send(S, frame(0x14, u64(2) + u64(3) + b"\xdd" * 32) + frame(0x15, u64(9) + u64(0)))
    fl.send(C, frame(0x22, u64(5010)))
    fl.send(S, frame(0x24, (10).to_bytes(2, "big") + b"bye"))
    build_msocks(fl.packets)
    fl.write_pcap(path)


def fields(tshark, lua, pcap, flt, *names):
    """tshark -T fields of `names` for the packets matching `flt`, as a list of lines."""
    cmd = [tshark, "-r", pcap, "-X", "lua_script:" + lua, "-o", "tcp.check_checksum:FALSE", "-Y",
           flt, "-T", "fields"]
    for n in names:
        cmd += ["-e", n]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return [l for l in run.stdout.splitlines() if l.strip()]


def check_msocks(tshark, lua, pcap):
    """The MSOCKS connections, found by the heuristic: method selection, then roam."""
    failures = []
    sel = "tcp.port == %d" % P[1]

    def expect(got, want, what):
        if got != want:
            failures.append("%s: got %r, want %r" % (what, got, want))

    # Every roam-carrying packet of both MSOCKS connections is roam; the plain one is not.
    def got(flt, *names):
        return fields(tshark, lua, pcap, sel + " && " + flt, *names)

    expect(got("tcp.srcport == %d && roam" % PLAIN[1], "frame.number"),
           [], "plain SOCKS5 client decoded as roam")
    expect(got("roam.socks", "roam.socks.method", "roam.socks.chosen"),
           ["0x80\t", "\t0x80", "0x00,0x80\t", "\t0x80"], "method selections")
    expect(got("roam", "roam.type"),
           ["0x01", "0x02,0x04", "0x03,0x30", "0x30,0x30,0x30", "0x10", "0x11", "0x12",
            "0x13,0x30"], "frames after the method selection")
    # Encrypted frames: inner type and length; DATA offsets across the re-attachment (the proxy
    # resends from the RESPONSE's 310, the client from ACCEPT's 18).
    expect(got("roam.sealed.inner_type", "roam.sealed.inner_type", "roam.sealed.length",
               "roam.data.offset"),
           ["0x20\t18\t0", "0x20,0x20,0x21\t10,300,8\t0,10", "0x22\t8\t"],
           "sealed frames")
    expect(got("roam.type == 0x10", "roam.request", "roam.received"),
           ["1\t310"], "MIGRATE after the greeting")
    return failures


def main():
    tshark, lua = sys.argv[1], sys.argv[2]
    if not (os.path.isabs(tshark) and os.access(tshark, os.X_OK)) and shutil.which(tshark) is None:
        print("SKIP: tshark is not installed (scripts/deps.sh installs it)")
        return 77
    with tempfile.TemporaryDirectory(prefix="roam-dissector-crafted-") as d:
        pcap = os.path.join(d, "crafted.pcap")
        build(pcap)
        run = subprocess.run([tshark, "-r", pcap, "-X", "lua_script:" + lua, "-V", "-o",
                              "tcp.check_checksum:FALSE"], capture_output=True, text=True,
                             timeout=120)
        out = run.stdout
        failures = []
        if run.returncode != 0:
            failures.append("tshark exited with %d: %s" % (run.returncode, run.stderr))
        failures += check_msocks(tshark, lua, pcap)
        for want in [
            "Magic: ROAM", "Frame: HELLO ", "encrypt: True", "server-key: True",
            "aes256gcm: True", "aes256gcm: False",
            "Frame: HELLO_REPLY", "Frame: SERVER_KEY", "Ed25519 server key:", "Ed25519 signature:",
            "Frame: FINISH", "Frame: SEALED encrypted DATA offset=0 len=10",
            "Frame: SEALED encrypted ACK len=8", "Inner type: DATA (0x20)",
            "Inner type: ACK (0x21)", "Inner payload length: 10", "Inner payload length: 8",
            "Ciphertext:", "Tag (AEAD):", "Data length: 5000", "Stream offset: 10",
            "Frame: unknown 0x7f", "Unknown frame type (skipped)", "Consumed offset: 42",
            "Frame: MIGRATE", "Request number: 3", "Received offset: 1234", "Frame: CHALLENGE",
            "Frame: RESPONSE", "Received offset: 777", "Frame: ACCEPT", "Received offset: 5010",
            # the server's DATA on the migrated path starts at the RESPONSE's offset
            "Stream offset: 777", "Frame: STALE", "Newest adopted request: 3", "Frame: REFUSED",
            "Frame: FIN", "End-of-stream offset: 5010", "Frame: CLOSE", "Close code: aborted (10)",
            "Close reason: bye",
        ]:
            if want not in out:
                failures.append("missing %r" % want)
        for bad in ["Lua Error", "Malformed Packet", "Payload size does not match"]:
            if bad in out:
                failures.append("found %r" % bad)
        if failures:
            sys.stdout.write(out)
            print("\n".join(failures))
            return 1
        print("crafted capture: every frame decoded by name")
        return 0


if __name__ == "__main__":
    sys.exit(main())
