"""The generic engine: the array-API reference implementation of every function.

It serves any array library that implements the Python array API standard and defines each
case of SPEC §2; faster engines must give the same answers. Each module here reads on its own.
"""

from softmaxkit.generic._elementwise import log_sigmoid, sigmoid, softplus
from softmaxkit.generic._encode import names_of, one_hot, predict, top_k
from softmaxkit.generic._grad import log_softmax_vjp, softmax_jacobian, softmax_jvp, softmax_vjp
from softmaxkit.generic._loss import cross_entropy
from softmaxkit.generic._softmax import logsumexp, softmax, softmax_from_pairs, softmax_pairs

__all__ = [
    "cross_entropy",
    "log_sigmoid",
    "log_softmax_vjp",
    "logsumexp",
    "names_of",
    "one_hot",
    "predict",
    "sigmoid",
    "softmax",
    "softmax_from_pairs",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_pairs",
    "softmax_vjp",
    "softplus",
    "top_k",
]
