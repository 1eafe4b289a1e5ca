"""Run softmaxkit's CUDA kernels on the CPU, under sanitizers, through the engine's own launcher.

The kernel source NVRTC compiles (:func:`softmaxkit.cuda._source.source`, unchanged) is
compiled as C++ with ``cuda_host/cuda_host.h`` (the CUDA execution model: see its comment),
one shared library per kernel file and sanitizer, with one ``extern "C"`` entry point per
kernel instance the tests need. :class:`HostKernel` makes an entry point callable the way
CuPy's kernels are called, so :mod:`softmaxkit.cuda._launch` runs unchanged: the planner
picks the kernels and grid, the launcher packs the arguments (each checked against the
kernel's parameter sizes) and the kernels run on NumPy buffers standing in for device memory.

Sanitized code must run in a process that loads the sanitizer's runtime first, so the
launches happen in a worker process (``python cuda_on_cpu.py --serve``, started with
``LD_PRELOAD``) that :class:`Harness` talks to over pipes; a sanitizer report ends the worker
and becomes the test's failure message. Input buffers are allocated at the exact size (a
read past the end is an ASan report) and at a chosen offset from a 16-byte boundary
(misaligned views must take the scalar path; UBSan checks every typed access's alignment).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).parent
HEADER = HERE / "cuda_host" / "cuda_host.h"
SRC = HERE.parent / "src"
POLICIES = {"ascending": 0, "descending": 1, "random": 2}

# -O0: a third of -O1's compile time, and the run time is the fibers' switching either way.
FLAGS = [
    "-std=c++20",
    "-O0",
    "-g",
    "-fPIC",
    "-shared",
    "-fno-strict-aliasing",
    "-fno-omit-frame-pointer",
    "-Wall",
    "-Wno-unknown-pragmas",
    "-Werror",
]
SANITIZERS: dict[str, tuple[list[str], str]] = {
    # flags, runtime to preload
    "asan": (["-fsanitize=address,undefined", "-fno-sanitize-recover=all"], "libasan.so"),
    "tsan": (["-fsanitize=thread", "-DSK_HOST_THREADS"], "libtsan.so"),
}


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "g++"))


def runtime_library(sanitizer: str) -> str | None:
    """The sanitizer runtime's path, or None when the compiler has none."""
    cxx = compiler()
    if cxx is None:
        return None
    name = SANITIZERS[sanitizer][1]
    path = subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


HARNESS_MARKS = [
    pytest.mark.cuda_on_cpu,
    pytest.mark.skipif(
        compiler() is None or runtime_library("asan") is None,
        reason="needs g++ with AddressSanitizer (apt-get install g++)",
    ),
]
"""The ``pytestmark`` of every test module that runs the CUDA sources on the CPU harness."""


def translation_unit(file: str, names: list[str]) -> str:
    """The engine's source for ``file`` after the host header, and one entry point per kernel."""
    from softmaxkit.cuda._source import source

    entries = "".join(
        f'extern "C" int sk_entry_{i}(unsigned grid, unsigned block, unsigned long long shared,\n'
        f"    void** args,"
        f"    const unsigned long long* sizes, int nargs, int policy, unsigned long long seed) {{\n"
        f"    return sk_host::launch(&{name}, grid, block, shared, args, sizes, nargs, policy, seed);\n}}\n"
        for i, name in enumerate(names)
    )
    return (
        f'#include "cuda_host.h"\n#line 1 "{file}"\n{source(file)}\n#line 1 "entries"\n'
        f'extern "C" const char* sk_host_error() {{ return sk_host::error; }}\n{REGISTER}{entries}'
    )


REGISTER = """extern "C" void sk_host_register_shared(void** addresses, const unsigned long long* sizes,
                                                int n) {
    for (int i = 0; i < n; ++i) {
        sk_host::static_shared.emplace_back(static_cast<volatile unsigned char*>(addresses[i]), sizes[i]);
    }
}
"""
_SHARED_SYMBOL = re.compile(r"^[0-9a-f]+ ([0-9a-f]+) [uUbBdD] (_ZZ\d+sk_\w+)$", re.MULTILINE)


