"""Out-of-core softmax between files: zarr stores and ``.npy`` files, block by block, via Dask.

The output appears only when complete: blocks are written into a temporary file (or zarr
directory) next to the target, which then replaces the target by a rename. On any error or
interrupt the temporary is removed and an existing target is left as it was.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from softmaxkit._api import log_softmax, logsumexp, softmax
from softmaxkit._npyfiles import create_npy

FUNCTIONS = ("softmax", "logsumexp")
BLOCK_BYTES = 64 * 2**20
"""Block size for ``.npy`` sources: a block's task holds a few temporaries of this size."""


def apply_chunked(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    function: str = "softmax",
    axis: int | tuple[int, ...] | None = -1,
    temperature: float = 1.0,
    log: bool = False,
    scheduler: str | None = None,
    progress: Callable[[int, int], Any] | None = None,
    chunks: Any = None,
) -> Path:
    """Compute softmax (or log_softmax, or logsumexp) of an array on disk into a new file, out of core.

    Parameters
    ----------
    source : path
        A zarr array store (a directory, read with its own chunks) or a ``.npy`` file
        (memory-mapped; pickled object arrays are refused).
    target : path
        ``*.zarr`` or ``*.npy``. Written to a temporary name in the same directory and renamed
        into place when complete; an existing target is replaced only then.
    function : {"softmax", "logsumexp"}
        ``"logsumexp"`` writes the reduced array (``axis`` removed).
    axis : int, tuple of ints or None
        The softmax axis (or axes; None: all); it may span many chunks.
    temperature : float
        Softmax temperature.
    log : bool
        log_softmax instead of softmax.
    scheduler : str, optional
        The address of a ``dask.distributed`` scheduler (``"tcp://host:8786"``) to run the job
        on; its workers must see both paths. By default the local threaded scheduler runs it.
    progress : callable, optional
        Called as ``progress(blocks_done, blocks_total)`` in this process as blocks are written.
    chunks : optional
        Dask chunks to process in (anything :func:`dask.array.rechunk` takes). By default a
        zarr store's own chunks, and for ``.npy`` blocks of about 64 MiB holding whole rows
        along ``axis`` where a row fits.

    Returns
    -------
    Path
        The target.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from softmaxkit.dask import apply_chunked
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "logits.npy", np.array([[0.0, 0.0], [1.0, 3.0]]))
    >>> apply_chunked(folder / "logits.npy", folder / "probs.zarr").name
    'probs.zarr'
    >>> import zarr
    >>> zarr.open_array(str(folder / "probs.zarr"), mode="r")[:].round(4)
    array([[0.5   , 0.5   ],
           [0.1192, 0.8808]])
    """
    if function not in FUNCTIONS:
        raise ValueError(f"function must be one of {FUNCTIONS}, got {function!r}")
    if function == "logsumexp" and (log or temperature != 1.0):
        raise ValueError("log and temperature apply to softmax only")
    source, target = Path(source), Path(target)
    target_format = _format_of(target, "target")
    x = _open_source(source, axis, chunks)
    if function == "softmax":
        result = (log_softmax if log else softmax)(x, axis=axis, temperature=temperature)
    else:
        result = logsumexp(x, axis=axis)
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        writes = _block_writes(result, temporary, target_format)
        _run(writes, scheduler, progress)
        _to_completion(_replace, temporary, target)  # never half swapped, even by Ctrl-C
    except BaseException:
        _remove(temporary)
        raise
    return target


def _format_of(path: Path, role: str) -> str:
    if path.suffix == ".npy":
        return "npy"
    if path.suffix == ".zarr" or (role == "source" and path.is_dir()):
        return "zarr"
    raise ValueError(f"{role} {str(path)!r}: expected a .npy file or a zarr store (.zarr)")


class NpyBlocks:
    """A ``.npy`` file read block by block through a memory map.

    It pickles as its path, so Dask workers open the file themselves instead of receiving
    its contents.
    """

    def __init__(self, path: Path):
        self.path = str(path)
        mapped = self._map()
        self.shape, self.dtype, self.ndim = mapped.shape, mapped.dtype, mapped.ndim

    def _map(self) -> np.ndarray:
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:  # object arrays would need pickle
            raise ValueError(f"{self.path}: {exc}") from None

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.array(self._map()[index])

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        stat = os.stat(self.path)
        return ("NpyBlocks", self.path, stat.st_mtime_ns, stat.st_size)


