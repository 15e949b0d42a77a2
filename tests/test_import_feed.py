"""publisher import feed: a Tistory RSS with its chrome, an Atom feed, safety (issue 11)."""

from __future__ import annotations

import shlex
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html

from builders import write_config
from conftest import REPO
from publisher.cli import main as cli_module
from publisher.config import load_config
from publisher.publish.build import build
from publisher.publish.content import read_posts

NOW = datetime(2026, 11, 27, tzinfo=UTC)

TISTORY_ITEM = """<![CDATA[
<div class="tt_article_useless_p_margin contents_style">
<p data-ke-size="size16" style="color: #333;">2025년 1월, 중국의 AI 모델 'DeepSeek'이 미국 앱스토어 1위를 차지했습니다.</p>
<h2 data-ke-size="size26">실제 기술 격차는 어느 정도일까?</h2>
<table style="border-collapse: collapse; width: 100%;" border="1">
<tbody>
<tr><td>분야</td><td>현재 상황</td><td>대응 방향</td></tr>
<tr><td>AI 모델 개발</td><td>세계 3위 수준</td><td>독자 생태계 | 특화</td></tr>
<tr><td>HBM</td><td>글로벌 95% 점유율</td><td>기술 격차 확대</td></tr>
</tbody>
</table>
<figure class="imageblock alignCenter"><span><img src="https://blog.kakaocdn.net/dn/abc/img.png" alt="반도체 지도" width="800" height="450"></span></figure>
<pre id="code_1" class="python" data-ke-language="python" data-ke-type="codeblock"><code>print("격차")
</code></pre>
<ul><li>AI 모델 성능 격차: 3-6개월</li><li>반도체 설계 기술: 1-2년</li></ul>
<script>alert('x')</script>
<p>더 많은 기술 정책 분석을 받고 싶다면 구독과 댓글로 함께해 주세요.</p>
<img src="https://tistory1.daumcdn.net/tistory/pixel.gif" width="1" height="1">
</div>
<div class="another_category another_category_color_gray">
<h4>'<a href="https://world.tistory.com/category/세계">세계</a>' 카테고리의 다른 글</h4>
<table><tr><th><a href="/124">DOJ 역대 최대 2.25억 달러 암호화폐 압수 사건 분석</a> <span>(2)</span></th><td>2025.06.20</td></tr></table>
</div>
<div class="container_postbtn #post_button_group">
<div class="postbtn_like"><button class="btn_post uoc-icon"><span class="txt_like uoc-count">공감</span></button></div>
<button class="btn_subscription"><em class="txt_state">구독하기</em></button>
</div>
]]>"""

