"""The shared HTML → Markdown cleaner of the importers (issue 11)."""

from __future__ import annotations

import pytest

from publisher.publish import markup
from publisher.publish.importers.clean import html_to_markdown


def test_text_that_looks_like_markup_stays_text():
    text = html_to_markdown("<p>&lt;table&gt; 태그를 씁니다.</p><p>1. 첫째가 아닙니다.</p>")
    html = markup.render_tokens(markup.parse(text))
    assert "&lt;table&gt; 태그를 씁니다." in html
    assert "<ol" not in html and "1. 첫째가 아닙니다." in html


@pytest.mark.parametrize(
    "chrome",
    [
        '<img src="https://t.example/p.gif" width="1" height="1">',
        '<img src="https://feeds.feedburner.com/~r/blog/~4/abc" alt="">',
        '<p><a href="https://old.example/x">Continue reading →</a></p>',
        '<p><a class="more-link" href="https://old.example/x#more-1">더 보기</a></p>',
        '<div class="sharedaddy"><h3>Share this:</h3><a href="?share=x">X</a></div>',
        "<script>track()</script>",
        '<style>p { color: red }</style><p style="display:none">숨김</p>',
        '<div class="container_postbtn"><span>공감</span><span>구독하기</span></div>',
        '<div class="feedflare"><a href="http://feeds.example/~ff/x"><img src="x"></a></div>',
    ],
)
def test_chrome_is_removed(chrome: str):
    text = html_to_markdown(f"<p>본문입니다.</p>{chrome}")
    assert text == "본문입니다.\n", text


def test_video_embed_becomes_a_link_and_other_iframes_go():
    text = html_to_markdown(
        '<p>영상:</p><iframe src="https://www.youtube.com/embed/abc123"></iframe>'
        '<iframe src="https://ads.example/frame"></iframe>'
    )
    assert "https://www.youtube.com/embed/abc123" in text
    assert "ads.example" not in text


def test_images_go_through_the_resolver_and_nothing_else_is_fetched():
    seen: list[str] = []

    def resolve(src: str) -> str:
        seen.append(src)
        return "../../static/imported/feed/a.png" if src.endswith("a.png") else src

    text = html_to_markdown(
        '<p><img src="https://x.example/a.png" alt="가"><img src="https://x.example/b.jpg" alt="나"></p>',
        resolve,
    )
    assert seen == ["https://x.example/a.png", "https://x.example/b.jpg"]
    assert "![가](../../static/imported/feed/a.png)" in text
    assert "![나](https://x.example/b.jpg)" in text


@pytest.mark.parametrize(
    "footer",
    [
        '<p><a href="https://medium.com/p/1">제목</a> was originally published in '
        '<a href="https://medium.com/pub">Pub</a> on Medium, where people are continuing the '
        "conversation by highlighting and responding to this story.</p>"
        '<img src="https://medium.com/_/stat?event=post.clientViewed&amp;postId=1" width="1" height="1" alt="">',
        '<div class="blogger-post-footer"><img width="1" height="1" src="https://blogger.googleusercontent.com/tracker/1"></div>',
    ],
)
def test_medium_and_blogger_footers_are_removed(footer: str):
    assert html_to_markdown(f"<p>본문입니다.</p>{footer}") == "본문입니다.\n"