def static_shared_symbols(lib: Path) -> list[tuple[str, int]]:
    """(symbol, bytes) of the kernels' ``__shared__`` statics (function-local statics of sk_ kernels)."""
    text = subprocess.run(
        ["nm", "-D", "-S", "--defined-only", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    return [(name, int(size, 16)) for size, name in _SHARED_SYMBOL.findall(text)]


def cache_dir() -> Path:
    root = os.environ.get("SOFTMAXKIT_CUDA_HOST_CACHE") or os.path.join(
        tempfile.gettempdir(), "softmaxkit-cuda-host"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build(file: str, names: list[str], sanitizer: str, source_text: str | None = None) -> Path:
    """The shared library of ``names`` from ``file`` (cached by content); ``source_text``
    replaces the translation unit (the mutation tests)."""
    unit = source_text if source_text is not None else translation_unit(file, names)
    flags = FLAGS + SANITIZERS[sanitizer][0]
    key = hashlib.sha256(
        "\0".join([unit, HEADER.read_text(), *flags, compiler() or ""]).encode()
    ).hexdigest()[:20]
    lib = cache_dir() / f"{Path(file).stem}-{sanitizer}-{key}.so"
    if not lib.exists():
        with tempfile.TemporaryDirectory() as tmp:
            cpp = Path(tmp) / f"{Path(file).stem}.cpp"
            cpp.write_text(unit)
            out = Path(tmp) / lib.name
            done = subprocess.run(
                [compiler() or "g++", *flags, f"-I{HEADER.parent}", str(cpp), "-o", str(out)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(f"host build of {file} failed:\n{done.stderr[-6000:]}")
            shared = static_shared_symbols(out)
            if not shared:
                raise RuntimeError(f"no __shared__ variable found in the symbols of the {file} build")
            shutil.move(out, lib)
        lib.with_suffix(".json").write_text(json.dumps({"names": names, "shared": shared}))
    return lib


def build_all(names_by_file: dict[str, list[str]], sanitizer: str) -> list[Path]:
    with ThreadPoolExecutor(max(1, min(len(names_by_file), os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda item: build(item[0], sorted(item[1]), sanitizer), names_by_file.items()))


# --- the worker side: host kernels behind softmaxkit.cuda._launch ---------------------------------

_SCALARS = {
    np.dtype(np.int64): ctypes.c_int64,
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.uint64): ctypes.c_uint64,
    np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.float64): ctypes.c_double,
}


class HostKernel:
    """One kernel instance of a host library, called as CuPy calls a kernel."""

    def __init__(self, entry: Any, error: Any, name: str, launches: list[tuple[str, int, int, int]]) -> None:
        self.entry, self.error, self.name, self.launches = entry, error, name, launches
        self.policy, self.seed = 0, 1

    def __call__(
        self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...], shared_mem: int = 0
    ) -> None:
        if len(grid) != 1 or len(block) != 1:
            raise ValueError(f"{self.name}: 1-D launches only, got {grid} x {block}")
        values = []
        for a in args:
            if isinstance(a, np.ndarray):
                values.append(ctypes.c_void_p(a.ctypes.data))
            elif isinstance(a, np.generic) and a.dtype in _SCALARS:
                values.append(_SCALARS[a.dtype](a.item()))
            else:
                raise TypeError(f"{self.name}: argument of type {type(a).__name__} ({a!r})")
        pointers = (ctypes.c_void_p * len(values))(*(ctypes.addressof(v) for v in values))
        sizes = (ctypes.c_ulonglong * len(values))(*(ctypes.sizeof(v) for v in values))
        self.launches.append((self.name, grid[0], block[0], shared_mem))
        rc = self.entry(grid[0], block[0], shared_mem, pointers, sizes, len(values), self.policy, self.seed)
        if rc != 0:
            raise RuntimeError(f"{self.name}: {self.error().decode()}")


@dataclass
class Worker:
    """The state of a worker process: loaded kernels and the device it pretends to be."""

    kernels: dict[str, HostKernel] = field(default_factory=dict)
    launches: list[tuple[str, int, int, int]] = field(default_factory=list)
    limits: tuple[int, int] = (132, 227 * 1024)
    keep: list[Any] = field(default_factory=list)

    def load(self, lib: Path) -> None:
        handle = ctypes.CDLL(str(lib))
        handle.sk_host_error.restype = ctypes.c_char_p
        meta = json.loads(lib.with_suffix(".json").read_text())
        shared = [ctypes.addressof(ctypes.c_char.in_dll(handle, symbol)) for symbol, _ in meta["shared"]]
        handle.sk_host_register_shared(
            (ctypes.c_void_p * len(shared))(*shared),
            (ctypes.c_ulonglong * len(shared))(*(size for _, size in meta["shared"])),
            len(shared),
        )
        for i, name in enumerate(meta["names"]):
            entry = getattr(handle, f"sk_entry_{i}")
            entry.restype = ctypes.c_int
            entry.argtypes = [
                ctypes.c_uint,
                ctypes.c_uint,
                ctypes.c_ulonglong,
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_ulonglong,
            ]
            self.kernels[name] = HostKernel(entry, handle.sk_host_error, name, self.launches)
        self.keep.append(handle)

    def kernel(self, file: str, name: str) -> HostKernel:
        if name not in self.kernels:
            raise KeyError(f"{name} ({file}) was not built for the host: add its case to the harness")
        return self.kernels[name]

    def install(self) -> None:
        """Point softmaxkit.cuda._launch at the host kernels (this process only)."""
        from softmaxkit.cuda import _launch

        fake = types.ModuleType("cupy")
        fake.empty = np.empty
        sys.modules["cupy"] = fake
        _launch.kernel = self.kernel
        _launch.current_device = lambda: 0
        _launch.address = lambda a: a.ctypes.data
        _launch.device_limits = lambda device: self.limits


class Buffers:
    """Exact-size input buffers at a chosen offset from a 16-byte boundary (posix_memalign)."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None)
        self.libc.posix_memalign.argtypes = [
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_size_t,
            ctypes.c_size_t,
        ]
        self.libc.free.argtypes = [ctypes.c_void_p]
        self.held: list[int] = []

    def place(self, a: np.ndarray, offset: int) -> np.ndarray:
        nbytes = max(a.nbytes, 1)
        p = ctypes.c_void_p()
        if self.libc.posix_memalign(ctypes.byref(p), 16, nbytes + offset) != 0:
            raise MemoryError(nbytes)
        self.held.append(p.value)
        raw = (ctypes.c_ubyte * (nbytes + offset)).from_address(p.value)
        view = np.frombuffer(raw, dtype=np.uint8)[offset : offset + a.nbytes].view(a.dtype).reshape(a.shape)
        view[...] = a
        return view

    def free(self) -> None:
        for p in self.held:
            self.libc.free(p)
        self.held.clear()


def run_request(worker: Worker, request: dict[str, Any]) -> dict[str, Any]:
    """One call of a _launch function; inputs placed per ``request["offsets"]``; outputs returned."""
    from softmaxkit.cuda import _launch

    buffers = Buffers()
    try:
        worker.limits = tuple(request["limits"])
        for k in worker.kernels.values():
            k.policy, k.seed = POLICIES[request["policy"]], request["seed"]
        arrays = {
            name: None if a is None else buffers.place(a, request["offsets"].get(name, 0))
            for name, a in request["arrays"].items()
        }
        del worker.launches[:]
        function, params = request["function"], request["params"]
        result: dict[str, Any] = {}
        if function == "softmax":
            _launch.softmax(
                arrays["x"],
                arrays["mask"],
                arrays["y"],
                params["dtype"],
                params["temperature"],
                params["log"],
            )
            result["y"] = arrays["y"].copy()
        elif function == "logsumexp":
            _launch.logsumexp(arrays["x"], arrays["mask"], arrays["out"], params["dtype"])
            result["out"] = arrays["out"].copy()
        elif function == "vjp":
            _launch.vjp(arrays["first"], arrays["g"], arrays["out"], params["dtype"], params["log"])
            result["out"] = arrays["out"].copy()
        elif function == "cross_entropy":
            losses = _launch.cross_entropy(
                arrays["x"],
                arrays["labels"],
                arrays["probs"],
                arrays["weight"],
                params["ignore_index"],
                params["smoothing"],
                params["divisor"],
                arrays["grad"],
                params["dtype"],
            )
            result["losses"] = np.array(losses)
            result["grad"] = None if arrays["grad"] is None else arrays["grad"].copy()
        elif function in ("sample", "sample_filter"):
            per_row = tuple(arrays[k] for k in ("inv_t", "top_k", "top_p", "min_p"))
            if function == "sample":
                _launch.sample(arrays["x"], arrays["mask"], per_row, arrays["u"], arrays["out"],
                               arrays["status"], params["dtype"], params["replacement"])
            else:
                _launch.sample_filter(arrays["x"], arrays["mask"], per_row, arrays["out"], arrays["status"],
                                      params["dtype"])
            result["out"], result["status"] = arrays["out"].copy(), arrays["status"].copy()
        elif function == "raw":  # one kernel with the request's own arguments
            worker.kernels[request["name"]]((request["grid"],), (request["block"],), tuple(request["args"]))
        else:
            raise ValueError(f"unknown function {function!r}")
        result["launches"] = list(worker.launches)
        return result
    finally:
        buffers.free()


def _read(stream: Any) -> Any:
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(size))


def _write(stream: Any, value: Any) -> None:
    data = pickle.dumps(value)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def serve() -> None:
    """The worker loop: load libraries, then answer requests until stdin closes."""
    sys.path.insert(0, str(SRC))
    worker = Worker()
    libs = _read(sys.stdin.buffer)
    for lib in libs:
        worker.load(Path(lib))
    worker.install()
    while (request := _read(sys.stdin.buffer)) is not None:
        try:
            _write(sys.stdout.buffer, ("ok", run_request(worker, request)))
        except Exception as error:  # reported to the test, the worker goes on
            _write(sys.stdout.buffer, ("error", f"{type(error).__name__}: {error}"))


# --- the test side -----------------------------------------------------------------------------


class WorkerCrashed(AssertionError):
    """The worker died (a sanitizer report, a crash, a deadlock report): its stderr."""


class Harness:
    """A sanitized worker process with the given libraries; restarted after a crash."""

    def __init__(self, libs: list[Path], sanitizer: str, timeout: float = 300.0) -> None:
        self.libs, self.sanitizer, self.timeout = [str(p) for p in libs], sanitizer, timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.process_rc: int | None = None
        self.stderr: Any = None

    def _start(self) -> subprocess.Popen[bytes]:
        runtime = runtime_library(self.sanitizer)
        if runtime is None:
            raise RuntimeError(f"{self.sanitizer} runtime not found for {compiler()}")
        env = dict(os.environ)
        env["LD_PRELOAD"] = runtime
        env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1:detect_stack_use_after_return=0"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        env["TSAN_OPTIONS"] = "halt_on_error=1:report_signal_unsafe=0:ignore_noninstrumented_modules=1"
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE)])
        if self.stderr is not None:
            self.stderr.close()
        self.stderr = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        assert process.stdin is not None
        _write(process.stdin, self.libs)
        return process

    def _crash_report(self) -> str:
        assert self.process is not None
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace")
        self._release()
        self.process = None
        return f"worker exited with {self.process_rc}:\n{text[-8000:]}"

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.process is not None and self.process.poll() is not None:
            self._release()  # died between calls: close its pipes before starting another
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            _write(self.process.stdin, request)
            answer = _read(self.process.stdout)
        except BrokenPipeError:
            answer = None
        if answer is None:
            self.process_rc = self.process.wait()
            raise WorkerCrashed(self._crash_report())
        status, value = answer
        if status != "ok":
            raise RuntimeError(value)
        return value

    def _release(self) -> None:
        """Close the pipes and the stderr file of the (finished) worker."""
        if self.process is not None:
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except BrokenPipeError:
                        pass
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=60)
        self._release()
        self.process = None


def storage(values: np.ndarray, dtype: str) -> np.ndarray:
    """float64 values as the kernels store them (bfloat16 as its int16 bits)."""
    if dtype == "bfloat16":
        import ml_dtypes

        return values.astype(ml_dtypes.bfloat16).view(np.int16)
    return values.astype(dtype)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.exit("usage: python cuda_on_cpu.py --serve (started by tests/test_cuda_on_cpu.py)")
