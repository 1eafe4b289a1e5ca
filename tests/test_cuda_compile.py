"""Every CUDA kernel compiles with NVRTC exactly as the engine compiles it, for sm_80 and sm_90,
with no register spills; and the options keep IEEE subnormals (no flush-to-zero).

No GPU is needed (NVRTC is a library; the ``test`` extra installs it). The default run compiles,
for each kernel template, dtype and architecture, the configuration with the most row data per
available register (:func:`softmaxkit.cuda._plan.heaviest_configs`); ``-m cuda_compile_all``
compiles every configuration the planner can launch (several minutes).
``python tests/cuda_compile.py [--all]`` prints the register table.
"""

from __future__ import annotations

import re

import pytest

from cuda_compile import (
    ARCHS,
    VERBOSE,
    code_sections,
    compile_all,
    compile_unit,
    instances,
    nvrtc_available,
    parse_ptxas,
)
from softmaxkit.cuda import _nvrtc, _plan

needs_nvrtc = pytest.mark.skipif(
    not nvrtc_available(), reason="NVRTC not found: pip install cupy-cuda13x 'cuda-toolkit[nvrtc]==13.*'"
)
TEMPLATES = {
    k for f in _plan.FAMILIES.values() for k in (f.rows_kernel, *f.split_kernels, f.smem_kernel) if k
}
TEMPLATES.add("sk_logsumexp_split_finish")
TEMPLATES.update(_plan.SAMPLING_KERNELS)
MAX_THREAD_REGISTERS = 255
REGISTER_FILE = 65_536  # 32-bit registers per multiprocessor on sm_80 and sm_90


def block_of(name: str) -> int:
    """Threads per block of the kernel instance ``name`` (the launch bound ptxas compiled for)."""
    if name.startswith("sk_logsumexp_split_finish"):
        return _plan.FINISH_BLOCK
    if name.startswith(_plan.SAMPLING_KERNELS):  # <T, BLOCK>
        return int(name.split(",")[1].rstrip(">"))
    return int(name.split(",")[2])


