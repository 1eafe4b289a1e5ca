"""A pytest plugin that points SciPy's own tests of softmax / log_softmax / logsumexp at
``softmaxkit.scipy`` (``-p scipy_swap``; ``tests/test_scipy_suite.py`` runs it).

SciPy's test module imports the functions from ``scipy.special`` when it is collected, and
its fixtures read each function's entry in SciPy's array-API capabilities table (which
backends to skip, whether to wrap the function in ``jax.jit``, whether Dask may compute).
Before collection this plugin replaces the three names in ``scipy.special`` with
softmaxkit's and gives them SciPy's capability entries: the same tests, the same backends,
the same ``jax.jit`` wrapping and the same no-compute rule for Dask.
"""

from __future__ import annotations

from typing import Any

SWAPPED = ("softmax", "log_softmax", "logsumexp")


def pytest_configure(config: Any) -> None:
    import scipy.special

    import softmaxkit.scipy as face

    try:
        from scipy._lib._array_api import xp_capabilities_table
    except ImportError:  # SciPy before 1.16 has no capabilities table; its tests do not read one
        xp_capabilities_table = {}
    for name in SWAPPED:
        original, ours = getattr(scipy.special, name), getattr(face, name)
        if original in xp_capabilities_table:
            xp_capabilities_table[ours] = xp_capabilities_table[original]
        setattr(scipy.special, name, ours)
