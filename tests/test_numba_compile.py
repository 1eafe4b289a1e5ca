"""The numba engine's compile driver: one specialisation per kernel and dtype, ahead-of-use
compiling (``softmaxkit compile``), notices, no writable cache. Its threads: test_numba_threads.py."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

numba = pytest.importorskip("numba")
ml_dtypes = pytest.importorskip("ml_dtypes")

import softmaxkit as sk  # noqa: E402
from softmaxkit import numba as sknumba  # noqa: E402
from softmaxkit.numba import _compile, _jit, _rows  # noqa: E402

DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]


def _every_kind_of_call(dtype: object) -> None:
    """Calls as users make them: layouts, read-only and strided inputs, out=, in place,
    masks, temperature, every function with a kernel."""
    rng = np.random.default_rng(0)
    for shape, axis in [((40, 12), -1), ((40, 300), -1), ((3, _rows.SPLIT + 5), -1), ((300, 40), 0),
                        ((6, 7, 50), 1), ((6, 7, 50), (1, 2))]:
        x = rng.standard_normal(shape).astype(dtype)
        frozen = x.copy()
        frozen.flags.writeable = False
        for a in (x, frozen, x[::-1]):
            sk.softmax(a, axis=axis, engine="numba")
            sk.log_softmax(a, axis=axis, temperature=0.5, engine="numba")
            sk.logsumexp(a, axis=axis, engine="numba")
            sk.softmax(a, axis=axis, where=a > 0, engine="numba")
        sk.softmax(x, axis=axis, out=x.copy(), engine="numba")
        sk.softmax(x.copy(), axis=axis, out=None, engine="numba")
        y = x.copy()
        sk.log_softmax(y, axis=axis, out=y, engine="numba")
    for n in (12, 300):
        logits = rng.standard_normal((50, n)).astype(dtype)
        labels = rng.integers(0, n, 50)
        sk.cross_entropy(logits, labels, return_grad=True, engine="numba")
        sk.cross_entropy(logits, labels, weight=np.ones(n), ignore_index=1, label_smoothing=0.1,
                         reduction="none", engine="numba")
        sk.cross_entropy(np.ascontiguousarray(logits.T), labels, axis=0, return_grad=True, engine="numba")
        s = sk.softmax(logits, engine="numba")
        sk.softmax_vjp(s, s, engine="numba")
        sk.log_softmax_vjp(np.log(s), s, engine="numba")
        sk.softmax_vjp(s, s, axis=0, engine="numba")  # column kernels
        sk.log_softmax_vjp(np.log(s), s.T.copy().T, axis=0, engine="numba")  # g copied into s's layout
        _small_tensor_calls(s)


def _small_tensor_calls(s: np.ndarray) -> None:
    """The calls of softmaxkit.torch on small CPU tensors (the kernels by address)."""
    torch = pytest.importorskip("torch")
    if s.dtype not in (np.float32, np.float64):  # no tensor of ml_dtypes' bfloat16 from NumPy
        return
    import softmaxkit.torch as skt

    leaf = torch.from_numpy(s.copy()).requires_grad_(True)
    skt.softmax(leaf, 1).backward(torch.ones_like(leaf))
    skt.log_softmax(leaf, 1).backward(torch.ones_like(leaf))
    labels = torch.zeros(leaf.shape[0], dtype=torch.int64)
    skt.cross_entropy(leaf, labels).backward()
    skt.cross_entropy(leaf, labels, ignore_index=1, label_smoothing=0.1, reduction="none")


def test_compile_all_covers_every_kernel_with_one_specialisation_per_dtype() -> None:
    """After compile_all, no call compiles anything new: every kernel holds exactly the
    specialisations compile_all made (read-only and writeable inputs share one)."""
    sknumba.compile_all()
    for dtype in DTYPES:
        _every_kind_of_call(dtype)
    for kernel in _compile.kernels():
        signatures = kernel.signatures
        assert len(signatures) == _compile.specialisations(kernel), (kernel.py_func.__name__, signatures)


def test_compile_all_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="families"):
        sknumba.compile_all(["softmaxx"])
    with pytest.raises(ValueError, match="dtypes"):
        sknumba.compile_all(["softmax"], ["int8"])
    with pytest.raises(ValueError, match="jobs"):
        sknumba.compile_all(["softmax"], ["float32"], jobs=0)


def test_compile_notice_once(caplog: pytest.LogCaptureFixture) -> None:
    """The first kernel compile of a process is announced at INFO, later ones at DEBUG only;
    compiles of jitted code other than the engine's kernels are not announced."""
    from numba.core import event

    notice = _jit._CompileNotice()
    kernel = _rows.softmax_rows
    start = event.Event("numba:compile", event.EventStatus.START,
                        data={"dispatcher": kernel, "args": (numba.typeof(np.zeros((2, 2), np.float32)),)})
    other = event.Event("numba:compile", event.EventStatus.START,
                        data={"dispatcher": numba.njit(lambda v: v), "args": ()})
    with caplog.at_level(logging.DEBUG, logger="softmaxkit.numba"):
        notice.on_start(other)
        notice.on_start(start)
        notice.on_start(start)
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in records] == [logging.INFO, logging.DEBUG]
    assert "softmax_rows" in records[0][1] and "float32" in records[0][1]
    assert "softmaxkit compile" in records[0][1]


