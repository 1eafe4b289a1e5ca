"""Reading and writing arrays for the command line: .npy, .npz, CSV/TSV, stdin/stdout.

Pickles are never loaded. Outputs are written to a temporary file in the target's directory
and renamed into place only when complete, so an interrupted or failed run never leaves a
half-written file and never clobbers an existing one.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from softmaxkit.cli import UsageError
from softmaxkit.cli._csv import DELIMITERS, read_table
from softmaxkit.cli._npyio import NPY_MAGIC, check_dtype, check_magic, read_npy_stream, read_npz, spool

FORMATS = ("npy", "npz", "csv", "tsv")


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


def read_array(path: str, fmt: str, key: str | None = None, *, limit: int) -> np.ndarray:
    """The array stored at ``path`` (``-``: standard input).

    ``.npy`` files are memory-mapped, so they may exceed RAM; anything read into memory (an
    ``.npz`` member, a ``.npy`` on standard input) may hold at most ``limit`` bytes.
    """
    if path != "-" and not Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    try:
        if fmt == "csv" or fmt == "tsv":
            return read_table(io.StringIO(sys.stdin.read()) if path == "-" else path, path, fmt)
        if path == "-":
            if fmt == "npy":
                return read_npy_stream(sys.stdin.buffer, path, limit)
            with spool(sys.stdin.buffer, path, limit) as copy:
                check_magic(copy.read(len(NPY_MAGIC)), path, fmt)
                copy.seek(0)
                return read_npz(copy, path, key, limit)
        with open(path, "rb") as handle:
            check_magic(handle.read(len(NPY_MAGIC)), path, fmt)
        if fmt == "npz":
            return read_npz(path, path, key, limit)
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        check_dtype(array.dtype, path)
        return array
    except ValueError as exc:
        message = str(exc)
        if "pickle" in message.lower() or "Python objects" in message:
            raise UsageError(f"{path}: holds pickled Python objects, which are never loaded") from None
        raise UsageError(f"{path}: {message}") from None
    except (OSError, EOFError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto ``path`` only if the block succeeds.

    A symbolic link is written through, as ``open(path, "w")`` would: the file it points to is
    replaced (beside it, so that the rename stays on one file system) and the link is kept. An
    existing path that is not a regular file (a directory, a FIFO, a device) is refused: the
    rename would replace it by one."""
    if path.endswith(os.sep):
        raise UsageError(f"{path}: is a directory name, not a file name")
    target = Path(_through_links(path))
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"{path}: directory {directory} does not exist")
    if target.exists() and not target.is_file():
        raise UsageError(f"{path}: is a directory" if target.is_dir() else f"{path}: not a regular file")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write here: {exc.strerror}") from None
    os.close(fd)
    try:
        yield Path(temporary)
        os.chmod(temporary, _new_file_mode(target))
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS:
            raise UsageError(f"{path}: {exc.strerror}") from None
        raise


def _through_links(path: str) -> str:
    """The file a symbolic link ends at (one that does not exist yet, for a dangling link)."""
    if not os.path.islink(path):
        return path
    try:
        return os.path.realpath(path, strict=True)
    except FileNotFoundError:  # dangling: the file it names is created
        return os.path.realpath(path)
    except OSError as exc:  # a loop of links
        raise UsageError(f"{path}: {exc.strerror}") from None


FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
"""Write errors that mean the output does not fit: the disk, the file size limit, the quota."""


def _new_file_mode(target: Path) -> int:
    """The mode a plain ``open(target, "w")`` would give: the old file's, else 0o666 less umask."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def check_npz_key(key: str | None) -> None:
    """``--key`` names an ``.npz`` member: a keyword of ``np.savez`` would vanish into it, a path escape."""
    if key is None:
        return
    reserved = [name for name in inspect.signature(np.savez).parameters if name not in ("args", "kwds")]
    if not key.isidentifier() or key in reserved:
        raise UsageError(f"--key must be a Python identifier other than {', '.join(reserved)} "
                         f"to name an .npz member, got {key!r}")


def write_small(array: np.ndarray, path: str, fmt: str, key: str | None) -> None:
    """Write a whole in-memory array (npz, CSV/TSV, or any format to stdout)."""
    if path == "-":
        stream = {"npy": _Writes(sys.stdout.buffer), "npz": sys.stdout.buffer}.get(fmt, sys.stdout)
        _write_to(stream, array, fmt, key)
        return
    with atomic_output(path) as temporary:
        mode = "wb"
        with open(temporary, mode) as handle:
            _write_to(handle, array, fmt, key)


class _Writes:
    """Standard output as a plain object with ``write``: NumPy then writes ``.npy`` data in pieces
    through it, so a closed pipe or a full disk raises its own error (``BrokenPipeError``,
    ``ENOSPC``), where ``ndarray.tofile`` on a real file would say only "N requested and 0 written".
    """

    def __init__(self, stream: BinaryIO):
        self._stream = stream

    def write(self, data: bytes) -> int:
        return self._stream.write(data)

    def flush(self) -> None:
        self._stream.flush()


def _write_to(
    handle: IO[Any] | _Writes, array: np.ndarray, fmt: str, key: str | None
) -> None:
    if fmt == "npy":
        np.save(handle, array, allow_pickle=False)
    elif fmt == "npz":
        # Any: NumPy's stubs would match these arrays against savez's allow_pickle: bool
        members: dict[str, Any] = {key or "arr_0": array}
        np.savez(handle, **members)
    else:
        if array.ndim > 2:
            raise UsageError(f"{fmt.upper()} holds at most 2 dimensions, the result has {array.ndim}")
        np.savetxt(handle, np.atleast_2d(array) if array.ndim < 2 else array,
                   delimiter=DELIMITERS[fmt], fmt="%.17g")
