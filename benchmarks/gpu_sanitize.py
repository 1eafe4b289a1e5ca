"""A few small calls of every CUDA kernel family, for ``compute-sanitizer`` (memcheck, racecheck).

Shapes reach every launch strategy (warp, block, shared memory, split with a warp merge of
more than 32 partials) in float32 and bfloat16 (torch), with a mask, misaligned views and
cross-entropy's options; the sampling kernels draw with and without replacement and filter.
Exits 0 when every result is finite where the reference is; the sanitizer's own exit code
reports what it found. ``--list`` prints the calls (no GPU needed)::

    compute-sanitizer --tool memcheck --error-exitcode 9 python benchmarks/gpu_sanitize.py
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# (rows, n): warp (sub-warp), warp, block, shared memory, split (few long rows), split > 32 partials
SHAPES: tuple[tuple[int, int], ...] = ((7, 5), (64, 1000), (4, 1500), (2, 20_000), (2, 9_000), (1, 140_000))


def calls(quick: bool = False) -> list[str]:
    """A description of each call :func:`run` makes."""
    out = []
    for rows, n in SHAPES[:3] if quick else SHAPES:
        out += [
            f"softmax {rows}x{n}",
            f"log_softmax {rows}x{n} where",
            f"logsumexp {rows}x{n}",
            f"softmax_vjp {rows}x{n}",
            f"log_softmax_vjp {rows}x{n}",
            f"cross_entropy {rows}x{n}",
            f"softmax {rows}x{n - 1} misaligned view",
            f"sample {rows}x{n} T 0.7 top-k 50 top-p 0.9, 4 draws",
            f"sample {rows}x{n} where top-k 8, 2 draws without replacement",
            f"top_k_mask {rows}x{n}",
        ]
    out += ["torch bfloat16 softmax 64x1000", "torch cross_entropy 64x1000 on a side stream"]
    return out


def run(quick: bool = False) -> int:
    import cupy

    import softmaxkit as sk

    bad = []
    rng = cupy.random.default_rng(0)
    for rows, n in SHAPES[:3] if quick else SHAPES:
        x = rng.standard_normal((rows, n), dtype=cupy.float32) * 4
        where = rng.random((rows, n)) < 0.9
        p = sk.softmax(x, engine="cuda")
        results = [
            p,
            sk.log_softmax(x, where=where, engine="cuda"),
            sk.logsumexp(x, axis=-1, engine="cuda"),
            sk.softmax_vjp(p, x, engine="cuda"),
            sk.log_softmax_vjp(sk.log_softmax(x, engine="cuda"), x, engine="cuda"),
        ]
        labels = rng.integers(0, n, rows)
        results += list(sk.cross_entropy(x, labels, return_grad=True, engine="cuda"))
        shifted = x.ravel()[1 : 1 + rows * (n - 1)].reshape(rows, n - 1)  # contiguous, 4 bytes off 16
        results.append(sk.softmax(shifted, engine="cuda"))
        for i, r in enumerate(results):
            if not bool(cupy.isfinite(r).all()) and i != 1:  # the masked log_softmax has -inf
                bad.append(f"{rows}x{n} result {i}")
        draws = [sk.sample(x, temperature=0.7, top_k=50, top_p=0.9, num_samples=4, rng=0, engine="cuda"),
                 sk.sample(x, top_k=8, where=where | (cupy.arange(n) < 2), num_samples=2, replacement=False,
                           rng=1, engine="cuda")]
        for i, d in enumerate(draws):
            if not bool(((d >= 0) & (d < n)).all()):
                bad.append(f"{rows}x{n} sample {i}")
        if int(sk.top_k_mask(x, 3, engine="cuda").sum()) != rows * min(3, n):
            bad.append(f"{rows}x{n} top_k_mask")
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        xt = torch.randn(64, 1000, device="cuda")
        pb = sk.softmax(xt.bfloat16())
        if not torch.isfinite(pb.float()).all():
            bad.append("torch bfloat16 softmax")
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            loss, grad = sk.cross_entropy(xt, torch.randint(0, 1000, (64,), device="cuda"), return_grad=True)
        side.synchronize()
        if not (torch.isfinite(loss) and torch.isfinite(grad).all()):
            bad.append("torch cross_entropy on a side stream")
    cupy.cuda.Device().synchronize()
    print("sanitize run:", "ok" if not bad else f"non-finite results: {bad}")
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in args
    if "--list" in args:
        print("\n".join(calls(quick)))
        return 0
    return run(quick)


if __name__ == "__main__":
    sys.exit(main())
