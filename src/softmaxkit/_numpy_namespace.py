"""NumPy's array-API namespace, with array-api-compat's wrappers imported on first need.

The namespace of a NumPy array is array-api-compat's ``array_api_compat.numpy``. Importing it
costs about 60 ms on these machines: it copies every name of ``dir(numpy)``, and asking for
them imports each of NumPy's lazily loaded submodules (``numpy.f2py``, ``numpy.testing``,
``numpy.ma``, ...). A call on a NumPy array that the numba engine computes only asks its
namespace for ``isdtype`` and ``any``, which ``array_api_compat.numpy`` re-exports from NumPy
unchanged (NumPy 2 has ``isdtype``). :data:`NUMPY` holds those NumPy functions from the start
and takes any other name from ``array_api_compat.numpy``, imported then: the same objects
either way (a test checks), so only the moment of the import changes. (Where SciPy is
installed, Numba's first cache load imports ``scipy.linalg``, which clones NumPy the same way
in SciPy's own copy of array-api-compat: nothing is saved there.)
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

COMPAT_NAME = "array_api_compat.numpy"

NUMPY_OWN = ("isdtype", "any")
"""Names that ``array_api_compat.numpy`` takes unchanged from NumPy (where NumPy has them)."""


class _NumPyNamespace(types.ModuleType):
    """``array_api_compat.numpy`` by name and by every attribute; imported at the first
    attribute that is not one of :data:`NUMPY_OWN`."""

    def __init__(self) -> None:
        super().__init__(COMPAT_NAME, "NumPy's array-API namespace (array_api_compat.numpy)")
        for name in NUMPY_OWN:
            if hasattr(np, name):  # NumPy < 2 has no isdtype: array-api-compat's own then
                setattr(self, name, getattr(np, name))

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set yet; each is kept, so the next lookup is a plain one.
        import array_api_compat.numpy as compat

        value = getattr(compat, name)
        setattr(self, name, value)
        return value


NUMPY = _NumPyNamespace()
"""The one namespace object softmaxkit uses for NumPy arrays (identity comparisons hold)."""