TISTORY_RSS = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
<channel>
<title>세계 뉴스 읽기</title>
<link>https://world.tistory.com/</link>
<item>
<title>미중 기술 격차, 정말 좁혀졌나?</title>
<link>https://world.tistory.com/entry/%EB%AF%B8%EC%A4%91-%EA%B8%B0%EC%88%A0-%EA%B2%A9%EC%B0%A8</link>
<description>{TISTORY_ITEM}</description>
<category>세계</category>
<category>AI</category>
<category>반도체</category>
<author>세계읽기</author>
<guid isPermaLink="true">https://world.tistory.com/123</guid>
<comments>https://world.tistory.com/123#entry123comment</comments>
<pubDate>Fri, 20 Jun 2025 09:00:00 +0900</pubDate>
</item>
<item>
<title>러시아 경제부 장관의 경고</title>
<link>https://world.tistory.com/122</link>
<description><![CDATA[<p>러시아 경제가 <b>경기 침체</b> 직전이라는 경고입니다.</p><p><a href="https://world.tistory.com/122">Continue reading</a></p>]]></description>
<category>세계</category>
<guid isPermaLink="true">https://world.tistory.com/122</guid>
<pubDate>Thu, 19 Jun 2025 23:30:00 KST</pubDate>
</item>
</channel>
</rss>
"""


def invoke(root: Path, *args: str) -> tuple[int, str]:
    cli_module._register_commands()
    result = CliRunner().invoke(cli_module.cli, ["--site", str(root), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        message = getattr(result.exception, "message", None) or repr(result.exception)
        hint = getattr(result.exception, "hint", None) or ""
        return 1, f"{result.output}{message}\nhint: {hint}"
    return result.exit_code, result.output


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_config(tmp_path / "site")


def _export(tmp_path: Path, text: str = TISTORY_RSS, name: str = "rss.xml") -> Path:
    path = tmp_path / "export" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _imported(site: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((site / "posts").glob("*.md"))}


def test_tistory_rss_becomes_clean_markdown_posts(site: Path, tmp_path: Path):
    code, output = invoke(site, "import", "feed", str(_export(tmp_path)))
    assert code == 0, output
    assert "Imported 2 new and 0 updated posts into posts/" in output
    files = _imported(site)
    assert sorted(files) == [
        "2025-06-19-러시아-경제부-장관의-경고.md",
        "2025-06-20-미중-기술-격차.md",
    ]
    text = files["2025-06-20-미중-기술-격차.md"]
    head, body = text.split("\n---\n", 1)
    assert 'title: "미중 기술 격차, 정말 좁혀졌나?"' in head
    assert "date: 2025-06-20 09:00:00+09:00" in head
    assert 'category: "세계"' in head and 'tags: ["AI", "반도체"]' in head
    assert 'slug: "미중-기술-격차"' in head
    assert 'aliases: ["/entry/미중-기술-격차", "/123"]' in head  # Tistory serves both
    assert 'id: "https://world.tistory.com/123"' in head
    assert 'source: "feed:https://world.tistory.com/123"' in head
    assert 'author: "세계읽기"' in head
    # content: table with a header row (pipe escaped), heading, code with language, image URL kept
    assert "| 분야 | 현재 상황 | 대응 방향 |\n| --- | --- | --- |" in body
    assert "독자 생태계 \\| 특화" in body
    assert "## 실제 기술 격차는 어느 정도일까?" in body
    assert '```python\nprint("격차")\n```' in body
    assert "![반도체 지도](https://blog.kakaocdn.net/dn/abc/img.png)" in body
    assert "- AI 모델 성능 격차: 3-6개월" in body
    # chrome gone
    for chrome in ["카테고리의 다른 글", "DOJ", "공감", "구독하기", "alert", "pixel.gif", "color:"]:
        assert chrome not in body, chrome
    other = files["2025-06-19-러시아-경제부-장관의-경고.md"]
    assert "Continue reading" not in other
    assert "date: 2025-06-19 23:30:00+09:00" in other  # "KST" read as +09:00
    assert "**경기 침체**" in other


def test_imported_site_builds_and_old_urls_redirect(site: Path, tmp_path: Path):
    code, output = invoke(site, "import", "feed", str(_export(tmp_path)))
    assert code == 0, output
    out = site / "public"
    build(load_config(site), NOW, output=out)
    page = out / "entry/미중-기술-격차/index.html"
    doc = lxml_html.fromstring(page.read_text(encoding="utf-8"))
    target = doc.xpath('//link[@rel="canonical"]/@href')[0]
    assert target.endswith("/posts/%EB%AF%B8%EC%A4%91-%EA%B8%B0%EC%88%A0-%EA%B2%A9%EC%B0%A8/")
    assert (out / "posts/미중-기술-격차/index.html").is_file()
    assert (out / "122/index.html").is_file()
    assert (out / "123/index.html").is_file()
    post_html = (out / "posts/미중-기술-격차/index.html").read_text(encoding="utf-8")
    assert "<table>" in post_html and "<th>분야</th>" in post_html


def test_reimport_is_a_no_op_and_a_newer_export_updates(site: Path, tmp_path: Path):
    export = _export(tmp_path)
    assert invoke(site, "import", "feed", str(export))[0] == 0
    before = _imported(site)
    code, output = invoke(site, "import", "feed", str(export))
    assert code == 0, output
    assert "Nothing changed" in output
    assert _imported(site) == before
    newer = TISTORY_RSS.replace("경기 침체", "경기 후퇴")
    code, output = invoke(site, "import", "feed", str(_export(tmp_path, newer, "rss2.xml")))
    assert code == 0, output
    assert "Imported 0 new and 1 updated posts" in output
    assert "2025-06-19-러시아-경제부-장관의-경고.md (updated)" in output
    updated = _imported(site)["2025-06-19-러시아-경제부-장관의-경고.md"]
    assert "경기 후퇴" in updated
    assert 'aliases: ["/122"]\n' in updated  # kept once, not doubled by the update


def test_dry_run_writes_nothing(site: Path, tmp_path: Path):
    code, output = invoke(site, "import", "feed", str(_export(tmp_path)), "--dry-run")
    assert code == 0, output
    assert "would write posts/2025-06-20-미중-기술-격차.md (new)" in output
    assert 'title: "미중 기술 격차, 정말 좁혀졌나?"' in output
    assert _imported(site) == {}


def test_category_map_and_since(site: Path, tmp_path: Path):
    code, output = invoke(
        site,
        "import",
        "feed",
        str(_export(tmp_path)),
        "--category-map",
        "세계=국제",
        "--category-map",
        "AI=",
        "--since",
        "2025-06-20",
    )
    assert code == 0, output
    files = _imported(site)
    assert list(files) == ["2025-06-20-미중-기술-격차.md"]
    text = files["2025-06-20-미중-기술-격차.md"]
    assert 'category: "국제"' in text and 'tags: ["반도체"]' in text


def test_every_bad_item_is_listed_and_nothing_is_written(site: Path, tmp_path: Path):
    bad = TISTORY_RSS.replace("<title>러시아 경제부 장관의 경고</title>", "<title></title>")
    bad = bad.replace("Fri, 20 Jun 2025 09:00:00 +0900", "어제")
    code, output = invoke(site, "import", "feed", str(_export(tmp_path, bad)))
    assert code == 1
    assert "rss.xml:6: item 1: not a date: '어제'" in output
    assert "item 2: has no <title>" in output
    assert _imported(site) == {}


def test_entities_and_external_dtds_are_refused(site: Path, tmp_path: Path):
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;">]>'
        "<rss><channel><item><title>&b;</title></item></channel></rss>"
    )
    code, output = invoke(site, "import", "feed", str(_export(tmp_path, laughs)))
    assert code == 1
    assert "declares XML entities" in output
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<rss><channel><item><title>&x;</title></item></channel></rss>"
    )
    code, output = invoke(site, "import", "feed", str(_export(tmp_path, xxe, "x.xml")))
    assert code == 1
    assert "root:" not in output
    assert _imported(site) == {}


ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<title>Medium</title>
<entry>
<title>반도체 공급망 지도</title>
<id>tag:blogger.com,1999:blog-1.post-42</id>
<link rel="alternate" href="https://blog.example.org/2019/05/semiconductor-map.html"/>
<published>2019-05-03T08:15:00.000-07:00</published>
<updated>2019-05-04T10:00:00.000-07:00</updated>
<category term="기술"/>
<author><name>Kim</name></author>
<content type="html">&lt;p&gt;공급망&lt;sup&gt;&lt;a href="#fn1"&gt;1&lt;/a&gt;&lt;/sup&gt; 지도입니다.&lt;/p&gt;
&lt;ol class="footnotes"&gt;&lt;li id="fn1"&gt;출처: 업계 자료 &lt;a href="#fnref1"&gt;↩&lt;/a&gt;&lt;/li&gt;&lt;/ol&gt;</content>
</entry>
</feed>
"""


