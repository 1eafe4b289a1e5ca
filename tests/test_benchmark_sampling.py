"""Smoke test: the sampling benchmark runs once on a tiny size, so it cannot rot."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("numba")

import torch
from benchmarks import sampling


def test_quick_run_prints_every_contender(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        assert sampling.main(["--quick", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    names = ("torch sort recipe", "torch topk recipe", "torch multinomial(softmax)", "softmaxkit (tensor)")
    for name in names:
        assert name in out


def test_torch_recipes_draw_from_the_filtered_distribution() -> None:
    """The contenders compute what softmaxkit computes (else the comparison would be unfair)."""
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2000, 64)).astype(np.float32))
    g = torch.Generator().manual_seed(0)
    mask = sk_mask(x.numpy())
    for recipe in (sampling.torch_sort_recipe, sampling.torch_topk_recipe):
        picks = recipe(x, 0.7, 5, 0.9, g).numpy().ravel()
        assert np.all(mask[np.arange(2000), picks])


def sk_mask(x: np.ndarray) -> np.ndarray:
    import softmaxkit as sk

    return sk.top_p_mask(x, 0.9, temperature=0.7, where=sk.top_k_mask(x, 5))
