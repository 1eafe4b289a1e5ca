"""First-call and cached-call latency of the numba engine, each in a fresh process.

``python -m benchmarks.startup`` runs three child processes on one empty Numba cache
directory: the first compiles every kernel a float32 softmax needs and writes them to the
cache, the next two load them. Each child reports its import time, its first
``softmax`` call on 8,192 x 1,024 float32 and its second call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

CHILD = """
import time
t0 = time.perf_counter()
import numpy as np, softmaxkit as sk
x = np.random.default_rng(0).standard_normal((8192, 1024), dtype=np.float32)
t1 = time.perf_counter()
sk.softmax(x)
t2 = time.perf_counter()
sk.softmax(x)
t3 = time.perf_counter()
print(f"import {t1 - t0:.2f} s, first softmax call {t2 - t1:.2f} s, second {1e3 * (t3 - t2):.0f} ms")
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("empty cache (compiles)", "cached", "cached"):
            done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                                  check=True)
            print(f"{label}: {done.stdout.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
