"""Time, passed to what needs it: a :data:`Clock` is a function that returns aware UTC now.

Production code gets :func:`system_clock` from the composition root (publisher.wiring);
tests pass their own (``tests/sending.py: FakeClock``). Nothing reads the time off the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The production clock: aware UTC."""
    return datetime.now(UTC)
