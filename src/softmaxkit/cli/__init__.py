"""The ``softmaxkit`` command: one module per subcommand, each with ``add_parser`` and ``run``.

Errors from bad input end the command with a one-line message on stderr and exit status 2;
tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("probs", "sample", "apply", "plot", "bench", "info", "demo")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (UsageError, ValueError, TypeError, OSError) as exc:
        print(f"softmaxkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"softmaxkit {args.command}: interrupted", file=sys.stderr)
        return 130
