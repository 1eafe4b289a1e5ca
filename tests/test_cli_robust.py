"""Issue 13's command-line items, one regression test (or more) each, through ``python -m softmaxkit``.

Hostile and broken input ends with one line on stderr and exit status 2; a run that fails or
is killed leaves no temporary and an existing output untouched.
"""

from __future__ import annotations

import glob
import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import softmaxkit as sk
from cli_process import assert_one_line_error, blocker, child_env, command, run_cli

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux resource limits")


@pytest.fixture
def logits(tmp_path: Path) -> np.ndarray:
    x = np.random.default_rng(13).normal(size=(40, 6)) * 4
    np.save(tmp_path / "x.npy", x)
    return x


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# -- item 9: tracebacks from broken files and missing extras ------------------------------------

def _corrupt_deflate(path: Path) -> None:
    np.savez_compressed(path, x=np.arange(1000.0))
    data = bytearray(path.read_bytes())
    start = data.index(b"x.npy") + len(b"x.npy") + 40  # inside the deflated stream
    data[start: start + 64] = bytes(64)
    path.write_bytes(bytes(data))


def _bad_crc(path: Path) -> None:
    np.savez(path, x=np.arange(100.0))
    data = bytearray(path.read_bytes())
    data[-200] ^= 0xFF  # a data byte of the stored member: decompresses, fails its CRC
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda p: p.write_bytes(b"not a zip file at all"), "not an .npz archive"),
    (lambda p: p.write_bytes(b"PK\x03\x04" + bytes(40)), "not a valid .npz archive"),
    (_corrupt_deflate, "x.npz"),
    (_bad_crc, "x.npz"),
    (lambda p: p.write_bytes(b""), "no data"),
], ids=["not-zip", "truncated-zip", "corrupt-deflate", "bad-crc", "empty"])
def test_item9_broken_npz_is_one_line(tmp_path, make, fragment):
    make(tmp_path / "x.npz")
    assert_one_line_error(run_cli("apply", "x.npz", "-o", "out.npy", cwd=tmp_path), fragment)
    assert sorted(os.listdir(tmp_path)) == ["x.npz"]


def test_item9_npz_member_that_is_not_npy(tmp_path):
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as archive:
        archive.writestr("x.npy", b"hello, not an array")
        archive.writestr("notes.txt", b"text")
    assert_one_line_error(run_cli("apply", "t.npz", "--key", "x", "-o", "o.npy", cwd=tmp_path),
                          "t.npz[x]: not a .npy file")
    assert_one_line_error(run_cli("apply", "t.npz", "--key", "notes.txt", "-o", "o.npy", cwd=tmp_path),
                          "not a .npy array")


@pytest.mark.parametrize("where", ["input", "mask", "stdin"])
def test_item9_zip_named_npy(tmp_path, logits, where):
    np.savez(tmp_path / "zip.npz", x=np.ones(6))
    (tmp_path / "zip.npy").write_bytes((tmp_path / "zip.npz").read_bytes())
    if where == "input":
        result = run_cli("apply", "zip.npy", "-o", "o.npy", cwd=tmp_path)
    elif where == "mask":
        result = run_cli("apply", "x.npy", "--mask", "zip.npy", "-o", "o.npy", cwd=tmp_path)
    else:
        result = run_cli("apply", "-", "--format", "npy", "-o", "o.npy", cwd=tmp_path, text=False,
                         stdin=(tmp_path / "zip.npz").read_bytes())
    assert_one_line_error(result, "a zip archive, not a .npy file; if it is an .npz, say --format npz")


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
def test_item9_chunk_mb_must_be_finite_and_positive(tmp_path, logits, value):
    assert_one_line_error(run_cli("apply", "x.npy", "-o", "o.npy", "--chunk-mb", value, cwd=tmp_path),
                          "--chunk-mb must be a finite number > 0")


