"""Out-of-core softmax with the Dask engine: peak memory and throughput, one command.

    python benchmarks/dask_outofcore.py [--dir DIR] [--repeats 3] [--small | --quick]

1. Peak memory: softmax of a 2 GiB float32 zarr array (16,384 x 32,768, the softmax axis split
   into 4 chunks of 8,192) zarr to zarr, with the local threaded scheduler and with a
   ``LocalCluster`` of 2 worker processes. Each job runs in a child process; the resident set
   of the child and all its descendants (scheduler, nannies, workers) is summed every 20 ms and
   the peak reported (shared pages count once per process, so this overstates).
2. Throughput (SPEC §4: 2 x bytes / time) on a 4 GiB float32 ``.npy`` array (32,768 x 32,768),
   ``.npy`` to ``.npy``: the single-process engine for NumPy arrays (``softmaxkit.softmax``,
   engine chosen automatically, on 64 MiB row slabs of the memory-mapped file, written into a
   memory-mapped output; the whole array plus the generic engine's temporaries would not fit
   beside the other jobs of a shared machine) against
   ``apply_chunked`` on a ``LocalCluster`` of 1 and of 2 single-threaded worker processes,
   rows whole in a block and rows split into 4 chunks; and a plain copy of the same slabs, the
   rate the files allow. Median of ``--repeats`` runs, contenders interleaved.

``--small`` divides the row counts by 16; ``--quick`` runs every contender once on arrays of a
few KiB (the smoke test in ``tests/test_benchmark_dask.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GIB = 2**30


@dataclass(frozen=True)
class Sizes:
    """The arrays of both parts: shapes, and chunks with the softmax axis whole or in 4."""

    memory_shape: tuple[int, int]
    memory_chunks: tuple[int, int]
    throughput_shape: tuple[int, int]
    rows_whole: tuple[int, int]
    rows_split: tuple[int, int]
    slab_bytes: int = 64 * 2**20
    """The NumPy engine's row slabs (64 MiB; the blocks above are 64 MiB too)."""


FULL = Sizes((16384, 32768), (1024, 8192), (32768, 32768), (512, 32768), (2048, 8192))
SMALL = Sizes((1024, 32768), (64, 8192), (2048, 32768), (32, 32768), (128, 8192))
QUICK = Sizes((64, 256), (16, 64), (64, 256), (16, 256), (64, 64), 16 * 256 * 4)


def make_zarr(path: Path, shape: tuple[int, int], chunks: tuple[int, int]) -> None:
    import dask.array as da

    x = da.random.default_rng(0).standard_normal(shape, chunks=chunks, dtype=np.float32) * 4
    x.to_zarr(str(path), overwrite=True)


def make_npy(path: Path, shape: tuple[int, int]) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    rng = np.random.default_rng(1)
    step = max(1, (64 * 2**20) // (shape[1] * 4))
    for start in range(0, shape[0], step):
        rows = min(step, shape[0] - start)
        out[start : start + rows] = rng.standard_normal((rows, shape[1]), np.float32) * 4
    out.flush()


def peak_rss_of_job(argv: list[str]) -> tuple[float, float]:
    """Run ``argv`` as a child process; its wall time and the peak summed RSS of its process tree."""
    import psutil

    start = time.perf_counter()
    child = psutil.Popen(argv)
    peak = 0
    while child.poll() is None:
        try:
            tree = [child, *child.children(recursive=True)]
            total = 0
            for p in tree:
                with _ignore_gone():
                    total += p.memory_info().rss
            peak = max(peak, total)
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    if child.returncode:
        raise SystemExit(f"job failed: {argv}")
    return time.perf_counter() - start, peak


class _ignore_gone:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, value, tb) -> bool:
        import psutil

        return kind is not None and issubclass(kind, psutil.NoSuchProcess)


def job(source: str, target: str, workers: int) -> None:
    """The measured job: softmax from ``source`` to ``target`` (threads, or a LocalCluster)."""
    from softmaxkit.dask import apply_chunked

    if workers == 0:
        apply_chunked(source, target)
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as c:
        apply_chunked(source, target, scheduler=c.scheduler_address)


