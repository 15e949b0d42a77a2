"""Sending benchmark: memory and time per message stay flat as the list grows.

Imports N subscribers into a fresh SQLite store, renders one real issue, and sends
it through the real sender and message builder to a null transport (no SMTP, so
the loop, the store and the message builder are what is measured). Prints the
tracemalloc peak during the send and the time per message, for a baseline list
and a large one measured in the same run, and their ratios (1.00 = flat).

    .venv/bin/python bench/bench_send_memory.py                  # 1,000 vs 50,000
    .venv/bin/python bench/bench_send_memory.py --subscribers 1000000   # slow: ~10 min
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from builders import make_config, make_post
from publisher.deliver.sender import MessageComposer, SendPolicy, new_issue, send_issue
from publisher.deliver.tokens import make_signer
from publisher.deliver.transports import BeforeData, Outcome, SendResult, Stage
from publisher.publish.newsletter import render_post_issue
from publisher.publish.site import build_site
from publisher.store import Consent, ConsentMethod, NewSubscriber, Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class NullTransport:
    """Accepts every message at once, like a server answering 250 instantly."""

    def send(
        self,
        envelope_from: str,
        recipient: str,
        message: bytes,
        before_data: BeforeData | None = None,
    ) -> SendResult:
        if before_data is not None and not before_data():  # the sender's last check
            return SendResult(Outcome.WITHDRAWN, Stage.RCPT)
        return SendResult(Outcome.SENT, Stage.END, 250, "2.0.0 ok")

    def close(self) -> None:
        pass


def measure(folder: Path, subscribers: int) -> tuple[int, float]:
    """Peak traced bytes during the send, and seconds per message."""
    config = make_config(folder)
    store = Store.open(f"sqlite:///{folder}/bench.db", clock=lambda: NOW, migrate=True)
    chunk = 20_000
    for start in range(0, subscribers, chunk):
        rows = [
            NewSubscriber(f"reader{n}@example.com")
            for n in range(start, min(start + chunk, subscribers))
        ]
        store.import_subscribers(rows, Consent(ConsentMethod.IMPORT, "bench"))
    site = build_site(config, [make_post()], NOW)
    rendered = render_post_issue(site, site.posts[0])
    issue, _ = store.create_issue(new_issue(rendered, site.posts))
    composer = MessageComposer(config, make_signer(config, store, lambda: NOW), lambda: NOW)
    tracemalloc.start()
    started = time.perf_counter()
    policy = SendPolicy.from_config(config)
    report = send_issue(store, issue.id, NullTransport, composer, policy, clock=lambda: NOW)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    store.close()
    assert report.sent == subscribers, report
    return peak, seconds / subscribers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=50_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        base_peak, base_time = measure(Path(tmp) / "a", args.baseline)
        peak, per_message = measure(Path(tmp) / "b", args.subscribers)
    print(
        f"baseline: {args.baseline:>9,} subscribers  peak {base_peak / 1024:8.0f} KB  {base_time * 1000:.2f} ms/message"
    )
    print(
        f"measured: {args.subscribers:>9,} subscribers  peak {peak / 1024:8.0f} KB  {per_message * 1000:.2f} ms/message"
    )
    print(
        f"memory ratio (measured/baseline): {peak / base_peak:.2f}   time per message ratio: {per_message / base_time:.2f}"
    )


if __name__ == "__main__":
    main()
