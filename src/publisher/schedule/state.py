"""The scheduler's own state, typed, over rows of the ``settings`` table.

Every key and every encoding the scheduler stores is here and only here: the
key names and formats are data in existing databases and must not change
(``"<iso instant> <slug>"`` for the next due post, ISO dates and instants, ``"1"``
for a flag). Callers read and write typed values; nothing else in
publisher.schedule reads or writes settings keys.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from publisher.store import Store

BUILD_KEY = "scheduler.build"  # fingerprint of the site last built
INPUTS_KEY = "scheduler.inputs"  # stat fingerprint of the input files at the last pass
OUTPUT_KEY = "scheduler.output:"  # + host and folder hash: stamp of the folder last written
# Set once every published record carries the id, title and date a rename is recognised by:
# until then a pass reads the posts even when no file changed (records made before issue 8).
IDENTITY_KEY = "scheduler.published_identity"
NEXT_DUE_KEY = "scheduler.next_due"  # "<iso instant> <slug>" of the next scheduled post
AS_OF_KEY = "scheduler.published_as_of"  # `published` is complete for posts dated <= this
DIGEST_KEY = "scheduler.digest_slot"  # local date of the last digest slot handled
ENABLED_AT_KEY = "newsletter.enabled_at"  # first tick that saw [newsletter].enabled
FAILED_INPUTS_KEY = "scheduler.failed_inputs:"  # + job name: inputs when it last failed


@dataclass(frozen=True)
class NextDue:
    """The next scheduled post: when it becomes public, and its slug."""

    at: datetime
    slug: str

    def encode(self) -> str:
        return f"{self.at.isoformat()} {self.slug}"

    @classmethod
    def decode(cls, value: str | None) -> NextDue | None:
        if not value:
            return None
        moment, _, slug = value.partition(" ")
        return cls(datetime.fromisoformat(moment), slug)


def output_key(output: Path) -> str:
    """The settings key of this host's output folder (a scheduler elsewhere has its own)."""
    where = f"{socket.gethostname()}\0{output.resolve()}".encode()
    return OUTPUT_KEY + hashlib.sha256(where).hexdigest()[:32]


class SchedulerState:
    """Typed access to the scheduler's settings rows of one database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # the publish job --------------------------------------------------------------------------

    @property
    def build_fingerprint(self) -> str | None:
        return self.store.get_setting(BUILD_KEY)

    @build_fingerprint.setter
    def build_fingerprint(self, value: str) -> None:
        self.store.set_setting(BUILD_KEY, value)

    @property
    def inputs(self) -> str | None:
        return self.store.get_setting(INPUTS_KEY)

    @inputs.setter
    def inputs(self, value: str) -> None:
        self.store.set_setting(INPUTS_KEY, value)

    def output_stamp(self, output: Path) -> str | None:
        """The stamp of ``output`` as this host's scheduler last wrote it."""
        return self.store.get_setting(output_key(output))

    def set_output_stamp(self, output: Path, stamp: str) -> None:
        self.store.set_setting(output_key(output), stamp)

    @property
    def identity_complete(self) -> bool:
        return bool(self.store.get_setting(IDENTITY_KEY))

    def mark_identity_complete(self) -> None:
        self.store.set_setting(IDENTITY_KEY, "1")

    @property
    def next_due(self) -> NextDue | None:
        return NextDue.decode(self.store.get_setting(NEXT_DUE_KEY))

    @next_due.setter
    def next_due(self, value: NextDue | None) -> None:
        self.store.set_setting(NEXT_DUE_KEY, "" if value is None else value.encode())

    @property
    def published_as_of(self) -> datetime | None:
        value = self.store.get_setting(AS_OF_KEY)
        return datetime.fromisoformat(value) if value else None

    def advance_published_as_of(self, moment: datetime) -> None:
        """Move the mark forward only: ``published`` stays complete up to the latest pass."""
        as_of = self.published_as_of
        if as_of is None or moment > as_of:
            self.store.set_setting(AS_OF_KEY, moment.isoformat())

    # the issues job ---------------------------------------------------------------------------

    @property
    def digest_slot(self) -> date | None:
        value = self.store.get_setting(DIGEST_KEY)
        return None if value is None else date.fromisoformat(value)

    @digest_slot.setter
    def digest_slot(self, day: date) -> None:
        self.store.set_setting(DIGEST_KEY, day.isoformat())

    @property
    def enabled_at(self) -> datetime | None:
        value = self.store.get_setting(ENABLED_AT_KEY)
        return datetime.fromisoformat(value) if value else None

    def enabled_at_or_record(self, now: datetime, said: Callable[[str], None]) -> datetime:
        """The moment first seen enabled; ``now`` is recorded when none is (first writer wins)."""
        value = self.store.get_setting(ENABLED_AT_KEY)
        if value is None:
            value = self.store.setting_or_create(ENABLED_AT_KEY, now.isoformat)
            said(value)
        return datetime.fromisoformat(value)

    # job failures -----------------------------------------------------------------------------

    def failed_inputs(self, job: str) -> str | None:
        """The inputs fingerprint when ``job`` last failed."""
        return self.store.get_setting(FAILED_INPUTS_KEY + job)

    def set_failed_inputs(self, job: str, inputs: str) -> None:
        self.store.set_setting(FAILED_INPUTS_KEY + job, inputs)
