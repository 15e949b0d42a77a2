"""Newsletter rendering: CSS inlining (D11-D13), placeholders, plain text (R7), checks (R6, D10)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import logging
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cssutils
import lxml.html
import pytest

from builders import SEOUL, make_config, make_post
from publisher.publish import markup
from publisher.publish.content import Post
from publisher.publish.newsletter import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    NewsletterError,
    RenderedIssue,
    check_issue,
    html_to_text,
    issue_digest,
    personalize,
    render_digest_issue,
    render_post_issue,
)
from publisher.publish.site import Site, build_site
from publisher.publish.templating import DEFAULT_TEMPLATES

NOW = datetime(2025, 7, 1, 9, 0, tzinfo=SEOUL)
UNSUBSCRIBE = 'https://blog.example.com/newsletter/unsubscribe/tok?a=1&b="x"'
PREFERENCES = "https://blog.example.com/newsletter/preferences/tok?a=1&b=2"

RICH_BODY = (
    "<h1>큰 제목</h1>"
    '<p>첫 문단에는 <a href="../other/">상대 링크</a>와 <strong>강조</strong>가 있습니다.</p>'
    '<h2 id="s">소제목</h2><h3>셋째</h3><h4>넷째</h4>'
    '<p><a href="https://example.org/">https://example.org/</a></p>'
    "<ul><li>사과</li><li>배<ul><li>작은 배</li></ul></li></ul>"
    '<ol start="3"><li>셋</li><li>넷</li></ol>'
    "<table><thead><tr><th>이름</th><th>값</th></tr></thead>"
    "<tbody><tr><td>가</td><td>1</td></tr></tbody></table>"
    "<blockquote><p>인용문입니다.</p></blockquote>"
    "<pre><code>print(1)\n    indent</code></pre>"
    '<p><img src="/images/a.png"> <img src="b.png" title="제목 있는 그림">'
    ' <img src="c.png" alt="대체 글"><br>둘째 줄</p>'
    "<hr>"
)


def category_posts(count: int = 4, **overrides: Any) -> list[Post]:
    """``count`` posts in category 세계, one day apart, p0 the oldest."""
    start = datetime(2025, 6, 10, 9, 0, tzinfo=SEOUL)
    return [
        make_post(
            slug=f"p{i}",
            source=f"posts/p{i}.md",
            title=f"세계 소식 {i}",
            date=start + timedelta(days=i),
            summary=f"{i}번째 글의 요약입니다.",
            **overrides,
        )
        for i in range(count)
    ]


def site_with(tmp_path: Path, posts: list[Post] | None = None, **config: dict[str, Any]) -> Site:
    return build_site(make_config(tmp_path, **config), posts or category_posts(), NOW)


def issue_for(tmp_path: Path, slug: str = "p1", **config: dict[str, Any]) -> RenderedIssue:
    site = site_with(tmp_path, category_posts(body_html=RICH_BODY), **config)
    return render_post_issue(site, next(p for p in site.posts if p.slug == slug))


def document(html: str) -> Any:
    return lxml.html.document_fromstring(html)


def override(tmp_path: Path, name: str, text: str) -> None:
    """Write a site template that shadows the default theme's (templating search path)."""
    path = tmp_path / "templates" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- the issue -----------------------------------------------------------------------


def test_post_issue_carries_key_subject_preheader_and_digest(tmp_path: Path) -> None:
    issue = issue_for(tmp_path)
    assert issue.key == "post:p1"
    assert issue.subject == "세계 소식 1"
    assert issue.preheader == "1번째 글의 요약입니다."
    assert issue.digest == issue_digest(issue.html, issue.text)
    expected = hashlib.sha256(issue.html.encode() + b"\x00" + issue.text.encode()).hexdigest()
    assert issue.digest == expected


def test_issue_holds_title_article_blog_link_and_site_name(tmp_path: Path) -> None:
    issue = issue_for(tmp_path)
    page = document(issue.html)
    assert page.findtext(".//title") == "세계 소식 1"
    assert page.cssselect("h1.title a")[0].get("href") == "https://blog.example.com/posts/p1/"
    assert "첫 문단에는" in page.cssselect(".article")[0].text_content()
    buttons = [a.get("href") for a in page.cssselect("a.button")]
    assert buttons == ["https://blog.example.com/posts/p1/"]
    assert page.cssselect(".masthead a")[0].text_content() == "테스트 블로그"
    preheader = page.cssselect(".preheader")[0]
    assert preheader.text_content().startswith("1번째 글의 요약입니다.")


