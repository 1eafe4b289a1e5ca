"""Compile the kernels with NVRTC, with the engine's own options, into a cubin (or PTX).

CuPy's ``RawModule(code=...)`` appends ``-ftz=true`` to every compilation, which flushes
float32 subnormals to zero (``div.rn.ftz.f32``): probabilities below 2^-126 would become 0,
against SPEC §2's relative bound. So the engine calls NVRTC itself (through CuPy's thin
binding, the library CuPy ships or finds) with :data:`OPTIONS`, and hands CuPy only the
compiled image. The compile tests call :func:`compile_program` with the same options, so
what CI checks is what runs. Importing this module imports no GPU library.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softmaxkit.cuda._source import source

OPTIONS: tuple[str, ...] = ("-std=c++17", "-ftz=false", "-prec-div=true", "-prec-sqrt=true", "-fmad=true")
"""NVRTC options of every kernel compilation: IEEE subnormals and divisions (SPEC §2), fused
multiply-adds allowed (they only round less). ``-std=c++17`` for alignas and constexpr."""


@dataclass(frozen=True)
class Program:
    """One compilation: the loadable image, its PTX, the kernels' mangled names and NVRTC's log."""

    image: bytes
    """A cubin for ``-arch=sm_XX``, PTX (NUL-terminated) for ``-arch=compute_XX``."""
    ptx: str
    lowered: dict[str, str]
    """Name expression (``sk_softmax_rows<float, 32, 128, 4, 8>``) -> mangled symbol."""
    log: str


def nvrtc_module() -> Any:
    """CuPy's NVRTC binding (raises ImportError without CuPy)."""
    from cupy_backends.cuda.libs import nvrtc

    return nvrtc


def arch_option(capability: int, supported: tuple[int, ...]) -> str:
    """``-arch=sm_XX`` for a device NVRTC knows; else PTX for the newest architecture below it.

    A device newer than the NVRTC library gets PTX that its driver compiles at load time.
    """
    if capability in supported:
        return f"-arch=sm_{capability}"
    older = [a for a in supported if a <= capability]
    if not older:
        raise RuntimeError(
            f"NVRTC supports architectures {supported}, none for compute capability {capability}"
        )
    return f"-arch=compute_{max(older)}"


@functools.cache
def supported_archs() -> tuple[int, ...]:
    return tuple(int(a) for a in nvrtc_module().getSupportedArchs())


def compile_program(file: str, names: tuple[str, ...], arch: str, extra: tuple[str, ...] = ()) -> Program:
    """Compile ``kernels/<file>`` instantiating the kernels ``names`` for ``arch`` (an -arch option).

    ``extra`` options come after :data:`OPTIONS` (the compile test passes ``-Xptxas=-v`` for
    the register report; it changes no code).
    """
    nvrtc = nvrtc_module()
    program = nvrtc.createProgram(source(file), file, [], [])
    try:
        for name in names:
            nvrtc.addNameExpression(program, name)
        try:
            nvrtc.compileProgram(program, [*OPTIONS, *extra, arch])
        except nvrtc.NVRTCError as error:
            log = nvrtc.getProgramLog(program)
            raise RuntimeError(f"NVRTC could not compile {file} for {arch}: {error}\n{log}") from None
        ptx = nvrtc.getPTX(program)
        image = nvrtc.getCUBIN(program) if arch.startswith("-arch=sm_") else ptx
        lowered = {name: nvrtc.getLoweredName(program, name) for name in names}
        return Program(image, ptx.rstrip(b"\0").decode(), lowered, nvrtc.getProgramLog(program))
    finally:
        nvrtc.destroyProgram(program)


def cache_dir() -> Path:
    """Where compiled kernels are kept across processes (``SOFTMAXKIT_CACHE_DIR`` overrides)."""
    root = os.environ.get("SOFTMAXKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "softmaxkit"
    )
    return Path(root) / "nvrtc"


def cached_program(file: str, names: tuple[str, ...], arch: str) -> Program:
    """:func:`compile_program` through a disk cache keyed by everything the image depends on.

    The key holds the source text, the options, the architecture and NVRTC's version, so an
    edited kernel or another NVRTC compiles anew; a cache that cannot be written is skipped.
    """
    version = ".".join(map(str, nvrtc_module().getVersion()))
    key = "\0".join([source(file), *OPTIONS, arch, version, *names])
    path = cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.pkl"
    try:
        with open(path, "rb") as f:
            program = pickle.load(f)
        if isinstance(program, Program):
            return program
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        pass
    program = compile_program(file, names, arch)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            try:
                pickle.dump(program, tmp)
            except BaseException:
                os.unlink(tmp.name)  # a full disk must not leave a stray temporary behind
                raise
        os.replace(tmp.name, path)  # atomic: concurrent processes never read half a file
    except OSError:
        pass
    return program
