"""The operators on CUDA tensors (the CUDA engine on torch's stream): run where a GPU and CuPy exist.

Without a GPU every test here is skipped; the CPU tests cover the operators' logic, these the
CUDA kernels' wiring (DLPack, the stream, contiguous results, autograd through them).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cupy")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import torch.nn.functional as F  # noqa: E402

import softmaxkit as sk  # noqa: E402
import softmaxkit.torch as skt  # noqa: E402
from softmaxkit.torch import _ops  # noqa: E402

INF = float("inf")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_softmax_family_matches_cpu(dtype):
    x = (torch.randn(33, 257) * 4).to(dtype)
    x[0] = -INF
    x[1, :3] = INF
    for log in (False, True):
        got = _ops.softmax(x.cuda(), [1], None, 1.0, log).cpu()
        torch.testing.assert_close(got, _ops.softmax(x, [1], None, 1.0, log), equal_nan=True)
    torch.testing.assert_close(_ops.logsumexp(x.cuda(), [1], None, False).cpu(),
                               _ops.logsumexp(x, [1], None, False))


def test_autograd_and_cross_entropy_on_cuda():
    x = torch.randn(64, 100, device="cuda", dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 100, (64,), device="cuda")
    x_t = x.detach().clone().requires_grad_()
    skt.cross_entropy(x, labels, label_smoothing=0.1).backward()
    F.cross_entropy(x_t, labels, label_smoothing=0.1).backward()
    torch.testing.assert_close(x.grad, x_t.grad)
    assert torch.autograd.gradcheck(lambda t: skt.log_softmax(t, 1), (x[:4, :6].detach().requires_grad_(),))


def test_runs_on_torchs_current_stream():
    stream = torch.cuda.Stream()
    x = torch.randn(256, 1000, device="cuda")
    with torch.cuda.stream(stream):
        y = sk.softmax(x * 2.0)  # the multiply and the kernel queue on the side stream, in order
    stream.synchronize()
    torch.testing.assert_close(y, torch.softmax(x * 2.0, 1))


def test_opcheck_on_cuda():
    x = torch.randn(8, 5, device="cuda", dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(_ops.softmax, (x, [1], None, 1.0, False))
    torch.library.opcheck(_ops.cross_entropy, (x, torch.tensor([0, 1, 2, 3, 4, 0, 1, 2], device="cuda"),
                                               None, 1, -100, 0.0, "mean", True))


def test_out_of_range_label_raises():
    with pytest.raises(ValueError, match="out of range"):
        skt.cross_entropy(torch.randn(2, 3, device="cuda"), torch.tensor([0, 3], device="cuda"))
