"""Every CUDA kernel compiles for sm_90 with nvcc, and no kernel spills registers.

Runs wherever ``nvcc`` is on PATH (no GPU needed). The quick mode (CI) compiles, for every
kernel template and dtype, the configuration with the most row data per available register
(:func:`softmaxkit.cuda._plan.heaviest_configs`); ``SOFTMAXKIT_CUDA_COMPILE=all`` compiles
every configuration the planner can launch (a few minutes). ``python tests/cuda_compile.py``
prints the register and spill table.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from cuda_compile import compile_all, nvcc, parse_ptxas
from softmaxkit.cuda import _plan
from softmaxkit.cuda._source import kernel_files, source

pytestmark = pytest.mark.skipif(nvcc() is None, reason="nvcc is not on PATH")


@pytest.fixture(scope="module")
def compiled():
    return compile_all(full=os.environ.get("SOFTMAXKIT_CUDA_COMPILE") == "all")


def test_every_kernel_template_compiles_for_every_dtype(compiled):
    assert set(compiled) == set(_plan.DTYPES)
    for dtype, (names, reports) in compiled.items():
        assert len(reports) == len(names), dtype  # one ptxas entry per instantiated kernel
        templates = {name.split("<")[0] for name in names}
        expected = {k for f in _plan.FAMILIES.values() for k in (f.rows_kernel, *f.split_kernels,
                                                                 f.smem_kernel) if k}
        assert templates == expected, dtype
        assert {r.name.split("<")[0].removeprefix("void ") for r in reports} == expected


def test_no_kernel_spills_registers(compiled):
    spilled = [(r.name, r.spill_stores, r.spill_loads) for _, reports in compiled.values()
               for r in reports if r.spill_stores or r.spill_loads or r.stack]
    assert not spilled


@pytest.mark.parametrize("path", kernel_files(), ids=lambda p: p.name)
def test_spliced_source_compiles_as_nvrtc_sees_it(path, tmp_path):
    # The text CuPy hands to NVRTC: includes spliced in, nothing else on the include path.
    unit = tmp_path / path.name
    unit.write_text(source(path.name))
    done = subprocess.run([nvcc(), "-arch=sm_90", "-std=c++17", "--ptx", str(unit), "-o",
                           str(tmp_path / "out.ptx")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_parse_ptxas_reads_spills():
    text = """ptxas info    : Compiling entry function '_Z1fv' for 'sm_90'
ptxas info    : Function properties for _Z1fv
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 64 registers, used 1 barriers
"""
    (report,) = parse_ptxas(text)
    assert (report.registers, report.spill_stores, report.spill_loads, report.stack) == (64, 8, 4, 16)