def test_summary_mode_sends_the_summary_not_the_article(tmp_path: Path) -> None:
    issue = issue_for(tmp_path, newsletter={"content": "summary"})
    page = document(issue.html)
    assert not page.cssselect(".article")
    assert page.cssselect("p.summary")[0].text_content() == "1번째 글의 요약입니다."
    assert "첫 문단에는" not in issue.text


def test_titles_are_escaped_and_never_compiled_B3_B4(tmp_path: Path) -> None:
    post = make_post(slug="x", title="<script>alert(1)</script> {{ 7*7 }}")
    issue = render_post_issue(site_with(tmp_path, [post]), post)
    page = document(issue.html)
    assert not page.cssselect("script")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }}" in issue.html
    assert "<script>alert(1)</script> {{ 7*7 }}" in issue.text


def test_related_category_list_matches_the_blog(tmp_path: Path) -> None:
    site = site_with(tmp_path, category_posts(5))
    post = next(p for p in site.posts if p.slug == "p2")
    page = document(render_post_issue(site, post).html)
    related = site.related["p2"]
    heading = page.cssselect(".related-heading a")[0]
    assert heading.text_content() == "'세계' 카테고리의 다른 글"
    assert heading.get("href") == site.url(related.category_url)
    items = page.cssselect(".related-item")
    assert [li.text_content().split(" 20")[0] for li in items] == [i.title for i in related.items]
    for li, item in zip(items, related.items, strict=True):
        assert item.date.strftime("%Y.%m.%d") in li.text_content()
        links = li.cssselect("a")
        if item.current:
            assert li.get("aria-current") == "true" and not links
            assert "(지금 읽는 글)" in li.text_content()
        else:
            assert links[0].get("href") == site.url(item.url)


def test_related_list_reaches_the_plain_text(tmp_path: Path) -> None:
    site = site_with(tmp_path, category_posts(3))
    text = render_post_issue(site, site.posts[1]).text
    assert "'세계' 카테고리의 다른 글" in text
    assert "- 세계 소식 2 (https://blog.example.com/posts/p2/) 2025.06.12" in text
    assert "- 세계 소식 1 2025.06.11 (지금 읽는 글)" in text


def test_post_without_related_list_renders_without_the_block(tmp_path: Path) -> None:
    post = make_post(slug="alone", category=None)
    page = document(render_post_issue(site_with(tmp_path, [post]), post).html)
    assert not page.cssselect(".related")


def test_every_url_is_absolute(tmp_path: Path) -> None:
    page = document(issue_for(tmp_path).html)
    urls = [el.get(attr) for attr in ("href", "src") for el in page.xpath(f"//*[@{attr}]")]
    assert urls
    placeholders = {UNSUBSCRIBE_PLACEHOLDER, PREFERENCES_PLACEHOLDER}
    assert [
        u for u in urls if not u.startswith(("https://", "mailto:")) and u not in placeholders
    ] == []
    hrefs = [a.get("href") for a in page.cssselect(".article a")]
    assert "https://blog.example.com/posts/other/" in hrefs  # "../other/" from posts/p1/
    assert page.cssselect(".article img")[0].get("src") == "https://blog.example.com/images/a.png"


def test_relative_url_in_a_template_fails_the_render(tmp_path: Path) -> None:
    override(
        tmp_path,
        "email/issue.html",
        '{% extends "email/base.html" %}{% block main %}'
        '<tr><td><a href="/about/">about</a></td></tr>{% endblock %}',
    )
    with pytest.raises(NewsletterError) as caught:
        issue_for(tmp_path)
    assert "relative URL '/about/' in <a href>" in str(caught.value)
    assert str(tmp_path / "templates" / "email" / "issue.html") in str(caught.value)


def test_images_keep_their_alt_or_get_one(tmp_path: Path) -> None:
    images = document(issue_for(tmp_path).html).cssselect(".article img")
    assert [img.get("alt") for img in images] == ["", "제목 있는 그림", "대체 글"]


