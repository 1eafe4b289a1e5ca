"""The ``softmaxkit`` command: one module per subcommand, each with ``add_parser`` and ``run``.

Errors from bad input end the command with a one-line message on stderr and exit status 2;
tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import sys
from collections.abc import Sequence

COMMANDS = ("probs", "apply", "plot", "bench", "info", "demo")
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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        hint = negative_number_hint(argv) if stop.code else None
        if hint:
            print(hint, file=sys.stderr)
        raise
    from softmaxkit.cli._signals import handled_signals

    with handled_signals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from softmaxkit.cli._signals import Terminated

    name = f"softmaxkit {args.command}"
    try:
        status = int(args.run(args) or 0)
        sys.stdout.flush()  # here, not at exit: a closed pipe or a full disk is reported like any error
        return status
    except BrokenPipeError:
        # The reader has gone (`| head`): stop quietly with SIGPIPE's status, as Unix tools do.
        _discard_stdout()
        return 128 + 13
    except (UsageError, ValueError, TypeError) as exc:
        message = f"error: {exc}"
        status = 2
    except OSError as exc:
        described = exc.strerror or str(exc)
        message = f"error: {exc.filename}: {described}" if exc.filename else f"error: {described}"
        status = 2
    except MemoryError as exc:
        message = f"error: out of memory: {exc}" if str(exc) else "error: out of memory"
        status = 2
    except KeyboardInterrupt:
        message, status = "interrupted", 130
    except Terminated as exc:
        message, status = f"terminated by {exc}", exc.status
    _say(f"{name}: {message}")
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _discard_stdout()
    return status


def negative_number_hint(argv: Sequence[str]) -> str | None:
    """A hint for ``probs 1 -inf``: argparse takes ``-inf`` or ``-1e5`` for an option, not a number."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    for token in options:
        if token.startswith("-") and not _ARGPARSE_NEGATIVE.match(token) and _is_float(token):
            return (f"softmaxkit: hint: {token} was read as an option; to pass it as a number, "
                    f"put -- before the numbers, e.g. softmaxkit probs -- 1 {token}")
    return None


_ARGPARSE_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")
"""The negative numbers argparse itself recognises as values: no exponents, inf or nan."""


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _say(line: str) -> None:
    # After SIGHUP the terminal may be gone; a failed message must not become a traceback.
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def _discard_stdout() -> None:
    """Point standard output at /dev/null: what is still buffered would fail again at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