def check_reports(compiled) -> None:
    for (file, dtype, arch), (names, reports) in compiled.items():
        assert {r.name for r in reports} == set(names), (file, dtype, arch)  # one report per instance
        for r in reports:
            assert r.spill_stores == r.spill_loads == r.stack == 0, r
            assert r.registers <= min(MAX_THREAD_REGISTERS, REGISTER_FILE // block_of(r.name)), r
    seen = {name.split("<")[0] for names, _ in compiled.values() for name in names}
    assert seen == TEMPLATES
    assert {arch for _, _, arch in compiled} == set(ARCHS)
    assert {dtype for _, dtype, _ in compiled} == set(_plan.DTYPES)


@pytest.fixture(scope="module")
def heaviest():
    return compile_all(full=False)


@needs_nvrtc
def test_heaviest_configs_compile_for_every_dtype_and_arch_without_spills(heaviest):
    check_reports(heaviest)


@needs_nvrtc
@pytest.mark.cuda_compile_all
def test_every_planned_config_compiles_without_spills(request):
    if "cuda_compile_all" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("every config takes minutes: python -m pytest -m cuda_compile_all")
    check_reports(compile_all(full=True))


def _ftz_instructions(ptx: str) -> set[str]:
    return set(re.findall(r"\b[a-z0-9]+(?:\.[a-z0-9]+)*\.ftz(?:\.[a-z0-9]+)*", ptx))


@needs_nvrtc
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_no_flush_to_zero(dtype):
    # Regression: CuPy's RawModule appended -ftz=true (div.rn.ftz.f32: probabilities below
    # 2^-126 became 0). The only .ftz left is libdevice's expf core, ex2.approx.ftz on a
    # range-reduced argument, which expf scales afterwards without flushing.
    names = instances("softmax.cu", dtype, full=False)
    ptx = _nvrtc.compile_program("softmax.cu", names, "-arch=sm_90").ptx
    assert "-ftz=false" in _nvrtc.OPTIONS and not any(o.startswith("-use_fast_math") for o in _nvrtc.OPTIONS)
    assert _ftz_instructions(ptx) <= {"ex2.approx.ftz.f32"}
    assert "div.rn.f32" in ptx
    flushed = _nvrtc.compile_program("softmax.cu", names, "-arch=sm_90", ("-ftz=true",)).ptx
    assert "div.rn.ftz.f32" in _ftz_instructions(flushed)  # the check can see a flush


@needs_nvrtc
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_sampling_kernels_keep_subnormals(dtype):
    # The weights exp((x - max) / T) of the sampler's kernels go through the same expf: no
    # other flush, so a weight below 2^-126 is not 0 (it still counts toward top-p and draws).
    names = instances(_plan.SAMPLING_SOURCE, dtype, full=False)
    ptx = _nvrtc.compile_program(_plan.SAMPLING_SOURCE, names, "-arch=sm_90").ptx
    assert _ftz_instructions(ptx) <= {"ex2.approx.ftz.f32"}
    assert "ex2.approx.ftz.f32" in ptx  # the check sees expf's core: the kernels were compiled


@needs_nvrtc
def test_verbose_report_changes_no_instruction():
    names = instances("cross_entropy.cu", "float16", full=False)
    quiet = _nvrtc.compile_program("cross_entropy.cu", names, "-arch=sm_80")
    verbose = _nvrtc.compile_program("cross_entropy.cu", names, "-arch=sm_80", VERBOSE)
    assert quiet.ptx == verbose.ptx
    code = code_sections(quiet.image)
    assert len(code) == len(names) and code == code_sections(verbose.image)


@needs_nvrtc
def test_compile_errors_carry_nvrtc_log():
    with pytest.raises(RuntimeError, match=r"NVRTC could not compile softmax\.cu"):
        _nvrtc.compile_program("softmax.cu", ("sk_softmax_rows<float, 32, 128, 4>",), "-arch=sm_90")


def test_arch_option_falls_back_to_ptx_for_newer_devices():
    supported = (75, 80, 86, 89, 90, 100, 120)
    assert _nvrtc.arch_option(90, supported) == "-arch=sm_90"
    assert _nvrtc.arch_option(130, supported) == "-arch=compute_120"
    assert _nvrtc.arch_option(87, supported) == "-arch=compute_86"
    with pytest.raises(RuntimeError, match="none for compute capability 70"):
        _nvrtc.arch_option(70, supported)


def test_quick_mode_is_a_subset_of_every_config():
    for file in sorted({f.source for f in _plan.FAMILIES.values()} | {_plan.SAMPLING_SOURCE}):
        for dtype in _plan.DTYPES:
            assert set(instances(file, dtype, False)) <= set(instances(file, dtype, True))


def test_parse_ptxas_reads_spills():
    text = """ptxas info    : Compiling entry function '_Z1fv' for 'sm_90'
ptxas info    : Function properties for _Z1fv
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 64 registers, used 1 barriers
"""
    (report,) = parse_ptxas(text, "sm_90", {"_Z1fv": "f<float>"})
    assert (report.name, report.registers, report.spill_stores, report.spill_loads, report.stack) == (
        "f<float>",
        64,
        8,
        4,
        16,
    )


@needs_nvrtc
def test_compile_unit_reports_by_name_expression():
    names, reports = compile_unit("grad.cu", "float64", "sm_80", full=False)
    assert sorted(r.name for r in reports) == sorted(names)


@needs_nvrtc
def test_disk_cache_returns_the_same_program_and_keys_on_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTMAXKIT_CACHE_DIR", str(tmp_path))
    names = ("sk_logsumexp_split_finish<float>",)
    first = _nvrtc.cached_program("softmax.cu", names, "-arch=sm_80")
    assert len(list((tmp_path / "nvrtc").iterdir())) == 1
    calls = []
    monkeypatch.setattr(_nvrtc, "compile_program", lambda *a: calls.append(a))
    assert _nvrtc.cached_program("softmax.cu", names, "-arch=sm_80") == first and not calls
    _nvrtc.cached_program("softmax.cu", names, "-arch=sm_90")  # another key: compiles
    assert calls == [("softmax.cu", names, "-arch=sm_90")]


@needs_nvrtc
def test_sampling_kernels_fit_the_default_static_shared_memory():
    # 48 KiB of static shared memory at most (a launch needs no opt-in), and the launcher does
    # not opt them in to dynamic shared memory (static + dynamic may not exceed the device's).
    # The most: float64 candidates and the largest block's per-warp bins.
    names = instances(_plan.SAMPLING_SOURCE, "float64", full=False)
    assert all(name.endswith(f", {_plan.SAMPLING_BLOCKS[-1]}>") for name in names)
    log = _nvrtc.compile_program(_plan.SAMPLING_SOURCE, names, "-arch=sm_90", VERBOSE).log
    sizes = [int(b) for b in re.findall(r"(\d+) bytes smem", log)]
    assert len(sizes) == len(names) and max(sizes) <= 48 * 1024, sizes


@needs_nvrtc
def test_engine_loads_the_nvrtc_image_it_compiled_not_cupys_rawmodule(tmp_path, monkeypatch):
    # The run-time path (_launch._function) with the driver calls faked: it compiles through
    # _nvrtc (the options checked above), loads that image and opts in to the shared memory.
    import sys
    import types

    from cupy_backends.cuda.api import driver

    from softmaxkit.cuda import _launch

    monkeypatch.setenv("SOFTMAXKIT_CACHE_DIR", str(tmp_path))
    loaded, attributes = [], []

    class Module:
        def load(self, image):
            loaded.append(image)

        def get_function(self, symbol):
            return types.SimpleNamespace(ptr=7, symbol=symbol)

    class DeviceContext:
        compute_capability, id = "80", 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(Device=lambda i=None: DeviceContext(),
                                      function=types.SimpleNamespace(Module=Module))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(_launch, "device_limits", lambda device_id: (108, 164 * 1024))
    monkeypatch.setattr(driver, "funcSetAttribute", lambda *a: attributes.append(a))
    _launch._function.cache_clear()
    name = "sk_softmax_rows<float, 32, 128, 4, 8>"
    _, function = _launch._function(0, "softmax.cu", name)
    _launch._function.cache_clear()
    program = _nvrtc.compile_program("softmax.cu", (name,), "-arch=sm_80")
    assert function.symbol == program.lowered[name]
    assert code_sections(loaded[0]) == code_sections(program.image)
    assert attributes == [(7, driver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 164 * 1024 - 1024)]
    _launch._function(0, _plan.SAMPLING_SOURCE, "sk_filter_rows<double, 128>")  # static shared memory only
    _launch._function.cache_clear()
    assert len(loaded) == 2 and len(attributes) == 1
