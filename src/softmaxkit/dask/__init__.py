"""The Dask engine: lazy softmax and its family of Dask arrays, on one machine or a cluster.

softmax, log_softmax, logsumexp, cross_entropy and the Jacobian products, with the engine
contract's signatures (:mod:`softmaxkit._engines`).

Results are lazy Dask arrays; nothing is computed while the graph is built. Each block's own
work runs on the fastest local engine for its chunk type (:func:`softmaxkit._engines.call_engine`
on the chunk: NumPy chunks go to the Numba engine when it is installed, else to the generic one).
When the softmax axis is split across chunks, each chunk contributes a ``(max, sum of exp)``
pair; the pairs merge in Dask's tree reduction and one blockwise pass normalises.

:func:`apply_chunked` runs softmax or logsumexp from a zarr store or ``.npy`` file to another,
out of core, on the local machine or a ``dask.distributed`` cluster.
"""

from softmaxkit.dask._files import apply_chunked
from softmaxkit.dask._grad import log_softmax_vjp, softmax_jvp, softmax_vjp
from softmaxkit.dask._loss import cross_entropy
from softmaxkit.dask._softmax import logsumexp, softmax

__all__ = [
    "apply_chunked",
    "cross_entropy",
    "log_softmax_vjp",
    "logsumexp",
    "softmax",
    "softmax_jvp",
    "softmax_vjp",
]
