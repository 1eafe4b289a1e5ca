"""Compile every kernel configuration the planner can launch for this GPU, in parallel, into
softmaxkit's NVRTC disk cache, so the tests, the sanitizer runs and the benchmark of
benchmarks/gpu_check.sh load kernels instead of compiling them one by one. ``--list`` prints
the count per kernel file (no GPU needed)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from softmaxkit.cuda import _nvrtc, _plan


def names() -> list[tuple[str, str]]:
    """(file, name expression) of every configuration, as the engine compiles them (one each)."""
    out: list[tuple[str, str]] = []
    for family, fam in _plan.FAMILIES.items():
        for dtype in _plan.DTYPES:
            out += [
                (fam.source, n)
                for n in _plan.name_expressions(_plan.all_configs(family, dtype), family, dtype)
            ]
            if family == "logsumexp":
                out.append(
                    (
                        fam.source,
                        _plan.name_expression("sk_logsumexp_split_finish", dtype, _plan.Config(1, 1, 1, 1)),
                    )
                )
    for dtype in _plan.DTYPES:
        out += [(_plan.SAMPLING_SOURCE, n) for n in _plan.sampling_names(dtype)]
    return list(dict.fromkeys(out))


def _compile(job: tuple[str, str, str]) -> str:
    file, name, arch = job
    _nvrtc.cached_program(file, (name,), arch)
    return name


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    todo = names()
    if "--list" in args:
        for file in sorted({f for f, _ in todo}):
            print(f"{file}: {sum(f == file for f, _ in todo)} kernels")
        return 0
    import cupy

    capability = int(cupy.cuda.Device().compute_capability)
    arch = _nvrtc.arch_option(capability, _nvrtc.supported_archs())
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        done = list(pool.map(_compile, [(f, n, arch) for f, n in todo], chunksize=4))
    print(f"{len(done)} kernels compiled for {arch} into {_nvrtc.cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
