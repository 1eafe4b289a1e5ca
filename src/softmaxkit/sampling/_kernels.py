"""Numba kernels of the sampler: filter one row without sorting it, then draw by inverse CDF.

One row of logits ``x`` (float32 or float64), its ``where`` row, and the row's parameters
become the kept set of :mod:`softmaxkit.sampling` (the module docstring defines it):

1. one pass finds the row maximum over the included entries, counts them and spots NaN;
2. top-k (``k`` below that count) gathers the ``k`` best entries in the same pass with a
   buffer of ``2k``: an entry enters only if it beats the buffer's k-th value, and a full
   buffer is cut back to its best ``k`` around its k-th value, found by a quickselect of the
   buffer alone (nothing is ever sorted);
3. top-p finds its crossing entry by a weighted quickselect (Hoare's FIND with a three-way
   partition; the mass above the active range is carried along), expected O(count) work,
   after dropping the entries too light to reach the nucleus.
   It runs on the included entries in index order whether they come from the whole row or
   from the top-k buffer, so ``top_p_mask(where=top_k_mask(...))`` reproduces the combined
   filter bit for bit: the same numbers are summed in the same order;
4. min-p keeps ``w >= min_p`` where ``w = exp((x - max) / T)`` is the weight relative to
   the largest (1 for the maximum itself).

A kept set is either a short list of indices (after top-k) or, for the whole row, a threshold
``(v, q)``: entries above ``v``, and the first ``q`` entries equal to ``v`` in index order.
Draws take one uniform ``u`` each: the first kept entry whose cumulative weight (index order)
exceeds ``u * total``. On the whole row the weights are summed in blocks of ``BLOCK``, so a
draw locates its block from the block sums and recomputes that block only.
"""

from __future__ import annotations

import numpy as np

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small
from softmaxkit.numba._jit import helper, kernel
from softmaxkit.numba._sums import REDUCE_FLAGS, shifted
from softmaxkit.sampling._params import EMPTY, HAS_NAN, OK, TOO_FEW

BLOCK = 1024
"""Entries per block of the whole-row draw: a draw reads ``n / BLOCK`` sums and one block."""

ALL = -1
"""Tie quota meaning every entry equal to the threshold is kept."""


@helper(fastmath=EXACT_FLAGS)
def row_stats(x, mrow, has_mask):  # type: ignore[no-untyped-def]
    """``(max, count, nan)`` over the included entries that are not ``-inf``."""
    m = -np.inf
    count = 0
    nan = False
    for i in range(x.size):
        if has_mask and not mrow[i]:
            continue
        v = x[i]
        if v != v:
            nan = True
        elif v > -np.inf:
            count += 1
            if v > m:
                m = v
    return m, count, nan


@helper(fastmath=EXACT_FLAGS)
def weight(v, m, inv_t, indicator):  # type: ignore[no-untyped-def]
    """``exp((v - m) / T)``, computed in the row's dtype, as float64; in the limit (``+inf`` in
    the row, or ``T = 0``) the mass sits on the entries equal to the maximum."""
    if indicator:
        return 1.0 if v == m else 0.0
    return np.float64(exp_small((v - m) * inv_t))


@helper(fastmath=EXACT_FLAGS)
def _cut_buffer(vals, idx, count, k):  # type: ignore[no-untyped-def]
    """Keep the ``k`` best of ``vals[:count]`` in place, in their order; return the k-th value.

    The buffer is in index order, so among entries equal to the k-th value the first ones
    are the lower indices: they are kept. A quickselect (``np.partition``) finds the value:
    no sort of the buffer.
    """
    threshold = np.partition(vals[:count], count - k)[count - k]
    quota = k
    for j in range(count):
        quota -= vals[j] > threshold
    kept = 0
    for j in range(count):
        v = vals[j]
        if v > threshold or (v == threshold and quota > 0):
            if v == threshold:
                quota -= 1
            vals[kept] = v
            idx[kept] = idx[j]
            kept += 1
    return threshold