@linux_only
def test_item9_memory_error_is_one_line(tmp_path):
    import resource

    # A sparse 4 GiB input (memory-mapped: no RAM); a CSV result needs 4 GiB more in memory, which
    # the child's address-space limit of 6 GiB refuses whatever the machine's overcommit policy.
    path = tmp_path / "big.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (2**20, 1024)})
        handle.truncate(handle.tell() + 2**32)

    limits = {resource.RLIMIT_AS: 6 * 2**30}
    result = run_cli("apply", "big.npy", "-o", "out.csv", cwd=tmp_path, limits=limits)
    assert_one_line_error(result, "out of memory")
    assert sorted(os.listdir(tmp_path)) == ["big.npy"]


def test_item9_zarr_without_dask_names_the_extra(tmp_path, logits):
    blocked = blocker(tmp_path / "blocked", "dask", "zarr")
    result = run_cli("apply", "x.npy", "-o", "out.zarr", cwd=tmp_path, blocked=[blocked])
    assert_one_line_error(result, 'pip install "softmaxkit[dask]"')
    assert "dask is not installed" in result.stderr
    assert not glob.glob(str(tmp_path / "*.zarr*")) and not glob.glob(str(tmp_path / ".out*"))


@pytest.mark.parametrize("statement", ["import softmaxkit as sk; sk.SoftmaxRegression",
                                       "from softmaxkit.classify import SoftmaxRegression"])
def test_item9_softmax_regression_without_classify_extra(tmp_path, statement):
    blocked = blocker(tmp_path / "blocked", "sklearn")
    result = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True,
                            env=child_env(blocked), timeout=120)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: SoftmaxRegression needs the classify extra")
    assert 'pip install "softmaxkit[classify]"' in last and "sklearn" in last


# -- item 10: a full disk is an error, never SIGBUS or a full-size .part ------------------------

_FULL_DISK = """
mount -t tmpfs -o size=1m tmpfs "$1" || exit 99
cd "$1" && echo precious > out.npy
"$2" -m softmaxkit apply "$3" -o out.npy
status=$?
ls -A && cat out.npy
exit $status
"""
"""In a private mount namespace (nothing to clean up, no root needed where user namespaces are
allowed): a 1 MiB tmpfs holding an existing output, and a run whose output does not fit."""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
@pytest.mark.parametrize("source", ["x.npy", "x.zarr"], ids=["numpy", "dask"])
def test_item10_disk_full_is_an_error_not_sigbus(tmp_path, source):
    if source.endswith(".zarr"):
        pytest.importorskip("dask")
        zarr = pytest.importorskip("zarr")
        zarr.open(str(tmp_path / source), mode="w", shape=(512, 1024), chunks=(128, 1024), dtype="f4")[:] = 1
    else:
        np.save(tmp_path / source, np.ones((512, 1024), np.float32))  # 2 MiB in, 2 MiB out
    (tmp_path / "disk").mkdir()
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _FULL_DISK, "sh",
                             str(tmp_path / "disk"), sys.executable, str(tmp_path / source)],
                            capture_output=True, text=True, env=child_env(), timeout=120)
    if result.returncode == 99 or "unshare:" in result.stderr:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    # before the fix: exit 135 (SIGBUS) with a full-size .out.npy.XXXX.part beside the output
    assert_one_line_error(result, "out.npy: No space left on device")
    assert result.stdout.split() == ["out.npy", "precious"]


def _file_size_limit(nbytes: int) -> dict[int, int]:
    import resource

    return {resource.RLIMIT_FSIZE: nbytes}


