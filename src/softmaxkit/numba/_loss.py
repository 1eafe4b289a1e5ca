"""Fused cross-entropy rows: loss and gradient from one pass over cached logits.

With ``a_c = w_c * q_c`` the target mass of class ``c`` (one-hot of the label mixed with the
uniform ``eps / n``, times the class weight; see :mod:`softmaxkit.generic._loss`) and
``A = sum_c a_c``::

    loss = -sum_c a_c * (z_c - lse)        gradient_c = (A * p_c - a_c) * scale

Per row: the max; ``exp(z)`` written into the gradient row and summed; the loss; one more
pass turning the stored exponentials into the gradient. The logits are read once from memory
and the gradient written once; ``exp`` runs once per element.
"""

from __future__ import annotations

import math

import numpy as np

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small, log_positive
from softmaxkit.numba._jit import helper, kernel
from softmaxkit.numba._rows import settled_row
from softmaxkit.numba._short_rows import TILE, TILES_PER_TASK, load_tile
from softmaxkit.numba._sums import REDUCE_FLAGS, store_exp, sum_exp


@helper(fastmath=REDUCE_FLAGS)
def _weighted_log_sum(x, w, shift, lse):
    """``sum_c w_c * (x_c - shift - lse)`` over classes with ``w_c != 0`` (0 * -inf adds 0)."""
    s = 0.0
    for c in range(x.size):
        wc = np.float64(w[c])
        s += 0.0 if wc == 0.0 else wc * ((np.float64(x[c]) - shift) - lse)
    return s


@helper(fastmath=REDUCE_FLAGS)
def _weight_sum(w):
    s = 0.0
    for c in range(w.size):
        s += np.float64(w[c])
    return s


@helper(fastmath=EXACT_FLAGS)
def _grad_row(g, w, big_a_over_s, smooth, scale):
    t = g.dtype.type
    f, sm, sc = t(big_a_over_s), t(smooth), t(scale)
    for c in range(g.size):
        g[c] = (f * g[c] - sm * w[c]) * sc


@helper(fastmath=EXACT_FLAGS)
def row_cross_entropy(x, g, label, counted, w, smoothing, scale, want_grad):
    """One row's loss (float64); writes its gradient into ``g`` when ``want_grad``."""
    n = x.size
    x, shift = settled_row(x)
    one = x.dtype.type(1.0)
    s = store_exp(x, g, shift, one) if want_grad else sum_exp(x, shift, one)
    lse = math.log(s) if s != 0.0 else 0.0
    hot = (1.0 - smoothing) * np.float64(w[label]) if counted else 0.0
    smooth = smoothing / n if counted else 0.0
    loss = 0.0
    if hot != 0.0:
        loss -= hot * ((np.float64(x[label]) - np.float64(shift)) - lse)
    if smooth != 0.0:
        loss -= smooth * _weighted_log_sum(x, w, np.float64(shift), lse)
    if want_grad:
        big_a = hot + smooth * _weight_sum(w) if smooth != 0.0 else hot
        _grad_row(g, w, big_a / s if s != 0.0 else 0.0, smooth, scale)
        g[label] -= g.dtype.type(hot * scale)
    return loss


@helper(fastmath=EXACT_FLAGS)
def smoothing_losses(tile, w, shift, lse, smooth, weighted, losses, r0, count):
    """Label smoothing's share of the losses of the first ``count`` samples of a tile (one per
    column; rows of ``losses`` from ``r0``): ``smooth * sum_i w_i * -logp_i``, with each
    sample's ``logp = (x - shift) - lse`` in float64. ``weighted`` is float64 scratch."""
    for j in range(count):
        weighted[j] = 0.0
    for i in range(tile.shape[0]):
        wi, ti = np.float64(w[i]), tile[i]
        if wi != 0.0:  # 0 * -inf adds 0
            for j in range(count):
                weighted[j] += wi * ((np.float64(ti[j]) - np.float64(shift[j])) - lse[j])
    for j in range(count):
        if smooth[j] != 0.0:
            losses[r0 + j] -= smooth[j] * weighted[j]


@helper(fastmath=EXACT_FLAGS)
def gradient_factors(hot, smooth, total, w, f, sm, count):
    """Per sample of a tile, the gradient ``(f * e - sm * w) * scale`` (minus ``hot * scale`` at
    the label) needs ``f = (hot + smooth * sum(w)) / sum(e)`` and ``sm = smooth``, in the
    logits' dtype (``f`` and ``sm``'s): :func:`row_cross_entropy`'s ``big_a / s``."""
    t = f.dtype.type
    w_total = _weight_sum(w)
    for j in range(count):
        big_a = hot[j] + smooth[j] * w_total if smooth[j] != 0.0 else hot[j]
        f[j] = t(big_a / total[j] if total[j] != 0.0 else 0.0)
        sm[j] = t(smooth[j])