@helper(fastmath=EXACT_FLAGS)
def top_k_gather(x, mrow, has_mask, k, vals, idx):  # type: ignore[no-untyped-def]
    """The ``k`` best included entries (value, then lower index) into ``vals``/``idx``, in
    index order, with the row's statistics from the same pass: ``(kept, max, count, nan)``.
    ``vals``/``idx`` hold more than ``k`` slots (``2 * k``, or the row length).

    Entries are appended in index order; a full buffer is cut back to its best ``k``. After a
    cut, an entry equal to the k-th value cannot enter: its index is higher than those of the
    ``k`` entries already at or above that value.
    """
    cap = vals.size
    kept = 0
    cut = False
    threshold = x.dtype.type(-np.inf)
    m = -np.inf
    count = 0
    nan = False
    for i in range(x.size):
        if has_mask and not mrow[i]:
            continue
        v = x[i]
        if not v > -np.inf:
            nan |= v != v
            continue
        count += 1
        if cut and not v > threshold:
            continue
        m = max(m, v)
        vals[kept] = v
        idx[kept] = i
        kept += 1
        if kept == cap:
            threshold = _cut_buffer(vals, idx, kept, k)
            kept = k
            cut = True
    if kept > k:
        _cut_buffer(vals, idx, kept, k)
        kept = k
    return kept, m, count, nan


