"""``publisher preview SLUG``: the post page, its feed entry, its email and its plain text side by side.

One content model drives all four, so an editor checks them together before a
post goes out. The page is served by the preview server (so its styles load);
the email HTML is shown in a sandboxed iframe exactly as it would be sent, with
example unsubscribe and preferences links.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from publisher.errors import PublisherError
from publisher.publish.content import Post
from publisher.publish.feeds import feed_entry_xml
from publisher.publish.newsletter import check_issue, personalize, render_post_issue
from publisher.publish.site import Site, post_path

EXAMPLE_LINK = "example"


@dataclass(frozen=True)
class PreviewParts:
    page_url: str
    feed_entry: str
    email_html: str
    email_text: str
    subject: str
    warnings: tuple[str, ...]


def find_post(site: Site, wanted: str) -> Post:
    """A post by slug or by its file path (``posts/x.md``), drafts and scheduled posts included."""
    for post in (*site.posts, *site.hidden):
        if wanted in (post.slug, post.source) or post.source.endswith("/" + wanted):
            return post
    raise PublisherError(
        f"no post with slug or file {wanted!r}", hint="`publisher build` lists the posts it read."
    )


def preview_parts(site: Site, post: Post) -> PreviewParts:
    issue = render_post_issue(site, post)
    base = site.config.web_base_url
    email_html, email_text = personalize(
        issue,
        unsubscribe_url=f"{base}unsubscribe/{EXAMPLE_LINK}",
        preferences_url=f"{base}preferences/{EXAMPLE_LINK}",
    )
    return PreviewParts(
        page_url=site.url(post_path(post)),
        feed_entry=feed_entry_xml(site, post),
        email_html=email_html,
        email_text=email_text,
        subject=issue.subject,
        warnings=tuple(check_issue(issue, site.config)),
    )


def preview_page(parts: PreviewParts, title: str) -> str:
    """A self-contained HTML page with the four views in a grid."""
    esc = html.escape
    warnings = "".join(f"<li>{esc(w)}</li>" for w in parts.warnings) or "<li>없음</li>"
    return f"""<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>미리보기: {esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{margin:0;font-family:-apple-system,"Segoe UI",Roboto,Arial,"Noto Sans KR","Noto Sans CJK KR",sans-serif;background:#f0f0f3;color:#1d1d1f}}
header{{padding:.75rem 1rem;background:#1d1d1f;color:#fff}} header h1{{font-size:1rem;margin:0}}
header p{{margin:.25rem 0 0;font-size:.85rem;color:#ccc}}
main{{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem;padding:1rem}}
section{{background:#fff;border-radius:8px;display:flex;flex-direction:column;min-height:80vh;overflow:hidden}}
h2{{font-size:.9rem;margin:0;padding:.5rem .75rem;border-bottom:1px solid #ddd;background:#fafafa}}
iframe{{border:0;flex:1;width:100%}} pre{{flex:1;margin:0;padding:.75rem;overflow:auto;font-size:.8rem;white-space:pre-wrap;word-break:break-all}}
</style></head><body>
<header><h1>미리보기: {esc(title)}</h1><p>메일 제목: {esc(parts.subject)}</p>
<p>확인할 점: </p><ul>{warnings}</ul></header>
<main>
<section><h2>블로그 페이지</h2><iframe title="블로그 페이지" src="{esc(parts.page_url)}"></iframe></section>
<section><h2>이메일 (HTML)</h2><iframe title="이메일" sandbox srcdoc="{esc(parts.email_html)}"></iframe></section>
<section><h2>피드 항목 (Atom)</h2><pre>{esc(parts.feed_entry)}</pre></section>
<section><h2>이메일 (텍스트)</h2><pre>{esc(parts.email_text)}</pre></section>
</main></body></html>
"""
