"""One proof copy of an issue to one address: the same body and headers, no delivery rows.

Used by ``publisher send --test-to`` and by the editor's "test email" button
(publisher.web.editor), so both send exactly what subscribers would get.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.utils import make_msgid

from publisher.config import Config
from publisher.deliver.sender import Composer
from publisher.deliver.transports import SendResult, transport_factory
from publisher.store import (
    Issue,
    IssueStatus,
    NewIssue,
    Subscriber,
    SubscriberStatus,
    normalize_email,
)


def send_proof(
    config: Config,
    composer: Composer,
    new: NewIssue,
    address: str,
    clock: Callable[[], datetime],
) -> tuple[str, SendResult]:
    """Send ``new`` to ``address``; the normalized address and the transport's result.

    ``composer`` is the one subscribers' messages are built with (publisher.wiring).
    """
    to = normalize_email(address)
    now = clock()
    issue = Issue(
        id=0,
        key=new.key,
        post_slugs=new.post_slugs,
        categories=new.categories,
        subject=new.subject,
        preheader=new.preheader,
        html=new.html,
        text=new.text,
        digest=new.digest,
        status=IssueStatus.DRAFT,
        pause_reason=None,
        created_at=now,
        snapshot_at=None,
        finished_at=None,
    )
    reader = Subscriber(0, to, SubscriberStatus.ACTIVE, (), now, None, None, 0, 0, None)
    # A fresh Message-ID each time: providers drop repeats of one they have seen.
    domain = config.newsletter.from_address.rpartition("@")[2]
    data = composer.compose(issue, reader, make_msgid("test", domain=domain))
    transport = transport_factory(config)()
    try:
        return to, transport.send(config.newsletter.from_address, to, data)
    finally:
        transport.close()
