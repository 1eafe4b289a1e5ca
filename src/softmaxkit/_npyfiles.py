"""New ``.npy`` files to be filled through a memory map, with their disk space reserved first.

A write through a memory map into a sparse file has no way to report a full disk: the kernel
finds out only when a dirty page is written back, and the process dies of SIGBUS with the file
half written. Reserving every block up front turns that into an ``OSError`` (``ENOSPC``, or
``EFBIG`` past ``RLIMIT_FSIZE``) before anything is computed.
"""

from __future__ import annotations

import errno
import math
import os

import numpy as np

_ZEROS = 16 * 2**20
"""Bytes written at a time where the file system cannot reserve space (the fallback)."""


def create_npy(path: str | os.PathLike[str], dtype: np.dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file at ``path`` with all of its blocks allocated, mapped for writing.

    Raises ``OSError`` when the disk (or the file size limit) cannot hold it.
    """
    dtype = np.dtype(dtype)
    header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    offset = header.offset
    del header
    with open(path, "r+b") as handle:
        _reserve(handle.fileno(), offset, offset + math.prod(shape) * dtype.itemsize)
    return np.lib.format.open_memmap(path, mode="r+")


def _reserve(fd: int, start: int, size: int) -> None:
    """Allocate bytes ``[0, size)`` of the file; ``[start, size)`` may be overwritten with zeros."""
    if size == 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except AttributeError:  # not on macOS or Windows
        pass
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    # Without fallocate, writing real zeros is the only way to claim the blocks.
    zeros = bytes(min(_ZEROS, size - start))
    os.lseek(fd, start, os.SEEK_SET)
    done = start
    while done < size:
        done += os.write(fd, zeros[: size - done])
