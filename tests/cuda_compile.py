"""Compile the CUDA kernels with nvcc and read ptxas's register and spill report.

One translation unit per dtype includes every ``.cu`` file and takes the address of each
kernel configuration the launch planner can choose, which instantiates it; ``-Xptxas -v``
then reports each kernel's registers and spills. Run as a script for the full table::

    PYTHONPATH=src python tests/cuda_compile.py            # heaviest configs (as CI)
    PYTHONPATH=src python tests/cuda_compile.py --all      # every config (minutes)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from softmaxkit.cuda import _plan
from softmaxkit.cuda._source import KERNEL_DIR, kernel_files

ARCH = "sm_90"


@dataclass(frozen=True)
class KernelReport:
    name: str
    registers: int
    spill_stores: int
    spill_loads: int
    stack: int


def nvcc() -> str | None:
    return shutil.which("nvcc")


def instances(dtype: str, full: bool) -> list[str]:
    """Name expressions of the kernels to compile for ``dtype``."""
    pick = _plan.all_configs if full else _plan.heaviest_configs
    names: list[str] = []
    for family in _plan.FAMILIES:
        names += _plan.name_expressions(pick(family, dtype), family, dtype)
    return list(dict.fromkeys(names))


def translation_unit(names: list[str]) -> str:
    includes = "".join(f'#include "{path.name}"\n' for path in kernel_files())
    table = "".join(f"    (void*)&{name},\n" for name in names)
    return f"{includes}\nvoid* softmaxkit_instances[] = {{\n{table}}};\n"


_ENTRY = re.compile(r"Compiling entry function '(\w+)'")
_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")


def parse_ptxas(text: str) -> list[KernelReport]:
    """ptxas -v lines as one report per kernel (names demangled when c++filt is present)."""
    reports, name, spill = [], None, (0, 0, 0)
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            name = m.group(1)
        elif m := _SPILL.search(line):
            spill = tuple(int(g) for g in m.groups())
        elif (m := _REGS.search(line)) and name is not None:
            reports.append(KernelReport(name, int(m.group(1)), spill[1], spill[2], spill[0]))
            name = None
    if shutil.which("c++filt") and reports:
        demangled = subprocess.run(["c++filt"], input="\n".join(r.name for r in reports),
                                   capture_output=True, text=True, check=True).stdout.split("\n")
        reports = [KernelReport(d.split("(")[0], r.registers, r.spill_stores, r.spill_loads, r.stack)
                   for r, d in zip(reports, demangled, strict=False)]
    return reports


def compile_dtype(dtype: str, full: bool, workdir: Path) -> tuple[list[str], list[KernelReport]]:
    names = instances(dtype, full)
    tu = workdir / f"instances_{dtype}.cu"
    tu.write_text(translation_unit(names))
    cmd = [nvcc() or "nvcc", f"-arch={ARCH}", "-cubin", "-std=c++17", "-Xptxas", "-v",
           "-Werror", "all-warnings", f"-I{KERNEL_DIR}", str(tu), "-o", str(workdir / f"{dtype}.cubin")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nvcc failed for {dtype}:\n{done.stderr[-4000:]}")
    return names, parse_ptxas(done.stderr + done.stdout)


def compile_all(full: bool = False) -> dict[str, tuple[list[str], list[KernelReport]]]:
    """Compile every dtype's unit (in parallel) and return its instances and ptxas reports."""
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        jobs = {d: pool.submit(compile_dtype, d, full, Path(tmp)) for d in _plan.DTYPES}
        return {d: job.result() for d, job in jobs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every config, not only the heaviest")
    args = parser.parse_args()
    results = compile_all(args.all)
    worst = 0
    for dtype, (names, reports) in results.items():
        print(f"## {dtype}: {len(names)} instances, {len(reports)} kernels")
        for r in sorted(reports, key=lambda r: r.name):
            print(f"{r.registers:4d} regs  {r.spill_stores:4d}/{r.spill_loads:<4d} spill B  {r.name}")
            worst = max(worst, r.spill_stores + r.spill_loads)
    print("spills:", "none" if worst == 0 else f"up to {worst} bytes")
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
