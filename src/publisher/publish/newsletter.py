"""Newsletter issues: a post or a digest rendered once into inlined HTML and plain text.

The order is Ghost's (RELIABILITY R8): template with precomputed data and
absolute links -> CSS inlined by premailer, once per issue (D13) -> checks on the
final HTML (no ``<link>``, absolute URLs only, alt text on images) -> plain text
generated from that final HTML (R7) -> a digest of both, stored with the issue so
a resend is byte-identical (B6, section 1.3).

Per-recipient values (the unsubscribe and preferences URLs) are opaque ASCII
placeholders in the rendered issue; ``personalize`` swaps in the real values,
HTML-escaped in the HTML part, so 10,000 recipients cost one premailer run.

premailer 3.10.0 traps handled here (L7, D11, D12):

- ``allow_network`` defaults to on and fetches ``<link>`` stylesheets without a
  timeout: it is off, and a ``<link>`` left in the output fails the render.
- cssutils fetches ``@import`` URLs itself, whatever ``allow_network`` says
  (seen on cssutils 2.15): every parse gets a fetcher that refuses and records.
- the default ``strip_important`` strips ``!important`` in ``@media``, so the
  dark-mode and phone rules would lose to the inlined styles: it is off.
- CSS errors are only logged by cssutils: they are collected and fail the render.

Pure: reads templates and the stylesheet through the template loader; no network,
no clock, no database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html as html_lib
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

import cssutils
import jinja2
import lxml.html
import premailer
from markupsafe import Markup

from publisher.config import Config
from publisher.errors import Location, Problem, ProblemsError
from publisher.publish import markup
from publisher.publish.content import Post
from publisher.publish.site import RelatedList, Site, post_path, sort_key
from publisher.publish.templating import make_environment, render

UNSUBSCRIBE_PLACEHOLDER = "PUBLISHER-UNSUBSCRIBE-URL-7c1e5a"
PREFERENCES_PLACEHOLDER = "PUBLISHER-PREFERENCES-URL-3b9d40"
PLACEHOLDERS = (UNSUBSCRIBE_PLACEHOLDER, PREFERENCES_PLACEHOLDER)

STYLESHEET = "email/email.css"
POST_TEMPLATE = "email/issue.html"
DIGEST_TEMPLATE = "email/digest.html"
PREHEADER_LENGTH = 140  # inbox previews show 40-140 characters
TEXT_WIDTH = 72  # display columns; Hangul counts two
GMAIL_CLIP_BYTES = 102_000

_ABSOLUTE = ("http://", "https://", "mailto:", "tel:")
_URL_ATTRIBUTES = ("href", "src", "background")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")

# cssutils logs through one global logger: serialize inlining so one render's
# errors are never attributed to another (premailer locks cssutils the same way).
_CSSUTILS_LOCK = threading.Lock()


class NewsletterError(ProblemsError):
    """An issue could not be rendered: CSS errors, external resources, relative URLs."""

    title = "newsletter"


@dataclass(frozen=True)
class RenderedIssue:
    """One issue, rendered once and stored; ``personalize`` fills in each recipient."""

    key: str  # stable issue key: "post:<slug>" or "digest:<label>"
    subject: str
    preheader: str
    html: str  # final CSS-inlined HTML with the placeholders
    text: str  # plain-text part with the placeholders
    digest: str  # issue_digest(html, text): stored with the issue so a resend is identical


@dataclass(frozen=True)
class Sender:
    """Who sends the newsletter, for the footer: the From address, a contact address
    (Reply-To, else the site author's) when it differs, and a postal line if set."""

    name: str
    address: str
    contact: str | None
    postal: str

    @classmethod
    def from_config(cls, config: Config) -> Sender:
        address = config.newsletter.from_address
        contact = config.newsletter.reply_to or config.site.author_email
        return cls(
            config.from_name,
            address,
            contact if contact and contact != address else None,
            config.newsletter.postal_address.strip(),
        )


@dataclass(frozen=True)
class EmailEntry:
    """A post as the email templates show it: every URL absolute."""

    title: str
    date: datetime
    url: str
    category: str | None
    category_url: str | None
    author: str | None
    summary: str
    body: Markup  # sanitized article HTML with absolute links


def render_post_issue(site: Site, post: Post) -> RenderedIssue:
    """Render ``post`` as a newsletter issue (template ``email/issue.html``)."""
    return _render_issue(
        site,
        key=f"post:{post.slug}",
        template=POST_TEMPLATE,
        subject=post.title,
        preheader=markup.summarize(post.summary, PREHEADER_LENGTH),
        entry=_entry(site, post),
        related=_absolute_related(site, site.related.get(post.slug)),
    )


def render_digest_issue(site: Site, posts: Sequence[Post], key: str, title: str) -> RenderedIssue:
    """Render several posts as one issue (template ``email/digest.html``), newest first.

    ``key`` is the digest label ("2025-W25") or the full key ("digest:2025-W25").
    """
    if not posts:
        raise ValueError("a digest issue needs at least one post")
    ordered = sorted(posts, key=sort_key)
    return _render_issue(
        site,
        key=key if key.startswith("digest:") else f"digest:{key}",
        template=DIGEST_TEMPLATE,
        subject=title,
        preheader=markup.summarize(" · ".join(p.title for p in ordered), PREHEADER_LENGTH),
        title=title,
        entries=tuple(_entry(site, p) for p in ordered),
    )


def personalize(
    issue: RenderedIssue, *, unsubscribe_url: str, preferences_url: str
) -> tuple[str, str]:
    """The issue's (html, text) for one recipient; URLs are HTML-escaped in the HTML (B7)."""
    values = {
        UNSUBSCRIBE_PLACEHOLDER: _checked_url("unsubscribe_url", unsubscribe_url),
        PREFERENCES_PLACEHOLDER: _checked_url("preferences_url", preferences_url),
    }
    # One pass, so a value that happens to contain the other placeholder is left alone.
    pattern = re.compile("|".join(map(re.escape, values)))
    html = pattern.sub(lambda m: html_lib.escape(values[m[0]], quote=True), issue.html)
    text = pattern.sub(lambda m: values[m[0]], issue.text)
    return html, text


def check_issue(issue: RenderedIssue, config: Config) -> list[str]:
    """Human warnings about an issue: Gmail clipping (R6), a missing unsubscribe link (D10)."""
    warnings = []
    limit = config.newsletter.max_html_bytes
    raw = len(issue.html.encode("utf-8"))
    encoded = len(transfer_encode(issue.html)[1])
    if encoded > limit:
        warnings.append(
            f"{issue.key}: the HTML part is {encoded:,} bytes encoded ({raw:,} raw), over "
            f"[newsletter].max_html_bytes = {limit:,}; Gmail clips messages above about "
            f"{GMAIL_CLIP_BYTES:,} bytes and hides the rest, footer and unsubscribe link "
            "included (R6). Send the summary ([newsletter].content) or shorten the post."
        )
    for part, body in (("HTML", issue.html), ("plain-text", issue.text)):
        if UNSUBSCRIBE_PLACEHOLDER not in body:
            warnings.append(
                f"{issue.key}: the {part} part has no unsubscribe link; the email templates "
                "must use {{ unsubscribe_url }} (D10, R1)"
            )
    return warnings


def transfer_encode(text: str) -> tuple[str, str]:
    """How a body part travels: (Content-Transfer-Encoding, ASCII payload with LF line ends).

    ``text`` has LF line breaks.

    Quoted-printable or base64, whichever is shorter: markup-heavy HTML favours
    quoted-printable, Korean text (three UTF-8 bytes per syllable, nine characters
    each in quoted-printable) favours base64. Gmail's clipping counts the encoded
    size (R6), so ``check_issue`` measures with this same function. Both keep lines
    at 76 characters (RFC 2045; D7), and binascii's quoted-printable writes a lone
    "." line as "=2E", so a transport that forgets dot-stuffing cannot end the
    message early (D6).
    """
    data = text.encode("utf-8")
    quoted = binascii.b2a_qp(data, istext=True)  # LF here; the generator writes CRLF
    # Text is encoded in its canonical form, CRLF line breaks (RFC 2046 section 4.1.1).
    based = base64.encodebytes(data.replace(b"\n", b"\r\n"))
    if len(based) < len(quoted):
        return "base64", based.decode("ascii")
    return "quoted-printable", quoted.decode("ascii")


def issue_digest(html: str, text: str) -> str:
    """sha256 of the HTML and text parts; the NUL keeps ("ab", "c") apart from ("a", "bc")."""
    return hashlib.sha256(html.encode("utf-8") + b"\x00" + text.encode("utf-8")).hexdigest()


# --- rendering -------------------------------------------------------------------


def _render_issue(
    site: Site, *, key: str, template: str, subject: str, preheader: str, **context: Any
) -> RenderedIssue:
    config = site.config
    env = make_environment(config)
    html = render(
        env,
        template,
        lang=config.site.language,
        subject=subject,
        preheader=preheader,
        site_title=config.site.title,
        home_url=site.url(""),
        sender=Sender.from_config(config),
        full=config.newsletter.content == "full",
        unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
        preferences_url=PREFERENCES_PLACEHOLDER,
        **context,
    )
    css, css_file = _stylesheet(env, html)
    template_file = _template_file(env, template)
    inlined = inline_css(html, css, css_source=css_file, html_source=template_file)
    document = lxml.html.document_fromstring(inlined)
    _finish(document, template_file)
    final = lxml.html.tostring(document, encoding="unicode", doctype="<!DOCTYPE html>") + "\n"
    text = html_to_text(document)
    return RenderedIssue(key, subject, preheader, final, text, issue_digest(final, text))


def _entry(site: Site, post: Post) -> EmailEntry:
    url = site.url(post_path(post))
    return EmailEntry(
        title=post.title,
        date=post.date,
        url=url,
        category=post.category,
        category_url=site.url(site.category_path(post.category)) if post.category else None,
        author=post.author,
        summary=post.summary,
        # Sanitized by publisher.publish.markup (A18); relative links resolve against the post page.
        body=Markup(markup.absolutize(post.body_html, url)),  # noqa: S704
    )


def _absolute_related(site: Site, related: RelatedList | None) -> RelatedList | None:
    """The blog's related list with absolute URLs: the email shows the same list (ANCHORS)."""
    if related is None:
        return None
    return replace(
        related,
        category_url=site.url(related.category_url),
        items=tuple(replace(item, url=site.url(item.url)) for item in related.items),
    )


def _stylesheet(env: jinja2.Environment, html: str) -> tuple[str, str]:
    """email/email.css from the template search path (a site may override it), plus
    Pygments colours when the issue has highlighted code."""
    assert env.loader is not None
    try:
        css, filename, _ = env.loader.get_source(env, STYLESHEET)
    except jinja2.TemplateNotFound:
        searched = ", ".join(str(p) for p in getattr(env.loader, "searchpath", []))
        raise NewsletterError(
            [Problem(Location(STYLESHEET), f"stylesheet not found (searched: {searched})")]
        ) from None
    if 'class="highlight"' in html:
        css += "\n" + markup.pygments_css()
    return css, filename or STYLESHEET


def _template_file(env: jinja2.Environment, name: str) -> str:
    return env.get_template(name).filename or name


# --- CSS inlining ------------------------------------------------------------------


_PREMAILER_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {
        "base_url": None,  # links are absolute already; <link>s would be resolved against it
        "allow_network": False,  # L7, D12: no <link> fetches (premailer #286: no timeout either)
        "allow_loading_external_files": False,
        "strip_important": False,  # L7: keep !important so @media rules beat inline styles
        "keep_style_tags": False,  # only what cannot be inlined (@media, :hover) stays in <style>
        # Also keeps merge_styles deterministic: it iterates a set() of pseudo-classes.
        "exclude_pseudoclasses": True,
        "remove_classes": False,  # the @media rules select by class
        "disable_basic_attributes": ("height",),  # img height:auto would become height="auto"
        "cache_css_parsing": False,  # one parse per issue; the cache would bypass our fetcher
    }
)


