"""`publisher preview`: page, feed entry, email HTML and text of one post side by side."""

from __future__ import annotations

import dataclasses
import html
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import webbrowser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conftest import REPO
from publisher.cli.build import graphical_browser
from publisher.config import load_config
from publisher.preview.server import PreviewServer
from smtp_sink import free_port

PUBLISHER = Path(sys.executable).parent / "publisher"


def make_server() -> PreviewServer:
    config = load_config(REPO, env={})
    config = dataclasses.replace(
        config, site=dataclasses.replace(config.site, base_url="http://127.0.0.1:8000/")
    )
    server = PreviewServer(config, drafts=True, live_reload="<!--reload-->", log=lambda _m: None)
    server.rebuild()
    return server


def test_preview_shows_the_four_views_of_one_post():
    server = make_server()
    try:
        client = TestClient(server.app())  # type: ignore[arg-type]
        response = client.get("/__preview/us-china-tech-gap")
        assert response.status_code == 200
        body = response.text
        assert 'src="http://127.0.0.1:8000/posts/us-china-tech-gap/"' in body
        assert (
            "&lt;id&gt;http://127.0.0.1:8000/posts/us-china-tech-gap/&lt;/id&gt;" in body
        )  # feed entry
        srcdoc = body.split('srcdoc="', 1)[1].split('"', 1)[0]
        email = html.unescape(srcdoc)
        assert (
            "'세계' 카테고리의 다른 글" in email and "style=" in email
        )  # related list, inlined CSS
        assert "unsubscribe/example" in email
        assert "미중 기술 격차, 정말 좁혀졌나?" in body
        # The post page itself is served by the same preview server.
        assert client.get("/posts/us-china-tech-gap/").status_code == 200
        # Drafts can be previewed too; unknown posts get a clear 404.
        assert client.get("/__preview/posts/semiconductor-supply-chain-map.md").status_code == 200
        missing = client.get("/__preview/nope")
        assert missing.status_code == 404 and "no post with slug or file" in missing.text
    finally:
        server.stop()


# --- opening a browser, and a busy port (issue 8, item 17) -------------------------------


def _no_browser() -> webbrowser.BaseBrowser:
    raise AssertionError("no browser may be looked up without a display")


def test_no_browser_without_a_display_on_linux():
    assert graphical_browser({}, "linux", _no_browser) is None
    assert graphical_browser({"TERM": "xterm"}, "linux", _no_browser) is None


def test_never_a_text_mode_browser_even_with_a_display():
    for name in ("lynx", "/usr/bin/w3m", "links", "elinks", "www-browser"):
        text = webbrowser.GenericBrowser(name)
        assert graphical_browser({"DISPLAY": ":0"}, "linux", lambda b=text: b) is None, name
    firefox = webbrowser.GenericBrowser("firefox")
    assert graphical_browser({"WAYLAND_DISPLAY": "wayland-0"}, "linux", lambda: firefox) is firefox
    assert graphical_browser({}, "darwin", lambda: firefox) is firefox  # macOS: always a display


@pytest.fixture
def sample_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(REPO / "config.toml", site / "config.toml")
    shutil.copytree(REPO / "posts", site / "posts")
    return site


def _browser_script(folder: Path, name: str) -> tuple[Path, Path]:
    """An executable named ``name`` that records being run: what $BROWSER would start."""
    marker = folder / f"{name}-was-run"
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "$@" > {marker}\n', encoding="utf-8")
    script.chmod(0o755)
    return script, marker


def _serve(site: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.Popen(
        [str(PUBLISHER), "--site", str(site), *args],
        env={**base, "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines_until(process: subprocess.Popen[str], wanted: str) -> list[str]:
    """stdout lines up to one containing ``wanted``; read in a thread so a silent process
    fails the test after 60 s instead of blocking it."""
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.append(lines.get(timeout=left).rstrip("\n"))
        except queue.Empty:
            break
        if wanted in seen[-1]:
            return seen
    raise AssertionError(f"{wanted!r} never printed: {seen}")


@pytest.mark.parametrize(
    ("display", "browser_name"),
    [({}, "firefox"), ({"DISPLAY": ":0"}, "lynx")],
    ids=["no display", "text browser"],
)
def test_serve_prints_the_url_instead_of_starting_a_terminal_browser(
    sample_site: Path, tmp_path: Path, display: dict[str, str], browser_name: str
):
    script, marker = _browser_script(tmp_path, browser_name)
    port = free_port()
    process = _serve(sample_site, {**display, "BROWSER": str(script)}, "serve", "--port", str(port))
    try:
        lines = _lines_until(process, f"Open http://127.0.0.1:{port}/ in a browser.")
        assert not any(line.startswith("Opening") for line in lines)
        time.sleep(1.5)  # the old code opened the browser 0.8 s after "Opening"
        assert not marker.exists(), "a browser was started without a display to show it"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_preview_on_a_busy_port_says_so_with_a_port_hint(sample_site: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = _serve(sample_site, {}, "preview", "us-china-tech-gap", "--port", str(port))
        _out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert f"error: port {port} on 127.0.0.1 is already in use" in err
    assert f"hint: Stop the other server, or choose a free port: --port {port + 1}." in err
    assert "Traceback" not in err and "Errno" not in err
