"""SciPy's own tests of softmax, log_softmax and logsumexp, run against ``softmaxkit.scipy``.

SciPy installs ``scipy/special/tests/test_logsumexp.py``. It is run here in a child pytest
(SciPy's conftest provides its ``xp`` fixture and markers) with the plugin
``tests/scipy_swap.py``, which replaces the three functions by softmaxkit's before the file
is collected. Without ``SCIPY_ARRAY_API`` the tests run on NumPy; with it, on every array
library installed here, the functions under ``jax.jit`` for JAX and forbidden to compute
for Dask, as SciPy tests its own.

Every test must pass. SciPy marks a few cases itself (``xfail`` for a JAX device bug and
for array-api-strict's integer promotion); those are SciPy's decisions, listed in
``SCIPY_OWN_XFAILS``. No test is skipped on softmaxkit's account (``SKIPPED_BY_US`` is
empty: SciPy's test file checks no case where softmaxkit's answer differs from SciPy's).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import softmaxkit

pytest.importorskip("scipy")

TESTS = Path(__file__).parent
SRC = Path(softmaxkit.__file__).parents[1]

SCIPY_OWN_XFAILS = {
    "jax-ml/jax#26000": "SciPy's xfail: JAX does not keep the device of 0-d results",
    "int->float promotion": "SciPy's xfail: array-api-strict does not promote integers to floats",
}
"""Reasons SciPy's own markers give for the cases it expects to fail (not softmaxkit's)."""

SKIPPED_BY_US: dict[str, str] = {}
"""Test id -> reason, for SciPy tests that could not pass because softmaxkit's SPEC answer
differs from SciPy's. None is needed."""


def array_api_backends() -> list[str]:
    """SciPy's backend ids for the array libraries that work here (CuPy only with a GPU)."""
    ids = {"numpy": "numpy", "array_api_strict": "array_api_strict", "torch": "torch",
           "jax.numpy": "jax", "dask.array": "dask"}
    found = [i for i, module in ids.items() if importlib.util.find_spec(module) is not None]
    if importlib.util.find_spec("cupy") is not None:
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                found.append("cupy")
        except Exception:  # no CUDA driver: CuPy is installed but cannot run
            pass
    return found


def run_scipy_tests(tmp_path: Path, array_api: list[str] | None) -> ET.Element:
    env = {k: v for k, v in os.environ.items() if k != "SCIPY_ARRAY_API"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    if array_api is not None:
        env["SCIPY_ARRAY_API"] = json.dumps(array_api)
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")  # SciPy's test file with pytest's defaults, not this project's
    report = tmp_path / "report.xml"
    command = [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(tmp_path),
               "-p", "scipy_swap", "-p", "no:cacheprovider", "-q", "-rfEsx", f"--junitxml={report}",
               "--pyargs", "scipy.special.tests.test_logsumexp"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return ET.parse(report).getroot()


def outcomes(root: ET.Element) -> tuple[int, list[tuple[str, str]]]:
    """Number of test cases, and ``(test id, reason)`` of each skipped or xfailed one."""
    cases = list(root.iter("testcase"))
    skipped = [(c.get("name", ""), s.get("message", "")) for c in cases for s in c.iter("skipped")]
    return len(cases), skipped


@pytest.mark.parametrize("array_api", [False, True], ids=["numpy-only", "SCIPY_ARRAY_API"])
def test_scipy_logsumexp_tests_pass_against_softmaxkit_scipy(tmp_path: Path, array_api: bool):
    backends = array_api_backends() if array_api else None
    n_cases, skipped = outcomes(run_scipy_tests(tmp_path, backends))
    assert n_cases > 400  # 407 NumPy cases in SciPy 1.17; about 5 times as many on 5 libraries
    for test_id, reason in skipped:
        assert test_id in SKIPPED_BY_US or any(key in reason for key in SCIPY_OWN_XFAILS), (test_id, reason)


def test_the_plugin_swaps_the_functions_scipy_tests_see(tmp_path: Path):
    # A SciPy test file whose functions were not swapped would prove nothing: check the swap
    # in a child with the plugin loaded, as the suite above runs.
    probe = ("import scipy.special, softmaxkit.scipy as f, scipy_swap; scipy_swap.pytest_configure(None);"
             "from scipy.special import logsumexp, softmax, log_softmax;"
             "assert (logsumexp, softmax, log_softmax) == (f.logsumexp, f.softmax, f.log_softmax)")
    path = os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, check=True, timeout=300)
