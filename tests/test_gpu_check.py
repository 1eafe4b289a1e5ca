"""benchmarks/gpu_check.sh and its helpers, as far as they run without a GPU."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = [
    "env",
    "prewarm",
    "tests",
    "memcheck",
    "racecheck",
    "synccheck",
    "bench-softmax",
    "bench-log_softmax",
    "bench-cross_entropy",
    "bench-sample",
]
pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None,
    reason="needs bash and coreutils' timeout",
)


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def has_gpu() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    code = "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() else 1)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_syntax():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_usage():
    done = run()
    assert done.returncode == 2 and "usage: bash benchmarks/gpu_check.sh OUTDIR" in done.stderr


def test_dry_run_lists_every_step_within_eight_minutes(tmp_path):
    done = run(str(tmp_path), env={"GPU_CHECK_DRY_RUN": "1"})
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "summary.txt").read_text()
    assert [m for m in re.findall(r"\] ([\w-]+) \(limit", summary)] == STEPS
    limits = [int(s) for s in re.findall(r"\(limit (\d+)s\)", summary)]
    assert sum(limits) <= 470  # 8 minutes with start-up and the device query
    assert (
        f"--junitxml={tmp_path}/tests.xml" in summary
        and "gpu_deadline" in summary
        and "tests/test_cuda_engine.py" in summary
    )
    assert "--tool memcheck" in summary and "--tool racecheck" in summary


@pytest.mark.skipif(has_gpu(), reason="a GPU is present: the check would run for minutes")
def test_without_a_gpu_it_stops_at_once_with_a_clear_message(tmp_path):
    done = run(str(tmp_path), timeout=60)
    assert done.returncode == 3
    assert "no CUDA device (or no CuPy): nothing to check" in (tmp_path / "summary.txt").read_text()


def _python(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks")])
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
    )


def test_helpers_list_their_work_without_a_gpu():
    prewarm = _python("benchmarks/gpu_prewarm.py", "--list")
    assert prewarm.returncode == 0 and re.search(r"softmax\.cu: \d+ kernels", prewarm.stdout)
    assert "sampling.cu: 24 kernels" in prewarm.stdout
    sanitize = _python("benchmarks/gpu_sanitize.py", "--list")
    assert sanitize.returncode == 0 and "cross_entropy 1x140000" in sanitize.stdout
    quick = _python("benchmarks/gpu_sanitize.py", "--list", "--quick")
    assert "1x140000" not in quick.stdout and "torch cross_entropy 64x1000 on a side stream" in quick.stdout
    bench = _python("benchmarks/gpu.py", "--list")
    assert bench.returncode == 0 and "split" in bench.stdout


def test_prewarm_covers_every_planned_kernel():
    spec = importlib.util.spec_from_file_location("gpu_prewarm", ROOT / "benchmarks" / "gpu_prewarm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from softmaxkit.cuda import _plan

    names = {name for _, name in module.names()}
    for family in _plan.FAMILIES:
        for dtype in _plan.DTYPES:
            for rows, n in ((3, 5), (100, 1000), (2, 20_000), (1, 300_000)):
                for aligned in (False, True):
                    p = _plan.plan_launch(
                        family, dtype, rows, n, aligned=aligned, sm_count=132, max_shared_bytes=227 * 1024
                    )
                    assert set(p.kernels) <= names, p


def test_per_test_deadline_stops_a_hung_test(tmp_path):
    (tmp_path / "test_hang.py").write_text("import time\n\ndef test_hangs():\n    time.sleep(60)\n")
    log = tmp_path / "deadline.log"
    done = _python(
        "-m",
        "pytest",
        "-p",
        "gpu_deadline",
        "-p",
        "no:cacheprovider",
        "-q",
        str(tmp_path),
        cwd=tmp_path,
        env={"GPU_TEST_DEADLINE": "2", "GPU_TEST_DEADLINE_LOG": str(log)},
    )
    assert done.returncode != 0
    text = log.read_text()
    assert "running test_hang.py::test_hangs (deadline 2 s)" in text and "Timeout" in text
    assert "time.sleep" in text or "test_hangs" in text.split("Timeout", 1)[1]
