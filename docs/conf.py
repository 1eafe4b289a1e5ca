"""Sphinx configuration of the softmaxkit documentation (built with ``-W`` in CI)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "src"))

import softmaxkit  # noqa: E402  (after the path: the docs describe this checkout's code)

project = "softmaxkit"
author = "the softmaxkit developers"
copyright = "the softmaxkit developers"  # noqa: A001  (Sphinx's own setting name)
release = version = softmaxkit.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "matplotlib.sphinxext.plot_directive",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "figures"]
myst_enable_extensions = ["colon_fence"]
# README.md and BENCHMARKS.md are included as they are; README's links to BENCHMARKS.md resolve
# because the page that includes it is named BENCHMARKS.md too.
myst_heading_anchors = 3  # links to README sections by their titles

html_theme = "furo"
html_title = f"softmaxkit {release}"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types in words

# Figures are drawn at build time from the code shown beside them, so they cannot drift.
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.figsize": (6.0, 3.2), "savefig.bbox": "tight", "figure.constrained_layout.use": True}

intersphinx_mapping = {}  # no network on the build machines: nothing to fetch


def write_api_reference(app: object) -> None:
    """One autodoc entry per name in ``softmaxkit.__all__``: the reference cannot miss a name."""
    lines = [
        "API reference",
        "=============",
        "",
        "Every public name of :mod:`softmaxkit` (its ``__all__``), with its docstring.",
        "",
        ".. currentmodule:: softmaxkit",
        "",
    ]
    for name in sorted(softmaxkit.__all__, key=str.lower):
        obj = getattr(softmaxkit, name)
        directive = "autoclass" if isinstance(obj, type) else "autofunction"
        lines += [f".. {directive}:: {name}", ""]
    # The drop-in faces: another library's signatures over the same computation.
    for face, title in (("softmaxkit.torch", "PyTorch's face"), ("softmaxkit.scipy", "SciPy's face")):
        module = importlib.import_module(face)
        lines += [f"``{face}``: {title}", "-" * (len(face) + len(title) + 6), "",
                  f".. currentmodule:: {face}", ""]
        for name in sorted(module.__all__, key=str.lower):
            directive = "autoclass" if isinstance(getattr(module, name), type) else "autofunction"
            lines += [f".. {directive}:: {name}", ""]
    target = DOCS / "api.rst"
    text = "\n".join(lines)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def setup(app: object) -> None:
    app.connect("builder-inited", write_api_reference)
