"""Running ``python -m softmaxkit`` in a child process, on the sources under test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import softmaxkit

SOURCES = Path(softmaxkit.__file__).resolve().parents[1]
"""The ``src`` directory of the softmaxkit this test session imported: the child imports the same."""


def child_env(*first: Path) -> dict[str, str]:
    """The environment for a child: ``first`` (e.g. packages that block an import), then our sources."""
    env = dict(os.environ)
    paths = [str(p) for p in first] + [str(SOURCES)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["OPENBLAS_NUM_THREADS"] = "1"  # a small address space for RLIMIT_AS tests
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "softmaxkit", *args]


# Resource limits are set by the child itself before it becomes the CLI (limits survive exec).
# Not by a preexec_fn: that runs Python in the forked child of this multithreaded test process
# (JAX's and the BLAS threads), which may deadlock, and JAX warns about it (an error under -W error).
_WITH_LIMITS = (
    "import os, resource, sys\n"
    "for item in sys.argv[1].split(','):\n"
    "    k, v = map(int, item.split('='))\n"
    "    resource.setrlimit(k, (v, v))\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


def run_cli(
    *args: str, cwd: Path | None = None, stdin: str | bytes | None = None, blocked: Sequence[Path] = (),
    limits: Mapping[int, int] | None = None, text: bool = True, stdout: Any = subprocess.PIPE,
) -> subprocess.CompletedProcess[Any]:
    """``python -m softmaxkit *args``; ``limits`` maps ``resource.RLIMIT_*`` to the child's limit."""
    argv = command(*args)
    if limits:
        settings = ",".join(f"{int(k)}={int(v)}" for k, v in limits.items())
        argv = [sys.executable, "-c", _WITH_LIMITS, settings, *argv[1:]]
    return subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, input=stdin, text=text,
                          cwd=cwd, env=child_env(*blocked), timeout=120)


def blocker(folder: Path, *modules: str) -> Path:
    """A folder of stand-in packages whose import fails as if ``modules`` were not installed."""
    for name in modules:
        package = folder / name
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n")
    return folder


def assert_one_line_error(result: subprocess.CompletedProcess[Any], fragment: str) -> None:
    """Exit status 2 and exactly one line on stderr holding ``fragment``: no traceback, no warning."""
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert result.returncode == 2, (result.returncode, stderr)
    assert fragment in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
