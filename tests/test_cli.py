"""The console script end to end: output, explanations, and one-line errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

SCRIPT = shutil.which("softmaxkit")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [SCRIPT] if SCRIPT else [sys.executable, "-m", "softmaxkit.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def test_probs_table_with_negative_logits():
    result = run("probs", "0.25", "1.23", "-0.8", "--labels", "cat,panda,duck")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["label", "logit", "probability"]
    assert "0.2491" in lines[1] and "0.6637" in lines[2] and "0.0872" in lines[3]
    assert lines[2].endswith("<- predicted") and "predicted" not in lines[1] + lines[3]


def test_probs_log_and_temperature():
    result = run("probs", "2", "4", "--log", "--temperature", "2")
    assert result.returncode == 0
    assert "0.2689" in result.stdout and "-0.3133" in result.stdout


def test_explain_walks_through_the_steps():
    result = run("probs", "1.25", "2.44", "0.78", "0.12", "--labels", "cat,dog,tiger,none", "--explain")
    out = result.stdout
    assert result.returncode == 0
    for fragment in ("Subtract the largest logit (2.4400)", "exp(-1.1900) = 0.3042", "= 1.5926",
                     "1.0000 / 1.5926 = 0.6279", "dog (0.6279), is the predicted class",
                     "plain normalisation"):
        assert fragment in out, fragment


def test_explain_with_infinities():
    result = run("probs", "inf", "1", "--explain")
    assert result.returncode == 0 and "limit" in result.stdout


def test_explain_when_dividing_by_the_temperature_overflows():
    """Regression: a temperature whose quotient overflows walked through inf - inf = nan, and
    NumPy's overflow warnings reached stderr with their source lines."""
    result = run("probs", "1", "2", "-t", "1e-320", "--explain")
    assert result.returncode == 0 and not result.stderr
    assert "limit" in result.stdout and not re.search(r"\b(nan|inf)\b", result.stdout)
    assert "class 1 1.0000" in result.stdout


@pytest.mark.parametrize("args", [("-t", "0.5", "--", "1", "0.5", "-1.7e308"), ("--", "1e308", "5e307")])
def test_explain_says_nothing_false_and_nothing_on_stderr_near_the_float64_limit(args):
    """Regression (review): a very negative logit sent the walk-through to the overflow branch,
    whose text claimed the largest logits shared all the mass; doubling huge logits for the
    comparison warned on stderr."""
    result = run("probs", "--explain", *args)
    assert result.returncode == 0 and not result.stderr
    assert "share all the mass" not in result.stdout


def test_explain_with_huge_logits():
    """Regression: logits near the float64 maximum printed 309-digit numbers, and plain
    normalisation claimed 0 for both classes (their sum had overflowed)."""
    result = run("probs", "1e308", "1e308", "--explain")
    assert result.returncode == 0 and not result.stderr
    assert max(len(word) for word in result.stdout.split()) < 20
    assert "the sum of these logits overflows" in result.stdout and "0.5000" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("probs", "1", "x"), "not a number: 'x'"),
    (("probs", "1", "2", "--labels", "a"), "1 labels for 2 logits"),
    (("probs", "1", "2", "-t", "0"), "temperature must be finite and > 0"),
    (("probs", "1", "2", "-t", "-3"), "temperature must be finite and > 0"),
])
def test_bad_input_is_one_line_without_traceback(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_non_zero():
    assert run().returncode == 2
    assert run("probs").returncode == 2
    assert run("nonsense").returncode == 2


def test_help_and_version():
    from softmaxkit.cli import COMMANDS

    for args in (("--help",), *((name, "--help") for name in COMMANDS)):
        assert run(*args).returncode == 0
    assert run("--version").stdout.startswith("softmaxkit ")


def test_demo_runs_the_seed_example():
    result = run("demo")
    assert result.returncode == 0, result.stderr
    assert "dog (0.6279), is the predicted class" in result.stdout
    assert "naive exp/sum" in result.stdout and "sigmoid(1.5)" in result.stdout
