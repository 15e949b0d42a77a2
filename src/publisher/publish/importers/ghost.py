"""Ghost JSON exports (Settings → Advanced → Export content).

Shape: ``{"db": [{"meta": {...}, "data": {"posts": [...], "tags": [...],
"posts_tags": [...], "users": [...], "posts_authors": [...]}}]}`` (older files have
``data`` at the top). Per post: ``html`` when the export has it, else the ``lexical``
or ``mobiledoc`` document rendered here (paragraphs, headings, lists, quotes, links,
bold/italic/code, image, code, HTML and Markdown cards). ``type: page`` is skipped;
``status`` published/scheduled is public, draft and email-only ``sent`` are drafts.
The first public tag is the category, the others tags; internal ``#tags`` are
dropped. ``feature_image`` is the image; ``__GHOST_URL__/content/images/…`` is
copied when the export folder holds ``content/images``. The old URL is ``/slug/``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import tzinfo
from html import escape
from pathlib import Path
from typing import Any

from publisher.errors import Location, Problem
from publisher.publish import markup
from publisher.publish.importers import (
    ImportedPost,
    Parsed,
    PostImportError,
    parse_date,
    slug_for,
)
from publisher.publish.importers.clean import html_to_markdown
from publisher.publish.importers.plan import AssetFinder, image_field

_GHOST_URL = "__GHOST_URL__"
_DRAFT = {"published": False, "scheduled": False, "draft": True, "sent": True}


def parse(file: Path, zone: tzinfo, finder: AssetFinder) -> Parsed:
    data = _data(file)
    tags = {t["id"]: t for t in data.get("tags", [])}
    users = {u["id"]: u for u in data.get("users", [])}
    post_tags = _grouped(data.get("posts_tags", []), "tag_id")
    post_authors = _grouped(data.get("posts_authors", []), "author_id")
    posts, problems, skipped = [], [], []
    for number, raw in enumerate(data.get("posts", []), start=1):
        where = f"{file.name}: posts[{number - 1}]"
        kind = raw.get("type") or ("page" if raw.get("page") else "post")
        if kind != "post" or raw.get("status") not in _DRAFT:
            skipped.append(f"{where}: {kind} '{raw.get('title', '')}' ({raw.get('status')})")
            continue
        try:
            names = [tags[t] for t in post_tags.get(raw.get("id"), []) if t in tags]
            public = [t["name"] for t in names if not str(t.get("name", "")).startswith("#")]
            author_ids = post_authors.get(raw.get("id")) or [raw.get("author_id")]
            author = next((users[a].get("name") for a in author_ids if a in users), None)
            posts.append(_post(raw, where, zone, finder, public, author))
        except ValueError as exc:
            problems.append(Problem(Location(where), str(exc)))
    return Parsed(tuple(posts), tuple(skipped), tuple(problems))


def _data(file: Path) -> Mapping[str, Any]:
    try:
        document = json.loads(file.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PostImportError([Problem(Location(str(file)), f"not a JSON file: {exc}")]) from None
    if isinstance(document, dict) and isinstance(document.get("db"), list) and document["db"]:
        document = document["db"][0]
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("posts"), list):
        raise PostImportError(
            [Problem(Location(str(file)), "not a Ghost export (no db[0].data.posts)")]
        )
    return data


def _grouped(rows: list[dict[str, Any]], key: str) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = {}
    for row in sorted(rows, key=lambda r: r.get("sort_order") or 0):
        grouped.setdefault(row.get("post_id"), []).append(row.get(key))
    return grouped


def _post(
    raw: Mapping[str, Any],
    where: str,
    zone: tzinfo,
    finder: AssetFinder,
    names: list[str],
    author: str | None,
) -> ImportedPost:
    title = str(raw.get("title") or "").strip()
    if not title:
        raise ValueError("a post has no title")
    when = raw.get("published_at") or raw.get("created_at")
    if not when:
        raise ValueError(f"'{title}' has neither published_at nor created_at")
    html = raw.get("html") or _lexical(raw.get("lexical")) or _mobiledoc(raw.get("mobiledoc"))
    if not html:
        raise ValueError(f"'{title}' has no html, lexical or mobiledoc content")
    html = html.replace(_GHOST_URL, "")  # the old site's own URL: its paths are aliases here
    slug = str(raw.get("slug") or "")
    updated = parse_date(str(raw["updated_at"]), zone) if raw.get("updated_at") else None
    date = parse_date(str(when), zone)
    return ImportedPost(
        platform="ghost",
        source_id=str(raw.get("id") or raw.get("uuid") or slug),
        item=where,
        title=title,
        date=date,
        updated=updated if updated and updated > date else None,
        slug=slug_for(slug, title),
        body=html_to_markdown(html, finder),
        category=names[0] if names else None,
        tags=tuple(names[1:]),
        summary=(raw.get("custom_excerpt") or None),
        author=author,
        draft=_DRAFT[str(raw.get("status"))],
        image=image_field(finder, str(raw.get("feature_image") or "").replace(_GHOST_URL, "")),
        aliases=(f"/{slug}/",) if slug else (),
        assets=finder.take(),
    )


# --- Lexical (Ghost 5) -------------------------------------------------------------------

_FORMATS = ((1, "strong"), (2, "em"), (8, "u"), (16, "code"), (4, "s"))


def _lexical(text: object) -> str:
    if not isinstance(text, str) or not text:
        return ""
    try:
        root = json.loads(text).get("root", {})
    except (json.JSONDecodeError, AttributeError):
        return ""
    return "\n".join(_lexical_node(n) for n in root.get("children", []))


def _lexical_node(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    inner = "".join(_lexical_node(c) for c in node.get("children", []) or [])
    if kind == "text":
        html = escape(str(node.get("text", "")))
        for bit, tag in _FORMATS:
            if int(node.get("format") or 0) & bit:
                html = f"<{tag}>{html}</{tag}>"
        return html
    if kind == "linebreak":
        return "<br>"
    if kind == "link":
        return f'<a href="{escape(str(node.get("url", "")))}">{inner}</a>'
    if kind in ("heading", "extended-heading"):
        tag = str(node.get("tag") or "h2")
        return f"<{tag}>{inner}</{tag}>" if tag in {"h1", "h2", "h3", "h4", "h5", "h6"} else inner
    if kind == "list":
        tag = "ol" if node.get("listType") == "number" else "ul"
        return f"<{tag}>{inner}</{tag}>"
    if kind == "listitem":
        return f"<li>{inner}</li>"
    if kind in ("quote", "aside"):
        return f"<blockquote>{inner}</blockquote>"
    if kind == "image":
        alt = escape(str(node.get("altText") or node.get("alt") or ""))
        return f'<p><img src="{escape(str(node.get("src", "")))}" alt="{alt}"></p>'
    if kind == "codeblock":
        language = escape(str(node.get("language") or ""))
        code = escape(str(node.get("code", "")))
        return f'<pre><code class="language-{language}">{code}</code></pre>'
    if kind == "html":
        return str(node.get("html", ""))
    if kind == "markdown":
        return _markdown_card(str(node.get("markdown", "")))
    if kind == "horizontalrule":
        return "<hr>"
    return f"<p>{inner}</p>" if kind in ("paragraph", "extended-text") else inner


def _markdown_card(markdown: str) -> str:
    return markup.render_tokens(markup.parse(markdown))


# --- Mobiledoc (Ghost 1-4) -----------------------------------------------------------------


def _mobiledoc(text: object) -> str:
    if not isinstance(text, str) or not text:
        return ""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return ""
    cards = doc.get("cards", [])
    markups = doc.get("markups", [])
    out = []
    for section in doc.get("sections", []):
        if section[0] == 10 and section[1] < len(cards):
            name, payload = cards[section[1]]
            out.append(_mobiledoc_card(name, payload))
        elif section[0] == 1:
            out.append(f"<{section[1]}>{_markers(section[2], markups)}</{section[1]}>")
        elif section[0] == 3:
            items = "".join(f"<li>{_markers(i, markups)}</li>" for i in section[2])
            out.append(f"<{section[1]}>{items}</{section[1]}>")
    return "\n".join(out)


def _mobiledoc_card(name: str, payload: Mapping[str, Any]) -> str:
    if name in ("markdown", "card-markdown"):
        return _markdown_card(str(payload.get("markdown", "")))
    if name == "html":
        return str(payload.get("html", ""))
    if name == "image":
        return f'<p><img src="{escape(str(payload.get("src", "")))}" alt=""></p>'
    if name == "code":
        return f"<pre><code>{escape(str(payload.get('code', '')))}</code></pre>"
    return ""


def _markers(markers: list[Any], markups: list[Any]) -> str:
    html, open_tags = "", []
    for marker in markers:
        _kind, opened, closed, value = marker
        for index in opened:
            tag, *attrs = markups[index]
            pairs = attrs[0] if attrs else []
            attr = "".join(
                f' {escape(str(pairs[i]))}="{escape(str(pairs[i + 1]))}"'
                for i in range(0, len(pairs), 2)
            )
            html += f"<{tag}{attr}>"
            open_tags.append(tag)
        html += escape(str(value))
        for _ in range(closed):
            html += f"</{open_tags.pop()}>"
    return html