def inline_css(html: str, css: str, *, css_source: str, html_source: str) -> str:
    """Inline ``css`` into ``html`` with premailer, offline; raise NewsletterError on any
    cssutils error or attempted fetch.

    The stylesheet is checked on its own first, so its errors name its file; errors
    left for the second pass come from ``<style>`` or ``style=""`` in the template.
    """
    fetched: list[str] = []
    with _cssutils_errors() as errors:
        _css_parser(fetched).parseString(css)
    _raise_css_problems(css_source, errors, fetched)
    with _cssutils_errors() as errors:
        inliner = _OfflinePremailer(html, fetched=fetched, css_text=[css], **_PREMAILER_OPTIONS)
        inlined: str = inliner.transform(pretty_print=False)
    _raise_css_problems(html_source, errors, fetched)
    return inlined


class _OfflinePremailer(premailer.Premailer):  # type: ignore[misc]
    """premailer whose CSS parser refuses every fetch, ``@import`` included (D12)."""

    def __init__(self, html: str, *, fetched: list[str], **options: Any) -> None:
        super().__init__(html, **options)
        self._fetched = fetched

    def _parse_css_string(self, css_body: str, validate: bool = True) -> Any:
        return _css_parser(self._fetched, validate).parseString(css_body)

    def _load_external_url(self, url: str) -> str:
        # Unreachable with allow_network=False; here so a future option cannot fetch.
        self._fetched.append(url)
        return ""


