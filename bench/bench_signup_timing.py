"""Signup timing oracle: does ``POST subscribe`` answer a new address slower than a subscribed one?

Serves ``publisher web``'s app (publisher.cli.web.open_web_app, with its uvicorn
options) on loopback over a fresh SQLite database, then alternates signups of
fresh addresses and of one already-active address over one keep-alive
connection (in random order within each pair, pausing between probes so the
mail worker's work after one answer does not land on the next), and prints the median time of each and their ratio (1.00 = no
difference; issue 8 item 8 measured about 2 ms, 95-98 % single-probe accuracy).
It also prints how often a single probe would guess right by comparing each
pair with the overall median (50 % = no oracle).

    .venv/bin/python bench/bench_signup_timing.py              # 100 pairs, 0.2 s apart
    .venv/bin/python bench/bench_signup_timing.py --pairs 500 --pause 0.1
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx
import uvicorn

from builders import write_config, write_post
from publisher.cli.web import UVICORN_OPTIONS, open_web_app
from publisher.config import load_config
from publisher.store import Consent, ConsentMethod, Store
from smtp_sink import free_port

SECRET = {"PUBLISHER_SECRET_KEY": "bench-signing-key-" + "x" * 32}
WEB_SECTION = {
    "signups_per_ip_per_hour": 100_000,
    "confirmations_per_hour": 100_000,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between probes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_config(root, web=WEB_SECTION)
        write_post(root, "a.md", category="세계")
        config = load_config(root, env=SECRET)
        store = Store.open(config.database_url)
        store.add_subscriber("known@example.com", Consent(ConsentMethod.OPERATOR))
        store.close()
        new, known = measure(config, args.pairs, args.pause)
    new_median, known_median = statistics.median(new), statistics.median(known)
    threshold = statistics.median(new + known)
    right = sum(n > threshold for n in new) + sum(k <= threshold for k in known)
    print(f"pairs: {args.pairs}")
    print(f"new address:        median {new_median * 1000:.3f} ms")
    print(f"subscribed address: median {known_median * 1000:.3f} ms")
    print(f"ratio new/subscribed: {new_median / known_median:.3f}")
    print(f"single-probe accuracy: {right / (2 * args.pairs):.1%} (50% = no oracle)")


def measure(config: object, pairs: int, pause: float) -> tuple[list[float], list[float]]:
    app, close = open_web_app(config)  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, **{**UVICORN_OPTIONS, "log_config": None})
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}/newsletter/subscribe"
    new: list[float] = []
    known: list[float] = []
    try:
        with httpx.Client() as client:
            for n in range(20):  # warm up: connection, caches, the worker thread
                client.post(url, data={"email": f"warm{n}@example.com"})
            order = random.Random(8)
            for n in range(pairs):
                probes = [(f"new{n}@example.com", new), ("known@example.com", known)]
                order.shuffle(probes)
                for address, times in probes:
                    time.sleep(pause)  # the worker applies the last signup (and mails) meanwhile
                    started = time.perf_counter()
                    response = client.post(url, data={"email": address})
                    times.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.status_code
    finally:
        server.should_exit = True
        thread.join(10)
        close()
    return new, known


if __name__ == "__main__":
    main()
