"""Imported HTML → clean Markdown, with the old platform's chrome removed.

Every importer ends here, so a Tistory RSS item, a WordPress post and a Substack
page are cleaned by the same rules:

1. the posts' own sanitizer (``markup.sanitize``, nh3) runs first: scripts, styles,
   inline ``style`` attributes, event handlers and forms go (embedded ``<iframe>``
   players are kept as a plain link to the video first, and elements hidden with
   ``display:none`` are dropped);
2. platform chrome is removed, not imported as text: Tistory's "'…' 카테고리의 다른
   글" block and its 공감/구독/댓글 buttons, share and subscribe widgets, "Continue
   reading" tails, "The post … appeared first on …" lines, tracking pixels (1×1
   images and known counters);
3. footnotes (WordPress/Ghost ``#fn1``, Substack ``footnote-anchor``) become
   Markdown footnotes ``[^1]``;
4. markdownify writes CommonMark: ATX headings, ``-`` bullets, tables with a header
   row, fenced code with its language.

Images: ``resolve_image`` maps each ``src`` to what the post should link to (a file
copied from the export folder, or the absolute URL as it was). Nothing is fetched.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bs4 import BeautifulSoup
from bs4.element import NavigableString, Tag
from markdownify import MarkdownConverter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from publisher.publish import markup

# Class names that only ever mark platform chrome (exact class tokens, never substrings:
# Tistory's article wrapper is "tt_article_useless_p_margin", which must stay).
CHROME_CLASSES = frozenset(
    {
        # Tistory
        "another_category",
        "container_postbtn",
        "postbtn_like",
        "postbtn_ccl",
        "btn_subscription",
        "revenue_unit_wrap",
        "tt-plugin",
        "tt-share-entry-with-ccl",
        "article_social",
        # WordPress / Jetpack / FeedBurner
        "sharedaddy",
        "sd-sharing-enabled",
        "jp-relatedposts",
        "wp-block-jetpack-subscriptions",
        "more-link",
        "feedflare",
        # Substack
        "subscription-widget-wrap",
        "subscription-widget",
        "button-wrapper",
        "captioned-button-wrap",
        "share-dialog",
        "post-ufi",
        # Ghost
        "kg-signup-card",
        # Blogger
        "blogger-post-footer",
    }
)
_RELATED_HEADING = re.compile(r"^\s*['‘’\"“”].+['‘’\"“”]\s*카테고리의\s*다른\s*글\s*$")
_RELATED_ROW = re.compile(r"^(\|.*\||[-|: ]+|[-*] .*|.*\(\d+\)\s*\|?\s*\d{4}\.\d{2}\.\d{2}\s*\|?)$")
_WIDGET_TEXT = frozenset(
    {"공감", "구독하기", "구독", "댓글", "공유하기", "신고하기", "좋아요", "Share", "Subscribe"}
)
_CONTINUE = re.compile(
    r"^\s*(continue reading|read more|keep reading|계속\s*읽기|더\s*보기|더보기)\b",
    re.IGNORECASE,
)
_APPEARED_FIRST = re.compile(
    r"^\s*(The post .+ appeared first on .+|.+ was originally published in .+ on Medium, "
    r"where people are continuing the conversation .+)\.?\s*$",
    re.DOTALL,
)
_TRACKERS = re.compile(
    r"(feeds\.feedburner\.com/~r/|/~ff/|pixel\.wp\.com|stats\.wordpress\.com|"
    r"/open\?|/track/open|\.gif\?.*(utm|uid|id)=)",
    re.IGNORECASE,
)
_FOOTNOTE_REF = re.compile(r"^#(fn[:\-_]?|footnote-?)(?P<n>\d+)$")
_FOOTNOTE_DEF_ID = re.compile(r"^(fn[:\-_]?|footnote-)(?P<n>\d+)$")
_EMBED = re.compile(r"^https://(www\.)?(youtube\.com|youtube-nocookie\.com|player\.vimeo\.com)/")
_HIDDEN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_LANGUAGE = re.compile(r"(?:^|\s)(?:language|lang|brush:?)-?(?P<lang>[A-Za-z0-9+#_-]+)")
# Footnote references pass the converter as private-use marks, so "[^1]" is not escaped.
_NOTE_OPEN, _NOTE_CLOSE = "\ue000", "\ue001"
_BLANK_LINES = re.compile(r"\n{3,}")

ImageResolver = Callable[[str], str]


def html_to_markdown(html: str, resolve_image: ImageResolver | None = None) -> str:
    """Clean ``html`` of platform chrome and convert it to Markdown."""
    html = _before_sanitizing(html.replace(_NOTE_OPEN, "").replace(_NOTE_CLOSE, ""))
    soup = BeautifulSoup(markup.sanitize(html), "html.parser")
    remove_chrome(soup)
    for link in soup.find_all("a", class_="image-link"):  # Substack wraps images in a link
        link.unwrap()
    if resolve_image is not None:
        for image in soup.find_all("img"):
            src = str(image.get("src") or "")
            if src:
                image["src"] = resolve_image(src)
    notes = _footnotes(soup)
    text = _Converter().convert_soup(soup)
    text = text.replace(_NOTE_OPEN, "[^").replace(_NOTE_CLOSE, "]")  # after escaping
    text = _BLANK_LINES.sub("\n\n", _strip_related_tail(text)).strip()
    if notes:
        text += "\n\n" + "\n".join(f"[^{n}]: {note}" for n, note in notes)
    return text + "\n"


def remove_chrome(soup: BeautifulSoup) -> None:
    """Remove every chrome element from ``soup`` in place."""
    for tag in list(soup.find_all(True)):
        if tag.decomposed:
            continue
        classes = set(tag.get("class") or [])
        if classes & CHROME_CLASSES or _is_pixel(tag):
            tag.decompose()
    for tag in list(soup.find_all(["h2", "h3", "h4", "h5", "p", "div", "strong", "b"])):
        if tag.decomposed:
            continue
        text = tag.get_text(" ", strip=True)
        if _RELATED_HEADING.match(text):
            _remove_related_block(tag)
        elif _is_widget(tag, text):
            tag.decompose()
    for link in list(soup.find_all("a")):
        if not link.decomposed and _CONTINUE.match(link.get_text(" ", strip=True)):
            link.decompose()


def _strip_related_tail(text: str) -> str:
    """A related-posts block that survived as text (pasted, or in unknown markup).

    Drops a "'세계' 카테고리의 다른 글" line and the list or table lines right after it
    (``제목 (2) | 2025.06.20 |``), and lone 공감/구독하기 lines.
    """
    lines = text.split("\n")
    kept: list[str] = []
    skipping = False
    for line in lines:
        bare = line.strip().rstrip("\\").strip("#*_ ").strip()
        if _RELATED_HEADING.match(bare):
            skipping = True
            continue
        if skipping and (not bare or _RELATED_ROW.match(bare)):
            continue
        skipping = False
        if bare not in _WIDGET_TEXT:
            kept.append(line)
    return "\n".join(kept)


def _is_widget(tag: Tag, text: str) -> bool:
    """A 공감/구독 button, a "Continue reading" paragraph, WordPress's "The post … appeared
    first on …" or Medium's "… was originally published in … on Medium" footer."""
    if text in _WIDGET_TEXT and not tag.find("img"):
        return True
    if tag.name != "p":
        return False
    return bool((_CONTINUE.match(text) and tag.find("a")) or _APPEARED_FIRST.match(text))


