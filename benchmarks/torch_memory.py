"""Peak extra memory of cross_entropy forward + backward on CPU tensors: softmaxkit.torch against torch.

``python -m benchmarks.torch_memory [--rows R] [--cols C]``

tracemalloc does not see torch's allocator, and torch keeps no CPU peak statistics, so each
contender runs in a fresh subprocess that reads its peak resident set (``ru_maxrss``) before
and after one ``loss.backward()``: the difference is the memory the loss needed beyond its
inputs, in units of one logits-sized buffer. Buffers this large are ``mmap``-ed by glibc and
returned on free, so the peak is what was live at once. The leaf's ``.grad`` (one buffer) is
counted: it is the result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = r"""
import json, resource, sys
import torch
import torch.nn.functional as F
import softmaxkit.torch as skt

rows, cols, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(2)
loss_fn = {"softmaxkit": skt.cross_entropy, "torch": F.cross_entropy}[which]
# Warm up (Numba kernels load, torch's first-call allocations) on a small input.
w = torch.randn(64, cols, requires_grad=True)
loss_fn(w, torch.zeros(64, dtype=torch.long)).backward()
x = torch.randn(rows, cols).requires_grad_()
labels = torch.randint(0, cols, (rows,))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loss_fn(x, labels).backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_kib": after - before, "buffer_kib": x.numel() * x.element_size() / 1024}))
"""


def measure(which: str, rows: int, cols: int) -> dict[str, float]:
    """Peak extra KiB of one forward + backward of ``which`` in a fresh process, and the buffer size."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(rows), str(cols), which],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.torch_memory", description=__doc__)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=32_000)
    args = parser.parse_args(argv)
    print(f"cross_entropy forward + backward, {args.rows:,} x {args.cols:,} float32 "
          f"({args.rows * args.cols * 4 / 2**20:,.0f} MiB of logits)")
    print("| contender | peak extra MiB | logits-sized buffers |")
    print("|---|---|---|")
    for which in ("softmaxkit", "torch"):
        m = measure(which, args.rows, args.cols)
        print(f"| {which} | {m['extra_kib'] / 1024:,.0f} | {m['extra_kib'] / m['buffer_kib']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
