"""The CUDA engine's host side, which runs without a GPU: launch plans, sources, array routing."""

from __future__ import annotations

import re

import numpy as np
import pytest

from softmaxkit import _engines
from softmaxkit.cuda import _bridge, _plan
from softmaxkit.cuda._source import KERNEL_DIR, kernel_files, source

H100 = {"sm_count": 132, "max_shared_bytes": 227 * 1024}
FAMILIES = list(_plan.FAMILIES)
DTYPES = list(_plan.DTYPES)
ROW_LENGTHS = [1, 2, 3, 7, 10, 16, 31, 32, 33, 100, 128, 500, 512, 1000, 1024, 1025, 2000, 2048, 4096,
               5000, 8192, 16384, 16385, 32000, 65536, 131072, 262144, 1_000_003, 4_194_304]
ROW_COUNTS = [1, 4, 64, 131, 1024, 65536]


def covered(plan: _plan.Plan, n: int) -> bool:
    """Whether the threads of one row hold (or, split, visit) all n elements and no more than needed."""
    c = plan.config
    if plan.strategy in ("warp", "block"):
        return c.tpr * c.elements >= n
    chunk = c.block * c.elements
    if plan.strategy == "smem":
        return plan.shared_bytes >= n * _plan.DTYPES[plan.dtype].itemsize
    per_block = plan.chunks_per_split * chunk
    return plan.splits * per_block >= n > (plan.splits - 1) * per_block


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_plan_covers_the_rows_with_a_compiled_config(family, dtype):
    configs = set(_plan.all_configs(family, dtype))
    for n in ROW_LENGTHS:
        for rows in ROW_COUNTS:
            for aligned in (False, True):
                p = _plan.plan_launch(family, dtype, rows, n, aligned=aligned, **H100)
                assert (p.strategy, p.config) in configs, p
                assert covered(p, n), p
                per_block = p.config.block // p.config.tpr if p.strategy == "warp" else 1
                assert p.grid * per_block >= rows * p.splits > (p.grid - 1) * per_block, p
                assert p.config.block % p.config.tpr == 0 and p.config.tpr & (p.config.tpr - 1) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_packets_are_16_bytes_only_when_aligned(dtype):
    packet = 16 // _plan.DTYPES[dtype].itemsize
    assert _plan.packet(dtype) == packet
    for n in ROW_LENGTHS:
        aligned = _plan.plan_launch("softmax", dtype, 1024, n, aligned=True, **H100)
        unaligned = _plan.plan_launch("softmax", dtype, 1024, n, aligned=False, **H100)
        assert unaligned.config.vec == 1
        if aligned.config.vec > 1:
            assert aligned.config.vec == packet and n % packet == 0


@pytest.mark.parametrize(
    ("rows", "n", "dtype", "strategy"),
    [  # SPEC §4's GPU suite on an H100
        (1_000_000, 10, "float32", "warp"),
        (65_536, 128, "float32", "warp"),
        (8_192, 1_024, "float32", "warp"),
        (8_192, 1_024, "float64", "warp"),
        (8_192, 1_024, "float16", "warp"),
        (1_024, 8_192, "float32", "block"),
        (1_024, 32_000, "float32", "smem"),
        (64, 262_144, "float32", "split"),
        (4, 4_194_304, "float32", "split"),
        (16_384, 131_072, "float32", "split"),
    ],
)
def test_suite_shapes_take_the_intended_strategy(rows, n, dtype, strategy):
    assert _plan.plan_launch("softmax", dtype, rows, n, aligned=True, **H100).strategy == strategy


def test_tiny_rows_share_a_warp():
    p = _plan.plan_launch("softmax", "float32", 1_000_000, 10, aligned=True, **H100)
    assert p.config.tpr == 16 and p.grid == 1_000_000 // 8


def test_few_long_rows_are_split_to_fill_the_gpu():
    p = _plan.plan_launch("softmax", "float32", 4, 4_194_304, aligned=True, **H100)
    assert p.grid >= H100["sm_count"] * 4
    many = _plan.plan_launch("softmax", "float32", 16_384, 131_072, aligned=True, **H100)
    assert many.splits == 1 and many.chunks_per_split == 32  # a block streams its whole row
    short_few = _plan.plan_launch("softmax", "float32", 4, 8192, aligned=True, **H100)
    assert short_few.strategy == "split" and short_few.splits == 2


