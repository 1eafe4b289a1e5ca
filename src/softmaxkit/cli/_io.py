"""Reading and writing arrays for the command line: .npy, .npz, CSV/TSV, stdin/stdout.

Pickles are never loaded. Outputs are written to a temporary file in the target's directory
and renamed into place only when complete, so an interrupted or failed run never leaves a
half-written file and never clobbers an existing one.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from softmaxkit.cli import UsageError

FORMATS = ("npy", "npz", "csv", "tsv")
DELIMITERS = {"csv": ",", "tsv": "\t"}


def format_of(path: str, given: str | None) -> str:
    """The format named by ``--format``, else by the file extension (``-`` defaults to CSV)."""
    if given is not None:
        return given
    if path == "-":
        return "csv"
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "txt":
        return "csv"
    if suffix not in FORMATS:
        choices = ",".join(FORMATS)
        raise UsageError(f"{path}: cannot tell the format from the extension; use --format {{{choices}}}")
    return suffix


def _check_numeric(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype.hasobject:
        raise UsageError(f"{name}: object arrays are refused (they would need pickle)")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise UsageError(f"{name}: expected numbers, got dtype {array.dtype}")
    return array


def read_array(path: str, fmt: str, key: str | None = None, *, mmap: bool = True) -> np.ndarray:
    """The array stored at ``path``; ``.npy`` files are memory-mapped, so they may exceed RAM."""
    if path != "-" and not Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    try:
        if fmt == "npy":
            source = sys.stdin.buffer.read() if path == "-" else path
            if path == "-":
                return _check_numeric(np.load(io.BytesIO(source), allow_pickle=False), path)
            return _check_numeric(np.load(source, mmap_mode="r" if mmap else None, allow_pickle=False), path)
        if fmt == "npz":
            data = io.BytesIO(sys.stdin.buffer.read()) if path == "-" else path
            with np.load(data, allow_pickle=False) as archive:
                names = list(archive.files)
                if key is None:
                    if len(names) != 1:
                        raise UsageError(f"{path}: holds {names}; choose one with --key")
                    key = names[0]
                if key not in names:
                    raise UsageError(f"{path}: no array {key!r}; it holds {names}")
                return _check_numeric(archive[key], f"{path}[{key}]")
        text = sys.stdin if path == "-" else path
        array = np.loadtxt(text, delimiter=DELIMITERS[fmt], dtype=np.float64, ndmin=2)
        return array
    except UsageError:
        raise
    except ValueError as exc:
        message = str(exc)
        if "pickle" in message.lower() or "Python objects" in message:
            raise UsageError(f"{path}: holds pickled Python objects, which are never loaded") from None
        raise UsageError(f"{path}: {message.split('; use `usecols`')[0]}") from None
    except (OSError, EOFError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto ``path`` only if the block succeeds."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"{path}: directory {directory} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write here: {exc.strerror}") from None
    os.close(fd)
    try:
        yield Path(temporary)
        os.chmod(temporary, _new_file_mode(target))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _new_file_mode(target: Path) -> int:
    """The mode a plain ``open(target, "w")`` would give: the old file's, else 0o666 less umask."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_small(array: np.ndarray, path: str, fmt: str, key: str | None) -> None:
    """Write a whole in-memory array (npz, CSV/TSV, or any format to stdout)."""
    if path == "-":
        _write_to(sys.stdout.buffer if fmt in ("npy", "npz") else sys.stdout, array, fmt, key)
        return
    with atomic_output(path) as temporary:
        mode = "wb"
        with open(temporary, mode) as handle:
            _write_to(handle, array, fmt, key)


def _write_to(handle: BinaryIO | io.TextIOBase, array: np.ndarray, fmt: str, key: str | None) -> None:
    if fmt == "npy":
        np.save(handle, array, allow_pickle=False)
    elif fmt == "npz":
        np.savez(handle, **{key or "arr_0": array})
    else:
        if array.ndim > 2:
            raise UsageError(f"{fmt.upper()} holds at most 2 dimensions, the result has {array.ndim}")
        np.savetxt(handle, np.atleast_2d(array) if array.ndim < 2 else array,
                   delimiter=DELIMITERS[fmt], fmt="%.17g")