def _remove_related_block(heading: Tag) -> None:
    """The heading and the list or table of other posts that follows it."""
    following = heading.find_next_sibling()
    if following is not None and (
        following.name in ("table", "ul", "ol", "div") or _is_related_rows(following)
    ):
        following.decompose()
    parent = heading.parent
    heading.decompose()
    if isinstance(parent, Tag) and parent.name == "div" and not parent.get_text(strip=True):
        parent.decompose()


def _is_related_rows(tag: Tag) -> bool:
    """A paragraph of "제목 (2) | 2025.06.20 |" lines, as a pasted related list reads."""
    lines = [line.strip() for line in tag.get_text("\n").split("\n") if line.strip()]
    return tag.name == "p" and bool(lines) and all(_RELATED_ROW.match(line) for line in lines)


def _is_pixel(tag: Tag) -> bool:
    if tag.name != "img":
        return False
    width = str(tag.get("width") or "").removesuffix("px")
    height = str(tag.get("height") or "").removesuffix("px")
    if width in ("0", "1") and height in ("0", "1"):
        return True
    return bool(_TRACKERS.search(str(tag.get("src") or "")))


def _before_sanitizing(html: str) -> str:
    """What the sanitizer would lose: video embeds (kept as links) and the ``style`` that
    hides an element (``display:none`` text is tracking or SEO filler, not the article)."""
    if "<iframe" not in html and "display" not in html and "visibility" not in html:
        return html
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(style=_HIDDEN):
        tag.decompose()
    for frame in soup.find_all("iframe"):
        src = str(frame.get("src") or "")
        if _EMBED.match(src):
            link = soup.new_tag("a", href=src)
            link.string = src
            paragraph = soup.new_tag("p")
            paragraph.append(link)
            frame.replace_with(paragraph)
    return str(soup)


