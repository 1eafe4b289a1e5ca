"""softmaxkit: the softmax family done right.

``softmax``, ``log_softmax``, ``logsumexp``, their gradients, ``cross_entropy``, the sigmoid
family and label encodings, with exact semantics for every edge case, on any array library.
Importing softmaxkit imports no array backend beyond NumPy.
"""

import typing

from softmaxkit._api import (
    cross_entropy,
    log_sigmoid,
    log_softmax,
    log_softmax_vjp,
    logsumexp,
    one_hot,
    predict,
    sigmoid,
    softmax,
    softmax_jacobian,
    softmax_jvp,
    softmax_vjp,
    softplus,
    top_k,
)
from softmaxkit._engines import engine_names
from softmaxkit.labels import LabelIndex

if typing.TYPE_CHECKING:  # the lazy names below, typed for mypy and pyright; imported on first use
    from softmaxkit.calibrate import ece, fit_temperature, reliability_diagram
    from softmaxkit.classify import SoftmaxRegression

__version__ = "0.1.0"

# Names whose modules need optional extras (scikit-learn, SciPy, matplotlib): each is imported
# on first use, so ``import softmaxkit`` stays free of them.
_LAZY = {
    "SoftmaxRegression": "softmaxkit.classify",
    "ece": "softmaxkit.calibrate",
    "fit_temperature": "softmaxkit.calibrate",
    "reliability_diagram": "softmaxkit.calibrate",
}

__all__ = [
    "LabelIndex",
    "SoftmaxRegression",
    "cross_entropy",
    "ece",
    "engine_names",
    "fit_temperature",
    "log_sigmoid",
    "log_softmax",
    "log_softmax_vjp",
    "logsumexp",
    "one_hot",
    "predict",
    "reliability_diagram",
    "sigmoid",
    "softmax",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
    "softplus",
    "top_k",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'softmaxkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
