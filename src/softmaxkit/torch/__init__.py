"""``softmaxkit.torch``: drop-in replacements for PyTorch's softmax, log_softmax and cross_entropy.

The functions have exactly the signatures and defaults of ``torch.nn.functional``'s, and the
modules subclass ``torch.nn``'s (same constructor, attributes, ``state_dict`` and ``repr``), so
changing an import is enough::

    import softmaxkit.torch as F            # was: import torch.nn.functional as F
    loss = F.cross_entropy(logits, labels, label_smoothing=0.1)

They run softmaxkit's fused kernels through the registered operators ``torch.ops.softmaxkit.*``
(:mod:`softmaxkit.torch._ops`): autograd, ``torch.compile(fullgraph=True)``, ``torch.func``
and CPU and CUDA tensors work. Values and gradients equal PyTorch's wherever PyTorch's are
finite; where PyTorch gives NaN, softmaxkit's answers hold (SPEC §2): a row of all ``-inf``
gives probabilities 0 and gradient 0, ``+inf`` entries share the mass. Three more differences,
all where PyTorch raises: integer input is taken as the default float dtype, a weight of
another float dtype than the input is cast to it, and class indices may have any integer
dtype (PyTorch's: int64 or uint8).

Labels out of range raise ``ValueError`` when the operator runs (also inside a compiled
graph: the check is part of the kernel, not a branch of the traced program).
"""

from __future__ import annotations

import operator
import typing
import warnings
from typing import Any

import torch
from torch.nn import _reduction

# _engine: importing this module loads the torch engine too. A first call of sk.softmax & co.
# inside torch.compile then finds it loaded (Dynamo cannot trace the registry's importlib
# call), and once Dynamo is loaded the engine registers the public functions with it.
from softmaxkit.torch import _autograd, _engine

__all__ = ["CrossEntropyLoss", "LogSoftmax", "Softmax", "cross_entropy", "log_softmax", "softmax"]

_REDUCTIONS = ("mean", "sum", "none")


def _implicit_dim(name: str, ndim: int, stacklevel: int) -> int:
    # torch.nn.functional's rule and warning for dim=None, kept for drop-in compatibility. Not
    # while Dynamo traces: it cannot trace warnings.warn, and fullgraph=True compiles F.softmax(x).
    if not torch.compiler.is_compiling():
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to "
                      "include dim=X as an argument.", stacklevel=stacklevel + 1)
    return 0 if ndim in (0, 1, 3) else 1


def _wrap_dim(dim: Any, ndim: int) -> int:
    if not isinstance(dim, int) or isinstance(dim, bool):
        dim = _index(dim)
    n = max(ndim, 1)  # PyTorch wraps the dim of a 0-d tensor as if it had one dim
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def _index(dim: Any) -> int:
    # As PyTorch: what converts to an index (NumPy integers, integer tensors of one element), not bool.
    if not isinstance(dim, bool):
        try:
            return operator.index(dim)
        except TypeError:
            pass
    raise TypeError(f"dim must be an int, got {dim!r}")


def _check_tensor(name: str, argument: str, value: Any) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}(): argument '{argument}' must be Tensor, not {type(value).__name__}")
    _engine.check_layout(name, value)


