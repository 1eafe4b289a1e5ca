"""Derivative formulas of the softmaxkit operators in PyTorch's own ops.

They serve where a derivative is itself differentiated or pushed forward: the ``jvp`` rules
of the autograd Functions in :mod:`._autograd` (``torch.func.jvp``, ``jacfwd``, ``hessian``,
``torch.autograd.forward_ad``), and the backward of softmax / log_softmax under
``create_graph`` (second derivatives then come from PyTorch's own rules for these ops). As in
the kernels, excluded entries (masked, ``-inf``) carry a derivative of exactly 0: the output
there is a constant.
"""

from __future__ import annotations

import torch
import torch.autograd.forward_ad


def forward_ad_active() -> bool:
    """Whether a ``torch.autograd.forward_ad.dual_level`` is open: dual tensors do not say
    that they require grad, so a call must take the Function (its ``jvp``) whenever one is."""
    return torch.autograd.forward_ad._current_level >= 0


def _live(logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The entries with ``logp > -inf``, their probabilities (0 elsewhere), and a zero."""
    live = logp != float("-inf")
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    return live, torch.where(live, logp.exp(), zero), zero


def _row_sum(t: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return t.sum(dims, keepdim=True)


def softmax_vjp(s: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """``s * (g - <g, s>)``: the kernels' softmax vjp."""
    return s * (g - _row_sum(g * s, dims))


def log_softmax_vjp(logp: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """``g - p * sum(g)`` on the live entries, 0 elsewhere: the kernels' log_softmax vjp."""
    live, p, zero = _live(logp)
    g_live = torch.where(live, g, zero)
    return torch.where(live, g_live - p * _row_sum(g_live, dims), zero)


def log_softmax_jvp(logp: torch.Tensor, v: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """``J v`` of log_softmax at its output ``logp``: ``v - sum(p * v)`` on the live entries."""
    live, p, zero = _live(logp)
    v_live = torch.where(live, v, zero)
    return torch.where(live, v_live - _row_sum(p * v_live, dims), zero)


def weighted_sum(p: torch.Tensor, v: torch.Tensor, dims: list[int], keepdim: bool) -> torch.Tensor:
    """``sum(p * v)`` over ``dims``, counting only entries where ``p > 0``: logsumexp's jvp
    (``p = softmax(x)``), where an excluded entry's tangent does not reach the sum."""
    zero = torch.zeros((), dtype=p.dtype, device=p.device)
    return torch.where(p != 0, p * v, zero).sum(dims, keepdim=keepdim)


def softmax_vjp_tangent(s: torch.Tensor, g: torch.Tensor, s_t: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """The part of the tangent of ``s * (g - <g, s>)`` that ``s_t`` brings:
    ``s_t * (g - <g, s>) - s * <g, s_t>`` (the part of ``g_t`` is the vjp itself)."""
    return s_t * (g - _row_sum(g * s, dims)) - s * _row_sum(g * s_t, dims)


def log_softmax_vjp_tangent(logp: torch.Tensor, g: torch.Tensor, logp_t: torch.Tensor,
                            dims: list[int]) -> torch.Tensor:
    """The part of the tangent of ``live * (g - p * G)`` (``p = exp(logp)``,
    ``G = sum(live * g)``) that ``logp_t`` brings: ``-live * p * logp_t * G``."""
    live, p, zero = _live(logp)
    total = _row_sum(torch.where(live, g, zero), dims)
    return -torch.where(live, p * logp_t, zero) * total
