"""PyPI pydukpt 0.1.0: IPEK + current key + data request key (OWF), then TDES-CBC decrypt with
pycryptodome (pydukpt's own dependency; pydukpt has no CBC helper). Prints ops/s."""
import sys
import time

from Crypto.Cipher import DES3
from pydukpt import data_request_key, derive_ipek, derive_key

secs = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
ct = bytes.fromhex(sys.argv[2])
bdk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
ksn = bytes.fromhex("FFFF9876543210E0AAAA")


def op():
    key = data_request_key(derive_key(derive_ipek(bdk, ksn), ksn))
    return DES3.new(key, DES3.MODE_CBC, iv=bytes(8)).decrypt(ct)


expect = op()
for _ in range(50):
    op()
# Rate per second of this thread's CPU time, like `cardlane bench`: the machine is shared.
n = 0
start = time.perf_counter()
cpu0 = time.thread_time()
while True:
    for _ in range(32):
        assert op() == expect
    n += 32
    if time.perf_counter() - start >= secs:
        print(f"{n / (time.thread_time() - cpu0):.0f}")
        break
