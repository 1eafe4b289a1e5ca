"""``softmaxkit info``: version, engines (and why one is unavailable), the numba kernel cache,
threads, CPU, GPU."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
from pathlib import Path

import numpy as np

import softmaxkit as sk
from softmaxkit._engines import ENGINES

ENGINES_BY_NAME = {spec.name: spec for spec in ENGINES}

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_tile")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="version, engines, threads, CPU and GPU",
                       description="What softmaxkit can use on this machine, and why not.")
    p.set_defaults(run=run)


def cpu_features() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.split(":", 1)[1].split())
            if "asimd" in flags:
                return ["neon", *sorted(flags & {"sve", "sve2"})]
            return [f for f in SIMD_FLAGS if f in flags]
    return []


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str:
    try:
        import cupy
    except ImportError:
        return "none found (cupy is not installed)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device: cupy raises its own runtime errors
        return f"none found ({exc.__class__.__name__})"
    if count == 0:
        return "none found"
    return cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()


def engine_lines() -> list[str]:
    lines = []
    for spec in ENGINES:
        missing = spec.missing()
        state = "available" if not missing else f"unavailable: needs {', '.join(missing)} installed"
        version = ""
        if not missing and spec.requires:
            version = " (" + ", ".join(f"{m} {_version(m)}" for m in spec.requires) + ")"
        lines.append(f"  {spec.name:<8} {state}{version} — {spec.summary}")
    return lines


def numba_cache_line() -> str | None:
    """Where the numba kernels are cached and whether every one is there (None: no numba)."""
    if ENGINES_BY_NAME["numba"].missing():
        return None
    from softmaxkit.numba import cache_status

    status = cache_status()
    if status.directory is None:
        return ("numba kernels: no writable cache directory, compiled in every process "
                "(set NUMBA_CACHE_DIR to a writable directory)")
    state = "warm" if status.warm else "cold: `softmaxkit compile` compiles the rest ahead of use"
    return (f"numba kernels: {status.cached} of {status.expected} compiled for this CPU ({state}); "
            f"cache: {status.directory}")


def _version(module: str) -> str:
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def run(args: argparse.Namespace) -> int:
    print(f"softmaxkit {sk.__version__} (Python {platform.python_version()}, NumPy {np.__version__})")
    print("engines:")
    print("\n".join(engine_lines()))
    cache_line = numba_cache_line()
    if cache_line is not None:
        print(cache_line)
    print(f"threads: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}"
          f" usable of {os.cpu_count()}")
    print(f"cpu: {cpu_name()}; SIMD: {', '.join(cpu_features()) or 'unknown'}")
    print(f"gpu: {gpu_name()}")
    return 0
