#!/usr/bin/env python3
"""Independent oracle for AES DUKPT (ANSI X9.24-3-2017) working keys the published vectors do
not list: key types 2TDEA, 3TDEA and AES-192 under the AES-128 BDK, and an AES-192 BDK.

Written from the derivation rules in aes_dukpt_x9_24_3_2017.json `_algorithm` (derivation data
layout, AES-ECB as the PRF, key usage and algorithm codes), with pyca/cryptography's AES; none
of cardlane's code. It first reproduces every AES-128 and AES-256 value of that file (so the
oracle is checked against the standard's numbers), then prints the values that
tests/crypto_vectors.rs `aes_other_key_types_and_aes192_bdk` holds.
Run: python3 tests/vectors/aes_dukpt_oracle.py
"""
import json, os
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ALG = {"2TDEA": (0, 128), "3TDEA": (1, 192), "AES128": (2, 128), "AES192": (3, 192), "AES256": (4, 256)}
USAGE = {"pin": 0x1000, "mac-request": 0x2000, "mac-response": 0x2001,
         "data-request": 0x3000, "data-response": 0x3001}

def ecb(key, block):
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()

def derive(key, usage, alg, tail8):
    code, bits = ALG[alg]
    out = b""
    for i in range((bits + 127) // 128):
        dd = bytes([1, i + 1]) + usage.to_bytes(2, "big") + code.to_bytes(2, "big") \
            + bits.to_bytes(2, "big") + tail8
        out += ecb(key, dd)
    return out[: bits // 8]

def bdk_type(bdk):
    return {16: "AES128", 24: "AES192", 32: "AES256"}[len(bdk)]

def ik(bdk, ikid):
    return derive(bdk, 0x8001, bdk_type(bdk), ikid)

def txn(bdk, ksn):
    ikid, counter = ksn[:8], int.from_bytes(ksn[8:], "big")
    key, t = ik(bdk, ikid), bdk_type(bdk)
    working = 0
    for bit in range(31, -1, -1):
        if counter & (1 << bit):
            working |= 1 << bit
            key = derive(key, 0x8000, t, ikid[4:] + working.to_bytes(4, "big"))
    return key

def working(bdk, ksn, usage, alg):
    return derive(txn(bdk, ksn), USAGE[usage], alg, ksn[4:12])

h = bytes.fromhex
d = json.load(open(os.path.join(os.path.dirname(__file__), "aes_dukpt_x9_24_3_2017.json")))
names = {"pin_key": "pin", "mac_gen_key": "mac-request", "mac_ver_key": "mac-response",
         "data_encrypt_key": "data-request", "data_decrypt_key": "data-response"}
n = 0
for set_, t in [("aes128_bdk", "aes128"), ("aes256_bdk", "aes256")]:
    g = d[set_]
    bdk = h(g["bdk"])
    assert ik(bdk, h(g["initial_key_id"])).hex().upper() == g["ik"]
    for e in g["ksns"]:
        ksn = h(e["ksn"])
        assert txn(bdk, ksn).hex().upper() == e["txn_key"], e["ksn"]
        for f, u in names.items():
            for tt in ["aes128", "aes256"]:
                if f"{f}_{tt}" in e:
                    assert working(bdk, ksn, u, tt.upper()).hex().upper() == e[f"{f}_{tt}"]
                    n += 1
print(f"# reproduced {n} published working keys")

bdk128 = h(d["aes128_bdk"]["bdk"])
for ksn_hex in ["123456789012345600000001", "123456789012345600000010"]:
    ksn = h(ksn_hex)
    for alg in ["2TDEA", "3TDEA", "AES192"]:
        for u in ["pin", "mac-request", "data-request"]:
            print("aes128-bdk", ksn_hex, alg, u, working(bdk128, ksn, u, alg).hex().upper())
# An AES-192 BDK: the first 24 bytes of the standard's AES-256 BDK.
bdk192 = h(d["aes256_bdk"]["bdk"])[:24]
print("aes192-bdk", bdk192.hex().upper())
print("aes192-ik", ik(bdk192, h("1234567890123456")).hex().upper())
for ksn_hex in ["123456789012345600000001", "123456789012345600000010"]:
    ksn = h(ksn_hex)
    print("aes192-txn", ksn_hex, txn(bdk192, ksn).hex().upper())
    for u in ["pin", "mac-request", "data-request", "data-response"]:
        print("aes192-bdk", ksn_hex, "AES192", u, working(bdk192, ksn, u, "AES192").hex().upper())