def test_shared_memory_rows_only_for_softmax_and_only_when_they_fit():
    assert _plan.plan_launch("softmax", "float32", 1024, 32_000, aligned=True, sm_count=132,
                             max_shared_bytes=0).strategy == "split"
    for family in ("logsumexp", "vjp", "cross_entropy"):
        assert _plan.plan_launch(family, "float32", 1024, 32_000, aligned=True, **H100).strategy == "split"
    too_long = _plan.plan_launch("softmax", "float32", 1024, 65_536, aligned=True, **H100)
    assert too_long.strategy == "split"
    p = _plan.plan_launch("softmax", "float16", 1024, 65_536, aligned=True, **H100)
    assert p.strategy == "smem" and p.shared_bytes == 65_536 * 2
    # The opt-in limit holds the reduction scratch too: a row filling it exactly does not fit.
    exact = _plan.plan_launch("softmax", "float16", 1024, 65_536, aligned=True, sm_count=132,
                              max_shared_bytes=65_536 * 2)
    assert exact.strategy == "split"


def test_register_budget_is_per_array():
    # The products hold two rows in registers: float64 vjp leaves the warp strategy earlier.
    assert _plan.plan_launch("vjp", "float64", 1024, 1000, aligned=True, **H100).strategy == "block"
    assert _plan.plan_launch("softmax", "float64", 1024, 1000, aligned=True, **H100).strategy == "warp"
    assert _plan.plan_launch("cross_entropy", "float32", 1024, 16_384, aligned=True,
                             **H100).strategy == "split"


def test_name_expressions():
    p = _plan.plan_launch("logsumexp", "bfloat16", 8, 1_000_000, aligned=True, **H100)
    assert p.kernels == ("sk_softmax_split_stats<sk_bfloat16, 256, 256, 8, 2>",
                         "sk_logsumexp_split_finish<sk_bfloat16>")
    assert p.finish_grid == 2  # a warp per row: 4 rows a block of FINISH_BLOCK threads
    w = _plan.plan_launch("vjp", "float16", 100, 100, aligned=False, **H100)
    assert w.kernels == ("sk_vjp_rows<sk_half, 32, 128, 1, 4>",)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_heaviest_configs_instantiate_every_kernel_template(family, dtype):
    heaviest = _plan.heaviest_configs(family, dtype)
    assert set(heaviest) <= set(_plan.all_configs(family, dtype))
    every = {e.split("<")[0] for e in _plan.name_expressions(_plan.all_configs(family, dtype), family, dtype)}
    some = {e.split("<")[0] for e in _plan.name_expressions(heaviest, family, dtype)}
    assert some == every


@pytest.mark.parametrize("bad", [(0, 10), (10, 0), (-1, 5)])
def test_nothing_to_launch_raises(bad):
    with pytest.raises(ValueError, match="nothing to launch"):
        _plan.plan_launch("softmax", "float32", *bad, aligned=True, **H100)


# --- sources ------------------------------------------------------------------------------------

def test_sources_and_plan_agree():
    files = {f.source for f in _plan.FAMILIES.values()} | {_plan.SAMPLING_SOURCE}
    assert {p.name for p in kernel_files()} == files
    for family in _plan.FAMILIES.values():
        text = source(family.source)
        kernels = [family.rows_kernel, *family.split_kernels, family.smem_kernel]
        for name in filter(None, kernels):
            assert re.search(rf"__global__ void __launch_bounds__\([^)]*\)\s*{name}\(", text), name
    sampling = source(_plan.SAMPLING_SOURCE)
    for name in _plan.SAMPLING_KERNELS:
        assert re.search(rf"__global__ void __launch_bounds__\([^)]*\)\s*{name}\(", sampling), name


def test_sources_are_self_contained_for_nvrtc():
    for path in kernel_files():
        text = source(path.name)
        assert "#include" not in text, path.name  # NVRTC gets no include path
        assert text.count("#define SOFTMAXKIT_COMMON_CUH") == 1
    assert (KERNEL_DIR / "common.cuh").exists()