def _css_parser(fetched: list[str], validate: bool = True) -> Any:
    def refuse(url: str) -> None:
        fetched.append(url)  # cssutils then logs "Cannot read Stylesheet" and goes on

    return cssutils.CSSParser(fetcher=refuse, validate=validate)


class _Collector(logging.Handler):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        # WARNINGs are properties cssutils does not know (word-break, mso-hide): intended.
        if record.levelno >= logging.ERROR:
            self.errors.append(record.getMessage())


@contextmanager
def _cssutils_errors() -> Iterator[list[str]]:
    """Collect cssutils ERROR records instead of printing them to stderr (D11)."""
    logger = logging.getLogger("CSSUTILS")  # cssutils.log's logger (cssutils.errorhandler)
    errors: list[str] = []
    collector = _Collector(errors)
    with _CSSUTILS_LOCK:
        saved = (logger.handlers[:], logger.level, logger.propagate)
        for handler in saved[0]:
            logger.removeHandler(handler)
        logger.addHandler(collector)
        logger.setLevel(logging.WARNING)
        logger.propagate = False
        try:
            yield errors
        finally:
            logger.removeHandler(collector)
            for handler in saved[0]:
                logger.addHandler(handler)
            logger.setLevel(saved[1])
            logger.propagate = saved[2]