def _open_source(source: Path, axis: Any, chunks: Any) -> Any:
    import dask.array as da
    from dask.array.core import normalize_chunks

    if _format_of(source, "source") == "zarr":
        x = da.from_zarr(str(source))
        return x if chunks is None else x.rechunk(chunks)
    blocks = NpyBlocks(source)
    if blocks.dtype.kind not in "biuf":
        raise ValueError(f"{source}: expected numbers, got dtype {blocks.dtype}")
    if chunks is None:
        axes = _axes(axis, blocks.ndim)
        row_bytes = math.prod(blocks.shape[a] for a in axes) * blocks.dtype.itemsize
        keep_rows = row_bytes <= BLOCK_BYTES
        chunks = {d: -1 if (d in axes and keep_rows) else "auto" for d in range(blocks.ndim)}
    chunks = normalize_chunks(chunks, blocks.shape, limit=BLOCK_BYTES, dtype=blocks.dtype)
    return da.from_array(blocks, chunks=chunks, meta=np.empty((0,) * blocks.ndim, blocks.dtype))


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    from softmaxkit._arrays import normalize_axes

    return normalize_axes(axis, ndim)


def _block_writes(result: Any, path: Path, fmt: str) -> list[Any]:
    """One delayed task per block of ``result``, writing it into a new store at ``path``."""
    import dask

    if fmt == "zarr":
        import zarr

        # One zarr chunk per block: no two tasks ever write into the same zarr chunk.
        if any(len(set(c[:-1])) > 1 or (len(c) > 1 and c[-1] > c[0]) for c in result.chunks):
            result = result.rechunk(result.chunksize)
        chunks = tuple(c[0] if c else 0 for c in result.chunks)
        _to_completion(zarr.create, shape=result.shape, chunks=chunks, dtype=result.dtype, store=str(path))
        write = _write_zarr_block
    else:
        # Space reserved up front: blocks are written through memory maps, which cannot report a
        # full disk (the process would die of SIGBUS).
        create_npy(path, result.dtype, result.shape).flush()
        write = _write_npy_block
    write_task = dask.delayed(write, pure=True)
    blocks = result.to_delayed().ravel()
    regions = _regions(result.chunks)
    return [write_task(b, str(path), region) for b, region in zip(blocks, regions, strict=True)]


def _to_completion(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, finished even if the main thread is interrupted meanwhile.

    zarr 3 writes from its own event-loop thread: a Ctrl-C or SIGTERM that stops the main thread
    while it waits would let the write land after the clean-up had removed the directory. Here
    the call runs in a helper thread, and leaving the ``with`` block waits for it either way.
    """
    with ThreadPoolExecutor(1) as helper:
        return helper.submit(function, *args, **kwargs).result()


def _regions(chunks: tuple[tuple[int, ...], ...]) -> Iterator[tuple[slice, ...]]:
    """The slices of every block, in the order of ``to_delayed().ravel()`` (C order)."""
    import itertools

    starts = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]
    for index in itertools.product(*(range(len(c)) for c in chunks)):
        yield tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, index, strict=True))


def _write_zarr_block(block: np.ndarray, path: str, region: tuple[slice, ...]) -> int:
    import zarr

    zarr.open_array(path, mode="r+")[region] = block
    return 1


def _write_npy_block(block: np.ndarray, path: str, region: tuple[slice, ...]) -> int:
    mapped = np.load(path, mmap_mode="r+")
    mapped[region] = block
    mapped.flush()
    return 1


def _run(writes: list[Any], scheduler: str | None, progress: Callable[[int, int], Any] | None) -> None:
    """Run the write tasks here (threads) or on a ``dask.distributed`` cluster, reporting progress."""
    import dask

    total = len(writes)
    if scheduler is not None:
        from distributed import Client, as_completed

        with Client(scheduler) as client:
            futures = client.compute(writes)
            try:
                for done, future in enumerate(as_completed(futures), 1):
                    future.result()
                    if progress is not None:
                        progress(done, total)
            except BaseException:
                client.cancel(futures)
                raise
        return
    # Our own pool, so that after an error no block is still being written when we clean up.
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool, _local_progress(writes, progress):
        dask.compute(*writes, scheduler="threads", pool=pool)


@contextlib.contextmanager
def _local_progress(writes: list[Any], progress: Callable[[int, int], Any] | None) -> Iterator[None]:
    if progress is None:
        yield
        return
    from dask.callbacks import Callback

    keys = {w.key for w in writes}
    done = 0

    def count(key: Any, *args: Any) -> None:
        nonlocal done
        if key in keys:
            done += 1
            progress(done, len(keys))

    with Callback(posttask=count):
        yield


def _replace(temporary: Path, target: Path) -> None:
    """Move the finished output into place; an existing zarr directory is swapped out first."""
    if not target.is_dir():
        os.replace(temporary, target)
        return
    old = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.old"
    os.replace(target, old)
    try:
        os.replace(temporary, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