def test_atom_feed_with_footnotes_and_odd_zone(site: Path, tmp_path: Path):
    code, output = invoke(site, "import", "feed", str(_export(tmp_path, ATOM, "atom.xml")))
    assert code == 0, output
    text = _imported(site)["2019-05-03-semiconductor-map.md"]
    assert "date: 2019-05-03 08:15:00-07:00" in text
    assert "updated: 2019-05-04 10:00:00-07:00" in text
    assert 'aliases: ["/2019/05/semiconductor-map.html"]' in text
    assert "공급망[^1] 지도입니다." in text
    assert "[^1]: 출처: 업계 자료" in text
    assert "↩" not in text
    posts = read_posts(load_config(site))
    assert not posts.problems
    assert "footnote" in posts.posts[0].body_html


PASTED = """<rss version="2.0"><channel><item>
<title>붙여넣은 글</title><link>https://world.tistory.com/200</link>
<guid>https://world.tistory.com/200</guid><pubDate>Sat, 21 Jun 2025 08:00:00 +0900</pubDate>
<description><![CDATA[<p>한국은 HBM에서 강점이 있습니다.</p>
<p>더 많은 분석을 받고 싶다면 구독과 댓글로 함께해 주세요.</p>
<p><strong>'세계' 카테고리의 다른 글</strong></p>
<p>DOJ 역대 최대 2.25억 달러 암호화폐 압수 사건 분석 (2) | 2025.06.20 |<br>
러시아 경제부 장관, "경기 침체 직전" 경고한 이유는? (2) | 2025.06.20 |</p>
<p>공감</p>
<img src="https://cdn.example.com/dn/xyz/img.png" alt="그림">]]></description>
</item></channel></rss>"""


