"""The engine choice: the registry, its order, the engines' gaps, forced engines and the log."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _engines
from softmaxkit._engines import NUMBA_MIN_SIZE, choose_engine


def test_registry_lists_engines_in_one_place():
    assert sk.engine_names() == [e.name for e in _engines.ENGINES]
    assert "generic" in sk.engine_names()
    for spec in _engines.ENGINES:
        assert spec.functions <= _engines.ENGINE_FUNCTIONS
        module = spec.load() if not spec.missing() else None
        for function in spec.functions if module else ():
            assert callable(getattr(module, function)), (spec.name, function)


def test_automatic_choice_is_logged(caplog):
    with caplog.at_level("DEBUG", logger="softmaxkit"):
        sk.softmax(np.zeros(3))
    assert "engine" in caplog.text


def test_engine_that_cannot_run_names_those_that_can():
    class NotAnArray:
        pass

    with pytest.raises(ValueError, match="engines that can"):
        _engines.choose_engine("softmax", NotAnArray(), "generic")


def test_engine_must_be_a_name():
    with pytest.raises(TypeError, match="engine"):
        sk.softmax([1.0], engine=3)


# --- coverage: what an engine does not compute is declared in the registry ------------------------

numba_installed = pytest.mark.skipif(bool(_engines.get_engine("numba").missing()), reason="no numba")
BIG = np.linspace(-3.0, 3.0, 2 * _engines.NUMBA_MIN_SIZE).reshape(64, -1)


def chosen(caplog, function, *args, **kwargs):
    """The engine named in the debug log of one public call, and the full log line."""
    caplog.clear()
    with caplog.at_level("DEBUG", logger="softmaxkit"):
        getattr(sk, function)(*args, **kwargs)
    logged = "softmax" if function == "log_softmax" else function
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{logged}:")][-1]
    return line.split("'")[1], line


@numba_installed
@pytest.mark.parametrize(
    "function, args, kwargs, gap",
    [
        ("logsumexp", (BIG,), {"axis": 1, "b": np.ones_like(BIG)}, "weights (b=)"),
        ("logsumexp", (BIG,), {"axis": 1, "return_sign": True}, "weights (b=)"),
        ("logsumexp", (BIG.astype(np.complex128),), {"axis": 1}, "a dtype other than"),
        ("softmax", (BIG.astype(np.longdouble),), {}, "a dtype other than"),
        ("cross_entropy", (BIG, sk.softmax(BIG)), {}, "probability targets"),
    ],
    ids=["logsumexp-b", "logsumexp-sign", "logsumexp-complex", "softmax-longdouble", "cross_entropy-probs"],
)
def test_numba_gap_goes_to_generic_in_one_logged_step(caplog, function, args, kwargs, gap):
    engine, line = chosen(caplog, function, *args, **kwargs)
    assert engine == "generic"
    assert f"numba does not cover {gap}" in line
    refused = rf"engine 'numba' does not cover {function}.*engines that can: generic"
    with pytest.raises(ValueError, match=refused):
        getattr(sk, function)(*args, engine="numba", **kwargs)


@numba_installed
def test_numba_computes_what_it_covers(caplog):
    assert chosen(caplog, "logsumexp", BIG, axis=1)[0] == "numba"
    assert chosen(caplog, "softmax_vjp", BIG, BIG, axis=1)[0] == "numba"
    assert chosen(caplog, "softmax_vjp", BIG, BIG, axis=0)[0] == "numba"  # column kernels
    assert chosen(caplog, "log_softmax_vjp", BIG - 50.0, BIG, axis=0)[0] == "numba"
    # Log-probabilities of 40 or more (not from log_softmax) too: the kernels redo those entries.
    assert chosen(caplog, "log_softmax_vjp", BIG + 50.0, BIG, axis=1)[0] == "numba"
    labels = np.zeros(BIG.shape[0], dtype=np.int64)
    assert chosen(caplog, "cross_entropy", BIG, labels)[0] == "numba"


def test_gaps_name_functions_the_engine_has():
    for spec in _engines.ENGINES:
        for gap in spec.gaps:
            assert gap.functions & spec.functions, (spec.name, gap.what)
            assert gap.functions <= _engines.ENGINE_FUNCTIONS


def test_calls_are_read_by_the_generic_signatures():
    call = _engines.as_call("cross_entropy", ("L", "T", 1), {"weight": None})
    assert call == {"logits": "L", "target": "T", "axis": 1, "weight": None}
    for function in _engines.ENGINE_FUNCTIONS:
        assert _engines._positional(function)[0] in {"x", "s", "logp", "logits"}


ENGINE_SOURCES = sorted(
    p for name in ("numba", "cuda", "dask")
    for p in (Path(sk.__file__).parent / name).glob("*.py")
)


@pytest.mark.parametrize("path", ENGINE_SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_engine_passes_calls_to_another(path):
    """Hidden fallbacks (an engine calling ``generic.softmax(...)``) hide the real engine."""
    assert not re.search(r"\bgeneric\.[a-z_]+\(", path.read_text())


def test_former_engine_name_cupy_still_names_the_cuda_engine():
    assert _engines.get_engine("cupy") is _engines.get_engine("cuda")
    assert "cupy" not in sk.engine_names()


@numba_installed
def test_automatic_choice_by_array_type_and_size() -> None:
    torch = pytest.importorskip("torch")
    big = np.zeros((64, NUMBA_MIN_SIZE // 64), np.float32)
    assert choose_engine("softmax", big).__name__ == "softmaxkit.numba"
    assert choose_engine("cross_entropy", big).__name__ == "softmaxkit.numba"
    assert choose_engine("softmax", np.zeros(10)).__name__ == "softmaxkit.generic"
    assert choose_engine("softmax", torch.zeros(100_000)).__name__ == "softmaxkit.torch._engine"
    assert choose_engine("softmax", torch.zeros(10)).__name__ == "softmaxkit.torch._engine"
    with pytest.raises(ValueError, match="numba"):
        sk.softmax(torch.zeros(3), engine="numba")


def test_engines_without_piece_functions_leave_blocks_to_the_next():
    da = pytest.importorskip("dask.array")
    # The Dask engine (as CuPy's) has no functions for pieces of rows: the next engine in the
    # registry that runs the array serves them (generic: it runs any array-API array).
    assert choose_engine("softmax_pairs", da.ones((4, 6), chunks=(2, 3))).__name__ == "softmaxkit.generic"


def test_cuda_engine_is_registered_before_generic():
    names = sk.engine_names()
    assert names.index("cuda") < names.index("generic")
    spec = _engines.get_engine("cuda")
    assert spec.requires == ("cupy",)
    assert spec.functions == _engines.ENGINE_FUNCTIONS - _engines.ROW_PIECE_FUNCTIONS


def test_cuda_engine_unavailable_without_cupy_names_the_alternatives(monkeypatch):
    # The test extra installs CuPy (for NVRTC): without it is what a user without [cuda] sees.
    importable = _engines._importable
    monkeypatch.setattr(_engines, "_importable", lambda module: module != "cupy" and importable(module))
    assert _engines.get_engine("cuda").missing() == ["cupy"]
    x = np.zeros(3)
    able = ", ".join(e.name for e in _engines.ENGINES if e.runs(x) and not e.missing())
    with pytest.raises(ValueError, match=f"needs cupy installed.*engines that can: {able}$"):
        sk.softmax(x, engine="cupy")


def test_unknown_engine():
    with pytest.raises(ValueError, match="unknown engine 'fast'"):
        sk.softmax([1.0], engine="fast")
