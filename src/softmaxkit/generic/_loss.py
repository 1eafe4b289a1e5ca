"""Cross-entropy of softmax outputs, with its gradient from the same pass.

Every option reduces to one per-class coefficient matrix ``a = w * q``: ``q`` is the target
distribution (one-hot of the class index, or the given probabilities, mixed with the uniform
distribution by label smoothing; all zero for ignored samples) and ``w`` the class weights.
Then, with ``logp = log_softmax(z)`` and ``p = exp(logp)``::

    loss_i   = -sum_c a_ic * logp_ic
    dloss_i  = (sum_c a_ic) * p_i - a_i

which is PyTorch's ``F.cross_entropy`` (weights inside the smoothing term too). The
``"mean"`` reduction divides by the summed weight of the counted samples for class-index
targets and by the number of samples for probability targets, as PyTorch does.
"""

from __future__ import annotations

from typing import Any

from softmaxkit._arrays import (
    Array,
    compute_dtype,
    constant,
    device_of,
    namespace,
    quiet_floating_point,
    rows_view,
)
from softmaxkit.generic._softmax import softmax_rows


@quiet_floating_point
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
    xp = namespace(logits)
    ct = compute_dtype(xp, dtype)
    rows, restore = rows_view(xp, logits, (axis,))
    n_classes = rows.shape[1]
    logp = softmax_rows(xp, xp.astype(rows, ct), None, 1.0, log=True)
    zero, one, nan = constant(xp, 0.0, logp), constant(xp, 1.0, logp), constant(xp, float("nan"), logp)
    classes = xp.arange(n_classes, device=device_of(logp))
    # Labels were checked by the caller, except traced JAX labels (no values to check): an
    # out-of-range one makes its sample's loss and gradient NaN rather than silently 0.
    unchecked_bad = None
    if target.ndim == logits.ndim - 1:
        labels = xp.reshape(target, (-1,))
        counted = xp.ones(labels.shape, dtype=xp.bool, device=device_of(logp))
        if ignore_index is not None:
            counted = labels != ignore_index
        unchecked_bad = counted & ((labels < 0) | (labels >= n_classes))
        counted = counted & ~unchecked_bad
        q = xp.astype((labels[:, None] == classes[None, :]) & counted[:, None], ct)
        counted_f = xp.astype(counted, ct)[:, None]
    else:
        q = xp.astype(rows_view(xp, target, (axis,))[0], ct)
        counted_f = xp.ones((q.shape[0], 1), dtype=ct, device=device_of(logp))
    if not is_unit_zero(label_smoothing):
        q = (1.0 - label_smoothing) * q + (label_smoothing / n_classes) * counted_f
    a = q if weight is None else q * xp.astype(weight, ct)[None, :]

    # 0 * log(0) = 0: a class with no target mass adds nothing even where logp is -inf. Both
    # factors are guarded, so that automatic differentiation sees no 0 * inf either.
    no_mass = a == 0
    per_sample = -xp.sum(xp.where(no_mass, one, a) * xp.where(no_mass, zero, logp), axis=1)
    if unchecked_bad is not None:
        per_sample = xp.where(unchecked_bad, nan, per_sample)
    lead_shape = tuple(d for i, d in enumerate(logits.shape) if i != axis)
    if reduction == "none":
        loss, scale = xp.reshape(per_sample, lead_shape), None
    elif reduction == "sum":
        loss, scale = xp.sum(per_sample), None
    else:
        if target.ndim == logits.ndim - 1 and weight is not None:
            denominator = _summed_target_weight(xp, labels, counted, weight, ct)
        elif target.ndim == logits.ndim - 1:
            denominator = xp.sum(counted_f)
        else:
            denominator = xp.asarray(float(q.shape[0]), dtype=ct, device=device_of(logp))
        loss = xp.sum(per_sample) / denominator
        scale = denominator
    loss = xp.astype(loss, dtype)
    if not return_grad:
        return loss
    grad = xp.sum(a, axis=1, keepdims=True) * xp.exp(logp) - a
    if scale is not None:
        # With nothing counted the mean is 0/0 = NaN, but no logit moves it: gradient 0.
        grad = xp.where(scale > 0, grad / scale, zero)
    if unchecked_bad is not None:
        grad = xp.where(unchecked_bad[:, None], nan, grad)
    return loss, restore(xp.astype(grad, dtype))


def is_unit_zero(value: Any) -> bool:
    """Whether ``value`` is the Python number 0 (nothing to mix in); a traced JAX scalar is not."""
    return isinstance(value, float | int) and value == 0.0


def _summed_target_weight(xp: Any, labels: Array, counted: Array, weight: Array, ct: Any) -> Array:
    """``sum_i w[t_i]`` over counted samples: the weighted mean's denominator (PyTorch's rule)."""
    safe = xp.where(counted, labels, xp.zeros_like(labels))
    picked = xp.take(xp.astype(weight, ct), safe, axis=0)
    return xp.sum(xp.where(counted, picked, xp.zeros_like(picked)))
