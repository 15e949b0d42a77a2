"""The editor in real Chromium (Playwright): sign in, write Korean through an input method, preview, image, schedule.

The app is the one `publisher web` serves, on uvicorn on a loopback port. Hangul
is typed the way an IME types it, with the DevTools composition events
(``Input.imeSetComposition`` then ``Input.insertText`` to commit), at the start
of the document, at the start of a line and inside a line. Screenshots of every
editor page, desktop and phone, go to ``test-artifacts/editor/``; no page may
trip its Content-Security-Policy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from editor_helpers import PASSWORD, Room, make_live_room
from live_server import Server
from smtp_sink import free_port
from test_browser import CHROMIUM, CHROMIUM_ARGS, _require_chromium
from test_micropub import jpeg_with_gps

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts" / "editor"
DESKTOP = {"viewport": {"width": 1366, "height": 900}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Room, str]]:
    _require_chromium()
    port = free_port()
    room = make_live_room(tmp_path, port)
    room.add_editor()
    with Server(room.app, port):
        yield room, f"http://127.0.0.1:{port}/editor/"
    room.store.close()


class Browser:
    def __init__(self, page: Any, prefix: str) -> None:
        self.page = page
        self.prefix = prefix
        self.shots = 0
        self.csp: list[str] = []
        page.set_default_timeout(15_000)
        page.on(
            "console",
            lambda m: self.csp.append(m.text) if "Content Security Policy" in m.text else None,
        )
        self.cdp = page.context.new_cdp_session(page)

    def shot(self, name: str) -> None:
        self.shots += 1
        self.page.screenshot(
            path=str(ARTIFACTS / f"{self.prefix}-{self.shots:02d}-{name}.png"), full_page=True
        )

    def compose(self, steps: list[str], commit: str) -> None:
        """Type like an IME: each step is the composition so far, then the committed text."""
        for text in steps:
            self.cdp.send(
                "Input.imeSetComposition",
                {"text": text, "selectionStart": len(text), "selectionEnd": len(text)},
            )
        self.cdp.send("Input.insertText", {"text": commit})

    def sign_in(self, base: str) -> None:
        answer = self.page.goto(base)
        assert answer.status == 401
        self.shot("signin")
        self.page.fill("input[name=name]", "minji")
        self.page.fill("input[name=password]", PASSWORD)
        with self.page.expect_navigation():
            self.page.click("form.signin button[type=submit]")
        assert self.page.locator("h1").inner_text() == "글 목록"
        self.shot("list")

    def preview_text(self, frame_title: str) -> str:
        inner = self.page.frame_locator("#preview").frame_locator(f"iframe[title='{frame_title}']")
        return inner.locator("body").inner_text()


def test_editor_in_chromium_with_ime_composition_preview_image_and_schedule(live):
    from playwright.sync_api import sync_playwright

    room, base = live
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            desktop(Browser(browser.new_page(locale="ko-KR", **DESKTOP), "desktop"), room, base)
            phone(Browser(browser.new_page(locale="ko-KR", **PHONE), "phone"), room, base)
        finally:
            browser.close()


def desktop(b: Browser, room: Room, base: str) -> None:
    page = b.page
    b.sign_in(base)
    page.click("text=새 글 쓰기")
    page.wait_for_selector("#body")
    # The title: composed inside an empty field.
    page.fill("input[name=title]", "")
    page.focus("input[name=title]")
    b.compose(["ㅎ", "하", "한"], "한")
    b.compose(["ㄱ", "그", "글"], "글")
    page.keyboard.type(" ")
    b.compose(["ㅍ", "표"], "표")
    assert page.input_value("input[name=title]") == "한글 표"
    page.fill("input[name=slug]", "hangul-table")
    page.fill("input[name=category]", "세계")
    # The body: composition at the start of the document, of a line, and inside a line.
    page.fill("#body", "")
    page.focus("#body")
    b.compose(["ㅇ", "아", "안"], "안")
    b.compose(["ㄴ", "녀", "녕"], "녕")
    page.keyboard.press("Enter")
    b.compose(["ㅅ", "세"], "세")
    b.compose(["ㄱ", "계"], "계")
    page.keyboard.type(" ")
    b.compose(["ㅁ", "무", "문"], "문")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.keyboard.insert_text("| 나라 | 수도 |\n|---|---|\n| 한국 | 서울 |\n")
    expected = "안녕\n세계 문\n\n| 나라 | 수도 |\n|---|---|\n| 한국 | 서울 |\n"
    assert page.input_value("#body") == expected
    # A composition at the very start of a line that already has text.
    page.evaluate("() => { const t = document.getElementById('body'); t.setSelectionRange(3, 3); }")
    b.compose(["ㄷ", "다"], "다")
    expected = "안녕\n다세계 문\n\n| 나라 | 수도 |\n|---|---|\n| 한국 | 서울 |\n"
    assert page.input_value("#body") == expected
    # The live preview follows (debounced): page, email and feed entry.
    page.frame_locator("#preview").locator("iframe[title='블로그 페이지']").wait_for()
    inner = page.frame_locator("#preview").frame_locator("iframe[title='블로그 페이지']")
    inner.locator("table").wait_for()
    assert "서울" in inner.locator("table").inner_text()
    assert "한글 표" in inner.locator("h1").first.inner_text()
    email = page.frame_locator("#preview").frame_locator("iframe[title='이메일']")
    assert "다세계 문" in email.locator("body").inner_text()
    assert "<entry" in page.frame_locator("#preview").locator("pre").first.inner_text()
    b.shot("edit-new-with-preview")
    # An image, chosen with the file picker (paste and drop use the same upload), at the end.
    page.evaluate(
        "() => { const t = document.getElementById('body'); t.setSelectionRange(t.value.length, t.value.length); }"
    )
    page.set_input_files(
        "#image-file",
        files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps()}],
    )
    page.wait_for_function(
        "() => document.getElementById('upload-status').textContent === '이미지를 넣었습니다.'"
    )
    assert '<img src="http://127.0.0.1:' in page.input_value("#body")
    # Schedule it for tomorrow morning.
    page.fill("input[name=date]", "2025-06-21 07:30")
    with page.expect_navigation():
        page.click("button[value=schedule]")
    assert "2025-06-21 07:30에 공개되도록 예약했습니다" in page.inner_text("p.notice")
    b.shot("edit-scheduled")
    saved = (room.root / "posts/2025-06-21-hangul-table.md").read_text(encoding="utf-8")
    assert "title: 한글 표\n" in saved and "date: 2025-06-21 07:30\n" in saved
    assert "안녕\n다세계 문\n\n| 나라 | 수도 |\n|---|---|\n| 한국 | 서울 |\n" in saved
    assert "draft:" not in saved
    # A reader problem, shown by its field.
    page.fill("input[name=date]", "2025-02-30 07:30")
    with page.expect_navigation():
        page.click("button[value=save]")
    assert "is not a real date or time" in page.inner_text("#errors-date")
    b.shot("edit-problem-by-field")
    # Changed on disk meanwhile: never overwritten, both versions shown.
    page.goto(base + "edit/2025-06-21-hangul-table.md")
    path = room.root / "posts/2025-06-21-hangul-table.md"
    path.write_text(saved.replace("서울", "세종"), encoding="utf-8")
    page.fill("#body", "내 버전\n")
    with page.expect_navigation():
        page.click("button[value=save]")
    assert "세종" in page.input_value("#disk-version")
    assert "세종" in path.read_text(encoding="utf-8")
    b.shot("edit-conflict")
    page.goto(base)
    assert "공개 예정" in page.inner_text("table.posts")
    b.shot("list-with-scheduled")
    page.goto(base + "audit")
    assert "schedule" in page.inner_text("table.posts")
    b.shot("audit")
    page.goto(base + "edit/2025-06-12-two.md")
    with page.expect_navigation():
        page.click("button[value=delete]")
    page.goto(base + "trash")
    assert "2025-06-12-two.md" in page.inner_text("table.posts")
    b.shot("trash")
    assert b.csp == []


def phone(b: Browser, room: Room, base: str) -> None:
    page = b.page
    b.sign_in(base)
    page.goto(base + "edit/2025-06-10-one.md")
    page.frame_locator("#preview").frame_locator("iframe[title='블로그 페이지']").locator(
        "h1"
    ).first.wait_for()
    b.shot("edit-with-preview")
    page.focus("#body")
    page.keyboard.press("Control+End")
    b.compose(["ㄲ", "끝"], "끝")
    assert page.input_value("#body").endswith("끝")
    page.goto(base + "new")
    b.shot("new")
    page.goto(base + "audit")
    b.shot("audit")
    page.goto(base + "trash")
    b.shot("trash")
    assert b.csp == []