@helper(fastmath=EXACT_FLAGS)
def top_p_threshold(vals, ws, count, p):  # type: ignore[no-untyped-def]
    """``(v, q)`` of the smallest prefix (by value, then index) of the ``count`` entries whose
    weight reaches ``p`` of the total. ``vals``/``ws`` are given in index order and are permuted.

    The total is summed in index order; the quickselect keeps ``acc < target`` (the mass known
    to lie above the active range) and narrows to the part holding the crossing entry.
    """
    total = 0.0
    for j in range(count):
        total += ws[j]
    target = p * total
    # Entries lighter than half of (1 - p) times the mean weight cannot reach the nucleus: the
    # heavier ones alone hold more than p of the mass. Dropping them first (in order, so the
    # result is the same whichever path called) leaves the quickselect a few entries.
    floor = 0.5 * (1.0 - p) * total / count
    heavy = 0
    for j in range(count):
        if ws[j] >= floor:
            vals[heavy] = vals[j]
            ws[heavy] = ws[j]
            heavy += 1
    lo, hi, acc = 0, heavy, 0.0
    while hi > lo:
        a, b, c = vals[lo], vals[(lo + hi) // 2], vals[hi - 1]
        pivot = max(min(a, b), min(max(a, b), c))  # median of three
        lt, i, gt = lo, lo, hi
        while i < gt:  # [lo, lt) > pivot, [lt, i) == pivot, [gt, hi) < pivot
            v = vals[i]
            if v > pivot:
                vals[i], vals[lt] = vals[lt], vals[i]
                ws[i], ws[lt] = ws[lt], ws[i]
                lt += 1
                i += 1
            elif v < pivot:
                gt -= 1
                vals[i], vals[gt] = vals[gt], vals[i]
                ws[i], ws[gt] = ws[gt], ws[i]
            else:
                i += 1
        above = 0.0
        for j in range(lo, lt):
            above += ws[j]
        if acc + above >= target:
            hi = lt
            continue
        level = ws[lt]
        cum = acc + above
        for q in range(1, gt - lt + 1):
            cum += level
            if cum >= target:
                return pivot, q
        acc = cum
        lo = gt
    return vals.dtype.type(-np.inf), ALL  # rounding left the total short of p: keep all


@helper(fastmath=EXACT_FLAGS)
def plan_row(x, mrow, has_mask, inv_t, k, p, min_p, cand_v, cand_i):  # type: ignore[no-untyped-def]
    """Filter one row: ``(status, m, indicator, n_cand, v, q)``.

    ``n_cand >= 0``: the kept entries are ``cand_i[:n_cand]`` (index order, values in
    ``cand_v``), min-p already applied. ``n_cand == -1``: the whole row, entries kept by the
    threshold ``(v, q)`` (``q == ALL``: every tie) and by ``weight >= min_p``.
    """
    neg = x.dtype.type(-np.inf)
    listed = k < x.size  # gather a candidate list (it holds every entry if k >= count)
    if listed:
        n, m, count, nan = top_k_gather(x, mrow, has_mask, k, cand_v, cand_i)
    else:
        m, count, nan = row_stats(x, mrow, has_mask)
    if nan:
        return HAS_NAN, neg, False, 0, neg, ALL
    if count == 0:
        return EMPTY, neg, False, 0, neg, ALL
    top = x.dtype.type(m)  # weights in the row's dtype: float32 rows use the 8-lane exp
    indicator = top == np.inf or inv_t == np.inf
    if listed:
        if p < 1.0:
            ws = np.empty(n, dtype=np.float64)
            for j in range(n):
                ws[j] = weight(cand_v[j], top, inv_t, indicator)
            v, q = top_p_threshold(cand_v[:n].copy(), ws, n, p)
            kept, ties = 0, 0
            for j in range(n):
                c = cand_v[j]
                if c > v or (c == v and (q == ALL or ties < q)):
                    if c == v:
                        ties += 1
                    cand_v[kept] = c
                    cand_i[kept] = cand_i[j]
                    kept += 1
            n = kept
        if min_p > 0.0:
            kept = 0
            for j in range(n):
                if weight(cand_v[j], top, inv_t, indicator) >= min_p:
                    cand_v[kept] = cand_v[j]
                    cand_i[kept] = cand_i[j]
                    kept += 1
            n = kept
        return OK, top, indicator, n, neg, ALL
    if p < 1.0:
        vals = np.empty(count, dtype=x.dtype)
        ws = np.empty(count, dtype=np.float64)
        j = 0
        for i in range(x.size):
            if (has_mask and not mrow[i]) or not x[i] > -np.inf:
                continue
            vals[j] = x[i]
            ws[j] = weight(x[i], top, inv_t, indicator)
            j += 1
        v, q = top_p_threshold(vals, ws, count, p)
        return OK, top, indicator, -1, v, q
    return OK, top, indicator, -1, neg, ALL


@helper(fastmath=EXACT_FLAGS)
def _plain_block_weights(x, start, m, inv_t, min_p, out):  # type: ignore[no-untyped-def]
    # Branch-free, so LLVM vectorises exp. -inf entries get exp(-inf) = 0. The sum has a loop
    # of its own: in one loop with the writes, LLVM's runtime overlap test (``out`` may lie just
    # after ``x`` in memory) could send it to the scalar version, which sums in another order,
    # and a draw would depend on where the allocator put the two arrays.
    for j in range(out.size):
        w = np.float64(exp_small(shifted(x[start + j], m, inv_t)))
        out[j] = w if w >= min_p else 0.0
    return _sum(out)


@helper(fastmath=REDUCE_FLAGS)
def _sum(ws):  # type: ignore[no-untyped-def]
    # Reassociated: vectorised in a fixed order for the compiled code, the same on every thread.
    s = 0.0
    for j in range(ws.size):
        s += ws[j]
    return s


@helper(fastmath=EXACT_FLAGS)
def block_weights(x, mrow, has_mask, start, m, inv_t, indicator, v, q, ties, min_p, removed, out):  # type: ignore[no-untyped-def]
    """Kept weights of ``x[start:start + out.size]`` into ``out`` (0 where not kept); returns
    ``(sum, ties)`` with ``ties`` the count of kept entries equal to ``v`` so far."""
    if not has_mask and not indicator and q == ALL and v == -np.inf and removed.size == 0:
        return _plain_block_weights(x, start, m, inv_t, min_p, out), ties
    s = 0.0
    for j in range(out.size):
        i = start + j
        xi = x[i]
        keep = xi > -np.inf and not (has_mask and not mrow[i])
        if keep and xi <= v:
            if xi < v or (q != ALL and ties >= q):
                keep = False
            else:
                ties += 1
        w = weight(xi, m, inv_t, indicator) if keep else 0.0
        if w < min_p or (removed.size > 0 and removed[i]):
            w = 0.0
        out[j] = w
        s += w
    return s, ties


@helper(fastmath=EXACT_FLAGS)
def _pick(ws, target):  # type: ignore[no-untyped-def]
    """The first position whose cumulative weight exceeds ``target``; the last positive one
    if rounding leaves ``target`` at or above the sum; -1 if every weight is 0."""
    cum = 0.0
    last = -1
    for j in range(ws.size):
        w = ws[j]
        if w > 0.0:
            cum += w
            last = j
            if cum > target:
                return j
    return last


@helper(fastmath=EXACT_FLAGS)
def _draw_listed(cand_v, cand_i, n, m, inv_t, indicator, u, replacement, out):  # type: ignore[no-untyped-def]
    ws = np.empty(n, dtype=np.float64)
    positive = 0
    for j in range(n):
        ws[j] = weight(cand_v[j], m, inv_t, indicator)
        positive += ws[j] > 0.0
    if not replacement and positive < u.size:
        return TOO_FEW
    for d in range(u.size):
        total = 0.0
        for j in range(n):
            total += ws[j]
        j = _pick(ws, u[d] * total)
        out[d] = cand_i[j]
        if not replacement:
            ws[j] = 0.0
    return OK


@helper(fastmath=EXACT_FLAGS)
def _draw_row(x, mrow, has_mask, m, inv_t, indicator, v, q, min_p, u, replacement, out):  # type: ignore[no-untyped-def]
    n = x.size
    nb = (n + BLOCK - 1) // BLOCK
    sums = np.empty(nb, dtype=np.float64)
    ties_before = np.empty(nb, dtype=np.int64)
    scratch = np.empty(BLOCK, dtype=np.float64)
    removed = np.zeros(0 if replacement else n, dtype=np.bool_)
    ties = 0
    positive = 0
    for b in range(nb):
        start = b * BLOCK
        ws = scratch[: min(BLOCK, n - start)]
        ties_before[b] = ties
        sums[b], ties = block_weights(x, mrow, has_mask, start, m, inv_t, indicator, v, q, ties,
                                      min_p, removed, ws)
        if not replacement:
            for j in range(ws.size):
                positive += ws[j] > 0.0
    if not replacement and positive < u.size:
        return TOO_FEW
    for d in range(u.size):
        total = 0.0
        for b in range(nb):
            total += sums[b]
        target = u[d] * total
        cum, before, block = 0.0, 0.0, -1
        for b in range(nb):  # the first block that crosses; the last positive one on rounding
            if sums[b] > 0.0:
                block, before = b, cum
                if cum + sums[b] > target:
                    break
                cum += sums[b]
        start = block * BLOCK
        ws = scratch[: min(BLOCK, n - start)]
        block_weights(x, mrow, has_mask, start, m, inv_t, indicator, v, q, ties_before[block],
                      min_p, removed, ws)
        j = _pick(ws, target - before)
        out[d] = start + j
        if not replacement:
            removed[start + j] = True
            sums[block], _ = block_weights(x, mrow, has_mask, start, m, inv_t, indicator, v, q,
                                           ties_before[block], min_p, removed, ws)
    return OK


@kernel(fastmath=EXACT_FLAGS)
def sample_rows(x, mask, has_mask, inv_t, top_k, top_p, min_p, cap, u, replacement, out, status,  # type: ignore[no-untyped-def]
                start, stop):
    """Draw ``u.shape[1]`` indices per row of ``x`` into ``out`` for rows ``start:stop`` (the
    numba engine's thread pool runs the ranges); per-row parameters are arrays of length
    ``rows``, ``cap`` the top-k buffer size. A row's draws depend only on its own uniforms:
    any thread count gives the same result."""
    for r in range(start, stop):
        mrow = mask[r] if has_mask else mask[0]
        cand_v = np.empty(cap, dtype=x.dtype)
        cand_i = np.empty(cap, dtype=np.int64)
        t = x.dtype.type(inv_t[r])
        st, m, indicator, n, v, q = plan_row(x[r], mrow, has_mask, t, top_k[r], top_p[r],
                                             min_p[r], cand_v, cand_i)
        if st == OK:
            if n >= 0:
                st = _draw_listed(cand_v, cand_i, n, m, t, indicator, u[r], replacement, out[r])
            else:
                st = _draw_row(x[r], mrow, has_mask, m, t, indicator, v, q, min_p[r], u[r],
                               replacement, out[r])
        status[r] = st


@kernel(fastmath=EXACT_FLAGS)
def filter_rows(x, mask, has_mask, inv_t, top_k, top_p, min_p, cap, out, status, start, stop):  # type: ignore[no-untyped-def]
    """The kept set of rows ``start:stop`` as booleans in ``out`` (what :func:`sample_rows`
    draws from)."""
    n = x.shape[1]
    for r in range(start, stop):
        mrow = mask[r] if has_mask else mask[0]
        cand_v = np.empty(cap, dtype=x.dtype)
        cand_i = np.empty(cap, dtype=np.int64)
        t = x.dtype.type(inv_t[r])
        st, m, indicator, nc, v, q = plan_row(x[r], mrow, has_mask, t, top_k[r], top_p[r],
                                              min_p[r], cand_v, cand_i)
        status[r] = st
        o = out[r]
        o[:] = False
        if st != OK:
            continue
        if nc >= 0:
            for j in range(nc):
                o[cand_i[j]] = True
            continue
        ties = 0
        for i in range(n):
            xi = x[r, i]
            if not xi > -np.inf or (has_mask and not mrow[i]):
                continue
            if xi <= v:
                if xi < v or (q != ALL and ties >= q):
                    continue
                ties += 1
            o[i] = not weight(xi, m, t, indicator) < min_p[r]
    return None

