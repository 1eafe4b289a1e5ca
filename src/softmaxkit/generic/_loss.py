"""Cross-entropy of softmax outputs, with its gradient from the same pass.

Every option reduces to one per-class coefficient matrix ``a = w * q``: ``q`` is the target
distribution (one-hot of the class index, or the given probabilities, mixed with the uniform
distribution by label smoothing; all zero for ignored samples) and ``w`` the class weights.
Then, with ``logp = log_softmax(z)`` and ``p = exp(logp)``::

    loss_i   = -sum_c a_ic * logp_ic
    dloss_i  = (sum_c a_ic) * p_i - a_i

which is PyTorch's ``F.cross_entropy`` (weights inside the smoothing term too). The
``"mean"`` reduction follows PyTorch's rules, written once for every engine in
:mod:`softmaxkit._rules`: it divides by the summed weight of the counted samples for
class-index targets and by the number of samples for probability targets.
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
from softmaxkit._rules import mean, mean_denominator, mean_gradient
from softmaxkit._sums import row_sums
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
    # An empty batch (or no classes, every sample ignored) has no row to normalise.
    empty = rows.shape[0] == 0 or n_classes == 0
    logp = xp.astype(rows, ct) if empty else softmax_rows(xp, xp.astype(rows, ct), None, 1.0, log=True)
    zero, one, nan = constant(xp, 0.0, logp), constant(xp, 1.0, logp), constant(xp, float("nan"), logp)
    classes = xp.arange(n_classes, device=device_of(logp))
    labels = xp.reshape(target, (-1,)) if target.ndim == logits.ndim - 1 else None
    # Labels were checked by the caller, except traced JAX labels (no values to check): an
    # out-of-range one makes its sample's loss and gradient NaN rather than silently 0.
    unchecked_bad = None
    if labels is not None:
        counted = xp.ones(labels.shape, dtype=xp.bool, device=device_of(logp))
        if ignore_index is not None:
            counted = labels != ignore_index
        unchecked_bad = counted & ((labels < 0) | (labels >= n_classes))
        q = xp.astype((labels[:, None] == classes[None, :]) & counted[:, None], ct)
        counted_f = xp.astype(counted, ct)[:, None]
    else:
        q = xp.astype(rows_view(xp, target, (axis,))[0], ct)
        counted_f = xp.ones((q.shape[0], 1), dtype=ct, device=device_of(logp))
    if not is_unit_zero(label_smoothing) and n_classes:  # no classes: nothing to mix (nor 1 / 0)
        q = (1.0 - label_smoothing) * q + (label_smoothing / n_classes) * counted_f
    a = q if weight is None else q * xp.astype(weight, ct)[None, :]

    # 0 * log(0) = 0: a class with no target mass adds nothing even where logp is -inf. Both
    # factors are guarded, so that automatic differentiation sees no 0 * inf either.
    no_mass = a == 0
    per_sample = -row_sums(xp, xp.where(no_mass, one, a) * xp.where(no_mass, zero, logp))
    if unchecked_bad is not None:
        per_sample = xp.where(unchecked_bad, nan, per_sample)
    lead_shape = tuple(d for i, d in enumerate(logits.shape) if i != axis)
    if reduction == "none":
        loss, scale = xp.reshape(per_sample, lead_shape), None
    elif reduction == "sum":
        loss, scale = xp.sum(per_sample), None
    else:
        scale = mean_denominator(xp, labels, weight, ignore_index, q.shape[0], ct, device_of(logp))
        loss = mean(xp.sum(per_sample), scale)
    loss = xp.astype(loss, dtype)
    if not return_grad:
        return loss
    grad = row_sums(xp, a, keepdims=True) * xp.exp(logp) - a
    if scale is not None:
        grad = mean_gradient(xp, grad, scale)
    if unchecked_bad is not None:
        grad = xp.where(unchecked_bad[:, None], nan, grad)
    return loss, restore(xp.astype(grad, dtype))


def is_unit_zero(value: Any) -> bool:
    """Whether ``value`` is the Python number 0 (nothing to mix in); a traced JAX scalar is not."""
    return isinstance(value, float | int) and value == 0.0
