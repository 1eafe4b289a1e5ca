"""Launch plans for the CUDA kernels: which kernel, which template arguments, which grid.

Pure host logic (no CuPy): the CuPy launchers in this package and the compile test both read
it, so the configurations compiled in CI are the ones launched on a GPU.

Strategies, by row length ``n`` (the launch shapes of the fastest public softmax kernels:
PyTorch's persistent warp softmax, OneFlow's block softmax, and the online normaliser of
Milakov & Gimelshein 2018 for rows split across blocks):

``warp``
    ``n <= 1024``: a group of ``tpr <= 32`` lanes per row (several rows per 128-thread
    block), the row in registers; reductions are warp shuffles only.
``block``
    ``n <= 16 * 1024``: one block per row, 16 elements per thread in registers.
``smem``
    softmax only, rows too long for registers that fit in shared memory: one block per row,
    the row cached in shared memory; still one read and one write of global memory.
``split``
    everything longer, and long rows when there are too few of them to fill the GPU: a row
    is cut into chunks of ``256 * 16`` elements, ``splits`` blocks per row each reduce
    their chunks to a ``(max, sum)`` partial, and a second kernel merges the partials in a
    fixed order (deterministic) and writes. Reads the row twice.

Loads and stores move 16 bytes at a time when every pointer is 16-byte aligned and
``n`` is a multiple of the packet length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALIGNMENT = 16
"""Bytes per vectorised load/store."""


@dataclass(frozen=True)
class DType:
    name: str
    ctype: str
    itemsize: int
    acc_words: int
    """32-bit registers per element in the accumulator type (float: 1, double: 2)."""


DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("float16", "sk_half", 2, 1),
        DType("bfloat16", "sk_bfloat16", 2, 1),
        DType("float32", "float", 4, 1),
        DType("float64", "double", 8, 2),
    )
}


@dataclass(frozen=True)
class Family:
    """The kernels of one operation, in ``kernels/<source>``."""

    name: str
    source: str
    rows_kernel: str
    split_kernels: tuple[str, str]
    smem_kernel: str | None = None
    arrays: int = 1
    """Row arrays each thread holds in registers (two for the vector-Jacobian products)."""
    max_warp_elements: int = 32
    """Elements per thread of the warp strategy: the products and cross-entropy keep per-element
    bookkeeping, and at 32 elements ptxas gives them 120-170 registers (low occupancy); at 16
    about 60, so their rows of 513-1024 go to the block strategy."""
    max_block: int = 1024
    """Largest block of the block strategy (cross-entropy's per-class bookkeeping spills at
    1024 threads, whose cap is 64 registers)."""


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("softmax", "softmax.cu", "sk_softmax_rows",
               ("sk_softmax_split_stats", "sk_softmax_split_apply"), smem_kernel="sk_softmax_smem"),
        Family("logsumexp", "softmax.cu", "sk_logsumexp_rows",
               ("sk_softmax_split_stats", "sk_logsumexp_split_finish")),
        Family("vjp", "grad.cu", "sk_vjp_rows", ("sk_vjp_split_sums", "sk_vjp_split_apply"), arrays=2,
               max_warp_elements=16),
        Family("cross_entropy", "cross_entropy.cu", "sk_cross_entropy_rows",
               ("sk_cross_entropy_split_stats", "sk_cross_entropy_split_apply"), max_warp_elements=16,
               max_block=512),
    )
}

WARP_BLOCK = 128
"""Threads per block of the warp strategy (128 / tpr rows per block)."""
ROW_ELEMENTS = 16
"""Elements per thread of the block strategy."""
MAX_WARP_N = 1024
SPLIT_BLOCK, SPLIT_ELEMENTS = 256, 16
SMEM_BLOCK, SMEM_ELEMENTS = 512, 8
SMEM_STATIC = 1024
"""Shared memory a block needs besides the row cache (the reduction scratch and slack): the
opt-in limit counts static and dynamic shared memory together."""
FINISH_BLOCK = 128
"""Threads per block of sk_logsumexp_split_finish (a warp per row: 4 rows a block)."""
REGISTER_WORDS = {128: 64, 256: 64, 512: 32, 1024: 16}
"""32-bit registers of row data per thread that compile without spills (ptxas caps a thread
at 255 registers up to 256 threads a block, 128 at 512, 64 at 1024; the rest is addresses,
indices and the exp/log code). The compile test checks the limits."""


@dataclass(frozen=True)
class Config:
    """Template arguments after the dtype: threads per row, block, packet length, packets per thread."""

    tpr: int
    block: int
    vec: int
    nv: int

    @property
    def elements(self) -> int:
        """Elements per thread."""
        return self.vec * self.nv


@dataclass(frozen=True)
class Plan:
    family: str
    dtype: str
    strategy: str
    config: Config
    grid: int
    splits: int = 1
    chunks_per_split: int = 1
    shared_bytes: int = 0
    """Dynamic shared memory of the smem strategy."""

    @property
    def kernels(self) -> tuple[str, ...]:
        """The NVRTC name expressions of the kernels launched, in order."""
        family = FAMILIES[self.family]
        if self.strategy in ("warp", "block"):
            names: tuple[str, ...] = (family.rows_kernel,)
        elif self.strategy == "smem":
            assert family.smem_kernel is not None
            names = (family.smem_kernel,)
        else:
            names = family.split_kernels
        return tuple(name_expression(name, self.dtype, self.config) for name in names)

    @property
    def finish_grid(self) -> int:
        """Blocks of sk_logsumexp_split_finish (a warp per row)."""
        return -(-(self.grid // self.splits) // (FINISH_BLOCK // 32))


def name_expression(kernel: str, dtype: str, config: Config) -> str:
    ctype = DTYPES[dtype].ctype
    if kernel == "sk_logsumexp_split_finish":  # templated on the dtype only
        return f"{kernel}<{ctype}>"
    c = config
    return f"{kernel}<{ctype}, {c.tpr}, {c.block}, {c.vec}, {c.nv}>"


def next_pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def packet(dtype: str) -> int:
    """Elements per 16-byte packet."""
    return ALIGNMENT // DTYPES[dtype].itemsize


def _words(family: Family, dtype: str, elements: int) -> int:
    return elements * DTYPES[dtype].acc_words * family.arrays


def _fits(family: Family, dtype: str, elements: int, block: int) -> bool:
    return block <= family.max_block and _words(family, dtype, elements) <= REGISTER_WORDS[block]


def _tile(tpr: int, block: int, elements: int, vec_ok: bool, dtype: str) -> Config:
    vec = packet(dtype) if vec_ok and elements % packet(dtype) == 0 else 1
    return Config(tpr, block, vec, elements // vec)


def plan_launch(
    family: str, dtype: str, rows: int, n: int, *, aligned: bool, sm_count: int,
    max_shared_bytes: int = 0,
) -> Plan:
    """The launch for ``rows`` rows of ``n`` elements (both > 0).

    ``aligned``: every array passed to the kernels starts on a 16-byte boundary (rows then
    do too when ``n`` is a multiple of the packet length). ``sm_count``: multiprocessors of
    the device. ``max_shared_bytes``: dynamic shared memory a block may use (0: no smem).
    """
    if rows <= 0 or n <= 0:
        raise ValueError(f"nothing to launch for {rows} rows of {n} elements")
    fam = FAMILIES[family]
    vec_ok = aligned and n % packet(dtype) == 0
    few_rows = rows < sm_count and n >= 2 * SPLIT_BLOCK * SPLIT_ELEMENTS
    if n <= MAX_WARP_N and not few_rows:
        tpr = min(next_pow2(n), 32)
        elements = next_pow2(-(-n // tpr))
        if elements <= fam.max_warp_elements and _fits(fam, dtype, elements, WARP_BLOCK):
            config = _tile(tpr, WARP_BLOCK, elements, vec_ok, dtype)
            return Plan(family, dtype, "warp", config, grid=-(-rows // (WARP_BLOCK // tpr)))
    block = max(WARP_BLOCK, next_pow2(-(-n // ROW_ELEMENTS)))
    if block <= fam.max_block and _fits(fam, dtype, ROW_ELEMENTS, block) and not few_rows:
        return Plan(family, dtype, "block", _tile(block, block, ROW_ELEMENTS, vec_ok, dtype), grid=rows)
    chunk = SMEM_BLOCK * SMEM_ELEMENTS
    shared = -(-n // chunk) * chunk * DTYPES[dtype].itemsize
    if fam.smem_kernel and shared + SMEM_STATIC <= max_shared_bytes and not few_rows:
        config = _tile(SMEM_BLOCK, SMEM_BLOCK, SMEM_ELEMENTS, vec_ok, dtype)
        return Plan(family, dtype, "smem", config, grid=rows, shared_bytes=shared)
    return _split_plan(family, dtype, rows, n, vec_ok, sm_count)


def _split_plan(family: str, dtype: str, rows: int, n: int, vec_ok: bool, sm_count: int) -> Plan:
    chunks = -(-n // (SPLIT_BLOCK * SPLIT_ELEMENTS))
    # Enough blocks for every multiprocessor to hold a full load of threads (2048 of them).
    target = sm_count * (2048 // SPLIT_BLOCK)
    splits = max(1, min(chunks, -(-target // rows)))
    per_split = -(-chunks // splits)
    splits = -(-chunks // per_split)  # no split left without a chunk
    config = _tile(SPLIT_BLOCK, SPLIT_BLOCK, SPLIT_ELEMENTS, vec_ok, dtype)
    return Plan(family, dtype, "split", config, grid=rows * splits, splits=splits,
                chunks_per_split=per_split)


def all_configs(family: str, dtype: str) -> list[tuple[str, Config]]:
    """Every (strategy, config) that :func:`plan_launch` can choose for this family and dtype."""
    fam = FAMILIES[family]
    out: list[tuple[str, Config]] = []
    for vec_ok in (False, True):
        for tpr in (1, 2, 4, 8, 16, 32):
            elements = 1
            while tpr * elements <= MAX_WARP_N:
                if ((tpr == 32 or elements == 1) and elements <= fam.max_warp_elements
                        and _fits(fam, dtype, elements, WARP_BLOCK)):
                    out.append(("warp", _tile(tpr, WARP_BLOCK, elements, vec_ok, dtype)))
                elements *= 2
        for block in REGISTER_WORDS:
            if _fits(fam, dtype, ROW_ELEMENTS, block):
                out.append(("block", _tile(block, block, ROW_ELEMENTS, vec_ok, dtype)))
        if fam.smem_kernel:
            out.append(("smem", _tile(SMEM_BLOCK, SMEM_BLOCK, SMEM_ELEMENTS, vec_ok, dtype)))
        out.append(("split", _tile(SPLIT_BLOCK, SPLIT_BLOCK, SPLIT_ELEMENTS, vec_ok, dtype)))
    return list(dict.fromkeys(out))


def heaviest_configs(family: str, dtype: str) -> list[tuple[str, Config]]:
    """For each kernel template, the config with the most row data per register available.

    Register use grows with the elements per thread and the ptxas cap falls with the block
    size (255 registers a thread up to 256 threads, 128 at 512, 64 at 1024): if these
    compile without spills, so do the lighter ones. The compile test's quick mode builds
    these; its full mode builds :func:`all_configs`.
    """
    fam = FAMILIES[family]
    heaviest: dict[str, tuple[float, bool, str, Config]] = {}
    for strategy, config in all_configs(family, dtype):
        template = "rows" if strategy in ("warp", "block") else strategy
        pressure = _words(fam, dtype, config.elements) / min(255, 65536 // config.block)
        candidate = (pressure, config.vec > 1, strategy, config)
        if template not in heaviest or candidate[:2] > heaviest[template][:2]:
            heaviest[template] = candidate
    return [(strategy, config) for _, _, strategy, config in heaviest.values()]


def name_expressions(configs: list[tuple[str, Config]], family: str, dtype: str) -> list[str]:
    """The kernel name expressions of ``configs`` (every kernel each strategy launches)."""
    fam = FAMILIES[family]
    names: list[str] = []
    for strategy, config in configs:
        kernels = {"warp": (fam.rows_kernel,), "block": (fam.rows_kernel,),
                   "smem": (fam.smem_kernel,), "split": fam.split_kernels}[strategy]
        names += [name_expression(k, dtype, config) for k in kernels if k]
    return list(dict.fromkeys(names))


# --- sampling (kernels/sampling.cu): one block per row ----------------------------------------

SAMPLING_SOURCE = "sampling.cu"
SAMPLING_KERNELS = ("sk_sample_rows", "sk_filter_rows")
SAMPLING_BLOCKS = (128, 256, 512)
"""Threads per block of the sampling kernels. 512 at most: each thread keeps 16 bins of counts
and of weights (float64) in registers, and ptxas caps a thread at 128 registers at 512 threads."""
SAMPLING_MAX_N = 2**31 - 1
"""Longest row: the threshold searches count entries in 32-bit bins (longer rows are a gap of
the engine in :mod:`softmaxkit.sampling`)."""
SAMPLING_ELEMENTS = 64
"""Entries per thread before the block grows: a block of 128 threads up to 8,192 entries."""


def sampling_block(n: int) -> int:
    """Threads per block for rows of ``n`` entries."""
    return min(SAMPLING_BLOCKS[-1], max(SAMPLING_BLOCKS[0], next_pow2(-(-n // SAMPLING_ELEMENTS))))


def sampling_name(kernel: str, dtype: str, block: int) -> str:
    """The NVRTC name expression of a sampling kernel (``sk_sample_rows<float, 512>``)."""
    return f"{kernel}<{DTYPES[dtype].ctype}, {block}>"


def sampling_names(dtype: str) -> list[str]:
    """Every sampling kernel instance the launcher can use for ``dtype``."""
    return [sampling_name(k, dtype, b) for k in SAMPLING_KERNELS for b in SAMPLING_BLOCKS]