@linux_only
@pytest.mark.parametrize("output", ["out.npy", "out.csv", "out.npz"])
def test_item10_output_past_the_file_size_limit(tmp_path, output):
    # RLIMIT_FSIZE stands in for a full disk (no root or mount needed): writes fail with EFBIG;
    # before the fix the memory-mapped .npy output died of SIGXFSZ / SIGBUS with its .part left.
    np.save(tmp_path / "x.npy", np.ones((512, 1024), np.float32))  # 2 MiB in and out
    (tmp_path / output).write_text("precious")
    result = run_cli("apply", "x.npy", "-o", output, "--engine", "generic", cwd=tmp_path,
                     limits=_file_size_limit(2**20))
    assert_one_line_error(result, f"{output}: File too large")
    assert sorted(os.listdir(tmp_path)) == sorted([output, "x.npy"])
    assert (tmp_path / output).read_text() == "precious"


@linux_only
def test_item10_npy_output_through_dask_past_the_file_size_limit(tmp_path):
    pytest.importorskip("dask")
    zarr = pytest.importorskip("zarr")
    store = zarr.open(str(tmp_path / "x.zarr"), mode="w", shape=(512, 1024), chunks=(128, 1024), dtype="f4")
    store[:] = 1.0
    result = run_cli("apply", "x.zarr", "-o", "out.npy", cwd=tmp_path, limits=_file_size_limit(2**20))
    assert_one_line_error(result, "File too large")
    assert os.listdir(tmp_path) == ["x.zarr"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["npy", "npz", "csv"])
def test_item10_no_space_left_on_standard_output(tmp_path, logits, fmt):
    with open("/dev/full", "wb") as full:
        result = run_cli("apply", "x.npy", "-o", "-", "--output-format", fmt, cwd=tmp_path, stdout=full)
    assert_one_line_error(result, "No space left on device")


def test_item10_create_npy_reserves_every_block(tmp_path):
    from softmaxkit._npyfiles import create_npy

    mapped = create_npy(tmp_path / "r.npy", np.float64, (256, 1024))
    mapped[:] = 1.5
    mapped.flush()
    del mapped
    size = os.path.getsize(tmp_path / "r.npy")
    assert size >= 256 * 1024 * 8
    if hasattr(os, "posix_fallocate"):
        assert os.stat(tmp_path / "r.npy").st_blocks * 512 >= size
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), np.full((256, 1024), 1.5))


def test_item10_create_npy_without_fallocate_writes_zeros(tmp_path, monkeypatch):
    import errno

    from softmaxkit._npyfiles import create_npy

    def unsupported(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported, raising=False)
    mapped = create_npy(tmp_path / "z.npy", np.float32, (3, 5))
    mapped[1] = 2.0
    del mapped
    expected = np.zeros((3, 5), np.float32)
    expected[1] = 2.0
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), expected)  # the header survived


# -- item 11: SIGTERM and SIGHUP clean up like Ctrl-C -------------------------------------------

def _signal_once_the_temporary_exists(process: subprocess.Popen, pattern: str, signum: int) -> list[str]:
    """Stop the child as soon as its temporary output appears, send ``signum``, and let it go on.

    SIGSTOP first makes the test deterministic: the temporary is seen while the run is frozen, so
    the signal reaches it mid-write, whatever the machine's speed.
    """
    deadline = time.monotonic() + 60
    while not glob.glob(pattern):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the run ended before its temporary {pattern} was seen")
        time.sleep(0.001)
    process.send_signal(signal.SIGSTOP)
    seen = glob.glob(pattern)
    process.send_signal(signum)
    process.send_signal(signal.SIGCONT)
    return seen


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, getattr(signal, "SIGHUP", 1)], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("target", ["out.npy", "out.zarr"])
def test_item11_signal_during_apply_removes_the_temporary(tmp_path, signum, target):
    if target.endswith(".zarr"):
        zarr = pytest.importorskip("zarr")
        pytest.importorskip("dask")
        zarr.open(str(tmp_path / target), mode="w", shape=(2,), dtype="f4")[:] = 7
        before = sorted(p.relative_to(tmp_path) for p in (tmp_path / target).rglob("*"))
    else:
        (tmp_path / target).write_text("precious")
    np.save(tmp_path / "x.npy", np.zeros((3000, 1000), np.float32))  # 12 MB: a run of a second or so
    engine = ("--engine", "generic") if target.endswith(".npy") else ()  # zarr: always the Dask engine
    with subprocess.Popen(command("apply", "x.npy", "-o", target, "--chunk-mb", "0.5", *engine),
                          cwd=tmp_path, env=child_env(), stderr=subprocess.PIPE, text=True) as process:
        try:
            seen = _signal_once_the_temporary_exists(process, str(tmp_path / f".{target}.*"), signum)
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
    assert seen, "no temporary output was seen"
    assert process.returncode == 128 + signum, stderr
    assert stderr.strip() == f"softmaxkit apply: terminated by {signal.Signals(signum).name}"
    assert sorted(os.listdir(tmp_path)) == sorted([target, "x.npy"])
    if target.endswith(".zarr"):
        assert sorted(p.relative_to(tmp_path) for p in (tmp_path / target).rglob("*")) == before
        np.testing.assert_array_equal(zarr.open(str(tmp_path / target), mode="r")[:], [7, 7])
    else:
        assert (tmp_path / target).read_text() == "precious"