def _as_float(name: str, t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point():
        return t
    if t.is_complex():  # SPEC §2 (PyTorch raises too); .to() would drop the imaginary part
        raise TypeError(f"{name} is not defined for complex input (dtype {t.dtype})")
    return t.to(torch.get_default_dtype())


def _autocast_to_float32(t: torch.Tensor, devices: tuple[str, ...]) -> bool:
    """Whether ``torch.autocast`` would run PyTorch's own function on ``t`` in float32: half
    types on a device where autocast is on and the function is on its float32 list
    (cross_entropy on CPU and CUDA; softmax and log_softmax without ``dtype=`` on CUDA)."""
    return t.dtype in _HALF_TYPES and t.device.type in devices and torch.is_autocast_enabled(t.device.type)


_HALF_TYPES = (torch.float16, torch.bfloat16)


def _softmax_family(name: str, input: torch.Tensor, dim: int | None, stacklevel: int,
                    dtype: torch.dtype | None, log: bool) -> torch.Tensor:
    _check_tensor(name, "input", input)
    if dim is None:
        dim = _implicit_dim(name, input.dim(), stacklevel)
    d = _wrap_dim(dim, input.dim())
    if dtype is None and _autocast_to_float32(input, ("cuda",)):
        dtype = torch.float32
    elif dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"{name}: dtype must be a floating dtype, got {dtype}")
    x = _as_float(name, input if dtype is None else input.to(dtype))
    if x.dim() == 0:
        return _autograd.softmax(x.reshape(1), [0], None, 1.0, log).reshape(())
    return _autograd.softmax(x, [d], None, 1.0, log)


