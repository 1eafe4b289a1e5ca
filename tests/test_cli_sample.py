"""``softmaxkit sample`` end to end: draws, the counts table, one-line errors with exit status 2."""

from __future__ import annotations

import pytest

from test_cli import run


def test_draws_are_reproducible_and_filtered():
    first = run("sample", "2.0", "1.0", "0.5", "-1.0", "--top-k", "2", "-n", "10", "--seed", "0")
    again = run("sample", "2.0", "1.0", "0.5", "-1.0", "--top-k", "2", "-n", "10", "--seed", "0")
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    draws = first.stdout.split()
    assert len(draws) == 10 and set(draws) <= {"0", "1"}


def test_counts_table_shows_the_exact_filtered_probabilities():
    result = run("sample", "2", "1", "0.5", "-1", "--top-p", "0.8", "-t", "0.7", "--min-p", "0.01",
                 "-n", "2000", "--seed", "1", "--counts", "--labels", "a,b,c,d")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["a", "b", "c", "d"]
    assert rows[0][2] == "0.8067" and rows[1][2] == "0.1933" and rows[2][3] == rows[3][3] == "0"
    assert int(rows[0][3]) + int(rows[1][3]) == 2000


def test_labels_temperature_zero_and_no_replacement():
    result = run("sample", "1", "2", "3", "-n", "3", "--no-replacement", "--seed", "3", "--labels", "a,b,c")
    assert result.returncode == 0 and sorted(result.stdout.split()) == ["a", "b", "c"]
    greedy = run("sample", "1", "5", "3", "-t", "0", "-n", "4", "--seed", "0")
    assert greedy.stdout.split() == ["1"] * 4


@pytest.mark.parametrize(("args", "message"), [
    (("1", "x"), "not a number: 'x'"),
    (("1", "2", "--top-k", "0"), "top_k must be >= 1"),
    (("1", "2", "--top-p", "2"), "top_p must be in (0, 1]"),
    (("1", "2", "--min-p", "-1"), "min_p must be in [0, 1]"),
    (("1", "2", "-t", "-1"), "temperature must be finite and >= 0"),
    (("1", "nan"), "the logits hold NaN"),
    (("1", "2", "3", "-n", "4", "--no-replacement"), "fewer than num_samples=4"),
    (("1", "2", "-n", "0"), "num_samples must be an int >= 1"),
    (("1", "2", "--labels", "a"), "1 labels for 2 logits"),
])
def test_bad_input_is_one_line_with_status_2(args, message):
    result = run("sample", *args)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
