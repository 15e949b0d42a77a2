"""Markdown to safe HTML, summaries, reading time and absolute links.

CommonMark (markdown-it-py) with tables, strikethrough, footnotes and heading
anchors; fenced code is highlighted by Pygments at build time (no JavaScript).

Raw HTML in posts: allowed for formatting, then *sanitized* with nh3 (the Ammonia
allowlist) for every output, blog, feed and email alike (RELIABILITY A18, L10):
``<script>``, ``<style>``, ``<iframe>``, ``<form>``, ``<link>``, event attributes
and ``javascript:`` URLs are removed. One body serves the page, the feed entry
and the email, so the three can never disagree.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from urllib.parse import urljoin

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.footnote import footnote_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from publisher.publish.slugs import slugify

_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS) | {"section", "input"}
_ALLOWED_TAGS -= {"input"}  # task-list checkboxes are not rendered; keep forms out entirely
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href", "rel"},
    "img": {"src", "alt", "width", "height", "loading", "srcset", "sizes"},  # srcset: editor images
    "th": {"style", "colspan", "rowspan", "scope"},
    "td": {"style", "colspan", "rowspan"},
    "ol": {"start"},
    "time": {"datetime"},
}
_STRIPPED_WITH_CONTENT = {"script", "style", "iframe", "form", "object", "embed", "template"}
_URL_ATTR = re.compile(r'(?P<attr>\s(?:href|src))="(?P<url>[^"]*)"')
_HANGUL_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"[^\s\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]+")
_SENTENCE_END = re.compile(r"[.!?。]['\"”’)]?(?=\s)")


def _highlight(code: str, language: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes and wraps it itself
    formatter = HtmlFormatter(nowrap=True)
    return f'<pre class="highlight"><code>{highlight(code, lexer, formatter)}</code></pre>'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "highlight": _highlight, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.use(footnote_plugin)
    md.use(anchors_plugin, min_level=2, max_level=4, slug_func=slugify, permalink=False)
    return md


def parse(text: str) -> list[Token]:
    """The token stream of a Markdown body."""
    return _parser().parse(text)


def render_tokens(tokens: list[Token]) -> str:
    """Render tokens and sanitize the HTML (A18)."""
    md = _parser()
    return sanitize(md.renderer.render(tokens, md.options, {}))


def sanitize(html: str) -> str:
    """Keep formatting, drop anything that runs code or submits data."""
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        clean_content_tags=_STRIPPED_WITH_CONTENT,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        filter_style_properties={"text-align"},
        link_rel=None,
        strip_comments=True,
    )


def first_paragraph_text(tokens: list[Token]) -> str:
    """Plain text of the first paragraph, for derived summaries."""
    for index, token in enumerate(tokens):
        if token.type == "paragraph_open" and index + 1 < len(tokens):
            inline = tokens[index + 1]
            return " ".join(_plain_inline(inline).split())
    return ""


def _plain_inline(inline: Token) -> str:
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts)


def plain_text(tokens: list[Token]) -> str:
    """All inline text of a body, for reading time."""
    return " ".join(_plain_inline(t) for t in tokens if t.type == "inline")


def summarize(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters without splitting a sentence.

    Prefer the last sentence end in the second half of the window; else the last
    space (Korean separates words with spaces, so no syllable block is split);
    an ellipsis marks a cut inside a sentence.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    window = text[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(window + " ")]
    good = [e for e in ends if e >= limit // 2]
    if good:
        return window[: good[-1]].rstrip()
    cut = window.rfind(" ", 0, limit)
    head = window[:cut] if cut >= limit // 2 else window[: limit - 1]
    return head.rstrip(" ,;:·") + "…"


def reading_minutes(text: str, cjk_per_minute: int, words_per_minute: int) -> int:
    """Reading time counting Hangul/CJK by character and other scripts by word."""
    cjk = len(_HANGUL_CJK.findall(text))
    words = len(_WORD.findall(text))
    return max(1, math.ceil(cjk / cjk_per_minute + words / words_per_minute))


def absolutize(html: str, base_url: str) -> str:
    """Make every href/src absolute against ``base_url`` (feeds and email, C3).

    Works on sanitizer output, where attributes are always double-quoted.
    """

    def repl(match: re.Match[str]) -> str:
        return f'{match["attr"]}="{urljoin(base_url, match["url"])}"'

    return _URL_ATTR.sub(repl, html)


def pygments_css() -> str:
    """Stylesheet for highlighted code, light and dark."""
    light = HtmlFormatter(style="friendly").get_style_defs(".highlight")
    dark = HtmlFormatter(style="monokai").get_style_defs(".highlight")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
