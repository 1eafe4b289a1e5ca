"""cross_entropy of Dask arrays: each block's samples on the local engine, the reduction in Dask.

A sample's loss needs its whole row of classes (the target picks or weighs every class), so
a class axis split across chunks is first merged into one chunk; the other axes are then split
finer, so that blocks keep their size in bytes. Each block's per-sample losses and gradients
come from the local engine (``reduction="none"``, which returns each sample's own gradient);
``"sum"`` and ``"mean"`` are Dask reductions of them; the mean's rules (PyTorch's denominator,
NaN and a zero gradient when nothing is counted) are those of :mod:`softmaxkit._rules`, applied
to each block's samples and then across blocks.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from softmaxkit._arrays import Array, compute_dtype, namespace, quiet_floating_point
from softmaxkit._engines import call_engine
from softmaxkit._rules import counted_weight, mean, mean_denominator, mean_gradient
from softmaxkit.dask._blocks import field, meta


def cross_entropy(
    logits: Array,
    target: Array,
    axis: int,
    *,
    weight: Array | None,
    ignore_index: int | None,
    label_smoothing: float,
    reduction: str,
    return_grad: bool,
    dtype: Any,
) -> Array | tuple[Array, Array]:
    """Cross-entropy of ``softmax(logits)`` against class indices or probabilities, lazily."""
    import dask.array as da

    xp = namespace(logits)
    ct = compute_dtype(xp, dtype)
    by_label = target.ndim == logits.ndim - 1
    logits = _classes_in_one_chunk(logits, axis)
    # Every operand as a block-aligned array of logits' rank: size-1 axes broadcast across blocks.
    if by_label:
        sample_chunks = tuple(c for d, c in enumerate(logits.chunks) if d != axis)
        target = da.expand_dims(target.rechunk(sample_chunks), axis)
    else:
        target = target.rechunk(logits.chunks)
    if weight is not None:
        class_shape = tuple(logits.shape[axis] if d == axis else 1 for d in range(logits.ndim))
        weight = xp.reshape(xp.astype(weight, ct), class_shape).rechunk(-1)
    block = partial(
        _per_sample_block, axis=axis, by_label=by_label, ignore_index=ignore_index,
        label_smoothing=label_smoothing, return_grad=return_grad, dtype=ct,
    )
    parts = da.map_blocks(block, logits, target, weight, meta=meta(logits, ct), token="cross-entropy")
    per_sample = _per_sample_field(parts, "loss", axis, meta(logits, ct))
    grad = da.map_blocks(field, parts, "grad", meta=meta(logits, ct)) if return_grad else None
    if reduction == "none":
        loss = per_sample
    elif reduction == "sum":
        loss = xp.sum(per_sample)
    else:
        if by_label:
            denominator = xp.sum(_per_sample_field(parts, "counted", axis, meta(logits, ct)))
        else:
            denominator = mean_denominator(xp, None, None, None, math.prod(per_sample.shape), ct, None)
        loss = da.map_blocks(quiet_floating_point(mean), xp.sum(per_sample), denominator,
                             meta=meta(logits, ct, 0))
        if grad is not None:
            grad = da.map_blocks(_mean_gradient, grad, denominator, meta=meta(logits, ct))
    loss = xp.astype(loss, dtype)
    return (loss, xp.astype(grad, dtype)) if return_grad else loss


@quiet_floating_point
def _mean_gradient(grad: Array, denominator: Array) -> Array:
    return mean_gradient(namespace(grad), grad, denominator)


def _per_sample_field(parts: Array, name: str, axis: int, like: Any) -> Array:
    """A per-sample result from the blocks' dicts, which hold it with the class axis of length 1."""
    import dask.array as da

    chunks = tuple((1,) if d == axis else c for d, c in enumerate(parts.chunks))
    return da.squeeze(da.map_blocks(field, parts, name, chunks=chunks, meta=like), axis=axis)


def _classes_in_one_chunk(logits: Array, axis: int) -> Array:
    """``logits`` with the class axis in one chunk and blocks no larger than its largest now."""
    if len(logits.chunks[axis]) == 1:
        return logits
    largest = math.prod(max(c) for c in logits.chunks) * logits.dtype.itemsize
    chunks = {d: -1 if d == axis else "auto" for d in range(logits.ndim)}
    return logits.rechunk(chunks, block_size_limit=max(largest, logits.shape[axis] * logits.dtype.itemsize))


@quiet_floating_point
def _per_sample_block(
    logits: Array, target: Array, weight: Array | None, *, axis: int, by_label: bool,
    ignore_index: int | None, label_smoothing: float, return_grad: bool, dtype: Any,
) -> dict[str, Array | None]:
    """Each sample's loss (and gradient) from the local engine, and its weight in the mean."""
    xp = namespace(logits)
    labels = xp.squeeze(target, axis=axis) if by_label else target
    class_weight = None if weight is None else xp.reshape(weight, (-1,))
    result = call_engine(
        "cross_entropy", None, logits, labels, axis, weight=class_weight, ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction="none", return_grad=return_grad, dtype=dtype,
    )
    loss, grad = result if return_grad else (result, None)
    counted = counted_weight(xp, labels, class_weight, ignore_index, dtype) if by_label else None
    # Per-sample results keep the class axis, of length 1, so that blocks stay aligned with logits.
    return {"loss": xp.expand_dims(loss, axis=axis), "grad": grad,
            "counted": None if counted is None else xp.expand_dims(counted, axis=axis)}