def test_item11_nohup_keeps_sighup_ignored():
    from softmaxkit.cli._signals import handled_signals

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with handled_signals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


# -- item 12: untrusted .npz: declared sizes checked, members streamed --------------------------

def _npy_with_header(shape: tuple[int, ...], data: bytes, dtype: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def test_item12_npy_header_declaring_too_much_is_refused_before_allocating(tmp_path):
    # A petabyte declared in 80 bytes: refused by the limit, never allocated.
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as archive:
        archive.writestr("x.npy", _npy_with_header((2**47,), bytes(80)))
    result = run_cli("apply", "lie.npz", "-o", "o.npy", cwd=tmp_path)
    assert_one_line_error(result, "lie.npz[x]: declares ")
    assert "of data, more than the limit of" in result.stderr


def test_item12_zip_directory_size_is_checked_before_decompressing(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.ones(10))
    data = bytearray((tmp_path / "x.npz").read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 0xFFFF0000)  # uncompressed size: almost 4 GiB
    (tmp_path / "x.npz").write_bytes(bytes(data))
    result = run_cli("apply", "x.npz", "-o", "o.npy", "--max-load-mb", "64", cwd=tmp_path)
    assert_one_line_error(result, "x.npz[x]: declares 4.0 GiB uncompressed, more than the limit of 64.0 MiB")


def test_item12_zip_bomb_is_refused_by_max_load_mb(tmp_path):
    np.savez_compressed(tmp_path / "bomb.npz", x=np.zeros(2**23))  # 64 MiB of zeros in ~70 KB
    assert (tmp_path / "bomb.npz").stat().st_size < 2**20
    result = run_cli("apply", "bomb.npz", "-o", "o.npy", "--max-load-mb", "16", cwd=tmp_path)
    assert_one_line_error(result, "more than the limit of 16.0 MiB")
    result = run_cli("apply", "-", "--format", "npz", "-o", "o.npy", "--max-load-mb", "16", cwd=tmp_path,
                     stdin=(tmp_path / "bomb.npz").read_bytes(), text=False)
    assert_one_line_error(result, "more than the limit of 16.0 MiB")
    assert sorted(os.listdir(tmp_path)) == ["bomb.npz"]


def test_item12_member_shorter_than_its_header_is_truncated(tmp_path):
    with zipfile.ZipFile(tmp_path / "short.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy_with_header((1000,), bytes(80)))
    assert_one_line_error(run_cli("apply", "short.npz", "-o", "o.npy", cwd=tmp_path),
                          "short.npz[x]: truncated: the header declares 8000 bytes of data, "
                          "the file holds 80")


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_item12_streamed_members_read_exactly(tmp_path, source):
    # The streaming reader against NumPy's: compressed, Fortran order, big-endian, a second member.
    x = np.asfortranarray(np.random.default_rng(5).normal(size=(30, 7))).astype(">f8")
    np.savez_compressed(tmp_path / "a.npz", logits=x, other=np.arange(3))
    args = ("a.npz",) if source == "file" else ("-", "--format", "npz")
    result = run_cli("apply", *args, "--key", "logits", "-o", "p.npy", "--max-load-mb", "1", cwd=tmp_path,
                     stdin=(tmp_path / "a.npz").read_bytes() if source == "stdin" else None, text=False)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), sk.softmax(x.astype(np.float64)))


