"""An ASGI app served by uvicorn in a thread on loopback: real HTTP over a socket for tests."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


class Server:
    """uvicorn in a thread on 127.0.0.1:``port``; a context manager that waits for the start."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
