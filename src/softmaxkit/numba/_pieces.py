"""Pieces of rows: the kernels behind a row split across the chunks of a Dask array.

A piece yields the online normaliser's pair ``(max, sum of exp((x - max) * inv_t))``
(Milakov & Gimelshein, 2018); the Dask engine merges the pairs of a row, then each piece is
normalised with its row's merged pair. The sums are the blocked, compensated ones of
``_sums`` (float64), so a piece of any length keeps its digits.

Special rows follow the generic engine (SPEC §2) exactly: a piece with no included entry
gives ``(-inf, 0)``; a piece whose max is ``+inf`` counts its ``+inf`` entries (they share
the row's mass); a NaN reaches the sum and is reported as the max too (``span_max`` may not
see it), as ``max`` does in the generic engine. In the normalisation a ``+inf`` merged max
maps the piece through ``limit_row``, other non-finite maxima shift by 0, and a sum of 0 (no
included entry in the whole row) counts as 1.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from softmaxkit.numba._exp import EXACT_FLAGS
from softmaxkit.numba._rows import limit_row
from softmaxkit.numba._sums import scale_span, span_max, store_exp, store_log, sum_exp


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def softmax_pair_rows(x, inv_t):
    """Each row's ``(max, sum of exp((x - shift) * inv_t))``, the sum in float64.

    The shift is the max when finite, else 0 (a ``-inf`` max: every term is 0).
    """
    rows = x.shape[0]
    row_max = np.empty(rows, dtype=x.dtype)
    total = np.empty(rows, dtype=np.float64)
    for r in prange(rows):
        m = span_max(x[r])
        if m == np.inf:
            s = sum_exp(limit_row(x[r]), x.dtype.type(0.0), inv_t)  # exp(0) per +inf entry
        else:
            s = sum_exp(x[r], m if m > -np.inf else x.dtype.type(0.0), inv_t)
        row_max[r] = m if s == s else np.nan
        total[r] = s
    return row_max, total


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def softmax_from_pair_rows(x, out, row_max, total, inv_t, log):
    """softmax (or log_softmax) of each row piece of ``x`` into ``out``, from its row's merged pair."""
    zero = x.dtype.type(0.0)
    for r in prange(x.shape[0]):
        m, s = row_max[r], np.float64(total[r])
        if s != s:  # NaN somewhere in the row: all NaN (the kernels' exp is not defined above 40)
            out[r][:] = np.nan
            continue
        row = x[r]
        if m == np.inf:
            row = limit_row(row)
        shift = m if -np.inf < m < np.inf else zero
        s = s if s != 0.0 else 1.0
        if log:
            store_log(row, out[r], shift, inv_t, x.dtype.type(math.log(s)))
        else:
            store_exp(row, out[r], shift, inv_t)
            scale_span(out[r], x.dtype.type(1.0 / s))
