"""The declared types agree with what runs: Literal names, lazily imported names, the user script.

mypy itself runs in CI (.ci/run: ``python -m mypy``, configured in pyproject.toml) on the package
and on tests/typecheck/user_script.py; these tests keep the declarations true at run time.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _engines
from softmaxkit._typing import EngineName, Reduction


def test_user_script_runs():
    # Every variable the script declares is checked by isinstance/shape asserts as it runs.
    from typecheck.user_script import main

    main()


def test_engine_literal_lists_the_registry_and_its_aliases():
    registry = set(_engines.engine_names()) | set(getattr(_engines, "ENGINE_ALIASES", {}))
    assert set(get_args(EngineName)) == registry


@pytest.mark.parametrize("reduction", get_args(Reduction))
def test_every_reduction_literal_is_accepted(reduction):
    loss = sk.cross_entropy([[1.0, 2.0], [0.5, 0.0]], [1, 0], reduction=reduction)
    assert np.all(np.isfinite(loss))


def test_a_reduction_outside_the_literal_is_refused():
    with pytest.raises(ValueError, match="reduction must be one of"):
        sk.cross_entropy([[1.0, 2.0]], [1], reduction="average")


def test_lazy_names_are_imported_for_type_checkers():
    # The names softmaxkit imports on first use must each be imported under TYPE_CHECKING
    # from the same module, or mypy and pyright see them as plain objects.
    tree = ast.parse(Path(inspect.getfile(sk)).read_text())
    typed = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "typing.TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                typed.update({alias.name: statement.module for alias in statement.names})
    assert typed == sk._LAZY
