"""``softmaxkit apply``: softmax (or log_softmax) of an array file, in chunks, written safely."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator

import numpy as np

import softmaxkit as sk
from softmaxkit._arrays import broadcast_shape, normalize_axes
from softmaxkit._npyfiles import create_npy
from softmaxkit.cli import UsageError
from softmaxkit.cli._io import (
    FORMATS,
    FULL_DISK_ERRNOS,
    atomic_output,
    check_npz_key,
    format_of,
    read_array,
    write_small,
)
from softmaxkit.cli._npyio import default_limit
from softmaxkit.cli._progress import progress_bar

CHUNK_MB = 64.0
"""Default input megabytes per chunk: large enough to run at full speed, small next to memory."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "apply", help="softmax of an array file (.npy, .npz, CSV/TSV, or - for stdin)",
        description="Read logits, apply softmax along an axis, write probabilities. Large .npy "
                    "inputs are memory-mapped and processed in chunks. The output appears only "
                    "when complete; an existing output is untouched if anything fails.",
    )
    p.add_argument("input", help="input file, or - for standard input")
    p.add_argument("-o", "--output", required=True, help="output file, or - for standard output")
    p.add_argument("--axis", default="-1",
                   help="axis to normalise: an int, a comma-separated list, or 'none' (all); default -1")
    p.add_argument("--log", action="store_true", help="write log-probabilities (log_softmax)")
    p.add_argument("--temperature", "-t", type=float, default=1.0, help="divide logits by T (> 0)")
    p.add_argument("--engine", default=None, help=f"force an engine ({', '.join(sk.engine_names())})")
    p.add_argument("--mask", help="file with a boolean (or 0/1) array that broadcasts to the input; "
                                   "False entries are excluded")
    p.add_argument("--key", help="array name inside an .npz input (and the name for an .npz output)")
    p.add_argument("--format", choices=FORMATS, help="input format, when the extension does not say")
    p.add_argument("--output-format", choices=FORMATS, help="output format (default: from the extension)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on this Dask cluster (e.g. tcp://host:8786); zarr stores always go through Dask")
    p.add_argument("--chunk-mb", type=float, default=CHUNK_MB,
                   help=f"input megabytes processed at a time (default {CHUNK_MB:g})")
    p.add_argument("--max-load-mb", type=float, default=None,
                   help="the largest array read into memory (an .npz member, a .npy on standard input); "
                        "default: half the memory available")
    p.set_defaults(run=run)


def parse_axis(text: str) -> int | tuple[int, ...] | None:
    if text.lower() == "none":
        return None
    try:
        parts = [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--axis must be an int, a comma-separated list or 'none', got {text!r}") from None
    return parts[0] if len(parts) == 1 else tuple(parts)


def chunks(
    shape: tuple[int, ...], axes: tuple[int, ...], itemsize: int, chunk_bytes: int
) -> Iterator[tuple[slice, ...]]:
    """Index tuples that cover the array in slabs along the first axis that is not normalised."""
    free = [d for d in range(len(shape)) if d not in axes]
    if not free or math.prod(shape) * itemsize <= chunk_bytes:
        yield tuple(slice(None) for _ in shape)
        return
    d = free[0]
    per_slab = math.prod(shape) // max(shape[d], 1) * itemsize
    step = max(1, chunk_bytes // max(per_slab, 1))
    for start in range(0, shape[d], step):
        yield tuple(slice(start, start + step) if i == d else slice(None) for i in range(len(shape)))


def _mask_for(mask: np.ndarray | None, shape: tuple[int, ...], index: tuple[slice, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    full = np.broadcast_to(mask, shape)
    return full[index]


def megabytes(value: float, option: str) -> int:
    """``value`` MB as bytes, checked: a finite, positive number."""
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} must be a finite number > 0, got {value:g}")
    return max(1, int(value * 2**20))


def _is_zarr(path: str) -> bool:
    return path.rstrip("/").endswith(".zarr")


def run_on_dask(args: argparse.Namespace) -> int:
    """zarr stores, or any job sent to a cluster: the Dask engine's out-of-core writer."""
    for path in (args.input, args.output):
        if not (_is_zarr(path) or path.endswith(".npy")):
            raise UsageError(f"{path}: Dask jobs read and write .zarr stores or .npy files")
    if args.mask or args.engine not in (None, "dask"):
        raise UsageError("--mask and --engine are not available for .zarr / --scheduler jobs")
    try:
        import dask.array  # noqa: F401
        if _is_zarr(args.input) or _is_zarr(args.output):
            import zarr  # noqa: F401
        if args.scheduler:
            import distributed  # noqa: F401
        from softmaxkit.dask import apply_chunked
    except ImportError as exc:
        missing = exc.name or "a package"
        raise UsageError(f"zarr stores and --scheduler need Dask ({missing} is not installed): "
                         "pip install \"softmaxkit[dask]\"") from None
    with progress_bar() as progress:
        task = progress.add_task("softmax", total=None)
        try:
            apply_chunked(args.input, args.output, axis=parse_axis(args.axis), temperature=args.temperature,
                          log=args.log, scheduler=args.scheduler,
                          progress=lambda done, total: progress.update(task, completed=done, total=total))
        except OSError as exc:
            if exc.errno in FULL_DISK_ERRNOS:
                raise UsageError(f"{args.output}: {exc.strerror}") from None
            raise
    return 0


def run(args: argparse.Namespace) -> int:
    if args.scheduler or _is_zarr(args.input) or _is_zarr(args.output):
        return run_on_dask(args)
    in_fmt = format_of(args.input, args.format)
    out_fmt = format_of(args.output, args.output_format)
    if out_fmt == "npz":
        check_npz_key(args.key)
    chunk_bytes = megabytes(args.chunk_mb, "--chunk-mb")
    limit = default_limit() if args.max_load_mb is None else megabytes(args.max_load_mb, "--max-load-mb")
    x = read_array(args.input, in_fmt, args.key, limit=limit)
    axes = normalize_axes(parse_axis(args.axis), x.ndim)
    mask = None
    if args.mask:
        mask = read_array(args.mask, format_of(args.mask, None), limit=limit)
        if mask.dtype != np.bool_:
            if not np.isin(mask, (0, 1)).all():
                raise UsageError(f"{args.mask}: a mask holds booleans or 0/1 only")
            mask = mask.astype(bool)
        if not broadcast_shape(mask.shape, x.shape):
            raise UsageError(f"{args.mask}: mask of shape {mask.shape} does not broadcast to {x.shape}")
    function = sk.log_softmax if args.log else sk.softmax
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    pieces = list(chunks(x.shape, axes, x.dtype.itemsize, chunk_bytes))

    def compute_into(out: np.ndarray) -> None:
        with progress_bar(show=len(pieces) > 1) as progress:
            task = progress.add_task("softmax", total=len(pieces))
            for index in pieces:
                block = np.asarray(x[index])
                out[index] = function(block, axis=axes, where=_mask_for(mask, x.shape, index),
                                      temperature=args.temperature, engine=args.engine)
                progress.advance(task)

    if out_fmt == "npy" and args.output != "-":
        with atomic_output(args.output) as temporary:
            # space reserved before mapping: a full disk is then an error here, not a SIGBUS later
            mapped = create_npy(temporary, dtype, x.shape)
            compute_into(mapped)
            mapped.flush()
            del mapped
    else:
        out = np.empty(x.shape, dtype=dtype)
        compute_into(out)
        write_small(out, args.output, out_fmt, args.key)
    return 0
