"""Compile the CUDA kernels exactly as the engine does (NVRTC, the engine's options) and read
ptxas's register and spill report. No GPU is needed: NVRTC is a library (the ``test`` extra
installs it with CuPy's binding).

Each kernel file is compiled once per dtype and architecture with every name expression the
launch planner can produce (:func:`softmaxkit.cuda._plan.all_configs`, or the heaviest of
each template in the quick mode), through :func:`softmaxkit.cuda._nvrtc.compile_program`,
the function the engine calls at run time, plus ``-Xptxas=-v`` for the report (it changes
no instruction: a test compares the code sections with and without it). Run as a script
for the table::

    PYTHONPATH=src python tests/cuda_compile.py            # heaviest configs (as the default run)
    PYTHONPATH=src python tests/cuda_compile.py --all      # every config (minutes)
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import re
import struct
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from softmaxkit.cuda import _nvrtc, _plan

ARCHS = ("sm_80", "sm_90")
VERBOSE = ("-Xptxas=-v",)


@dataclass(frozen=True)
class KernelReport:
    name: str
    """The name expression (``sk_softmax_rows<float, 32, 128, 4, 8>``)."""
    arch: str
    registers: int
    spill_stores: int
    spill_loads: int
    stack: int


def nvrtc_available() -> bool:
    if importlib.util.find_spec("cupy_backends") is None:
        return False
    try:
        _nvrtc.supported_archs()
    except Exception:  # the binding is there but no NVRTC library was found
        return False
    return True


def instances(file: str, dtype: str, full: bool) -> tuple[str, ...]:
    """Name expressions of the kernels of ``file`` to compile for ``dtype``."""
    pick = _plan.all_configs if full else _plan.heaviest_configs
    names: list[str] = []
    for family, fam in _plan.FAMILIES.items():
        if fam.source == file:
            names += _plan.name_expressions(pick(family, dtype), family, dtype)
    if file == "softmax.cu":  # logsumexp's split finish is templated on the dtype only
        names.append(_plan.name_expression("sk_logsumexp_split_finish", dtype, _plan.Config(1, 1, 1, 1)))
    if file == _plan.SAMPLING_SOURCE:  # one block per row; the largest block has the fewest registers
        blocks = _plan.SAMPLING_BLOCKS if full else _plan.SAMPLING_BLOCKS[-1:]
        names += [_plan.sampling_name(k, dtype, b) for k in _plan.SAMPLING_KERNELS for b in blocks]
    return tuple(dict.fromkeys(names))


_ENTRY = re.compile(r"Compiling entry function '(\w+)'")
_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")


def parse_ptxas(text: str, arch: str = "", names: dict[str, str] | None = None) -> list[KernelReport]:
    """ptxas -v lines as one report per kernel; ``names`` maps mangled symbols back to expressions."""
    reports, name, spill = [], None, (0, 0, 0)
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            name = m.group(1)
        elif m := _SPILL.search(line):
            spill = tuple(int(g) for g in m.groups())
        elif (m := _REGS.search(line)) and name is not None:
            shown = (names or {}).get(name, name)
            reports.append(KernelReport(shown, arch, int(m.group(1)), spill[1], spill[2], spill[0]))
            name = None
    return reports


def code_sections(cubin: bytes) -> dict[str, bytes]:
    """The ``.text.*`` sections (the machine code of each kernel) of an ELF64 cubin."""
    (shoff,) = struct.unpack_from("<Q", cubin, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        name, _, _, _, offset, size = struct.unpack_from("<IIQQQQ", cubin, shoff + i * shentsize)
        return name, offset, size

    _, strings_at, _ = header(shstrndx)
    out = {}
    for i in range(shnum):
        name_at, offset, size = header(i)
        name = cubin[strings_at + name_at : cubin.index(b"\0", strings_at + name_at)].decode()
        if name.startswith(".text."):
            out[name] = cubin[offset : offset + size]
    return out


def compile_unit(file: str, dtype: str, arch: str, full: bool) -> tuple[tuple[str, ...], list[KernelReport]]:
    names = instances(file, dtype, full)
    program = _nvrtc.compile_program(file, names, f"-arch={arch}", VERBOSE)
    symbols = {mangled: name for name, mangled in program.lowered.items()}
    return names, parse_ptxas(program.log, arch, symbols)


def units() -> list[tuple[str, str, str]]:
    files = sorted({f.source for f in _plan.FAMILIES.values()} | {_plan.SAMPLING_SOURCE})
    return [(file, dtype, arch) for arch in ARCHS for dtype in _plan.DTYPES for file in files]


def compile_all(full: bool = False) -> dict[tuple[str, str, str], tuple[tuple[str, ...], list[KernelReport]]]:
    """Every (file, dtype, arch) unit compiled, in parallel processes: its instances and reports."""
    todo = units()
    # spawn, not fork: the test process has threads (JAX, the numba engine's pool), and a
    # forked copy of a threaded process may deadlock (JAX warns, an error under -W error).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(len(todo), os.cpu_count() or 1), mp_context=context) as pool:
        jobs = {u: pool.submit(compile_unit, *u, full) for u in todo}
        return {u: job.result() for u, job in jobs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every config, not only the heaviest")
    args = parser.parse_args()
    worst = 0
    for (file, dtype, arch), (names, reports) in compile_all(args.all).items():
        print(f"## {file} {dtype} {arch}: {len(names)} kernels")
        for r in sorted(reports, key=lambda r: r.name):
            print(f"{r.registers:4d} regs  {r.spill_stores:4d}/{r.spill_loads:<4d} spill B  {r.name}")
            worst = max(worst, r.spill_stores + r.spill_loads + r.stack)
    print("spills:", "none" if worst == 0 else f"up to {worst} bytes")
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