def test_korean_typography_on_the_outer_elements(tmp_path: Path) -> None:
    page = document(issue_for(tmp_path).html)
    for element in (page.find("body"), page.cssselect("table.wrapper")[0]):
        assert "word-break:keep-all" in element.get("style")


def test_digest_lists_posts_newest_first(tmp_path: Path) -> None:
    site = site_with(tmp_path, category_posts(3), newsletter={"content": "summary"})
    issue = render_digest_issue(site, list(site.posts)[::-1], "2025-W27", "이번 주의 글")
    assert issue.key == "digest:2025-W27"
    assert issue.subject == "이번 주의 글"
    assert issue.preheader == "세계 소식 2 · 세계 소식 1 · 세계 소식 0"
    page = document(issue.html)
    assert page.cssselect("h1.title")[0].text_content() == "이번 주의 글"
    titles = [h.text_content() for h in page.cssselect("h2.entry-title")]
    assert titles == ["세계 소식 2", "세계 소식 1", "세계 소식 0"]
    assert page.cssselect("p.summary")[0].text_content() == "2번째 글의 요약입니다."
    assert not page.cssselect(".related")
    assert render_digest_issue(site, site.posts, "digest:2025-W27", "t").key == "digest:2025-W27"


def test_digest_needs_a_post(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one post"):
        render_digest_issue(site_with(tmp_path), [], "2025-W27", "t")


# --- CSS inlining (L7, D11-D13) ---------------------------------------------------------


def rule_selectors() -> list[tuple[str, list[str]]]:
    """(selector, property names) of every plain rule of the default email.css."""
    css = (DEFAULT_TEMPLATES / "email" / "email.css").read_text(encoding="utf-8")
    sheet = cssutils.CSSParser(validate=False).parseString(css)
    rules = []
    for rule in sheet:
        if rule.type == rule.STYLE_RULE:
            names = [prop.name for prop in rule.style.getProperties()]
            rules += [(s.strip(), names) for s in rule.selectorText.split(",")]
    return rules


def declared(element: Any) -> set[str]:
    style = element.get("style") or ""
    return {part.split(":", 1)[0].strip() for part in style.split(";") if ":" in part}


def test_every_css_rule_is_inlined_D11(tmp_path: Path) -> None:
    full = issue_for(tmp_path / "full")
    site = site_with(tmp_path / "digest", newsletter={"content": "summary"})
    digest = render_digest_issue(site, site.posts, "w", "다이제스트")
    pages = [document(full.html), document(digest.html)]
    for selector, names in rule_selectors():
        matched = [el for page in pages for el in page.cssselect(selector)]
        assert matched, f"{selector} styles nothing in the rendered issues"
        for element in matched:
            assert set(names) <= declared(element), (selector, element.get("style"))


def test_media_rules_keep_important_in_a_style_block_L7(tmp_path: Path) -> None:
    page = document(issue_for(tmp_path).html)
    styles = page.cssselect("head style")
    assert len(styles) == 1
    css = styles[0].text
    assert "@media (prefers-color-scheme: dark)" in css
    assert "@media screen and (max-width: 600px)" in css
    assert "padding-left: 16px !important" in css
    assert "color: #e6edf3 !important" in css
    # premailer #150: an inlined !important rule keeps its !important.
    assert "display:none !important" in page.cssselect(".preheader")[0].get("style")
    assert not [el for el in page.iter() if "@media" in (el.get("style") or "")]


def test_highlighted_code_gets_inline_colours(tmp_path: Path) -> None:
    body = markup.render_tokens(markup.parse("```python\nanswer = 42\n```\n"))
    post = make_post(slug="code", body_html=body)
    page = document(render_post_issue(site_with(tmp_path, [post]), post).html)
    number = page.cssselect(".highlight span.mi")[0]  # Pygments' class for a number literal
    assert "color" in declared(number)
    assert "@media (prefers-color-scheme: dark)" in page.cssselect("head style")[0].text


@pytest.fixture
def http_recorder() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every request path (RELIABILITY 3.0)."""
    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.end_headers()
            self.wfile.write(b"p { color: red }")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    with urllib.request.urlopen(f"{base}/probe", timeout=5) as response:  # the recorder works
        response.read()
    assert seen == ["/probe"]
    seen.clear()
    try:
        yield base, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_link_stylesheet_is_never_fetched_D12(
    tmp_path: Path, http_recorder: tuple[str, list[str]]
) -> None:
    base, seen = http_recorder
    override(
        tmp_path,
        "email/issue.html",
        '{% extends "email/base.html" %}{% block head %}'
        f'<link rel="stylesheet" href="{base}/x.css">{{% endblock %}}',
    )
    with pytest.raises(NewsletterError) as caught:
        issue_for(tmp_path)
    assert f"<link href='{base}/x.css'> is not allowed in emails" in str(caught.value)
    assert seen == []


@pytest.mark.parametrize("where", ["template <style>", "site email.css"])
def test_css_import_is_never_fetched_D12(
    tmp_path: Path, http_recorder: tuple[str, list[str]], where: str
) -> None:
    base, seen = http_recorder
    rule = f'@import url("{base}/imported.css");\np {{ color: #333 }}\n'
    if where == "site email.css":
        css = (DEFAULT_TEMPLATES / "email" / "email.css").read_text(encoding="utf-8")
        override(tmp_path, "email/email.css", rule + css)
        source = tmp_path / "templates" / "email" / "email.css"
    else:
        override(
            tmp_path,
            "email/issue.html",
            '{% extends "email/base.html" %}'
            f"{{% block head %}}<style>{rule}</style>{{% endblock %}}",
        )
        source = tmp_path / "templates" / "email" / "issue.html"
    with pytest.raises(NewsletterError) as caught:
        issue_for(tmp_path)
    assert f"{source}: CSS @import of {base}/imported.css refused" in str(caught.value)
    assert seen == []


def test_css_error_fails_the_render_and_names_the_stylesheet_D11(tmp_path: Path) -> None:
    css = (DEFAULT_TEMPLATES / "email" / "email.css").read_text(encoding="utf-8")
    override(tmp_path, "email/email.css", css + "\n.broken { color: }\n.typo { width: 12pxx }\n")
    with pytest.raises(NewsletterError) as caught:
        issue_for(tmp_path)
    message = str(caught.value)
    source = tmp_path / "templates" / "email" / "email.css"
    assert f"{source}: CSS error: PropertyValue: Unknown syntax or no value" in message
    assert f'{source}: CSS error: Property: Invalid value for "CSS Level 2.1" property: 12pxx' in (
        message
    )


def test_css_error_in_a_template_style_names_the_template_D11(tmp_path: Path) -> None:
    override(
        tmp_path,
        "email/issue.html",
        '{% extends "email/base.html" %}{% block head %}<style>p { width: 12pxx }</style>'
        "{% endblock %}",
    )
    with pytest.raises(NewsletterError) as caught:
        issue_for(tmp_path)
    source = tmp_path / "templates" / "email" / "issue.html"
    assert f'{source}: CSS error: Property: Invalid value for "CSS Level 2.1" property: 12pxx' in (
        str(caught.value)
    )


def test_cssutils_logging_is_restored_after_inlining(tmp_path: Path) -> None:
    logger = logging.getLogger("CSSUTILS")
    before = (list(logger.handlers), logger.level, logger.propagate)
    issue_for(tmp_path)
    assert (list(logger.handlers), logger.level, logger.propagate) == before


def test_output_is_deterministic(tmp_path: Path) -> None:
    first, second = issue_for(tmp_path), issue_for(tmp_path)
    assert first == second


RENDER_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from test_newsletter import issue_for
print(issue_for(Path(sys.argv[2])).digest)
"""


def test_output_does_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    """premailer iterates a set() when merging styles; sets of str vary with PYTHONHASHSEED."""
    tests = str(Path(__file__).parent)
    digests = {
        subprocess.run(
            [sys.executable, "-c", RENDER_SCRIPT, tests, str(tmp_path)],
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert digests == {issue_for(tmp_path).digest}


# --- personalisation (D13, B7) ------------------------------------------------------------


def test_personalize_substitutes_escaped_values(tmp_path: Path) -> None:
    issue = issue_for(tmp_path)
    html, text = personalize(issue, unsubscribe_url=UNSUBSCRIBE, preferences_url=PREFERENCES)
    assert UNSUBSCRIBE_PLACEHOLDER not in html + text
    assert PREFERENCES_PLACEHOLDER not in html + text
    assert 'href="https://blog.example.com/newsletter/unsubscribe/tok?a=1&amp;b=&quot;x&quot;"' in (
        html
    )
    links = {
        a.text_content(): a.get("href")
        for a in document(html).cssselect(".footer a")
        if not a.get("href").startswith("mailto:")  # the sender's address
    }
    assert links == {"구독 해지": UNSUBSCRIBE, "구독 설정 변경": PREFERENCES}
    assert f"구독 해지 ({UNSUBSCRIBE})" in text
    assert PREFERENCES in text


def test_unsubscribe_link_is_in_both_parts_D10(tmp_path: Path) -> None:
    issue = issue_for(tmp_path)
    assert UNSUBSCRIBE_PLACEHOLDER in issue.html and UNSUBSCRIBE_PLACEHOLDER in issue.text
    html, text = personalize(issue, unsubscribe_url=UNSUBSCRIBE, preferences_url=PREFERENCES)
    assert UNSUBSCRIBE in text
    assert UNSUBSCRIBE in [a.get("href") for a in document(html).iter("a")]


def test_personalize_leaves_a_value_that_looks_like_the_other_placeholder(tmp_path: Path) -> None:
    issue = issue_for(tmp_path)
    sneaky = f"https://blog.example.com/newsletter/unsubscribe/{PREFERENCES_PLACEHOLDER}"
    _, text = personalize(issue, unsubscribe_url=sneaky, preferences_url=PREFERENCES)
    assert sneaky in text


@pytest.mark.parametrize("bad", ["https://x.test/a b", "https://x.test/\r\nBcc: x", "/relative"])
def test_personalize_rejects_urls_that_are_not_urls(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="unsubscribe_url must be an absolute http"):
        personalize(issue_for(tmp_path), unsubscribe_url=bad, preferences_url=PREFERENCES)


# --- checks (R6, D10) --------------------------------------------------------------------


def test_check_issue_is_quiet_for_a_normal_issue(tmp_path: Path) -> None:
    issue = issue_for(tmp_path)
    assert check_issue(issue, make_config(tmp_path)) == []


def test_check_issue_warns_when_gmail_would_clip_R6(tmp_path: Path) -> None:
    big = "<p>" + "가나다라마바사 " * 2000 + "</p>"
    config = make_config(tmp_path, newsletter={"max_html_bytes": 20_000})
    site = build_site(config, [make_post(body_html=big)], NOW)
    warnings = check_issue(render_post_issue(site, site.posts[0]), config)
    assert len(warnings) == 1
    assert warnings[0].startswith("post:sample: the HTML part is ")
    assert "over [newsletter].max_html_bytes = 20,000" in warnings[0]
    assert "Gmail clips" in warnings[0]


def test_check_issue_warns_without_unsubscribe_link_D10(tmp_path: Path) -> None:
    issue = issue_for(tmp_path)
    broken = dataclasses.replace(
        issue,
        html=issue.html.replace(UNSUBSCRIBE_PLACEHOLDER, "https://x.test/"),
        text=issue.text.replace(UNSUBSCRIBE_PLACEHOLDER, "https://x.test/"),
    )
    warnings = check_issue(broken, make_config(tmp_path))
    assert [w.split(";")[0] for w in warnings] == [
        "post:p1: the HTML part has no unsubscribe link",
        "post:p1: the plain-text part has no unsubscribe link",
    ]


# --- plain text (R7) -----------------------------------------------------------------------


def test_plain_text_reads_like_the_html_R7(tmp_path: Path) -> None:
    text = issue_for(tmp_path).text
    expected_fragments = [
        # The rule sits under the heading, the link on the next line (issue 8, item 23).
        "세계 소식 1\n===========\n<https://blog.example.com/posts/p1/>\n",
        "큰 제목\n=======",
        "소제목\n------",
        "첫 문단에는 상대 링크 (https://blog.example.com/posts/other/)와 강조가\n있습니다.",
        "<https://example.org/>",
        "- 사과\n- 배\n  - 작은 배",
        "3. 셋\n4. 넷",
        "이름 | 값\n가 | 1",
        "> 인용문입니다.",
        "print(1)\n    indent",
        "[제목 있는 그림] [대체 글]\n둘째 줄",
        "블로그에서 읽기 (https://blog.example.com/posts/p1/)",
        f"구독 해지 ({UNSUBSCRIBE_PLACEHOLDER})",
    ]
    for fragment in expected_fragments:
        assert fragment in text, fragment
    assert "1번째 글의 요약입니다." not in text  # the hidden preheader
    assert "\n\n\n" not in text and text.endswith("\n") and not text.startswith("\n")


def test_plain_text_wraps_at_spaces_by_display_width(tmp_path: Path) -> None:
    sentence = "한국어 문장은 어절 단위로 띄어 씁니다. " * 12
    url = "https://example.org/" + "long-path/" * 12
    page = document(f"<html><body><p>{sentence}<a href='{url}'>{url}</a> 끝.</p></body></html>")
    lines = html_to_text(page).splitlines()
    assert len(lines) > 3
    for line in lines:
        width = sum(2 if "\uac00" <= ch <= "\ud7a3" else 1 for ch in line)
        assert width <= 72 or line == f"<{url}>", line
    words = " ".join(lines).split()
    assert words.count("어절") == 12 and f"<{url}>" in words  # no word or URL was split


def test_plain_text_skips_hidden_elements_and_keeps_br(tmp_path: Path) -> None:
    page = document(
        '<html><body><div style="display: none">숨김</div>'
        "<p>가<br>나</p><div hidden>또 숨김</div></body></html>"
    )
    assert html_to_text(page) == "가\n나\n"


# --- issue 8, items 22 and 23 ------------------------------------------------------------


def _inline_style(element: Any) -> dict[str, str]:
    pairs = (part.split(":", 1) for part in (element.get("style") or "").split(";") if ":" in part)
    return {name.strip().lower(): value.strip().lower() for name, value in pairs}


def test_preheader_is_hidden_without_text_the_colour_of_its_background(tmp_path: Path) -> None:
    """SpamAssassin's HTML_FONT_LOW_CONTRAST scores text coloured like its background."""
    page = document(issue_for(tmp_path).html)
    style = _inline_style(page.cssselect(".preheader")[0])
    assert style["display"] == "none !important"
    assert (style["max-height"], style["overflow"], style["mso-hide"], style["opacity"]) == (
        "0",
        "hidden",
        "all",
        "0",
    )
    assert "color" not in style
    for element in page.iter():
        if not isinstance(element.tag, str) or "color" not in _inline_style(element):
            continue
        colour = _inline_style(element)["color"].removesuffix(" !important")
        backgrounds = [
            _inline_style(e).get("background-color", "").removesuffix(" !important")
            for e in (element, *element.iterancestors())
        ]
        shown_on = next((b for b in backgrounds if b), "#ffffff")
        assert colour != shown_on, (element.tag, element.get("class"), colour)


def test_footer_names_the_sender_and_the_postal_address(tmp_path: Path) -> None:
    issue = issue_for(
        tmp_path,
        newsletter={
            "reply_to": "desk@blog.example.com",
            "postal_address": "서울시 중구 세종대로 1",
        },
    )
    footer = document(issue.html).cssselect(".footer")[0]
    mailtos = [a.get("href") for a in footer.iter("a") if a.get("href").startswith("mailto:")]
    config = make_config(tmp_path)
    assert mailtos == [f"mailto:{config.newsletter.from_address}", "mailto:desk@blog.example.com"]
    assert "서울시 중구 세종대로 1" in footer.text_content()
    assert f"보낸 사람: {config.from_name} <{config.newsletter.from_address}>" in issue.text
    assert "서울시 중구 세종대로 1" in issue.text
    # Without reply_to the site author's address is the contact; no postal line unless set.
    plain = " ".join(issue_for(tmp_path / "plain").text.split())
    assert "문의: <editor@blog.example.com>" in plain and "서울시" not in plain


def test_container_is_fluid_to_600px_with_an_outlook_table(tmp_path: Path) -> None:
    """Issue 8, item 21: inline width 100% and max-width 600px (what survives a client that
    strips <style>); Outlook for Windows ignores max-width and gets a 600 px table."""
    html = issue_for(tmp_path).html
    style = _inline_style(document(html).cssselect("table.container")[0])
    assert (style["width"], style["max-width"]) == ("100%", "600px")
    assert '<!--[if mso]><table role="presentation" width="600" align="center"' in html
    assert "<!--[if mso]></td></tr></table><![endif]-->" in html
