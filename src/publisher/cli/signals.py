"""Graceful stops: SIGTERM and SIGINT set an event instead of killing the process (G2).

The sender checks the event between messages, so the message in flight is
finished and recorded before the command exits 0.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_signals(announce: Callable[[str], None]) -> Iterator[threading.Event]:
    """Yield an event that SIGTERM/SIGINT set; ``announce`` gets the signal's name once.

    The previous handlers come back afterwards. Outside the main thread (embedded
    use) signals cannot be caught, so the event is only set by the caller.
    """
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            announce(signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