def _footnotes(soup: BeautifulSoup) -> list[tuple[str, str]]:
    """Turn footnote references into ``[^n]`` and collect (n, text) of their definitions."""
    refs = [a for a in soup.find_all("a") if _FOOTNOTE_REF.match(str(a.get("href") or ""))]
    if not refs:
        return []
    notes: list[tuple[str, str]] = []
    for block in soup.find_all("div", class_="footnote"):  # Substack
        number = block.find(class_="footnote-number")
        content = block.find(class_="footnote-content")
        if number is not None and content is not None:
            content.name = "div"
            text = " ".join(_Converter().convert_soup(content).split())
            notes.append((number.get_text(strip=True), text))
        block.decompose()
    for tag in list(soup.find_all(True)):
        if tag.decomposed:
            continue
        match = _FOOTNOTE_DEF_ID.match(str(tag.get("id") or ""))
        if match and tag.name in ("li", "div", "p"):
            for backlink in tag.find_all("a"):
                href = str(backlink.get("href") or "")
                if (
                    href.startswith("#fnref")
                    or "footnote-anchor" in href
                    or backlink.get_text(strip=True) in ("↩", "↩︎", match["n"])
                ):
                    backlink.decompose()
            tag.name = "div"  # an <li> alone would convert to "1. …"
            note = " ".join(_Converter().convert_soup(tag).split())
            notes.append((match["n"], note))
            tag.decompose()
    for block in soup.find_all(class_=["footnotes", "footnote"]):
        if not block.decomposed:
            block.decompose()
    for ref in refs:
        if ref.decomposed:
            continue
        ref_match = _FOOTNOTE_REF.match(str(ref.get("href")))
        assert ref_match is not None
        holder = ref.parent if ref.parent is not None and ref.parent.name == "sup" else ref
        holder.replace_with(NavigableString(_NOTE_OPEN + ref_match["n"] + _NOTE_CLOSE))
    return notes


def _language(tag: Tag) -> str:
    for element in (tag, *tag.find_all("code")):
        data = element.get("data-ke-language") or element.get("data-language")
        if data:
            return str(data)
        classes = " ".join(element.get("class") or [])
        match = _LANGUAGE.search(classes)
        if match:
            return match["lang"].lower()
        for name in element.get("class") or []:
            if _known_language(str(name)):  # Tistory: <pre class="python">
                return str(name).lower()
    return ""


def _known_language(name: str) -> bool:
    try:
        get_lexer_by_name(name)
    except ClassNotFound:
        return False
    return True


class _Converter(MarkdownConverter):
    """markdownify with the options Publisher's CommonMark reader expects."""

    def __init__(self) -> None:
        super().__init__(
            heading_style="ATX",
            bullets="-",
            code_language_callback=_language,
            table_infer_header=True,
            escape_underscores=False,
            escape_misc=True,  # "<table>" or "1. " in text stay text, not HTML or a list
            newline_style="backslash",
        )