def numpy_engine_slabs(source: Path, target: Path, slab_bytes: int, compute: bool = True) -> None:
    """softmax of ``source`` into ``target`` in row slabs; ``compute=False`` copies the slabs
    instead: the same reads and writes through the memory maps, the ceiling the files set."""
    import softmaxkit as sk

    x = np.load(source, mmap_mode="r")
    out = np.lib.format.open_memmap(target, mode="w+", dtype=x.dtype, shape=x.shape)
    step = max(1, slab_bytes // (x.shape[1] * x.dtype.itemsize))
    for start in range(0, x.shape[0], step):
        slab = np.asarray(x[start : start + step])
        out[start : start + step] = sk.softmax(slab) if compute else slab
    out.flush()
    del out


def memory_part(folder: Path, sizes: Sizes) -> None:
    shape, chunks = sizes.memory_shape, sizes.memory_chunks
    source = folder / "x2g.zarr"
    make_zarr(source, shape, chunks)
    size = np.prod(shape) * 4 / GIB
    print(f"\n## Peak memory: {size:.2f} GiB float32 zarr {shape}, chunks {chunks}"
          " (softmax axis in 4 chunks)")
    print("| scheduler | wall s | peak RSS of all processes |")
    print("|---|---|---|")
    for label, workers in (("local threads (2)", 0), ("LocalCluster 2 processes x 1 thread", 2)):
        target = folder / f"p2g-{workers}.zarr"
        argv = [sys.executable, __file__, "job", str(source), str(target), str(workers)]
        wall, peak = peak_rss_of_job(argv)
        print(f"| {label} | {wall:.1f} | {peak / GIB:.2f} GiB |", flush=True)
        check_rows_sum_to_one(target)
        shutil.rmtree(target)
    shutil.rmtree(source)


def check_rows_sum_to_one(target: Path) -> None:
    import zarr

    z = zarr.open_array(str(target), mode="r")
    rows = np.asarray(z[:64], dtype=np.float64).sum(axis=1)
    assert np.allclose(rows, 1.0, rtol=1e-4), rows


def throughput_part(folder: Path, sizes: Sizes, repeats: int) -> None:
    from distributed import LocalCluster

    from softmaxkit.dask import apply_chunked

    shape = sizes.throughput_shape
    source, target = folder / "x4g.npy", folder / "p4g.npy"
    make_npy(source, shape)
    nbytes = np.prod(shape) * 4
    rows_whole, rows_split = sizes.rows_whole, sizes.rows_split
    contenders: dict[str, object] = {"numpy engine, 1 process": "softmax",
                                     "copy of the same slabs, 1 process (file I/O ceiling)": "copy"}
    clusters = {k: LocalCluster(n_workers=k, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR)
                for k in (1, 2)}
    for k, cluster in clusters.items():
        address = cluster.scheduler_address
        contenders[f"dask, {k} worker process(es), rows whole"] = (address, rows_whole)
        contenders[f"dask, {k} worker process(es), rows in 4 chunks"] = (address, rows_split)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, how in contenders.items():
            start = time.perf_counter()
            if isinstance(how, str):
                numpy_engine_slabs(source, target, sizes.slab_bytes, compute=how == "softmax")
            else:
                address, chunks = how
                apply_chunked(source, target, scheduler=address, chunks=chunks)
            times[name].append(time.perf_counter() - start)
            target.unlink()
    for cluster in clusters.values():
        cluster.close()
    from softmaxkit._engines import choose_engine

    local = choose_engine("softmax", np.empty(rows_whole, np.float32)).__name__  # one block
    print(f"\n## Throughput: {nbytes / GIB:.2f} GiB float32 .npy {shape} -> .npy, median of {repeats}")
    print(f"(NumPy blocks and slabs computed by {local})")
    print("| contender | median s | GB/s (2 x bytes / time) | vs numpy engine |")
    print("|---|---|---|---|")
    base = statistics.median(times["numpy engine, 1 process"])
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"| {name} | {t:.2f} | {2 * nbytes / t / 1e9:.2f} | {base / t:.2f}x |", flush=True)
    source.unlink()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "job":
        job(argv[1], argv[2], int(argv[3]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a new one in /tmp)")
    parser.add_argument("--repeats", type=int, default=3)
    tier = parser.add_mutually_exclusive_group()
    tier.add_argument("--small", action="store_true", help="row counts / 16")
    tier.add_argument("--quick", action="store_true", help="arrays of a few KiB, 1 repeat: a smoke run")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="skdask-", dir=args.dir))
    sizes = QUICK if args.quick else SMALL if args.small else FULL
    repeats = 1 if args.quick else args.repeats
    print(f"# softmaxkit Dask engine, out of core ({os.cpu_count()} cores, numpy {np.__version__})")
    try:
        if not args.skip_memory:
            memory_part(folder, sizes)
        if not args.skip_throughput:
            throughput_part(folder, sizes, repeats)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
