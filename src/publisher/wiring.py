"""The composition root: the one place that builds stores, transports, signers and composers.

Every command gets these from here, so a store is opened, a mail transport chosen and a
link signer keyed the same way everywhere. Only ``publisher.cli`` imports this module
(``tests/test_layers.py``); the stages below it are handed what they need, the clock too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict, Unpack

from publisher.clock import Clock, system_clock
from publisher.config import Config
from publisher.deliver.sender import MessageComposer
from publisher.deliver.tokens import TokenSigner, make_signer
from publisher.deliver.transports import TransportFactory, transport_factory
from publisher.store import PgTimeouts, Store

Warn = Callable[[str], None]


class StoreTuning(TypedDict, total=False):
    """How long a command waits on a locked database (:meth:`Store.open`); the web's are short."""

    busy_timeout: float
    retry_seconds: float
    pg_timeouts: PgTimeouts | None


def open_store(
    config: Config,
    *,
    clock: Clock = system_clock,
    migrate: bool = False,
    **tuning: Unpack[StoreTuning],
) -> Store:
    """The store at ``[database].url``; the caller closes it."""
    return Store.open(config.database_url, clock=clock, migrate=migrate, **tuning)


def transports(config: Config) -> TransportFactory:
    """A new connection to the configured mail transport (SMTP or the outbox) per call."""
    return transport_factory(config)


def signer(
    config: Config, store: Store, clock: Clock = system_clock, warn: Warn | None = None
) -> TokenSigner:
    """The signer of subscriber links: keys from the environment, else from the database."""
    return make_signer(config, store, clock, warn=warn)


def composer(
    config: Config, store: Store, clock: Clock = system_clock, warn: Warn | None = None
) -> MessageComposer:
    """The composer every send uses: signed per-subscriber links, headers, DKIM."""
    return MessageComposer(config, signer(config, store, clock, warn), clock)