def test_no_writable_cache_compiles_without_one() -> None:
    """Regression (issue 13.7): with no writable cache directory anywhere Numba looks, the
    first large call raised ``RuntimeError: cannot cache function 'exp32'``. Now the kernels
    compile without a cache, one warning says so, and ``softmaxkit info`` tells."""
    code = """
import numba.core.caching as caching, numpy as np
def read_only(self):
    raise PermissionError(13, "Read-only file system")
caching._CacheLocator.ensure_cache_path = read_only
import softmaxkit as sk
from softmaxkit.cli import info
x = np.random.default_rng(0).standard_normal((64, 128)).astype(np.float64)
np.testing.assert_allclose(sk.logsumexp(x, axis=1, engine="numba"), sk.logsumexp(x, axis=1, engine="generic"))
sk.logsumexp(x, axis=1, engine="numba")
print(info.numba_cache_line())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("no writable cache directory") == 1, done.stderr
    assert "NUMBA_CACHE_DIR" in done.stderr
    assert "no writable cache directory" in done.stdout


@contextlib.contextmanager
def _doubling_kernel_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A module of one kernel, ``twice(x, start, stop)``, cached in ``tmp_path/__pycache__``:
    ``importlib.reload`` of it is a new process as far as the cache is concerned."""
    (tmp_path / "tiny_kernel.py").write_text(
        "from softmaxkit.numba._jit import kernel\n\n\n"
        "@kernel()\ndef twice(x, start, stop):\n    for i in range(start, stop):\n        x[i] *= 2.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield importlib.import_module("tiny_kernel")
    finally:
        sys.modules.pop("tiny_kernel", None)


def test_unreadable_cache_entry_is_compiled_again(tmp_path, monkeypatch, caplog) -> None:
    """Regression: a corrupt or truncated cache file failed every call of its kernel with
    pickle's UnpicklingError (Numba's loader), until the user found and deleted it. Now the
    entry is removed with a warning, the kernel compiled again and cached afresh."""
    with _doubling_kernel_module(tmp_path, monkeypatch) as module:
        x = np.ones(3)
        module.twice(x, 0, 3)  # compiled and cached
        index = module.twice._cache._cache_file._index_path
        with open(index, "r+b") as f:
            f.write(b"\x00garbage")
        module = importlib.reload(module)  # a new process, as far as the cache is concerned
        with caplog.at_level(logging.WARNING, logger="softmaxkit.numba"):
            module.twice(x, 0, 3)
        np.testing.assert_array_equal(x, [4.0, 4.0, 4.0])
        assert "unreadable" in caplog.text and "twice" in caplog.text
        module = importlib.reload(module)
        module.twice(x, 0, 3)
        assert sum(module.twice.stats.cache_hits.values()) == 1  # cached again, readable


@pytest.mark.skipif(not _jit.CACHE, reason="no writable cache directory: every process compiles")
def test_a_warm_process_loads_kernels_without_refreshing_numba() -> None:
    """Loading a cached kernel starts Numba's runtime only: no registry refresh (which imported
    SciPy for Numba's BLAS check, 0.2-0.3 s of the first call). The kernels loaded so, their
    allocations included (long rows, cross_entropy's gradient), give the right answers."""
    sknumba.compile_all()  # the session's compile already did: this loads
    code = """
import sys
import numpy as np, softmaxkit as sk
rng = np.random.default_rng(0)
for shape in ((300, 1000), (4, 70000)):
    for dtype in (np.float32, np.float64, np.float16):
        x = rng.standard_normal(shape).astype(dtype)
        expected = sk.softmax(x.astype(np.float64), engine="generic")
        np.testing.assert_allclose(sk.softmax(x, engine="numba").astype(np.float64), expected,
                                   rtol=1e-2, atol=1e-6)
x = rng.standard_normal((64, 10)).astype(np.float32)
loss, grad = sk.cross_entropy(x, rng.integers(0, 10, 64), return_grad=True, engine="numba")
assert np.isfinite(loss) and np.allclose(grad.sum(axis=1), 0, atol=1e-6)
print("refreshed" if "numba.np.arraymath" in sys.modules else "not refreshed")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["not", "refreshed"], done.stderr


def test_numba_internals_of_another_shape_leave_numba_its_own_load(tmp_path, monkeypatch, caplog) -> None:
    """Where Numba's private ``_load_overload`` does not take ``(signature, target_context)``, the
    kernels load through Numba's own loader: cached entries are still hits, nothing is called
    unreadable or removed."""
    from numba.core import caching

    # A Numba whose private loader takes one more argument, and whose public one passes it.
    own_private = caching.Cache._load_overload

    def public(self: Any, sig: Any, target_context: Any) -> Any:
        target_context.refresh()
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context, extra=1)

    monkeypatch.setattr(caching.Cache, "_load_overload",
                        lambda self, sig, target_context, *, extra: own_private(self, sig, target_context))
    monkeypatch.setattr(caching.Cache, "load_overload", public)
    with _doubling_kernel_module(tmp_path, monkeypatch) as module:
        x = np.ones(3)
        module.twice(x, 0, 3)  # compiled and cached
        module = importlib.reload(module)
        with caplog.at_level(logging.WARNING, logger="softmaxkit.numba"):
            module.twice(x, 0, 3)
        np.testing.assert_array_equal(x, [4.0, 4.0, 4.0])
        assert sum(module.twice.stats.cache_hits.values()) == 1
        assert "unreadable" not in caplog.text


@pytest.mark.parametrize("option", ["parallel", "forceobj"])
def test_kernels_refuse_options_their_cache_loader_does_not_serve(option: str) -> None:
    with pytest.raises(ValueError, match=option):
        _jit.kernel(**{option: True})


def test_cli_compile_and_info(tmp_path: object) -> None:
    """``softmaxkit compile`` fills an empty cache; ``softmaxkit info`` counts what is there."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "softmaxkit.cli"]
    before = subprocess.run([*command, "info"], capture_output=True, text=True, env=env, timeout=600)
    assert before.returncode == 0, before.stderr
    assert f"numba kernels: 0 of {sum(map(_compile.specialisations, _compile.kernels()))}" in before.stdout
    assert str(tmp_path) in before.stdout
    done = subprocess.run([*command, "compile", "--functions", "logsumexp", "--dtypes", "float64"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "1 of" in done.stdout and str(tmp_path) in done.stdout
    assert "compiling" not in done.stderr  # progress lines only on a terminal
    bad = subprocess.run([*command, "compile", "--jobs", "0"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert bad.returncode == 2 and "--jobs" in bad.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pseudo-terminal")
def test_cli_says_once_on_a_terminal_that_it_compiles(tmp_path: object) -> None:
    """A command that compiles kernels on first use prints one status line on stderr (a
    terminal), so a pause of seconds is explained; a warm cache prints none."""
    import pty

    path = f"{tmp_path}/logits.npy"
    np.save(path, np.random.default_rng(0).standard_normal((1000, 10)))
    env = {**os.environ, "NUMBA_CACHE_DIR": f"{tmp_path}/cache"}

    def stderr_of_apply() -> str:
        master, slave = pty.openpty()
        chunks: list[bytes] = []

        def drain() -> None:
            while True:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the terminal's other end is closed
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=drain)
        reader.start()
        command = [sys.executable, "-m", "softmaxkit.cli", "apply", path, "-o", f"{tmp_path}/p.npy"]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=slave, env=env, timeout=600)
        os.close(slave)
        reader.join(timeout=30)
        os.close(master)
        assert done.returncode == 0
        return b"".join(chunks).decode(errors="replace")

    cold = stderr_of_apply()
    assert cold.count("compiling numba kernels") == 1, cold
    assert "softmaxkit compile" in cold
    assert "compiling" not in stderr_of_apply()
