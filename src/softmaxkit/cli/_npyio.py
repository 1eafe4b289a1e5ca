"""``.npy`` and ``.npz`` read without trusting them: checked magic, bounded sizes, streamed members.

An ``.npz`` is a zip archive, and a few megabytes of deflated zeros can declare gigabytes: the
size a member declares (in the zip directory and in its ``.npy`` header) is checked against a
limit before anything is allocated, and the data is then decompressed straight into the array,
never more than the header declared.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

from softmaxkit.cli import UsageError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive
_PIECE = 4 * 2**20
"""Bytes decompressed (or copied from standard input) at a time."""
_HEADER_ALLOWANCE = 2**16
"""Room for a ``.npy`` header on top of its data in a member's declared size."""


def default_limit() -> int:
    """Half the memory available now: an array read into memory needs as much again for its result."""
    return _available_memory() // 2


def _available_memory() -> int:
    available = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 2**34
    try:  # a container's own limit (cgroup v2) may be far below the machine's memory
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text())
            available = min(available, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return available


def size_text(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def check_dtype(dtype: np.dtype, name: str) -> None:
    if dtype.hasobject:
        raise UsageError(f"{name}: holds pickled Python objects, which are never loaded")
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise UsageError(f"{name}: expected numbers, got dtype {dtype}")


def check_magic(first: bytes, name: str, fmt: str) -> None:
    """Refuse a file whose first bytes are not those of ``fmt``, naming what it looks like instead."""
    if not first:
        raise UsageError(f"{name}: no data (it is empty)")
    if fmt == "npy" and not first.startswith(NPY_MAGIC):
        if first.startswith(ZIP_MAGICS):
            raise UsageError(f"{name}: a zip archive, not a .npy file; if it is an .npz, say --format npz")
        raise UsageError(f"{name}: not a .npy file")
    if fmt == "npz" and not first.startswith(ZIP_MAGICS):
        if first.startswith(NPY_MAGIC):
            raise UsageError(f"{name}: a .npy file, not an .npz archive; say --format npy")
        raise UsageError(f"{name}: not an .npz archive (not a zip file)")


def read_npy_stream(stream: IO[bytes], name: str, limit: int) -> np.ndarray:
    """The array of a ``.npy`` stream, read in pieces into an array allocated once its size is checked."""
    first = stream.read(len(NPY_MAGIC) + 2)
    check_magic(first, name, "npy")
    try:
        version = np.lib.format.read_magic(io.BytesIO(first))
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:  # 3.0 only adds UTF-8 field names, which numeric arrays never have
            raise ValueError(f"unsupported .npy format version {version}")
        if any(d < 0 for d in shape):
            raise ValueError(f"negative dimension in shape {shape}")
    except ValueError as exc:
        raise UsageError(f"{name}: not a valid .npy file: {exc}") from None
    check_dtype(dtype, name)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limit:
        raise UsageError(f"{name}: declares {size_text(nbytes)} of data, more than the limit of "
                         f"{size_text(limit)} for an array read into memory (--max-load-mb)")
    array = np.empty(shape[::-1] if fortran_order else shape, dtype=dtype)
    view = array.reshape(-1).view(np.uint8).data if nbytes else memoryview(b"")
    filled = 0
    while filled < nbytes:
        # typeshed's BinaryIO/IO[bytes] omit readinto; stdin's buffer and zip members have it
        count = stream.readinto(view[filled: filled + _PIECE])  # type: ignore[attr-defined]
        if not count:
            raise UsageError(f"{name}: truncated: the header declares {nbytes} bytes of data, "
                             f"the file holds {filled}")
        filled += count
    return array.T if fortran_order else array


def read_npz(source: str | BinaryIO, name: str, key: str | None, limit: int) -> np.ndarray:
    """One member of an ``.npz`` archive: ``key``, or the only one."""
    try:
        with zipfile.ZipFile(source) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            names = list(members)
            if key is None:
                if len(names) != 1:
                    raise UsageError(f"{name}: holds {names}; choose one with --key")
                key = names[0]
            if key not in members:
                raise UsageError(f"{name}: no array {key!r}; it holds {names}")
            info = members[key]
            member = f"{name}[{key}]"
            if not info.filename.endswith(".npy"):
                raise UsageError(f"{member}: not a .npy array (the member is {info.filename!r})")
            # The zip directory's size is the first claim checked, before any decompression.
            if info.file_size > limit + _HEADER_ALLOWANCE:
                raise UsageError(f"{member}: declares {size_text(info.file_size)} uncompressed, more than "
                                 f"the limit of {size_text(limit)} for an array read into memory "
                                 "(--max-load-mb)")
            with archive.open(info) as stream:
                array = read_npy_stream(stream, member, limit)
                while stream.read(_PIECE):  # to the member's end, where zipfile checks its CRC
                    pass
                return array
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # NotImplementedError: an unknown compression method; RuntimeError: an encrypted member
        raise UsageError(f"{name}: not a valid .npz archive: {exc}") from None


def spool(stream: BinaryIO, name: str, limit: int) -> BinaryIO:
    """Standard input copied to a temporary file (zip needs to seek), at most ``limit`` bytes of it."""
    copy = tempfile.TemporaryFile()
    copied = 0
    while piece := stream.read(_PIECE):
        copied += len(piece)
        if copied > limit + _HEADER_ALLOWANCE:
            copy.close()
            raise UsageError(f"{name}: more than {size_text(limit)} on standard input, the limit for an "
                             "array read into memory (--max-load-mb)")
        copy.write(piece)
    copy.seek(0)
    return copy