# --- routing ------------------------------------------------------------------------------------


def test_cpu_arrays_are_not_gpu_arrays():
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    for x in (np.zeros(3), torch.zeros(3), jnp.zeros(3), [1.0]):
        assert not _bridge.is_gpu_array(x)
    assert _bridge.dtype_name(torch.bfloat16) == "bfloat16"
    assert _bridge.dtype_name(jnp.zeros(1, dtype=jnp.bfloat16).dtype) == "bfloat16"
    assert _bridge.dtype_name(np.dtype("float16")) == "float16"
    # Regression: scalar types (what xp.float32 is in NumPy and CuPy) printed as "<class ...>".
    assert _bridge.dtype_name(np.float32) == "float32"
    assert _bridge.dtype_name(jnp.bfloat16) == "bfloat16"


def test_gpu_attributes_are_read_without_importing_a_backend():
    class FakeTorchCuda:  # looks like nothing array_api_compat knows: not a GPU array
        is_cuda = True

    assert not _bridge.is_gpu_array(FakeTorchCuda())


def test_kernel_dtype_follows_the_generic_engines_compute_dtype():
    import array_api_compat.numpy as xp

    from softmaxkit.cuda import _kernel_dtype

    f32, f16, f64 = (np.zeros(2, dtype=d) for d in ("float32", "float16", "float64"))
    assert _kernel_dtype(xp, np.dtype("float32"), f32) == "float32"
    assert _kernel_dtype(xp, np.dtype("float16"), f16) == "float16"  # accumulates in float inside
    assert _kernel_dtype(xp, np.dtype("float16"), f32) == "float32"  # computed in float32, then cast
    assert _kernel_dtype(xp, np.dtype("float64"), f32) == "float64"
    assert _kernel_dtype(xp, np.dtype("float64"), np.zeros(2, dtype=np.int32)) == "float64"
    assert _kernel_dtype(xp, np.dtype("float32"), f32, None, f64) == "float32"  # e.g. float64 weights
    # Other dtypes are a gap the registry declares: such calls never reach the engine.
    call = {"x": f64, "axes": (0,), "b": None, "keepdims": False, "return_sign": False, "where": None,
            "dtype": np.dtype("complex128")}
    assert "dtype" in _engines.get_engine("cuda").gap("logsumexp", call).what
    with pytest.raises(TypeError, match="complex128"):
        _kernel_dtype(xp, np.dtype("complex128"), f64)


def test_library_dtypes_for_torch_and_jax():
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    assert _bridge.library_dtype(torch.zeros(1), "bfloat16") is torch.bfloat16
    assert _bridge.library_dtype(jnp.zeros(1), "float16") is jnp.float16
    assert _bridge.storage_dtype("bfloat16") == "int16" and _bridge.storage_dtype("float16") == "float16"


def test_heavy_families_leave_the_warp_strategy_at_512():
    # 32 elements a thread cost cross-entropy and the products 120-170 registers (ptxas -v).
    for family in ("vjp", "cross_entropy"):
        assert _plan.plan_launch(family, "float32", 4096, 512, aligned=True, **H100).strategy == "warp"
        p = _plan.plan_launch(family, "float32", 4096, 513, aligned=True, **H100)
        assert p.strategy == "block" and p.config.elements == 16
    assert _plan.plan_launch("softmax", "float32", 4096, 1024, aligned=True, **H100).config.elements == 32


def test_install_extras_bring_nvrtc_for_cuda_12_and_13():
    # Review finding 5: `cuda` named cupy-cuda12x without NVRTC; GPU machines now run CUDA 13.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from pathlib import Path

    root = Path(__file__).parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["cuda12"] == ["cupy-cuda12x[ctk]>=14"]
    assert extras["cuda13"] == extras["cuda"] == ["cupy-cuda13x[ctk]>=14"]
    assert any(r.startswith("cuda-toolkit[nvrtc]") for r in extras["test"])  # the compile tests
    readme = (root / "README.md").read_text()
    assert 'softmaxkit[cuda13]"` for 13.x' in readme and 'softmaxkit[cuda12]"` for 12.x' in readme
