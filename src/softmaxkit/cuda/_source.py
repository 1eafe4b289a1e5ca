"""The CUDA C++ sources of the kernels, as one string per file for NVRTC (no CuPy here).

The ``.cu`` files include ``common.cuh`` by a relative path, which nvcc resolves; NVRTC gets
the text with the include spliced in, so a compiled module depends on nothing but its own
source string (and CuPy's cache key, the source text, changes whenever a header does).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

KERNEL_DIR = Path(__file__).parent / "kernels"
_INCLUDE = re.compile(r'^#include "([\w.]+)"\s*$', re.MULTILINE)


def kernel_files() -> list[Path]:
    """Every ``.cu`` file of the package."""
    return sorted(KERNEL_DIR.glob("*.cu"))


@functools.cache
def source(name: str) -> str:
    """``kernels/<name>`` with its local includes spliced in (each header once)."""
    seen: set[str] = set()

    def expand(text: str) -> str:
        def splice(match: re.Match[str]) -> str:
            header = match.group(1)
            if header in seen:
                return ""
            seen.add(header)
            return expand((KERNEL_DIR / header).read_text())

        return _INCLUDE.sub(splice, text)

    return expand((KERNEL_DIR / name).read_text())
