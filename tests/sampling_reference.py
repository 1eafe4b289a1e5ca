"""The filtered distribution of SPEC §6, enumerated the slow, obvious way (sort, cumulate), and
the engines × array libraries the sampling tests run on."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from backends import Backend

# (backend, sampling engine): NumPy arrays and CPU tensors run on both engines; JAX and
# array-api-strict on the generic one. The argument is named `sampler`: the conftest
# parametrizes `engine` by the softmax registry.
CASES = [
    (Backend.NUMPY, "numba"),
    (Backend.NUMPY, "generic"),
    (Backend.TORCH, "numba"),
    (Backend.TORCH, "generic"),
    (Backend.JAX, "generic"),
    (Backend.ARRAY_API_STRICT, "generic"),
]
CASE_IDS = [f"{b.value}-{e}" for b, e in CASES]


def case_params() -> Any:
    return pytest.mark.parametrize(("backend", "sampler"), CASES, ids=CASE_IDS)


def skip_missing(backend: Backend) -> None:
    if not backend.installed:
        pytest.skip(f"{backend.module} is not installed")


def rng_for(backend: Backend, seed: int) -> Any:
    """Each library's own random stream: a torch.Generator for tensors, a key for JAX."""
    if backend is Backend.TORCH:
        import torch

        return torch.Generator().manual_seed(seed)
    if backend is Backend.JAX:
        import jax

        return jax.random.key(seed)
    return np.random.default_rng(seed)


def kept(x: np.ndarray, where: np.ndarray | None = None, temperature: float = 1.0,
         top_k: int | None = None, top_p: float | None = None, min_p: float | None = None,
         ) -> tuple[list[int], dict[int, float]]:
    """The kept indices of one row (rank order) and the weights ``exp((x - max) / T)``."""
    included = [i for i in range(len(x)) if (where is None or where[i]) and x[i] > -math.inf]
    if not included:
        return [], {}
    order = sorted(included, key=lambda i: (-x[i], i))
    m = x[order[0]]
    if m == math.inf or temperature == 0:
        w = {i: float(x[i] == m) for i in order}
    else:
        w = {i: math.exp((float(x[i]) - float(m)) / temperature) for i in order}
    if top_k is not None:
        order = order[:top_k]
    if top_p is not None and top_p < 1:
        total = sum(w[i] for i in order)
        cum, prefix = 0.0, []
        for i in order:
            prefix.append(i)
            cum += w[i]
            if cum >= top_p * total:
                break
        order = prefix
    if min_p is not None:
        order = [i for i in order if w[i] >= min_p]
    return order, w


def distribution(x: np.ndarray, **filters: Any) -> np.ndarray:
    """The probabilities ``sample`` must draw with, for one row."""
    order, w = kept(np.asarray(x, dtype=np.float64), **filters)
    p = np.zeros(len(x))
    for i in order:
        p[i] = w[i]
    return p / p.sum()


def boundary_margin(x: np.ndarray, where: np.ndarray | None, temperature: float, top_k: int | None,
                    top_p: float | None, min_p: float | None) -> float:
    """How far (relative) the top-p and min-p decisions are from a tie with rounding."""
    order, w = kept(x, where, temperature, top_k)
    margin = math.inf
    if top_p is not None and top_p < 1 and order:
        total = sum(w[i] for i in order)
        cum = 0.0
        for i in order:
            cum += w[i]
            margin = min(margin, abs(cum - top_p * total) / total)
    if min_p is not None:
        for i in order:
            margin = min(margin, abs(w[i] - min_p))
    return margin