def _raise_css_problems(source: str, errors: list[str], fetched: list[str]) -> None:
    where = Location(source)
    problems = [Problem(where, f"CSS error: {message}") for message in errors]
    problems += [
        Problem(
            where,
            f"CSS @import of {url} refused: emails are rendered offline; "
            "put the rules in email/email.css (D12)",
        )
        for url in dict.fromkeys(fetched)
    ]
    if problems:
        raise NewsletterError(problems)


# --- checks on the final HTML ---------------------------------------------------------


def _finish(document: Any, source: str) -> None:
    """Refuse external stylesheets and relative URLs; give every image an alt text."""
    where = Location(source)
    problems = [
        Problem(
            where,
            f"<link href={element.get('href', '')!r}> is not allowed in emails: nothing is "
            "fetched while rendering and mail clients should not fetch either; "
            "put the CSS in email/email.css (D12)",
        )
        for element in document.iter("link")
    ]
    problems += [
        Problem(
            where,
            f"relative URL {value!r} in <{element.tag} {attribute}>: emails need absolute "
            "URLs (build them with the site URL)",
        )
        for element, attribute, value in _urls(document)
        if not value.startswith(_ABSOLUTE) and value not in PLACEHOLDERS
    ]
    if problems:
        raise NewsletterError(problems)
    for image in document.iter("img"):
        if image.get("alt") is None:
            # Screen readers read the file name of an image without alt (WCAG 1.1.1).
            image.set("alt", image.get("title", ""))


def _urls(document: Any) -> Iterator[tuple[Any, str, str]]:
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        for attribute in _URL_ATTRIBUTES:
            value = element.get(attribute)
            if value is not None:
                yield element, attribute, value.strip()


def _checked_url(name: str, url: str) -> str:
    if not url.startswith(("https://", "http://")) or _URL_UNSAFE.search(url):
        raise ValueError(f"{name} must be an absolute http(s) URL without spaces, got {url!r}")
    return url


# --- plain text (R7) ---------------------------------------------------------------

_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "html",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
_SKIPPED = frozenset({"head", "style", "script", "title", "template"})
_LINE_BREAK = "\x00"  # stands for <br> while whitespace is collapsed; lxml text has no NUL
_SPACES = re.compile(r"[ \t\n\r\f\v]+")


def html_to_text(document: Any) -> str:
    """The plain-text part, from the final HTML document (R7).

    Headings are underlined, lists use "- " or "1. ", links read "text (url)" or
    "<url>", data-table rows read "a | b", hidden elements (the preheader) are
    skipped. Lines are wrapped at 72 display columns, only at spaces: a Korean
    word (eojeol) or a URL is never split.
    """
    body = document.find("body")
    blocks = _blocks(body if body is not None else document)
    text = "\n\n".join(blocks)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def _blocks(container: Any) -> list[str]:
    """Text blocks of a block-level element: runs of inline content become paragraphs."""
    blocks: list[str] = []
    inline: list[str] = [container.text or ""]
    for child in container:
        if _is_element(child) and not _is_hidden(child):
            if child.tag in _BLOCKS:
                blocks += _paragraph("".join(inline))
                inline = []
                blocks += _block(child)
            else:
                inline.append(_inline(child))
        inline.append(child.tail or "")
    blocks += _paragraph("".join(inline))
    return blocks


def _block(element: Any) -> list[str]:
    renderer = _BLOCK_RENDERERS.get(element.tag)
    if renderer is not None:
        return renderer(element)
    if element.tag == "table" and element.get("role") != "presentation":
        return _data_table(element)
    return _blocks(element)


