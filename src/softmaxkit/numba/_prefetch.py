"""Software prefetch: ask for memory a later pass reads, while this pass computes.

A row kernel's passes alternate between memory and arithmetic: the max pass streams the row
in from memory while the SIMD units idle, the ``exp`` pass computes on a row already in L2
while memory idles. Prefetching the *next* row (or block) a slice at a time during the ``exp``
pass overlaps the two. Prefetches are hints: they never change a result, and a CPU may drop them.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from softmaxkit.numba._exp import EXACT_FLAGS
from softmaxkit.numba._jit import helper

LINE = 64
"""Bytes of a cache line (x86-64 and most ARM cores)."""


@intrinsic
def prefetch(typingctx, address, write):
    """Ask for the cache line at ``address`` (an integer) in every cache level, to be written
    when the literal ``write`` is 1 (LLVM's ``llvm.prefetch``)."""
    rw = getattr(write, "literal_value", None)
    if rw not in (0, 1):
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        pointer = builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", [pointer.type], ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]))
        builder.call(fn, [pointer, i32(rw), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(types.uintp, write), codegen


@helper(fastmath=EXACT_FLAGS)
def prefetch_bytes(address, nbytes, write):
    """Prefetch the lines of ``nbytes`` bytes from ``address`` (``write``: a literal 0 or 1)."""
    for offset in range(0, nbytes, LINE):
        prefetch(address + np.uint64(offset), write)
