"""Shared by the editor tests: a site with the editor on, an app, a signed-in client."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from builders import write_config, write_post
from publisher.config import Config, load_config
from publisher.deliver.transports import Outcome, SendResult, Stage
from publisher.store import Store
from publisher.store.editors import EditorStore
from publisher.web.app import create_app
from publisher.web.editor.auth import hash_password

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

BASE = "https://blog.example.com/"
EDITOR = BASE + "editor/"
PASSWORD = "correct horse battery staple"
SECRET = {"PUBLISHER_SECRET_KEY": "test-signing-key-" + "x" * 32}
VISITOR = ("203.0.113.7", 40000)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2025, 6, 20, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class NoMail:
    def send_confirmation(self, recipient: str, confirm_url: str) -> SendResult:
        return SendResult(Outcome.SENT, Stage.END, 250)


@dataclass
class Room:
    root: Path
    config: Config
    store: Store
    clock: FakeClock
    app: Starlette

    def client(self, peer: tuple[str, int] = VISITOR, base: str = BASE) -> TestClient:
        return TestClient(self.app, base_url=base, follow_redirects=False, client=peer)

    def add_editor(self, name: str = "minji", email: str | None = "minji@example.com") -> None:
        EditorStore(self.store).add_editor(name, email, hash_password(PASSWORD))

    def signin(self, client: TestClient, name: str = "minji", password: str = PASSWORD) -> Any:
        page = client.get(EDITOR + "signin")
        return client.post(
            EDITOR + "signin",
            data={"csrf": csrf_of(page.text), "name": name, "password": password},
        )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def make_room(
    tmp_path: Path,
    db_url: str | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
    **editor: Any,
) -> Room:
    root = tmp_path / "site"
    write_config(
        root,
        site={"base_url": BASE},
        database={"url": db_url or "sqlite:///publisher.db"},
        editor={"enabled": True, **editor},
        **(sections or {}),
    )
    write_post(root, "2025-06-10-one.md", title="첫 글", date="2025-06-10 09:00", category="세계")
    write_post(root, "2025-06-12-two.md", title="둘째 글", date="2025-06-12 09:00", category="기술")
    config = load_config(root, env=SECRET)
    clock = FakeClock()
    store = Store.open(config.database_url, clock=clock)
    app = create_app(config, store, NoMail(), clock, categories=("세계", "기술"))
    return Room(root, config, store, clock, app)


def make_live_room(tmp_path: Path, port: int, **editor: Any) -> Room:
    """A room whose site and editor live at http://127.0.0.1:``port``/ (for real HTTP)."""
    base = f"http://127.0.0.1:{port}/"
    root = tmp_path / "site"
    write_config(
        root,
        site={"base_url": base},
        database={"url": "sqlite:///publisher.db"},
        editor={"enabled": True, **editor},
    )
    write_post(root, "2025-06-10-one.md", title="첫 글", date="2025-06-10 09:00", category="세계")
    write_post(root, "2025-06-12-two.md", title="둘째 글", date="2025-06-12 09:00", category="기술")
    config = load_config(root, env=SECRET)
    clock = FakeClock()
    store = Store.open(config.database_url, clock=clock)
    app = create_app(config, store, NoMail(), clock, categories=("세계", "기술"))
    return Room(root, config, store, clock, app)
