"""What importing softmaxkit loads, and the names it exports.

``import softmaxkit`` imports NumPy and array-api-compat only; each backend, engine and
optional extra is imported when an array or a name needs it (subprocesses: a clean
``sys.modules``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

import softmaxkit as sk

HEAVY = ("numba", "cupy", "dask", "torch", "jax", "scipy", "sklearn", "matplotlib", "zarr", "llvmlite")


def test_import_is_light():
    code = textwrap.dedent(f"""
        import sys, softmaxkit
        softmaxkit.softmax([1.0, 2.0])
        softmaxkit.cross_entropy([[1.0, 2.0]], [0])
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_does_not_load_numba() -> None:
    code = "import softmaxkit, sys; softmaxkit.softmax([1.0, 2.0]); print('numba' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_import_softmaxkit_imports_no_optional_dependency():
    code = (
        "import sys, softmaxkit\n"
        "heavy = ('sklearn', 'scipy', 'matplotlib')\n"
        "assert not [m for m in heavy if m in sys.modules], sys.modules.keys()\n"
        "softmaxkit.SoftmaxRegression\n"
        "assert 'sklearn' in sys.modules and 'matplotlib' not in sys.modules\n"
        "assert 'fit_temperature' in dir(softmaxkit)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_engine_module_imports_no_gpu_library():
    code = textwrap.dedent("""
        import sys, softmaxkit.cuda, softmaxkit.cuda._launch
        loaded = [m for m in ("cupy", "torch", "jax") if m in sys.modules]
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_lists_exactly_the_public_names():
    """``__all__`` is the one list of public names: every public attribute is in it, and every
    name in it resolves (the lazily imported ones too), once and in order."""
    public = {
        name for name in dir(sk)
        if not name.startswith("_") and not isinstance(getattr(sk, name), types.ModuleType)
    }
    assert public == set(sk.__all__)
    assert sk.__all__ == sorted(set(sk.__all__))
    for name in sk.__all__:
        assert getattr(sk, name) is not None


def _imports_of_each_module() -> dict[str, set[str]]:
    """softmaxkit's modules and the softmaxkit modules each imports, at the top or inside a
    function (a lazy import is still a dependency)."""
    import ast
    from pathlib import Path

    root = Path(sk.__file__).parent.parent
    modules = {}
    for path in (root / "softmaxkit").rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_cycles():
    """Regression: _api and dask._loss imported each other, and dask._files the whole package."""
    graph = _imports_of_each_module()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            assert state.get(target) != 1, " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_numpy_namespace_is_array_api_compat_numpy():
    """NumPy's namespace answers every name with ``array_api_compat.numpy``'s object: the few
    it takes from NumPy before importing that module (``NUMPY_OWN``) are those very objects."""
    import array_api_compat
    import array_api_compat.numpy as compat
    import numpy as np

    from softmaxkit._arrays import namespace
    from softmaxkit._numpy_namespace import NUMPY, NUMPY_OWN

    for name in NUMPY_OWN:
        if hasattr(np, name):
            assert vars(NUMPY)[name] is getattr(compat, name) is getattr(np, name), name
    for name in ("astype", "asarray", "__array_namespace_info__", "linalg", "isdtype", "any", "exp"):
        assert getattr(NUMPY, name) is getattr(compat, name), name
    assert NUMPY.__name__ == compat.__name__ and array_api_compat.is_numpy_namespace(NUMPY)
    for arrays in [(np.ones(3),), (np.float64(1.0),), (np.ones(2), np.ones(2)), (np.ma.ones(2),)]:
        assert namespace(*arrays) is NUMPY, arrays


def test_numba_engine_call_imports_no_compat_wrapper_nor_cuda_engine():
    """Regression (issue 14, a warm cache's first call): a NumPy array on the numba engine
    imported ``array_api_compat.numpy`` (60 ms: it imports every NumPy submodule) for its
    namespace, and the CUDA engine (8 ms) to learn that the array is not on a GPU."""
    pytest.importorskip("numba")
    code = textwrap.dedent("""
        import sys, numpy as np, softmaxkit as sk
        x = np.ones((64, 128), np.float32)
        sk.softmax(x); sk.log_softmax(x); sk.softmax(x.astype(np.float64))
        sk.cross_entropy(x, np.zeros(64, int), return_grad=True)
        assert "softmaxkit.numba" in sys.modules
        loaded = [m for m in ("array_api_compat.numpy", "softmaxkit.cuda") if m in sys.modules]
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
