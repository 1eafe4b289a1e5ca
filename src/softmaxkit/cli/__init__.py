"""The ``softmaxkit`` command: one module per subcommand, each with ``add_parser`` and ``run``.

Errors from bad input end the command with a one-line message on stderr and exit status 2;
tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMANDS = ("probs", "apply", "plot", "bench", "info", "compile", "demo")
"""Subcommand modules of this package, in the order ``--help`` lists them."""


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from softmaxkit import __version__

    parser = argparse.ArgumentParser(
        prog="softmaxkit", description="Softmax, explained and applied.",
    )
    parser.add_argument("--version", action="version", version=f"softmaxkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"softmaxkit.cli.{name}").add_parser(sub)
    return parser


def show_engine_notices() -> None:
    """The numba engine's notices (a compile starting) as lines on stderr when it is a terminal:
    a command that pauses for seconds says why. Its warnings (no writable cache) reach stderr
    in any case, through logging's last-resort handler."""
    engine_log = logging.getLogger("softmaxkit.numba")
    if not sys.stderr.isatty():
        return
    if not any(isinstance(h, _StderrHandler) for h in engine_log.handlers):
        engine_log.addHandler(_StderrHandler())
        engine_log.setLevel(logging.INFO)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record to the ``sys.stderr`` of the moment (tests and callers swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_engine_notices()
    try:
        return int(args.run(args) or 0)
    except (UsageError, ValueError, TypeError, OSError) as exc:
        print(f"softmaxkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"softmaxkit {args.command}: interrupted", file=sys.stderr)
        return 130
