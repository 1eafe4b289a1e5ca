"""Progress bars: on standard error, and only when it is a terminal, so they never mix into output."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_bar(*, show: bool = True) -> Progress:
    """A transient bar on standard error; disabled (silent) unless ``show`` and stderr is a TTY."""
    from rich.console import Console
    from rich.progress import Progress

    return Progress(console=Console(stderr=True), disable=not (show and sys.stderr.isatty()),
                    transient=True)
