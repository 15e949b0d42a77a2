"""The whole subscription loop in a real browser: Chromium driven by Playwright.

The real service, as ``publisher serve`` runs it: the blog built by
PreviewServer with the subscription app mounted beside it
(``cli_web.preview_routes``), served by uvicorn on a free loopback port. Mail
goes by SMTP to the aiosmtpd sink; the newsletter is sent by publisher.deliver.sender.
A visitor signs up from an article, confirms from the mail, gets an issue,
changes preferences and unsubscribes from the mail's link; a second reader is
unsubscribed by the RFC 8058 one-click POST a mail provider would send to the
``List-Unsubscribe`` URL. Every page is saved to ``test-artifacts/``, and no
page may trip its Content-Security-Policy.
"""

from __future__ import annotations

import email
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import write_config, write_post
from conftest import IN_CI, REPO
from live_server import Server
from publisher.cli.web import preview_routes
from publisher.config import Config, load_config
from publisher.deliver.sender import MessageComposer, SendPolicy, new_issue, send_issue
from publisher.deliver.tokens import make_signer
from publisher.deliver.transports import transport_factory
from publisher.preview.server import PreviewServer
from publisher.publish.build import load_site
from publisher.publish.newsletter import render_post_issue
from publisher.publish.site import post_path
from publisher.store import Store, SubscriberStatus, utc_now
from smtp_sink import SmtpSink, free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def site(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[tuple[Config, str]]:
    """A two-post site whose base_url is the loopback server, mailing to the sink."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/"
    write_config(
        tmp_path,
        site={"base_url": base_url},
        newsletter={"transport": "smtp"},
        smtp={"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"},
        database={"url": "sqlite:///publisher.db"},
    )
    write_post(tmp_path, "one.md", title="첫 글", date="2025-06-10 09:00", category="세계")
    write_post(tmp_path, "two.md", title="둘째 글", date="2025-06-12 09:00", category="기술")
    yield load_config(tmp_path), base_url


def test_signup_confirm_newsletter_preferences_and_unsubscribe_in_chromium(
    site: tuple[Config, str], smtp_sink: SmtpSink
):
    _require_chromium()
    from playwright.sync_api import sync_playwright

    config, base_url = site
    shutil.rmtree(ARTIFACTS / "browser", ignore_errors=True)
    (ARTIFACTS / "browser").mkdir(parents=True)
    routes, close_web = preview_routes(config)
    preview = PreviewServer(
        config, drafts=False, live_reload="", log=lambda _m: None, routes=routes
    )
    preview.rebuild()
    store = Store.open(config.database_url)
    try:
        port = int(base_url.rsplit(":", 1)[1].strip("/"))
        with Server(preview.app(), port), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                flow = Flow(browser.new_page(locale="ko-KR"), config, store, smtp_sink)
                flow.run(base_url)
            finally:
                browser.close()
    finally:
        store.close()
        close_web()
        preview.stop()


class Flow:
    """The steps of the browser test, one method each; screenshots numbered in order."""

    def __init__(self, page: Any, config: Config, store: Store, sink: SmtpSink) -> None:
        self.page = page
        self.config = config
        self.store = store
        self.sink = sink
        self.shots = 0
        self.csp_violations: list[str] = []
        page.set_default_timeout(10_000)
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    def run(self, base_url: str) -> None:
        reader, second = "reader@example.com", "second@example.com"
        self.signup(base_url + post_path(self.post("one")), reader, "세계")
        self.confirm(reader)
        mail = self.send_issue("one", reader)
        self.preferences(mail)
        self.unsubscribe_in_browser(mail, reader)
        self.signup(base_url, second, "기술")  # from the home page; post "two" is 기술
        self.confirm(second)
        self.one_click(self.send_issue("two", second), second)
        self.archive()
        assert self.csp_violations == []

    # steps ------------------------------------------------------------------------------------

    def signup(self, url: str, address: str, category: str) -> None:
        self.page.goto(url)
        self.shot(f"page {address}")
        self.page.fill("#signup-email", address)
        self.page.check(f"form.signup input[name=categories][value='{category}']")
        with self.page.expect_navigation():
            self.page.click("form.signup button[type=submit]")
        assert self.heading() == "메일함을 확인해 주세요"
        self.shot(f"signup accepted {address}")
        assert self.status(address) == SubscriberStatus.PENDING

    def confirm(self, address: str) -> None:
        link = self.link(self.wait_for_mail(address, "구독 확인"), "confirm")
        self.page.goto(link)
        assert self.heading() == "구독 확인"
        self.shot(f"confirm page {address}")
        assert self.status(address) == SubscriberStatus.PENDING  # opening it changed nothing
        with self.page.expect_navigation():
            self.page.click("form.signup button[type=submit]")
        assert self.heading() == "구독이 확인되었습니다"
        self.shot(f"confirmed {address}")
        assert self.status(address) == SubscriberStatus.ACTIVE

    def send_issue(self, slug: str, address: str) -> EmailMessage:
        site, _warnings = load_site(self.config, datetime.now(UTC))
        post = self.post(slug)
        issue, _ = self.store.create_issue(new_issue(render_post_issue(site, post), (post,)))
        signer = make_signer(self.config, self.store, utc_now)
        report = send_issue(
            self.store,
            issue.id,
            transport_factory(self.config),
            MessageComposer(self.config, signer, utc_now),
            SendPolicy.from_config(self.config),
            clock=utc_now,
        )
        assert report.stop is None and report.sent == 1, report
        mail = self.wait_for_mail(address, post.title)
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        return mail

    def preferences(self, mail: EmailMessage) -> None:
        self.page.goto(self.link(mail, "preferences"))
        assert self.heading() == "구독 설정"
        self.shot("preferences")
        self.page.check("input[name=categories][value='기술']")
        with self.page.expect_navigation():
            self.page.click("button[value=save]")
        assert "설정을 저장했습니다" in self.page.content()
        self.shot("preferences saved")

    def unsubscribe_in_browser(self, mail: EmailMessage, address: str) -> None:
        self.page.goto(self.link(mail, "unsubscribe"))
        assert self.heading() == "구독 해지"
        self.shot("unsubscribe page")
        assert self.status(address) == SubscriberStatus.ACTIVE
        with self.page.expect_navigation():
            self.page.click("form.signup button[type=submit]")
        assert self.heading() == "구독이 해지되었습니다"
        self.shot("unsubscribed")
        assert self.status(address) == SubscriberStatus.UNSUBSCRIBED

    def one_click(self, mail: EmailMessage, address: str) -> None:
        """RFC 8058: the provider POSTs to the header's URL, no cookie, no redirect."""
        header = str(mail["List-Unsubscribe"])
        url = re.fullmatch(r"<(http://127\.0\.0\.1:\d+/newsletter/unsubscribe/[^>]+)>", header)
        assert url is not None, header
        response = httpx.post(
            url[1],
            content="List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert response.status_code == 200
        assert self.status(address) == SubscriberStatus.UNSUBSCRIBED

    def archive(self) -> None:
        self.page.goto(self.config.web_base_url + "archive/")
        assert self.heading() == "지난 뉴스레터"
        self.shot("archive")
        # A valid HTML datetime: seconds at most, never microseconds (issue 8, item 20).
        stamps = self.page.eval_on_selector_all(
            "ul.post-list time", "els => els.map(e => e.getAttribute('datetime'))"
        )
        assert stamps and all(
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", s) for s in stamps
        ), stamps
        with self.page.expect_navigation():
            self.page.click("ul.post-list a >> nth=0")
        html = self.page.content()
        assert "/unsubscribe/" not in html and "/preferences/" not in html  # S18
        self.shot("archived issue")

    # helpers ----------------------------------------------------------------------------------

    def post(self, slug: str) -> Any:
        site, _warnings = load_site(self.config, datetime.now(UTC))
        return next(p for p in site.posts if p.slug == slug)

    def heading(self) -> str:
        return str(self.page.inner_text("main h1")).strip()

    def status(self, address: str) -> SubscriberStatus | None:
        found = self.store.find_subscriber(address)
        return None if found is None else found.status

    def shot(self, name: str) -> None:
        self.shots += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        self.page.screenshot(
            path=ARTIFACTS / "browser" / f"{self.shots:02d}-{slug}.png", full_page=True
        )

    def wait_for_mail(self, address: str, subject_part: str) -> EmailMessage:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for received in self.sink.received:
                message = email.message_from_bytes(received.data, policy=policy.default)
                if address in received.rcpt_tos and subject_part in str(message["Subject"]):
                    assert isinstance(message, EmailMessage)
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no mail to {address} about {subject_part!r}")

    def link(self, mail: EmailMessage, kind: str) -> str:
        text = mail.get_body(preferencelist=("plain",))
        assert text is not None
        pattern = re.escape(self.config.web_base_url) + kind + r"/[A-Za-z0-9_-]+"
        found = re.search(pattern, text.get_content())
        assert found is not None, f"no {kind} link in the mail"
        return found[0]


# --- the built site opened from disk (issue 8, items 16 and 20) ---------------------------------


@pytest.fixture
def sample_build(tmp_path: Path) -> Path:
    """The sample site (this checkout's config.toml and posts/) built into ``tmp/public``."""
    from publisher.publish.build import build

    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(REPO / "posts", tmp_path / "posts")
    output = tmp_path / "public"
    build(load_config(tmp_path, env={}), datetime.now(UTC), output=output)
    return output


def _local_file(url: str) -> Path | None:
    """The file a file:// URL names (without fragment), or None for any other URL."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def test_every_relative_link_of_every_page_names_an_existing_file(sample_build: Path):
    """All pages, parsed: every href/src that is not absolute resolves to a file (not a folder)."""
    import lxml.html

    pages = sorted(sample_build.rglob("*.html"))
    assert len(pages) > 20
    checked = 0
    for page in pages:
        doc = lxml.html.document_fromstring(page.read_bytes())
        doc.make_links_absolute(page.resolve().as_uri())
        for _element, attribute, link, _pos in doc.iterlinks():
            target = _local_file(link)
            if attribute not in ("href", "src") or target is None:
                continue
            assert target.is_file(), f"{page.relative_to(sample_build)}: {link} is not a file"
            checked += 1
    assert checked > 500


def test_public_folder_opened_from_disk_is_styled_and_complete_in_chromium(sample_build: Path):
    _require_chromium()
    from playwright.sync_api import sync_playwright

    shots = ARTIFACTS / "pages"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    home = (sample_build / "index.html").as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            failed: list[str] = []
            # A load cut short by the next navigation (ERR_ABORTED, often the favicon on a
            # busy machine) is not a missing file; a missing one is ERR_FILE_NOT_FOUND.
            page.on(
                "requestfailed",
                lambda request: (
                    None
                    if request.failure == "net::ERR_ABORTED"
                    else failed.append(f"{request.url}: {request.failure}")
                ),
            )
            page.goto(home)
            page.screenshot(path=shots / "01-home-from-file.png", full_page=True)
            _assert_styled(page)
            assert page.inner_text("main h1") == "최근 글"
            # Internal links go to the pages themselves, from disk: follow one of each kind.
            page.click("ul.post-list h2 a >> nth=0")
            assert page.url.endswith("/index.html") and page.url.startswith("file://")
            _assert_styled(page)
            page.screenshot(path=shots / "02-post-from-file.png", full_page=True)
            page.click("nav[aria-label='카테고리'] a >> text=세계")
            assert page.get_attribute(
                "nav[aria-label='카테고리'] a >> text=세계", "aria-current"
            ) == ("page")
            _assert_styled(page)
            page.goto((sample_build / "page" / "2" / "index.html").as_uri())
            assert page.inner_text("main h1").startswith("최근 글")
            page.click("a[rel=prev]")
            assert _local_file(page.url) == sample_build / "index.html"
            _english_post(page, sample_build, shots)
            assert failed == []  # favicon, stylesheets, every resource loaded from disk
        finally:
            browser.close()


def _assert_styled(page: Any) -> None:
    """style.css applied: main is the 42rem measure and the header has its border."""
    main = page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth")
    border = page.evaluate(
        "getComputedStyle(document.querySelector('.site-header')).borderBottomStyle"
    )
    assert (main, border) == ("672px", "solid"), page.url
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    target = _local_file(icon)
    assert target is not None and target.name == "favicon.svg" and target.is_file()


def _english_post(page: Any, public: Path, shots: Path) -> None:
    """lang follows front matter; Latin text is not set in DejaVu; no code, no code stylesheet."""
    page.goto((public / "posts" / "about-in-english" / "index.html").as_uri())
    assert page.get_attribute("html", "lang") == "en"
    assert page.get_attribute(".site-header", "lang") == "ko"
    assert page.locator("link[href$='pygments.css']").count() == 0
    session = page.context.new_cdp_session(page)
    session.send("DOM.enable")
    session.send("CSS.enable")
    root = session.send("DOM.getDocument")["root"]["nodeId"]
    node = session.send("DOM.querySelector", {"nodeId": root, "selector": ".post-body p"})
    fonts = session.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
    families = [font["familyName"] for font in fonts]
    assert families and not any("DejaVu" in f for f in families), families
    page.screenshot(path=shots / "03-english-post.png", full_page=True)
    page.goto((public / "posts" / "defense-spending-gdp" / "index.html").as_uri())
    assert page.locator("link[href$='pygments.css']").count() == 1


# --- the newsletter in a browser (issue 8, items 21 and 23) -------------------------------------


def _sample_issue_html() -> str:
    """The seed article's email (it has a table), personalised as a subscriber gets it."""
    from publisher.publish.newsletter import personalize

    config = load_config(REPO, env={})
    site, _warnings = load_site(config, datetime.now(UTC))
    post = next(p for p in site.posts if p.slug == "us-china-tech-gap")
    html, _text = personalize(
        render_post_issue(site, post),
        unsubscribe_url="https://blog.example.com/newsletter/unsubscribe/x",
        preferences_url="https://blog.example.com/newsletter/preferences/x",
    )
    return html


def test_email_fits_a_phone_when_the_client_strips_style(tmp_path: Path):
    """A 375 px phone, <style> removed (as some clients do): no sideways scroll, text ≥ 14px."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    stripped = re.sub(r"<style\b.*?</style>", "", _sample_issue_html(), flags=re.DOTALL)
    assert "<style" not in stripped
    (ARTIFACTS / "email").mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 375, "height": 800}, is_mobile=True)
            page.set_content(stripped)
            page.screenshot(path=ARTIFACTS / "email" / "phone-375-no-style.png", full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            sizes = page.evaluate(
                "[...document.querySelectorAll('.article p, .article li')]"
                ".map(e => parseFloat(getComputedStyle(e).fontSize))"
            )
            scale = page.evaluate("window.visualViewport.scale")
        finally:
            browser.close()
    assert width <= 375, f"the email is {width}px wide on a 375px screen"
    assert sizes and min(sizes) * scale >= 14, (min(sizes), scale)


def test_email_tables_have_dark_borders_in_dark_mode(tmp_path: Path):
    _require_chromium()
    from playwright.sync_api import sync_playwright

    (ARTIFACTS / "email").mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 700, "height": 900}, color_scheme="dark")
            page.set_content(_sample_issue_html())
            page.screenshot(path=ARTIFACTS / "email" / "dark-mode.png", full_page=True)
            borders = page.evaluate(
                "[...document.querySelectorAll('.article td, .article th')]"
                ".map(e => getComputedStyle(e).borderTopColor)"
            )
            background = page.evaluate(
                "getComputedStyle(document.querySelector('.container')).backgroundColor"
            )
        finally:
            browser.close()
    assert borders
    for colour in {*borders, background}:
        red, green, blue = (int(n) for n in re.findall(r"\d+", colour)[:3])
        assert max(red, green, blue) < 80, f"{colour} is not a dark-mode colour"