def _heading(element: Any) -> list[str]:
    """h1 and h2 are underlined with "=" and "-" right under the title's text; a
    link's URL goes on the line after the rule, never between title and rule."""
    rule = {"h1": "=", "h2": "-"}.get(element.tag)
    if rule is None:
        text = "\n".join(_paragraph(_inline_children(element)))
        return [text] if text else []
    title = _wrap(_collapse(element.text_content()))
    if not title:
        return []
    width = min(TEXT_WIDTH, max(_width(line) for line in title.split("\n")))
    urls = dict.fromkeys(
        (a.get("href") or "").strip() for a in element.iter("a") if not _is_hidden(a)
    )
    lines = [title, rule * width, *(f"<{url}>" for url in urls if url)]
    return ["\n".join(lines)]


def _list(element: Any) -> list[str]:
    number = int(element.get("start", "1")) if element.get("start", "1").isdigit() else 1
    items = []
    for child in element:
        if not _is_element(child) or child.tag != "li" or _is_hidden(child):
            continue
        marker = f"{number}. " if element.tag == "ol" else "- "
        number += 1
        body = "\n".join(_blocks(child)) or ""
        items.append(_indent(body, marker))
    return ["\n".join(items)] if items else []


def _blockquote(element: Any) -> list[str]:
    inner = "\n\n".join(_blocks(element))
    return ["\n".join(("> " + line).rstrip() for line in inner.split("\n"))] if inner else []


def _pre(element: Any) -> list[str]:
    text = element.text_content().strip("\n")
    return [text] if text.strip() else []


def _hr(_element: Any) -> list[str]:
    return ["-" * 20]


def _data_table(element: Any) -> list[str]:
    rows = []
    for row in element.iter("tr"):
        cells = [_collapse(_inline_children(c)) for c in row if _is_element(c)]
        if any(cells):
            rows.append(" | ".join(cells))
    return ["\n".join(rows)] if rows else []


_BLOCK_RENDERERS: dict[str, Callable[[Any], list[str]]] = {
    **dict.fromkeys(("h1", "h2", "h3", "h4", "h5", "h6"), _heading),
    "ul": _list,
    "ol": _list,
    "blockquote": _blockquote,
    "pre": _pre,
    "hr": _hr,
}


def _inline(element: Any) -> str:
    """Inline text of ``element``: links become "text (url)", images their alt text."""
    if element.tag == "br":
        return _LINE_BREAK
    if element.tag == "img":
        alt = _collapse(element.get("alt", ""))
        return f"[{alt}]" if alt else ""
    inner = _inline_children(element)
    if element.tag == "a":
        return _link(_collapse(inner), (element.get("href") or "").strip())
    return inner


def _inline_children(element: Any) -> str:
    parts = [element.text or ""]
    for child in element:
        if _is_element(child) and not _is_hidden(child):
            parts.append(_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _link(text: str, href: str) -> str:
    if not href:
        return text
    label = text
    shown = href.removeprefix("mailto:")
    if not label or label in (href, shown, href.split("://", 1)[-1].rstrip("/")):
        return f"<{shown}>"
    return f"{text} ({href})"


def _paragraph(inline: str) -> list[str]:
    lines = [_wrap(_collapse(part)) for part in _collapse_keep_breaks(inline)]
    text = "\n".join(lines).strip("\n")
    return [text] if text.strip() else []


def _collapse_keep_breaks(inline: str) -> list[str]:
    return _SPACES.sub(" ", inline).split(_LINE_BREAK)


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text.replace(_LINE_BREAK, " ")).strip()


def _wrap(line: str) -> str:
    """Greedy wrap at spaces by display width; a longer word or URL keeps its own line."""
    lines: list[str] = []
    current = ""
    for word in line.split(" "):
        if not word:
            continue
        candidate = f"{current} {word}" if current else word
        if current and _width(candidate) > TEXT_WIDTH:
            lines.append(current)
            candidate = word
        current = candidate
    if current:
        lines.append(current)
    return "\n".join(lines)


def _width(text: str) -> int:
    """Display columns: wide and full-width characters (Hangul, CJK) count two."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return width


def _indent(body: str, marker: str) -> str:
    pad = " " * len(marker)
    lines = body.split("\n")
    return "\n".join([marker + lines[0]] + [(pad + line if line else line) for line in lines[1:]])


def _is_element(node: Any) -> bool:
    return isinstance(node.tag, str) and node.tag not in _SKIPPED


def _is_hidden(element: Any) -> bool:
    return bool(_HIDDEN_STYLE.search(element.get("style", ""))) or element.get("hidden") is not None
