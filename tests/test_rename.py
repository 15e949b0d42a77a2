"""publisher rename OLD NEW: the old URL redirects and the feed id is pinned (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lxml import html as lxml_html

from builders import write_config, write_post
from publisher.config import load_config
from publisher.publish.build import build
from test_import_feed import invoke

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def test_rename_a_published_post_keeps_its_old_url_and_feed_id(tmp_path: Path):
    root = write_config(tmp_path / "site")
    path = write_post(
        root,
        "2025-06-20-us-china-tech-gap.md",
        title="미중 기술 격차",
        category="세계",
        tags="[AI]",
        body="본문입니다.\n\n---\n\n두 번째 문단.",
    )
    code, output = invoke(root, "rename", "us-china-tech-gap", "미중-기술-격차")
    assert code == 0, output
    assert "/posts/us-china-tech-gap/ now redirects to /posts/미중-기술-격차/" in output
    assert not path.exists()
    moved = root / "posts/2025-06-20-미중-기술-격차.md"
    text = moved.read_text(encoding="utf-8")
    assert text.startswith("---\ntitle: 미중 기술 격차\n")
    assert 'slug: "미중-기술-격차"' in text
    assert 'aliases: ["/posts/us-china-tech-gap/"]' in text
    assert 'id: "https://blog.example.com/posts/us-china-tech-gap/"' in text
    assert "category: 세계\ntags: [AI]\n" in text  # other lines untouched
    assert text.endswith("본문입니다.\n\n---\n\n두 번째 문단.\n")
    out = root / "public"
    build(load_config(root), NOW, output=out)
    doc = lxml_html.fromstring((out / "posts/us-china-tech-gap/index.html").read_text("utf-8"))
    target = doc.xpath('//link[@rel="canonical"]/@href')[0]
    assert (
        target
        == "https://blog.example.com/posts/%EB%AF%B8%EC%A4%91-%EA%B8%B0%EC%88%A0-%EA%B2%A9%EC%B0%A8/"
    )
    assert (out / "posts/미중-기술-격차/index.html").is_file()

    # renaming again keeps the first id and both old paths; renaming back drops the own alias
    code, output = invoke(root, "rename", "미중-기술-격차", "tech-gap")
    assert code == 0, output
    text = (root / "posts/2025-06-20-tech-gap.md").read_text(encoding="utf-8")
    assert 'aliases: ["/posts/us-china-tech-gap/", "/posts/미중-기술-격차/"]' in text
    assert 'id: "https://blog.example.com/posts/us-china-tech-gap/"' in text
    code, output = invoke(root, "rename", "tech-gap", "us-china-tech-gap")
    assert code == 0, output
    text = (root / "posts/2025-06-20-us-china-tech-gap.md").read_text(encoding="utf-8")
    assert 'aliases: ["/posts/미중-기술-격차/", "/posts/tech-gap/"]' in text
    build(load_config(root), NOW, output=out)


def test_rename_a_draft_adds_no_alias(tmp_path: Path):
    root = write_config(tmp_path / "site")
    write_post(root, "idea.md", title="아이디어", draft="true")
    code, output = invoke(root, "rename", "idea", "new-idea")
    assert code == 0, output
    text = (root / "posts/new-idea.md").read_text(encoding="utf-8")
    assert 'slug: "new-idea"' in text
    assert "aliases" not in text and "id:" not in text


def test_rename_refuses_a_taken_or_bad_slug(tmp_path: Path):
    root = write_config(tmp_path / "site")
    write_post(root, "a.md", title="가")
    write_post(root, "b.md", title="나")
    code, output = invoke(root, "rename", "a", "b")
    assert code == 1 and "slug 'b' is already the slug of posts/b.md" in output
    code, output = invoke(root, "rename", "a", "Not A Slug")
    assert code == 1 and "'Not A Slug' is not a slug" in output
    code, output = invoke(root, "rename", "zzz", "c")
    assert code == 1 and "no post with slug or file 'zzz'" in output
    assert sorted(p.name for p in (root / "posts").iterdir()) == ["a.md", "b.md"]
