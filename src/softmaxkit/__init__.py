"""softmaxkit: the softmax family done right.

``softmax``, ``log_softmax``, ``logsumexp``, their gradients, ``cross_entropy``, the sigmoid
family and label encodings, with exact semantics for every edge case, on any array library.
Importing softmaxkit imports no array backend beyond NumPy.
"""

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

__version__ = "0.1.0"

__all__ = [
    "cross_entropy",
    "engine_names",
    "log_sigmoid",
    "log_softmax",
    "log_softmax_vjp",
    "logsumexp",
    "one_hot",
    "predict",
    "sigmoid",
    "softmax",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
    "softplus",
    "top_k",
]
