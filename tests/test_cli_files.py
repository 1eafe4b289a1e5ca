"""softmaxkit apply / plot / info end to end, failure paths included: outputs are all-or-nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit.cli._io import atomic_output
from tolerance import assert_spec_close


def run(*args: str, cwd=None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "softmaxkit.cli", *args], capture_output=True, text=True,
                          cwd=cwd, input=stdin, timeout=120)


def assert_one_line_error(result, fragment):
    assert result.returncode == 2, result.stdout
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def logits(tmp_path):
    x = np.random.default_rng(13).normal(size=(300, 7)).astype(np.float32) * 5
    np.save(tmp_path / "x.npy", x)
    return x


def test_npy_in_chunks_matches_the_library(tmp_path, logits):
    result = run("apply", "x.npy", "-o", "p.npy", "--chunk-mb", "0.001", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = np.load(tmp_path / "p.npy")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, sk.softmax(logits))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_axis_log_temperature_and_mask(tmp_path, logits):
    mask = np.zeros(7, dtype=np.int64)
    mask[[1, 4, 5]] = 1
    np.save(tmp_path / "m.npy", mask)
    result = run("apply", "x.npy", "-o", "p.npy", "--axis", "0", "--log", "-t", "2", "--chunk-mb", "0.001",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # column slabs are strided, so the sums may round differently from the whole array's:
    # both stay within SPEC's log_softmax bound
    expected = sk.log_softmax(logits, axis=0, temperature=2)
    assert_spec_close(np.load(tmp_path / "p.npy"), expected, "float32", log=True)
    result = run("apply", "x.npy", "-o", "q.npy", "--mask", "m.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "q.npy"), sk.softmax(logits, where=mask.astype(bool)))


def test_csv_stdin_to_stdout_and_tsv(tmp_path):
    result = run("apply", "-", "-o", "-", stdin="1,2,3\n0,0,0\n")
    assert result.returncode == 0, result.stderr
    rows = [[float(v) for v in line.split(",")] for line in result.stdout.splitlines()]
    np.testing.assert_allclose(rows, sk.softmax([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), rtol=1e-15)
    (tmp_path / "in.csv").write_text("1,2\n3,4\n")
    assert run("apply", "in.csv", "-o", "out.tsv", cwd=tmp_path).returncode == 0
    np.testing.assert_allclose(np.loadtxt(tmp_path / "out.tsv", delimiter="\t"),
                               sk.softmax([[1.0, 2.0], [3.0, 4.0]]), rtol=1e-15)


def test_npz_keys(tmp_path):
    np.savez(tmp_path / "a.npz", first=np.ones((2, 3)), second=np.zeros(4))
    assert_one_line_error(run("apply", "a.npz", "-o", "b.npy", cwd=tmp_path), "choose one with --key")
    assert_one_line_error(run("apply", "a.npz", "--key", "third", "-o", "b.npy", cwd=tmp_path), "no array")
    assert run("apply", "a.npz", "--key", "second", "-o", "b.npz", cwd=tmp_path).returncode == 0
    with np.load(tmp_path / "b.npz") as archive:
        np.testing.assert_allclose(archive["second"], 0.25)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("ragged.csv", "1,2,3\n4,5\n", "ragged.csv: line 2 has 2 values, line 1 has 3"),
    ("text.csv", "1,abc,3\n", "text.csv: line 1, column 2: not a number: 'abc'"),
    ("data.xyz", "1,2\n", "cannot tell the format"),
])
def test_malformed_inputs(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    assert_one_line_error(run("apply", name, "-o", "out.csv", cwd=tmp_path), message)


def test_pickled_npy_is_never_loaded(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_one_line_error(run("apply", "obj.npy", "-o", "out.npy", cwd=tmp_path), "pickled")


def test_missing_file_and_unwritable_output(tmp_path, logits):
    assert_one_line_error(run("apply", "nope.npy", "-o", "out.npy", cwd=tmp_path), "no such file")
    assert_one_line_error(run("apply", "x.npy", "-o", "no/such/dir/out.npy", cwd=tmp_path), "does not exist")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert_one_line_error(run("apply", "x.npy", "-o", "locked/out.npy", cwd=tmp_path), "cannot write")
    finally:
        locked.chmod(0o700)


def test_existing_output_is_kept_after_a_failure(tmp_path, logits):
    (tmp_path / "bad.csv").write_text("1,2\n3\n")
    (tmp_path / "out.npy").write_text("precious")
    assert run("apply", "bad.csv", "-o", "out.npy", cwd=tmp_path).returncode == 2
    assert run("apply", "x.npy", "-o", "out.npy", "-t", "-1", cwd=tmp_path).returncode == 2
    assert (tmp_path / "out.npy").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["bad.csv", "out.npy", "x.npy"]


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.npy"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_output(str(target)) as temporary:
        temporary.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.npy"]


def test_an_output_through_a_symbolic_link_keeps_the_link(tmp_path, logits):
    """Regression: the atomic rename replaced the link itself with a regular file, leaving the
    file it pointed to as it was."""
    real = tmp_path / "data"
    real.mkdir()
    (real / "p.npy").write_text("old")
    (tmp_path / "link.npy").symlink_to(real / "p.npy")
    result = run("apply", "x.npy", "-o", "link.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "link.npy").is_symlink()
    np.testing.assert_array_equal(np.load(real / "p.npy"), sk.softmax(logits))
    assert sorted(os.listdir(real)) == ["p.npy"]
    assert sorted(os.listdir(tmp_path)) == ["data", "link.npy", "x.npy"]


def test_an_output_that_is_a_directory(tmp_path, logits):
    """Regression: the message named the temporary file (".d.npy.xxxx.part: Is a directory")."""
    (tmp_path / "d.npy").mkdir()
    assert_one_line_error(run("apply", "x.npy", "-o", "d.npy", cwd=tmp_path), "d.npy: is a directory")
    assert sorted(os.listdir(tmp_path)) == ["d.npy", "x.npy"]


def test_outputs_that_are_not_regular_files(tmp_path, logits):
    """Regression (review): a loop of links, a FIFO (or a link to one) and a name ending in a
    slash were replaced by, or created as, a regular file. Each is now a one-line error, and the
    path is left as it was."""
    (tmp_path / "a.npy").symlink_to(tmp_path / "b.npy")
    (tmp_path / "b.npy").symlink_to(tmp_path / "a.npy")
    assert_one_line_error(run("apply", "x.npy", "-o", "a.npy", cwd=tmp_path), "symbolic links")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to_fifo").symlink_to(tmp_path / "fifo")
    for name in ("fifo", "to_fifo"):
        assert_one_line_error(run("apply", "x.npy", "-o", name, "--output-format", "npy", cwd=tmp_path),
                              "not a regular file")
    assert_one_line_error(run("apply", "x.npy", "-o", "new.npy/", cwd=tmp_path), "not a file name")
    assert (tmp_path / "a.npy").is_symlink() and (tmp_path / "to_fifo").is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npy", "fifo", "to_fifo", "x.npy"]


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    result = run("plot", "3.2", "1.3", "0.2", "0.8", "--labels", "cat,dog,tiger,none", "-t", "0.5,1,2",
                 "-o", "t.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "message"), [
    (("1", "2", "-o", "t.gif"), "choose a .png"),
    (("1", "2", "-o", "t.png", "-t", "1,x"), "--temperature must be numbers"),
    (("1", "2", "-o", "t.png", "-t", "0"), "temperature must be finite and > 0"),
])
def test_plot_errors(tmp_path, args, message):
    pytest.importorskip("matplotlib")
    assert_one_line_error(run("plot", *args, cwd=tmp_path), message)
    assert not list(tmp_path.iterdir())


def test_info_lists_engines_and_machine():
    result = run("info")
    assert result.returncode == 0, result.stderr
    assert f"softmaxkit {sk.__version__}" in result.stdout
    for name in sk.engine_names():
        assert f"  {name} " in result.stdout
    assert "threads:" in result.stdout and "cpu:" in result.stdout and "gpu:" in result.stdout


def test_bench_quick_json_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    result = run("bench", "--quick", "--ops", "softmax", "--shapes", "0", "6", "--repeats", "1", "--json",
                 "--plot", "b.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import json

    records = json.loads(result.stdout)
    assert len(records) == 2 and records[1]["axis"] == 0
    for r in records:
        assert r["operation"] == "softmax"
        assert {"softmaxkit", "numpy", "copy"} <= set(r["gbps"])
        assert all(v > 0 for v in r["speedup"].values())
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_table_and_errors():
    result = run("bench", "--quick", "--ops", "log_softmax", "--shapes", "1", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    assert "| log_softmax |" in result.stdout and "% of copy" in result.stdout
    assert_one_line_error(run("bench", "--ops", "softmin"), "unknown operation 'softmin'")
    assert_one_line_error(run("bench", "--shapes", "99"), "out of range")


def test_apply_zarr_through_dask(tmp_path):
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("dask")
    x = np.random.default_rng(14).normal(size=(64, 40)).astype(np.float32)
    store = zarr.open(str(tmp_path / "a.zarr"), mode="w", shape=x.shape, chunks=(16, 10), dtype="f4")
    store[:] = x
    result = run("apply", "a.zarr", "-o", "p.npy", "--log", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), sk.log_softmax(x), rtol=1e-5, atol=1e-6)
    assert_one_line_error(run("apply", "a.zarr", "-o", "p.csv", cwd=tmp_path), "Dask jobs read and write")
