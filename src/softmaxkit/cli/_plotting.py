"""matplotlib for the commands that draw: imported only when a picture is asked for."""

from __future__ import annotations

from typing import Any

from softmaxkit.cli import UsageError
from softmaxkit.cli._io import atomic_output


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'softmaxkit[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str) -> None:
    """Save as the extension says (png, svg, pdf), atomically."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in ("png", "svg", "pdf"):
        raise UsageError(f"{path}: choose a .png, .svg or .pdf file")
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format=suffix, dpi=120, bbox_inches="tight")
