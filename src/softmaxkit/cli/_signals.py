"""Signals that end a run the way Ctrl-C does, so temporary outputs are removed on the way out.

Python turns SIGINT into ``KeyboardInterrupt``; SIGTERM (``kill``, a job scheduler's time limit)
and SIGHUP (a closed terminal or SSH session) would kill the process outright and leave a
full-size ``.part`` file behind. Here they raise :class:`Terminated`, which unwinds through the
same ``except BaseException`` clean-up.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(BaseException):
    """The run was ended by a signal; ``status`` is the shell's exit status for it, 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.status = 128 + signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    # Further signals are ignored while the clean-up runs, so it cannot itself be cut short.
    for ending in ENDING:
        signal.signal(ending, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def handled_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated`; SIGXFSZ is ignored.

    Past ``RLIMIT_FSIZE`` a write then fails with ``EFBIG`` (reported as an error) instead of
    killing the process with SIGXFSZ. The previous handlers return afterwards, so calling the
    command in-process (from tests) leaves the caller's signals as they were.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    # A signal ignored already (SIGHUP under nohup) stays ignored.
    handlers: dict[signal.Signals, Callable[[int, FrameType | None], None] | signal.Handlers] = {
        ending: _raise_terminated for ending in ENDING if signal.getsignal(ending) != signal.SIG_IGN
    }
    if hasattr(signal, "SIGXFSZ"):
        handlers[signal.SIGXFSZ] = signal.SIG_IGN
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
