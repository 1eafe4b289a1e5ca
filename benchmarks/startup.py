"""First-use latency of the numba engine, each figure from a fresh process.

``python -m benchmarks.startup [--repeats N] [--compile-all] [--parts]`` measures, in child processes on
an empty Numba cache directory (``NUMBA_CACHE_DIR``) made for each repeat:

1. *cold*: the first ``softmax`` of 8,192 x 1,024 float32 (compiles its kernel), then in the
   same process the first ``cross_entropy`` with gradient and the first float64 ``softmax``
   (the three calls together: issue 14's goal of 8 s);
2. *warm*: a new process on the cache the first one wrote: the same three first calls, and
   the first call alone (its figure includes importing Numba and loading the kernel);
3. with ``--compile-all``: ``softmaxkit compile`` on an empty cache, one job and two;
4. with ``--parts``: what the warm first call is made of, each part timed on its own in a
   child on a warm cache: importing Numba, the engine's modules, starting Numba's runtime
   (what the first cache load needs), the call itself, and the garbage collections run
   inside all of these.

Each figure is the median over the repeats, wall time and the child's CPU time (on a shared
machine the CPU time is the steadier one), with the load average beside it. The children may
write ``.pyc`` files (``PYTHONDONTWRITEBYTECODE`` is dropped from their environment): an
installed package has them, and without them every child would compile softmaxkit's sources.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, time
def now():
    return time.perf_counter(), time.process_time()
t0 = now()
import numpy as np, softmaxkit as sk
rng = np.random.default_rng(0)
x = rng.standard_normal((8192, 1024), dtype=np.float32)
labels = rng.integers(0, 1024, 8192)
x64 = x.astype(np.float64)
t1 = now(); sk.softmax(x)
t2 = now(); sk.cross_entropy(x, labels, return_grad=True)
t3 = now(); sk.softmax(x64)
t4 = now(); sk.softmax(x)
t5 = now()
span = lambda a, b: [b[0] - a[0], b[1] - a[1]]
print(json.dumps({"import": span(t0, t1), "softmax f32": span(t1, t2),
                  "cross_entropy+grad f32": span(t2, t3), "softmax f64": span(t3, t4),
                  "three first calls": span(t1, t4), "second softmax f32": span(t4, t5)}))
"""

PARTS = """
import gc, json, time
def now():
    return time.perf_counter(), time.process_time()
collecting = [0.0, 0.0, 0.0, 0.0]  # wall, CPU of the collecting thread; their starts
def on_gc(phase, info):
    if phase == "start":
        collecting[2:] = [time.perf_counter(), time.thread_time()]
    else:
        collecting[0] += time.perf_counter() - collecting[2]
        collecting[1] += time.thread_time() - collecting[3]
import numpy as np, softmaxkit as sk
x = np.random.default_rng(0).standard_normal((8192, 1024), dtype=np.float32)
gc.callbacks.append(on_gc)
t0 = now(); import numba
t1 = now(); import softmaxkit.numba
t2 = now()
# Numba's runtime, started by the first cache load (the engine's loader does no more: no
# registry refresh, which imported SciPy for a BLAS check and cost 0.2-0.3 s; _jit.py).
from numba.core.registry import cpu_target
from numba.core.runtime import rtsys
rtsys.initialize(cpu_target.target_context)
t3 = now(); sk.softmax(x)
t6 = now()
gc.callbacks.remove(on_gc)
span = lambda a, b: [b[0] - a[0], b[1] - a[1]]
print(json.dumps({"import numba": span(t0, t1), "import softmaxkit.numba": span(t1, t2),
                  "Numba's runtime": span(t2, t3), "the call": span(t3, t6),
                  "total": span(t0, t6), "garbage collection within": collecting[:2]}))
"""


def _env(cache: str) -> dict[str, str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _child(code: str, cache: str) -> dict[str, list[float]]:
    env = _env(cache)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _timed(command: list[str], cache: str) -> list[float]:
    env = _env(cache)
    start, before = time.perf_counter(), os.times()
    subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    after = os.times()
    return [time.perf_counter() - start, (after.children_user - before.children_user)
            + (after.children_system - before.children_system)]


def _report(label: str, runs: list[list[float]]) -> None:
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    print(f"  {label:<28} {wall:6.2f} s wall  {cpu:6.2f} s CPU")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile-all", action="store_true", help="also time `softmaxkit compile`")
    parser.add_argument("--parts", action="store_true", help="also time the parts of a warm first call")
    args = parser.parse_args(argv)
    cold: list[dict[str, list[float]]] = []
    warm: list[dict[str, list[float]]] = []
    parts: list[dict[str, list[float]]] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(_child(CHILD, cache))
            warm.append(_child(CHILD, cache))
            if args.parts:
                parts.append(_child(PARTS, cache))
    print(f"# numba engine first use, median of {args.repeats} fresh processes; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, runs in (("empty cache", cold), ("warm cache", warm), ("warm first call, part by part", parts)):
        if not runs:
            continue
        print(f"{name}:")
        for key in runs[0]:
            _report(key, [r[key] for r in runs])
    if args.compile_all:
        print("softmaxkit compile, empty cache:")
        for jobs in (1, 2):
            runs = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as cache:
                    command = [sys.executable, "-m", "softmaxkit.cli", "compile", "--jobs", str(jobs)]
                    runs.append(_timed(command, cache))
            _report(f"--jobs {jobs}", runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