def test_item12_npy_on_stdin_is_streamed_and_bounded(tmp_path):
    x = np.random.default_rng(6).normal(size=(50, 4)).astype(np.float32)
    result = run_cli("apply", "-", "--format", "npy", "-o", "p.npy", cwd=tmp_path, stdin=npy_bytes(x),
                     text=False)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), sk.softmax(x))
    big = npy_bytes(np.zeros((2**18, 8)))  # 16 MiB
    result = run_cli("apply", "-", "--format", "npy", "-o", "p.npy", "--max-load-mb", "8", cwd=tmp_path,
                     stdin=big, text=False)
    assert_one_line_error(result, "-: declares 16.0 MiB of data, more than the limit of 8.0 MiB")


# -- item 13: --key cannot lose data or escape the archive --------------------------------------

@pytest.mark.parametrize("key", ["allow_pickle", "file", "../../evil", "a/b", "", "x.npy", "1st"])
def test_item13_key_is_validated(tmp_path, logits, key):
    (tmp_path / "out.npz").write_text("precious")
    result = run_cli("apply", "x.npy", "-o", "out.npz", "--key", key, cwd=tmp_path)
    assert_one_line_error(result, "--key must be a Python identifier other than file, allow_pickle")
    assert (tmp_path / "out.npz").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["out.npz", "x.npy"]