def test_pasted_related_list_is_cut_and_a_lone_file_name_is_not_a_match(site: Path, tmp_path: Path):
    export = _export(tmp_path, PASTED, "pasted.xml")
    (export.parent / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    code, output = invoke(site, "import", "feed", str(export))
    assert code == 0, output
    text = _imported(site)["2025-06-21-붙여넣은-글.md"]
    body = text.split("\n---\n", 1)[1]
    assert "한국은 HBM에서 강점이 있습니다." in body
    assert "구독과 댓글로 함께해 주세요." in body  # the author's own sentence stays
    for chrome in ["카테고리의 다른 글", "DOJ", "러시아", "\n공감"]:
        assert chrome not in body, chrome
    assert "![그림](https://cdn.example.com/dn/xyz/img.png)" in body  # not the local img.png
    assert not (site / "templates/static/imported").exists()


def test_duplicate_items_and_reserved_old_paths(site: Path, tmp_path: Path):
    twice = TISTORY_RSS.replace(
        '<guid isPermaLink="true">https://world.tistory.com/122</guid>',
        '<guid isPermaLink="true">https://world.tistory.com/123</guid>',
    )
    code, output = invoke(site, "import", "feed", str(_export(tmp_path, twice)))
    assert code == 1
    assert "has the id 'https://world.tistory.com/123' of rss.xml:" in output
    archive = TISTORY_RSS.replace(
        "<link>https://world.tistory.com/122</link>",
        "<link>https://world.tistory.com/archive/</link>",
    ).replace(
        '<guid isPermaLink="true">https://world.tistory.com/122</guid>',
        '<guid isPermaLink="false">post-122</guid>',
    )
    export = _export(tmp_path, archive, "archive.xml")
    code, output = invoke(site, "import", "feed", str(export))
    assert code == 0, output
    assert "old path /archive/ is a page of this site; not redirected" in output
    build(load_config(site), NOW, output=site / "public")
    code, output = invoke(site, "import", "feed", str(export))
    assert code == 0 and "Nothing changed" in output, output


def test_the_help_examples_work_on_a_copy_of_the_sample_site(tmp_path: Path, monkeypatch):
    """The import, rename and subscriber-import examples, run in order as --help shows them."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(REPO / "config.toml", site / "config.toml")
    shutil.copytree(REPO / "posts", site / "posts")
    shutil.copytree(REPO / "examples", site / "examples")
    monkeypatch.chdir(site)
    monkeypatch.delenv("PUBLISHER_DATABASE_URL", raising=False)
    cli_module._register_commands()
    commands = [
        cli_module.cli.commands["import"],
        cli_module.cli.commands["rename"],
        cli_module.cli.commands["subscribers"].commands["import"],
    ]
    ran = 0
    for command in commands:
        for line in (command.help or "").split("Example", 1)[1].splitlines():
            if "publisher" not in line or ("examples/" not in line and "rename" not in line):
                continue
            args = shlex.split(line.strip())[1:]
            result = CliRunner().invoke(cli_module.cli, ["--site", str(site), *args])
            assert result.exit_code == 0, f"{line}\n{result.output}\n{result.exception!r}"
            ran += 1
    assert ran == 6
    assert (site / "posts/2025-06-12-hbm-basics.md").is_file()
    assert sorted(p.name for p in (site / "posts").iterdir()) == sorted(
        p.name.replace("what-is-hbm", "hbm-basics") for p in (REPO / "posts").iterdir()
    )  # the dry runs wrote nothing


def test_the_strict_reader_checks_every_file_before_any_is_written(site: Path, tmp_path: Path):
    bad = TISTORY_RSS.replace(
        "<title>러시아 경제부 장관의 경고</title>", "<title>=?utf-8?q?x?=</title>"
    )
    code, output = invoke(site, "import", "feed", str(_export(tmp_path, bad)))
    assert code == 1
    assert (
        "item 2 ('=?utf-8?q?x?='): posts/2025-06-19-utf-8-q-x.md:2: 'title' must not contain '=?'"
        in output
    )
    assert "Nothing was written" in output
    assert _imported(site) == {}


NAVER = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>네이버 블로그</title><link>https://blog.naver.com/econ</link>
<item>
<author>econ</author><category><![CDATA[경제 읽기]]></category>
<title><![CDATA[환율과 물가]]></title>
<link>https://blog.naver.com/econ/223456789012?fromRss=true&amp;trackingCode=rss</link>
<guid>https://blog.naver.com/econ/223456789012</guid>
<description><![CDATA[<p>환율이 오르면 물가가 오릅니다.</p>]]></description>
<pubDate>Mon, 03 Mar 2025 21:15:00 +0900</pubDate>
<tag><![CDATA[환율,물가]]></tag>
</item></channel></rss>"""


def test_naver_blog_feed(site: Path, tmp_path: Path):
    code, output = invoke(site, "import", "feed", str(_export(tmp_path, NAVER, "naver.xml")))
    assert code == 0, output
    text = _imported(site)["2025-03-03-환율과-물가.md"]
    assert 'category: "경제 읽기"' in text and 'tags: ["환율", "물가"]' in text
    assert 'aliases: ["/econ/223456789012"]' in text


def test_an_old_path_on_an_existing_page_is_refused_before_writing(site: Path, tmp_path: Path):
    from builders import write_post

    write_post(site, "mine.md", title="내 글", slug="mine", aliases='["/122"]')
    code, output = invoke(site, "import", "feed", str(_export(tmp_path)))
    assert code == 1
    assert "its old path /122 is already taken by posts/mine.md; keep it on one post only" in output
    assert sorted(_imported(site)) == ["mine.md"]
