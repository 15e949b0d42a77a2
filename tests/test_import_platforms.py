"""publisher import wordpress | ghost | substack, on exports shaped like the real files (issue 11)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import html as lxml_html

from builders import write_config
from publisher.config import load_config
from publisher.publish.build import build
from publisher.publish.content import read_posts
from test_import_feed import invoke

NOW = datetime(2026, 11, 27, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

WXR = """<?xml version="1.0" encoding="UTF-8" ?>
<rss version="2.0"
  xmlns:excerpt="http://wordpress.org/export/1.2/excerpt/"
  xmlns:content="http://purl.org/rss/1.0/modules/content/"
  xmlns:wfw="http://wellformedweb.org/CommentAPI/"
  xmlns:dc="http://purl.org/dc/elements/1.1/"
  xmlns:wp="http://wordpress.org/export/1.2/">
<channel>
  <title>경제 노트</title>
  <link>https://econ.example.kr</link>
  <wp:wxr_version>1.2</wp:wxr_version>
  <wp:base_blog_url>https://econ.example.kr</wp:base_blog_url>
  <wp:author><wp:author_id>1</wp:author_id><wp:author_login><![CDATA[kim]]></wp:author_login><wp:author_email><![CDATA[kim@example.kr]]></wp:author_email><wp:author_display_name><![CDATA[김경제]]></wp:author_display_name></wp:author>
  <wp:category><wp:term_id>2</wp:term_id><wp:category_nicename><![CDATA[economy]]></wp:category_nicename><wp:cat_name><![CDATA[경제]]></wp:cat_name></wp:category>
  <item>
    <title><![CDATA[환율 뉴스 읽는 법]]></title>
    <link>https://econ.example.kr/2025/06/%ed%99%98%ec%9c%a8-%eb%89%b4%ec%8a%a4/</link>
    <pubDate>Fri, 20 Jun 2025 00:30:00 +0000</pubDate>
    <dc:creator><![CDATA[kim]]></dc:creator>
    <guid isPermaLink="false">https://econ.example.kr/?p=101</guid>
    <description></description>
    <content:encoded><![CDATA[환율이 오르면 <strong>수입 물가</strong>가 오릅니다.
줄바꿈도 있습니다.

[caption id="attachment_7" align="aligncenter" width="300"]<img src="https://econ.example.kr/wp-content/uploads/2025/06/chip.png" alt="칩" width="300" height="200" /> 반도체 칩[/caption]

<table><thead><tr><th>통화</th><th>환율</th></tr></thead><tbody><tr><td>USD</td><td>1,380</td></tr></tbody></table>

<div class="sharedaddy sd-sharing-enabled"><h3 class="sd-title">Share this:</h3><ul><li><a href="https://econ.example.kr/?share=twitter">Twitter</a></li></ul></div>
<p>The post <a href="https://econ.example.kr/x/">환율 뉴스 읽는 법</a> appeared first on <a href="https://econ.example.kr">경제 노트</a>.</p>]]></content:encoded>
    <excerpt:encoded><![CDATA[환율 기사에서 먼저 볼 세 가지.]]></excerpt:encoded>
    <wp:post_id>101</wp:post_id>
    <wp:post_date><![CDATA[2025-06-20 09:30:00]]></wp:post_date>
    <wp:post_date_gmt><![CDATA[2025-06-20 00:30:00]]></wp:post_date_gmt>
    <wp:post_name><![CDATA[%ed%99%98%ec%9c%a8-%eb%89%b4%ec%8a%a4]]></wp:post_name>
    <wp:status><![CDATA[publish]]></wp:status>
    <wp:post_parent>0</wp:post_parent>
    <wp:post_type><![CDATA[post]]></wp:post_type>
    <category domain="category" nicename="economy"><![CDATA[경제]]></category>
    <category domain="post_tag" nicename="fx"><![CDATA[환율]]></category>
    <category domain="post_tag" nicename="bok"><![CDATA[한국은행]]></category>
    <wp:postmeta><wp:meta_key><![CDATA[_thumbnail_id]]></wp:meta_key><wp:meta_value><![CDATA[7]]></wp:meta_value></wp:postmeta>
    <wp:postmeta><wp:meta_key><![CDATA[_wp_old_slug]]></wp:meta_key><wp:meta_value><![CDATA[fx-news]]></wp:meta_value></wp:postmeta>
  </item>
  <item>
    <title><![CDATA[지운 글]]></title>
    <content:encoded><![CDATA[<p>휴지통</p>]]></content:encoded>
    <wp:post_id>104</wp:post_id>
    <wp:post_date><![CDATA[2025-05-01 10:00:00]]></wp:post_date>
    <wp:status><![CDATA[trash]]></wp:status>
    <wp:post_type><![CDATA[post]]></wp:post_type>
  </item>
  <item>
    <title><![CDATA[쓰는 중인 글]]></title>
    <link>https://econ.example.kr/?p=102</link>
    <dc:creator><![CDATA[kim]]></dc:creator>
    <guid isPermaLink="false">https://econ.example.kr/?p=102</guid>
    <content:encoded><![CDATA[<!-- wp:paragraph --><p>초안입니다.</p><!-- /wp:paragraph -->]]></content:encoded>
    <wp:post_id>102</wp:post_id>
    <wp:post_date><![CDATA[2025-07-01 10:00:00]]></wp:post_date>
    <wp:post_date_gmt><![CDATA[0000-00-00 00:00:00]]></wp:post_date_gmt>
    <wp:post_name><![CDATA[]]></wp:post_name>
    <wp:status><![CDATA[draft]]></wp:status>
    <wp:post_type><![CDATA[post]]></wp:post_type>
  </item>
  <item>
    <title><![CDATA[소개]]></title>
    <link>https://econ.example.kr/about/</link>
    <content:encoded><![CDATA[<p>페이지</p>]]></content:encoded>
    <wp:post_id>2</wp:post_id>
    <wp:post_date><![CDATA[2024-01-01 10:00:00]]></wp:post_date>
    <wp:status><![CDATA[publish]]></wp:status>
    <wp:post_type><![CDATA[page]]></wp:post_type>
  </item>
  <item>
    <title><![CDATA[환율 뉴스 읽는 법]]></title>
    <content:encoded><![CDATA[<p>옛 판</p>]]></content:encoded>
    <wp:post_id>103</wp:post_id>
    <wp:post_date><![CDATA[2025-06-19 10:00:00]]></wp:post_date>
    <wp:status><![CDATA[inherit]]></wp:status>
    <wp:post_type><![CDATA[revision]]></wp:post_type>
  </item>
  <item>
    <title><![CDATA[chip]]></title>
    <wp:post_id>7</wp:post_id>
    <wp:status><![CDATA[inherit]]></wp:status>
    <wp:post_type><![CDATA[attachment]]></wp:post_type>
    <wp:attachment_url><![CDATA[https://econ.example.kr/wp-content/uploads/2025/06/chip.png]]></wp:attachment_url>
  </item>
</channel>
</rss>
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_config(tmp_path / "site")


def _posts(site: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((site / "posts").glob("*.md"))}


def _redirects_to_post(out: Path, alias_page: str, slug: str) -> None:
    doc = lxml_html.fromstring((out / alias_page).read_text(encoding="utf-8"))
    target = doc.xpath('//link[@rel="canonical"]/@href')[0]
    assert target == f"https://blog.example.com/posts/{_quote(slug)}/"
    assert (out / f"posts/{slug}/index.html").is_file()


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


def _build(site: Path) -> Path:
    out = site / "public"
    build(load_config(site), NOW, output=out, include_drafts=False)
    return out


def test_wordpress_export(site: Path, tmp_path: Path):
    export = tmp_path / "wp" / "export.xml"
    (export.parent / "wp-content/uploads/2025/06").mkdir(parents=True)
    (export.parent / "wp-content/uploads/2025/06/chip.png").write_bytes(PNG)
    export.write_text(WXR, encoding="utf-8")
    code, output = invoke(site, "import", "wordpress", str(export))
    assert code == 0, output
    assert "skipped 1 × attachment (only posts are imported)" in output
    assert "skipped 1 × page" in output and "skipped 1 × revision" in output
    assert "skipped 1 × post (trash)" in output
    files = _posts(site)
    assert sorted(files) == ["2025-06-20-환율-뉴스.md", "2025-07-01-쓰는-중인-글.md"]
    text = files["2025-06-20-환율-뉴스.md"]
    assert "date: 2025-06-20 09:30:00+09:00" in text  # the blog's zone, from post_date_gmt
    assert 'category: "경제"' in text and 'tags: ["환율", "한국은행"]' in text
    assert 'author: "김경제"' in text
    assert 'summary: "환율 기사에서 먼저 볼 세 가지."' in text
    assert 'aliases: ["/2025/06/환율-뉴스/", "/2025/06/fx-news/"]' in text
    assert 'id: "https://econ.example.kr/?p=101"' in text
    assert 'image: "static/imported/wordpress/wp-content/uploads/2025/06/chip.png"' in text
    assert "환율이 오르면 **수입 물가**가 오릅니다.\\\n줄바꿈도 있습니다." in text
    assert "![칩](../../static/imported/wordpress/wp-content/uploads/2025/06/chip.png)" in text
    assert "| 통화 | 환율 |\n| --- | --- |\n| USD | 1,380 |" in text
    for chrome in ["[caption", "Share this", "appeared first on", "wp:paragraph"]:
        assert chrome not in text
    copied = site / "templates/static/imported/wordpress/wp-content/uploads/2025/06/chip.png"
    assert copied.read_bytes() == PNG
    draft = files["2025-07-01-쓰는-중인-글.md"]
    assert "draft: true" in draft and "date: 2025-07-01 10:00:00+09:00" in draft
    assert "aliases" not in draft  # ?p=102 is not a path
    out = _build(site)
    _redirects_to_post(out, "2025/06/환율-뉴스/index.html", "환율-뉴스")
    _redirects_to_post(out, "2025/06/fx-news/index.html", "환율-뉴스")
    assert (out / "static/imported/wordpress/wp-content/uploads/2025/06/chip.png").is_file()
    page = (out / "posts/환율-뉴스/index.html").read_text(encoding="utf-8")
    assert 'src="../../static/imported/wordpress/wp-content/uploads/2025/06/chip.png"' in page
    assert not (out / "posts/쓰는-중인-글/index.html").exists()
    code, output = invoke(site, "import", "wordpress", str(export))
    assert code == 0 and "Nothing changed" in output, output


def test_wordpress_refuses_a_plain_feed(site: Path, tmp_path: Path):
    export = tmp_path / "rss.xml"
    export.write_text('<rss version="2.0"><channel></channel></rss>', encoding="utf-8")
    code, output = invoke(site, "import", "wordpress", str(export))
    assert code == 1
    assert "not a WordPress export (no xmlns:wp); for a feed use `feed`" in output


def _lexical(*children: dict[str, object]) -> str:
    return json.dumps({"root": {"type": "root", "children": list(children)}})


def _text(text: str, fmt: int = 0) -> dict[str, object]:
    return {"type": "text", "text": text, "format": fmt}


GHOST = {
    "db": [
        {
            "meta": {"exported_on": 1750380000000, "version": "5.88.0"},
            "data": {
                "posts": [
                    {
                        "id": "6655aa01",
                        "uuid": "0b1c-uuid",
                        "title": "HBM이란 무엇인가",
                        "slug": "what-is-hbm",
                        "html": '<p>HBM은 <a href="https://ex.kr">적층</a> 메모리입니다.</p>'
                        '<figure class="kg-card kg-image-card"><img src="__GHOST_URL__/content/images/2025/06/hbm.png" alt="HBM"></figure>'
                        '<pre><code class="language-js">const x = 1;</code></pre>'
                        '<div class="kg-card kg-signup-card"><h2>구독하기</h2><p>뉴스레터</p></div>',
                        "lexical": None,
                        "feature_image": "__GHOST_URL__/content/images/2025/06/hbm.png",
                        "type": "post",
                        "status": "published",
                        "visibility": "public",
                        "created_at": "2025-06-11T23:00:00.000Z",
                        "updated_at": "2025-06-13T01:00:00.000Z",
                        "published_at": "2025-06-12T00:00:00.000Z",
                        "custom_excerpt": "고대역폭 메모리 입문",
                    },
                    {
                        "id": "6655aa02",
                        "title": "추론 모델 정리",
                        "slug": "reasoning-models",
                        "html": None,
                        "lexical": _lexical(
                            {
                                "type": "heading",
                                "tag": "h2",
                                "children": [_text("요약")],
                            },
                            {
                                "type": "paragraph",
                                "children": [
                                    _text("o1은 "),
                                    _text("느리지만", 1),
                                    _text(" 정확합니다."),
                                ],
                            },
                            {
                                "type": "list",
                                "listType": "bullet",
                                "children": [
                                    {"type": "listitem", "children": [_text("비용")]},
                                    {"type": "listitem", "children": [_text("속도")]},
                                ],
                            },
                        ),
                        "type": "post",
                        "status": "draft",
                        "created_at": "2025-06-15T03:00:00.000Z",
                        "published_at": None,
                    },
                    {
                        "id": "6655aa04",
                        "title": "옛 편집기 글",
                        "slug": "old-editor",
                        "html": None,
                        "mobiledoc": json.dumps(
                            {
                                "version": "0.3.1",
                                "atoms": [],
                                "cards": [
                                    ["markdown", {"markdown": "| 가 | 나 |\n|---|---|\n| 1 | 2 |"}]
                                ],
                                "markups": [["a", ["href", "https://ex.kr"]], ["strong"]],
                                "sections": [
                                    [1, "h2", [[0, [], 0, "머리말"]]],
                                    [1, "p", [[0, [0], 1, "링크"], [0, [1], 1, " 강조"]]],
                                    [10, 0],
                                    [3, "ul", [[[0, [], 0, "하나"]], [[0, [], 0, "둘"]]]],
                                ],
                            }
                        ),
                        "type": "post",
                        "status": "published",
                        "published_at": "2020-02-29T15:00:00.000Z",
                    },
                    {
                        "id": "6655aa03",
                        "title": "About",
                        "slug": "about",
                        "html": "<p>page</p>",
                        "type": "page",
                        "status": "published",
                        "published_at": "2024-01-01T00:00:00.000Z",
                    },
                ],
                "tags": [
                    {"id": "t1", "name": "기술", "slug": "tech"},
                    {"id": "t2", "name": "반도체", "slug": "chips"},
                    {"id": "t3", "name": "#internal", "slug": "hash-internal"},
                ],
                "posts_tags": [
                    {"post_id": "6655aa01", "tag_id": "t3", "sort_order": 0},
                    {"post_id": "6655aa01", "tag_id": "t1", "sort_order": 1},
                    {"post_id": "6655aa01", "tag_id": "t2", "sort_order": 2},
                ],
                "users": [{"id": "u1", "name": "이기자", "slug": "lee"}],
                "posts_authors": [{"post_id": "6655aa01", "author_id": "u1", "sort_order": 0}],
            },
        }
    ]
}


def test_ghost_export(site: Path, tmp_path: Path):
    export = tmp_path / "ghost" / "export.json"
    (export.parent / "content/images/2025/06").mkdir(parents=True)
    (export.parent / "content/images/2025/06/hbm.png").write_bytes(PNG)
    export.write_text(json.dumps(GHOST, ensure_ascii=False), encoding="utf-8")
    code, output = invoke(site, "import", "ghost", str(export))
    assert code == 0, output
    assert "page 'About' (published)" in output
    files = _posts(site)
    assert sorted(files) == [
        "2020-02-29-old-editor.md",
        "2025-06-12-what-is-hbm.md",
        "2025-06-15-reasoning-models.md",
    ]
    text = files["2025-06-12-what-is-hbm.md"]
    assert "date: 2025-06-12 00:00:00+00:00" in text
    assert "updated: 2025-06-13 01:00:00+00:00" in text
    assert 'category: "기술"' in text and 'tags: ["반도체"]' in text  # "#internal" dropped
    assert 'author: "이기자"' in text and 'summary: "고대역폭 메모리 입문"' in text
    assert 'aliases: ["/what-is-hbm/"]' in text
    assert 'image: "static/imported/ghost/content/images/2025/06/hbm.png"' in text
    assert "HBM은 [적층](https://ex.kr) 메모리입니다." in text
    assert "```js\nconst x = 1;\n```" in text
    assert "구독하기" not in text and "__GHOST_URL__" not in text
    lexical = files["2025-06-15-reasoning-models.md"]
    assert "draft: true" in lexical
    assert "## 요약" in lexical and "o1은 **느리지만** 정확합니다." in lexical
    assert "- 비용\n- 속도" in lexical
    mobiledoc = files["2020-02-29-old-editor.md"]
    assert "## 머리말" in mobiledoc and "[링크](https://ex.kr)**강조**" in mobiledoc.replace(
        " **", "**"
    )
    assert "| 가 | 나 |\n| --- | --- |\n| 1 | 2 |" in mobiledoc
    assert "- 하나\n- 둘" in mobiledoc
    out = _build(site)
    _redirects_to_post(out, "what-is-hbm/index.html", "what-is-hbm")
    before = _posts(site)
    code, output = invoke(site, "import", "ghost", str(export))
    assert code == 0 and "Nothing changed" in output, output
    assert _posts(site) == before


def test_ghost_images_missing_from_the_folder_are_warned_about(site: Path, tmp_path: Path):
    export = tmp_path / "ghost" / "export.json"
    export.parent.mkdir()
    export.write_text(json.dumps(GHOST, ensure_ascii=False), encoding="utf-8")
    code, output = invoke(site, "import", "ghost", str(export))
    assert code == 0, output
    assert "warning: 2 images have no address of their own" in output
    assert "(first: /content/images/2025/06/hbm.png)" in output


def test_ghost_refuses_other_json(site: Path, tmp_path: Path):
    export = tmp_path / "x.json"
    export.write_text('{"posts": 3}', encoding="utf-8")
    code, output = invoke(site, "import", "ghost", str(export))
    assert code == 1 and "not a Ghost export (no db[0].data.posts)" in output


SUBSTACK_CSV = (
    "post_id,post_date,is_published,email_sent_at,inbox_sent_at,type,audience,title,subtitle,podcast_url\n"
    "98765.mijung-gap,2025-06-20T00:00:00.000Z,true,2025-06-20T00:01:00.000Z,,newsletter,everyone,"
    '"미중 기술 격차, 정말 좁혀졌나?",DeepSeek 이후의 현실,\n'
    "98766.paid-notes,2025-06-21T12:30:00.000Z,true,,,newsletter,only_paid,유료 노트,,\n"
    "98767.draft-idea,,false,,,newsletter,everyone,아이디어,,\n"
)

SUBSTACK_HTML = """<div class="body markup" dir="auto">
<p>DeepSeek이 <em>앱스토어</em> 1위에 올랐습니다.<a class="footnote-anchor" id="footnote-anchor-1" href="#footnote-1">1</a></p>
<div class="captioned-image-container"><figure><a class="image-link image2" href="https://substackcdn.com/image/fetch/a.png"><div class="image2-inset"><picture><source type="image/webp" srcset="https://substackcdn.com/a.webp"><img src="https://substackcdn.com/image/fetch/a.png" alt="차트" width="1456" height="816"></picture></div></a><figcaption class="image-caption">앱 순위</figcaption></figure></div>
<div class="subscription-widget-wrap"><div class="subscription-widget show-subscribe"><div class="preamble"><p>Thanks for reading! Subscribe for free.</p></div><form class="subscription-widget-subscribe"><input type="email" name="email"><input type="submit" value="Subscribe"></form></div></div>
<p class="button-wrapper" data-attrs="{}"><a class="button primary" href="https://x.substack.com/p/mijung-gap?utm_source=substack&amp;utm_medium=email&amp;action=share"><span>Share</span></a></p>
<div class="footnote"><a id="footnote-1" href="#footnote-anchor-1" class="footnote-number">1</a><div class="footnote-content"><p>2025년 1월 27일 기준.</p></div></div>
</div>"""


def test_substack_export(site: Path, tmp_path: Path):
    folder = tmp_path / "substack"
    (folder / "posts").mkdir(parents=True)
    (folder / "posts.csv").write_text(SUBSTACK_CSV, encoding="utf-8")
    (folder / "posts/98765.mijung-gap.html").write_text(SUBSTACK_HTML, encoding="utf-8")
    (folder / "posts/98766.paid-notes.html").write_text("<p>유료 구독자용</p>", encoding="utf-8")
    code, output = invoke(site, "import", "substack", str(folder))
    assert code == 0, output
    assert "draft '아이디어' has no date" in output
    files = _posts(site)
    assert sorted(files) == ["2025-06-20-mijung-gap.md", "2025-06-21-paid-notes.md"]
    text = files["2025-06-20-mijung-gap.md"]
    assert 'summary: "DeepSeek 이후의 현실"' in text
    assert 'aliases: ["/p/mijung-gap"]' in text
    assert 'source: "substack:98765"' in text
    assert "DeepSeek이 *앱스토어* 1위에 올랐습니다.[^1]" in text
    assert "[^1]: 2025년 1월 27일 기준." in text
    assert "![차트](https://substackcdn.com/image/fetch/a.png)" in text
    for chrome in ["Subscribe", "Share", "Thanks for reading", "utm_source"]:
        assert chrome not in text, chrome
    out = _build(site)
    _redirects_to_post(out, "p/mijung-gap/index.html", "mijung-gap")
    result = read_posts(load_config(site))
    assert not result.problems
    before = _posts(site)
    code, output = invoke(site, "import", "substack", str(folder))
    assert code == 0 and "Nothing changed" in output, output
    assert _posts(site) == before


def test_substack_missing_body_is_listed_with_its_row(site: Path, tmp_path: Path):
    folder = tmp_path / "substack"
    (folder / "posts").mkdir(parents=True)
    (folder / "posts.csv").write_text(SUBSTACK_CSV, encoding="utf-8")
    code, output = invoke(site, "import", "substack", str(folder))
    assert code == 1
    assert (
        "posts.csv:2: '미중 기술 격차, 정말 좁혀졌나?': posts/98765.mijung-gap.html is missing"
        in output
    )
    assert "posts.csv:3: '유료 노트': posts/98766.paid-notes.html is missing" in output
    assert _posts(site) == {}


def test_a_folder_for_a_file_or_a_file_for_the_folder_is_refused(site: Path, tmp_path: Path):
    code, output = invoke(site, "import", "feed", str(tmp_path))
    assert code == 1 and "`import feed` takes a file, not a folder" in output
    zipped = tmp_path / "export.zip"
    zipped.write_bytes(b"PK\x03\x04")
    code, output = invoke(site, "import", "substack", str(zipped))
    assert code == 1 and "`import substack` takes the unzipped export folder" in output
