"""A sent issue to report about (issue 12): subscribers, rows, VERP addresses, a handler."""

from __future__ import annotations

import random
from dataclasses import dataclass

from publisher.deliver.sender import send_issue
from publisher.deliver.transports import OutboxTransport
from publisher.inbound.handler import Handler, Settings
from publisher.inbound.verp import ReturnPath
from publisher.store import Issue, Store, Subscriber
from publisher.store.bounces import BouncePolicy
from sending import PlainComposer, add_subscribers, make_issue, policy

VERP_KEY = "verp-key-for-tests-0123456789"
PATH = ReturnPath("bounces@blog.example.com", VERP_KEY.encode())
POLICY = BouncePolicy(bounce_limit=1, soft_bounce_limit=2, soft_bounce_days=30)
UNSUBSCRIBE = "leave@blog.example.com"


@dataclass
class World:
    store: Store
    issue: Issue
    subscribers: list[Subscriber]
    handler: Handler

    def verp(self, index: int) -> str:
        return PATH.address(self.issue.id, self.subscribers[index].id)

    def message_id(self, index: int) -> str:
        return f"<issue-{self.issue.id}.{self.subscribers[index].id}@blog.example.com>"

    def email(self, index: int) -> str:
        return self.subscribers[index].email

    def status(self, index: int) -> str:
        found = self.store.get_subscriber(self.subscribers[index].id)
        assert found is not None
        return str(found.status)


def sent_world(store: Store, tmp_path, count: int = 4, tokens=None) -> World:  # type: ignore[no-untyped-def]
    subscribers = add_subscribers(store, count)
    issue = make_issue(store)
    report = send_issue(
        store,
        issue.id,
        lambda: OutboxTransport(tmp_path / "outbox"),
        PlainComposer(),
        policy(return_path=PATH),
        rng=random.Random(3),
        clock=store.clock,
    )
    assert report.sent == count
    settings = Settings(POLICY, PATH, UNSUBSCRIBE, tokens or (lambda token: None))
    return World(store, issue, subscribers, Handler(store, settings))