def softmax(input: torch.Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.nn.functional.softmax`` on softmaxkit's kernels.

    Parameters
    ----------
    input : Tensor
        Logits.
    dim : int
        The dim whose entries form one distribution (``None``: PyTorch's deprecated implicit
        choice, with its warning).
    _stacklevel : int
        Where the implicit-dim warning points, as in PyTorch.
    dtype : torch.dtype, optional
        The input is cast to it first (as in PyTorch).

    Returns
    -------
    Tensor
        Probabilities along ``dim``; a row of all ``-inf`` gives zeros (PyTorch: NaN).

    Examples
    --------
    >>> import torch, softmaxkit.torch as skt
    >>> skt.softmax(torch.tensor([[1.0, 2.0], [-float("inf"), -float("inf")]]), dim=1)
    tensor([[0.2689, 0.7311],
            [0.0000, 0.0000]])
    """
    return _softmax_family("softmax", input, dim, _stacklevel, dtype, log=False)


def log_softmax(input: torch.Tensor, dim: int | None = None, _stacklevel: int = 3,
                dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.nn.functional.log_softmax`` on softmaxkit's kernels (arguments as :func:`softmax`).

    Examples
    --------
    >>> import torch, softmaxkit.torch as skt
    >>> skt.log_softmax(torch.tensor([0.0, 0.0, -float("inf")]), dim=0)
    tensor([-0.6931, -0.6931,    -inf])
    """
    return _softmax_family("log_softmax", input, dim, _stacklevel, dtype, log=True)


def cross_entropy(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                  size_average: bool | None = None, ignore_index: int = -100, reduce: bool | None = None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
    """``torch.nn.functional.cross_entropy`` on softmaxkit's fused loss-and-gradient kernel.

    Parameters
    ----------
    input : Tensor
        Logits of shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``: the classes are dim 1
        (dim 0 for 1-d input).
    target : Tensor
        Class indices (integers, ``input``'s shape without the class dim) or class
        probabilities (floats, ``input``'s shape).
    weight : Tensor of shape (C,), optional
        Per-class weights.
    size_average, reduce : bool, optional
        PyTorch's deprecated reduction flags (they override ``reduction``, with its warning).
    ignore_index : int
        Class-index targets equal to it count for nothing (not in the mean's denominator either).
    reduction : {"mean", "sum", "none"}
    label_smoothing : float in [0, 1]

    Returns
    -------
    Tensor
        The loss. With ``input.requires_grad`` the gradient is computed in the same pass and
        kept as the only saved buffer.

    Examples
    --------
    >>> import torch, softmaxkit.torch as skt
    >>> logits = torch.tensor([[3.2, 1.3, 0.2, 0.8], [0.1, 2.0, 0.3, 0.0]])
    >>> skt.cross_entropy(logits, torch.tensor([0, 1]))
    tensor(0.3192)
    >>> skt.cross_entropy(logits, torch.tensor([0, -100]), reduction="none")
    tensor([0.2547, 0.0000])
    """
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    smoothing = float(label_smoothing)
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    _check_tensor("cross_entropy", "input", input)
    _check_tensor("cross_entropy", "target", target)
    if weight is not None:
        _check_tensor("cross_entropy", "weight", weight)
    if input.dim() == 0:
        raise ValueError("cross_entropy: input must have at least one dim (the classes)")
    dim = 1 if input.dim() >= 2 else 0
    logits = (input.float() if _autocast_to_float32(input, ("cpu", "cuda"))
              else _as_float("cross_entropy", input))
    n_classes = logits.shape[dim]
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(f"cross_entropy: probability target of shape {tuple(target.shape)} must "
                             f"have the input's shape {tuple(logits.shape)}")
        if ignore_index != -100:  # PyTorch raises too: it would silently count every sample
            raise ValueError("cross_entropy: ignore_index applies to class-index targets only, "
                             "not to probabilities")
        # PyTorch's result has the promoted dtype of both (float64 probabilities: float64).
        logits = logits.to(torch.promote_types(logits.dtype, target.dtype))
        target, ignore = target.to(logits.dtype), None
    else:
        expected = tuple(s for d, s in enumerate(logits.shape) if d != dim)
        if target.dtype == torch.bool or target.is_complex() or tuple(target.shape) != expected:
            raise ValueError(f"cross_entropy: target must hold class indices of shape {expected} "
                             f"(or probabilities of shape {tuple(logits.shape)}), got "
                             f"{target.dtype} of shape {tuple(target.shape)}")
        try:
            ignore = operator.index(ignore_index)
        except TypeError:
            raise TypeError(f"cross_entropy: ignore_index must be an int, got {ignore_index!r}") from None
    if weight is not None:
        if weight.shape != (n_classes,):
            raise ValueError(f"cross_entropy: weight must have shape ({n_classes},), "
                             f"got {tuple(weight.shape)}")
        weight = weight.to(logits.dtype)
    loss, _ = _autograd.cross_entropy(logits, target, weight, dim, ignore, smoothing, reduction)
    return loss


def _called_as_python_by_torchscript(forward: Any) -> Any:
    """``forward`` for ``torch.jit.script`` of a model holding the module: called as Python
    (``torch.jit.ignore``; TorchScript cannot compile the kernels' calls), with its annotations
    as objects (this module's are strings, which TorchScript cannot read)."""
    forward.__annotations__ = typing.get_type_hints(forward)
    return torch.jit.ignore(forward)


class Softmax(torch.nn.Softmax):
    """``torch.nn.Softmax`` computed by :func:`softmaxkit.torch.softmax` (same arguments).

    Examples
    --------
    >>> import torch, softmaxkit.torch as skt
    >>> skt.Softmax(dim=-1)(torch.tensor([1.0, 1.0]))
    tensor([0.5000, 0.5000])
    """

    @_called_as_python_by_torchscript
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return softmax(input, self.dim, _stacklevel=5)


class LogSoftmax(torch.nn.LogSoftmax):
    """``torch.nn.LogSoftmax`` computed by :func:`softmaxkit.torch.log_softmax` (same arguments)."""

    @_called_as_python_by_torchscript
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return log_softmax(input, self.dim, _stacklevel=5)


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` computed by :func:`softmaxkit.torch.cross_entropy`.

    The same constructor (``weight``, ``size_average``, ``ignore_index``, ``reduce``,
    ``reduction``, ``label_smoothing``), attributes and buffers as PyTorch's module.

    Examples
    --------
    >>> import torch, softmaxkit.torch as skt
    >>> loss = skt.CrossEntropyLoss(label_smoothing=0.1)
    >>> round(float(loss(torch.tensor([[3.2, 1.3, 0.2, 0.8]]), torch.tensor([0]))), 6)
    0.437199
    """

    @_called_as_python_by_torchscript
    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)