@helper(fastmath=EXACT_FLAGS)
def _tile_cross_entropy(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, r0, rows,
                        tile, e, narrow, wide):
    # Short rows, as softmaxkit.numba._short_rows: ``rows`` rows transposed into a tile so every
    # loop runs across rows (SIMD lanes full), with row_cross_entropy's arithmetic per row.
    # Scratch: tile and e (n, TILE) and narrow (4, TILE) in x's dtype, wide (5, TILE) float64.
    n = x.shape[1]
    t = x.dtype.type
    m, shift, f, sm = narrow[0], narrow[1], narrow[2], narrow[3]
    total, lse, hot, smooth, weighted = wide[0], wide[1], wide[2], wide[3], wide[4]
    load_tile(x, r0, rows, tile, m, shift)
    for j in range(rows):
        total[j] = 0.0
    for i in range(n):
        ti, ei = tile[i], e[i]
        for j in range(rows):
            ei[j] = exp_small(ti[j] - shift[j])
            total[j] += np.float64(ei[j])
    log_positive(total[:rows], lse[:rows])
    for j in range(rows):
        r = r0 + j
        hot[j] = (1.0 - smoothing) * np.float64(w[labels[r]]) if counted[r] else 0.0
        smooth[j] = smoothing / n if counted[r] else 0.0
        loss = 0.0
        if hot[j] != 0.0:
            loss -= hot[j] * ((np.float64(x[r, labels[r]]) - np.float64(shift[j])) - lse[j])
        losses[r] = loss
    if smoothing != 0.0:
        smoothing_losses(tile, w, shift, lse, smooth, weighted, losses, r0, rows)
    if want_grad:
        gradient_factors(hot, smooth, total, w, f, sm, rows)
        sc = t(scale)
        for i in range(n):
            ei, wi = e[i], w[i]
            for j in range(rows):
                ei[j] = (f[j] * ei[j] - sm[j] * wi) * sc
        for j in range(rows):
            for i in range(n):  # 2-d indexing: a row view per row costs atomic reference counts
                grad[r0 + j, i] = e[i, j]
            if counted[r0 + j]:
                grad[r0 + j, labels[r0 + j]] -= t(hot[j] * scale)
    for j in range(rows):  # rows whose max is +inf: the row kernel knows their limit
        if m[j] == np.inf:
            r = r0 + j
            label = labels[r] if counted[r] else 0
            losses[r] = row_cross_entropy(x[r], grad[r], label, counted[r], w, smoothing, scale, want_grad)


@kernel(fastmath=EXACT_FLAGS)
def cross_entropy_short_rows(x, grad, losses, labels, counted, w, smoothing, scale, want_grad,
                             start, stop):
    """:func:`cross_entropy_rows` for rows of at most ``SHORT_ROWS`` classes, tiled as in
    :mod:`softmaxkit.numba._short_rows`: tasks ``start .. stop`` (``_short_rows.tasks``)."""
    short_rows_cross_entropy(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, start, stop)


@helper(fastmath=EXACT_FLAGS)
def short_rows_cross_entropy(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, start, stop):
    """The body of :func:`cross_entropy_short_rows`, inlined into each kernel that runs it."""
    rows, n = x.shape
    step = TILE * TILES_PER_TASK
    for k in range(start, stop):
        tile = np.empty((n, TILE), dtype=x.dtype)  # scratch per task: see _short_rows
        e = np.empty((n, TILE), dtype=x.dtype)
        narrow = np.empty((4, TILE), dtype=x.dtype)
        wide = np.empty((5, TILE), dtype=np.float64)
        for r0 in range(k * step, min(rows, (k + 1) * step), TILE):
            _tile_cross_entropy(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, r0,
                                min(TILE, rows - r0), tile, e, narrow, wide)


@kernel(fastmath=EXACT_FLAGS)
def cross_entropy_rows(x, grad, losses, labels, counted, w, smoothing, scale, want_grad,
                       start, stop):
    """Losses (float64, into ``losses``) of rows ``start .. stop`` with class-index targets;
    gradients into ``grad`` if wanted.

    ``labels`` of rows that are not ``counted`` are never read (they may be out of range).
    """
    rows_cross_entropy_range(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, start, stop)


@helper(fastmath=EXACT_FLAGS)
def rows_cross_entropy_range(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, start, stop):
    """The body of :func:`cross_entropy_rows`, inlined into each kernel that runs it."""
    for r in range(start, stop):
        label = labels[r] if counted[r] else 0
        losses[r] = row_cross_entropy(x[r], grad[r], label, counted[r], w, smoothing, scale, want_grad)
