"""CSV/TSV tables of numbers, with errors that name the file's line (counted from 1) and column.

NumPy's ``loadtxt`` does the reading; its messages count rows from 0 in some cases and from 1
in others, and skip blank lines, so on failure the text is scanned again here to name the line
as an editor shows it.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable

import numpy as np

from softmaxkit.cli import UsageError

DELIMITERS = {"csv": ",", "tsv": "\t"}


def read_table(source: str | io.StringIO, name: str, fmt: str) -> np.ndarray:
    """The numbers of a CSV/TSV file (a path, or text already read), as a 2-D float64 array."""
    delimiter = DELIMITERS[fmt]
    try:
        with warnings.catch_warnings():
            # an empty table is reported below, in one line
            warnings.filterwarnings("ignore", "loadtxt: input contained no data", UserWarning)
            array = np.loadtxt(source, delimiter=delimiter, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        if isinstance(source, io.StringIO):
            source.seek(0)
            problem = first_problem(source, delimiter)
        else:
            with open(source, encoding="utf-8", errors="replace") as lines:
                problem = first_problem(lines, delimiter)
        raise UsageError(f"{name}: {problem or str(exc).split('; use `usecols`')[0]}") from None
    if array.size == 0:
        raise UsageError(f"{name}: no data (no numbers in the {fmt.upper()} input)")
    return array


def first_problem(lines: Iterable[str], delimiter: str) -> str | None:
    """Where a table first fails to be a rectangle of numbers: ``line L, column C: ...``."""
    width = width_line = None
    for number, line in enumerate(lines, 1):
        content = line.split("#", 1)[0].rstrip("\r\n")  # loadtxt's comments start with '#'
        if not content:  # as for loadtxt, a line of spaces is not empty: it holds one empty value
            continue
        fields = content.split(delimiter)
        if width is None:
            width, width_line = len(fields), number
        elif len(fields) != width:
            return f"line {number} has {_values(len(fields))}, line {width_line} has {width}"
        for column, field in enumerate(fields, 1):
            if not _is_number(field):
                return f"line {number}, column {column}: not a number: {field!r}"
    return None


def _values(count: int) -> str:
    return f"{count} value" if count == 1 else f"{count} values"


def _is_number(text: str) -> bool:
    if "_" in text:  # Python's float() takes 1_000, loadtxt does not
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True