def test_item13_a_valid_key_names_the_member(tmp_path, logits):
    result = run_cli("apply", "x.npy", "-o", "out.npz", "--key", "probabilities", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out.npz") as archive:
        assert archive.files == ["probabilities"]
        np.testing.assert_array_equal(archive["probabilities"], sk.softmax(logits))


# -- item 14: progress on stderr, only on a terminal --------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty")
def test_item14_progress_never_reaches_standard_output(tmp_path):
    import pty

    x = np.random.default_rng(7).normal(size=(4000, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    leader, follower = pty.openpty()  # stderr is a terminal, stdout a pipe
    process = subprocess.Popen(
        command("apply", "x.npy", "-o", "-", "--output-format", "npy", "--chunk-mb", "0.01",
                "--engine", "generic"),
        cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    terminal = bytearray()

    def drain() -> None:
        while True:
            try:
                piece = os.read(leader, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not piece:
                return
            terminal.extend(piece)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(leader)
    assert process.returncode == 0, bytes(terminal)
    assert stdout.startswith(b"\x93NUMPY")
    np.testing.assert_array_equal(np.load(io.BytesIO(stdout)), sk.softmax(x, engine="generic"))


def test_item14_nothing_on_stderr_without_a_terminal(tmp_path, logits):
    result = run_cli("apply", "x.npy", "-o", "p.npy", "--chunk-mb", "0.0001", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == ""


# -- item 15: rough edges -----------------------------------------------------------------------

def test_item15_broken_pipe_ends_quietly(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((20_000, 8)))  # about 2.5 MB of CSV: far more than a pipe holds
    with subprocess.Popen(command("apply", "x.npy", "-o", "-", "--engine", "generic"), cwd=tmp_path,
                          env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout.readline().startswith(b"0.125,")
        process.stdout.close()  # what `| head -1` does
        stderr = process.stderr.read()
        process.wait(timeout=120)
    assert stderr == b""
    assert process.returncode == 128 + signal.SIGPIPE


@pytest.mark.parametrize(("stdin", "fmt"), [
    ("", "csv"), ("\n\n\r\n", "csv"), ("# only a comment\n", "csv"), ("", "tsv"), (b"", "npy"), (b"", "npz"),
], ids=["empty-csv", "blank-csv", "comment-csv", "empty-tsv", "empty-npy", "empty-npz"])
def test_item15_empty_input_is_an_error(stdin, fmt):
    result = run_cli("apply", "-", "--format", fmt, "-o", "-", stdin=stdin, text=isinstance(stdin, str))
    assert_one_line_error(result, "no data")
    assert result.stdout in ("", b"")


def test_item15_empty_csv_file_is_an_error(tmp_path):
    (tmp_path / "blank.csv").write_text("\n\n")
    assert_one_line_error(run_cli("apply", "blank.csv", "-o", "out.csv", cwd=tmp_path), "blank.csv: no data")
    assert sorted(os.listdir(tmp_path)) == ["blank.csv"]


@pytest.mark.parametrize(("content", "message"), [
    ("1,2,3\n1,x,3\n", "line 2, column 2: not a number: 'x'"),
    ("x,2\n", "line 1, column 1: not a number: 'x'"),
    ("\n# header\n1,2\n\n3,4,5\n", "line 5 has 3 values, line 3 has 2"),
    ("1,2\n3\n", "line 2 has 1 value, line 1 has 2"),
    ("1,2\n3,\n", "line 2, column 2: not a number: ''"),
    ("1,2\n  \n", "line 2 has 1 value, line 1 has 2"),
    ("1, y\n", "line 1, column 2: not a number: ' y'"),
], ids=["value", "first-line", "blank-and-comment-lines", "one-value", "empty-field", "spaces-line",
        "spaced"])
def test_item15_csv_errors_count_lines_from_1(tmp_path, content, message):
    (tmp_path / "in.csv").write_text(content)
    assert_one_line_error(run_cli("apply", "in.csv", "-o", "out.csv", cwd=tmp_path), f"in.csv: {message}")
    result = run_cli("apply", "-", "-o", "-", stdin=content)
    assert_one_line_error(result, f"-: {message}")


@pytest.mark.parametrize("token", ["-inf", "-1e5", "-nan"])
def test_item15_negative_logit_hints_at_double_dash(token):
    result = run_cli("probs", "1", token)
    assert result.returncode == 2
    assert f"hint: {token} was read as an option" in result.stderr
    assert f"softmaxkit probs -- 1 {token}" in result.stderr
    assert run_cli("probs", "--", "1", token).returncode == 0


def test_item15_no_hint_for_unrelated_usage_errors():
    result = run_cli("probs", "1", "-0.5", "--frobnicate")
    assert result.returncode == 2 and "hint" not in result.stderr


@pytest.mark.parametrize("logits", [("nan", "1"), ("1", "nan", "inf")])
def test_item15_nan_logit_marks_no_class_as_predicted(logits):
    result = run_cli("probs", *logits)
    assert result.returncode == 0, result.stderr
    assert "<- predicted" not in result.stdout
    assert "no class is predicted: a NaN logit makes every probability NaN" in result.stdout


def test_item15_predicted_class_is_none_for_nan_probabilities():
    from softmaxkit.cli.probs import predicted_class  # also marks the bar in `softmaxkit plot`

    assert predicted_class(sk.softmax(np.array([np.nan, 1.0]))) is None
    assert predicted_class(sk.softmax(np.array([0.0, 2.0, 1.0]))) == 1


# -- item 17 ------------------------------------------------------------------------------------

def test_item17_python_m_softmaxkit():
    result = run_cli("probs", "0.25", "1.23", "-0.8", "--labels", "cat,panda,duck")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2].startswith("panda") and result.stdout.splitlines()[2].endswith(
        "<- predicted")
    assert run_cli("--version").stdout.startswith("softmaxkit ")
