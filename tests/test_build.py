"""The publish pipeline end to end: sample site, determinism, templates, errors."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import html as lxml_html

from builders import write_config, write_post
from conftest import REPO
from publisher.config import load_config
from publisher.errors import ContentError
from publisher.publish.build import build
from publisher.publish.templating import TemplateError

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "public"
    build(load_config(REPO), NOW, output=out)
    return out


def page(out: Path, path: str) -> lxml_html.HtmlElement:
    return lxml_html.fromstring((out / path).read_text(encoding="utf-8"))


def test_sample_site_has_every_kind_of_page(sample: Path):
    files = set(tree_bytes(sample))
    for path in [
        "index.html",
        "page/2/index.html",
        "posts/us-china-tech-gap/index.html",
        "category/세계/index.html",
        "tag/ai/index.html",
        "archive/index.html",
        "404.html",
        "sitemap.xml",
        "robots.txt",
        "feed.xml",
        "atom.xml",
        "category/세계/feed.xml",
        "category/세계/atom.xml",
        "static/style.css",
        "static/pygments.css",
    ]:
        assert path in files, path
    assert not any("semiconductor-supply-chain-map" in f for f in files)  # draft
    assert not any("economic-outlooks" in f for f in files)  # scheduled for 2027


def test_seed_article_is_published_well(sample: Path):
    doc = page(sample, "posts/us-china-tech-gap/index.html")
    assert doc.findtext(".//h1") == "미중 기술 격차, 정말 좁혀졌나? DeepSeek 충격이 보여준 현실"
    assert doc.get("lang") == "ko"
    body = doc.find_class("post-body")[0]
    assert [h.text_content() for h in body.findall(".//h2")][:2] == [
        "왜 이런 일이 일어났을까?",
        "실제 기술 격차는 어느 정도일까?",
    ]
    assert [th.text_content() for th in body.findall(".//thead/tr/th")] == [
        "분야",
        "현재 상황",
        "대응 방향",
    ]
    assert len(body.findall(".//tbody/tr")) == 3
    assert len(body.findall(".//ul/li")) == 4
    # The pasted related block is not body text; the generated list replaces it.
    assert "카테고리의 다른 글" not in body.text_content()
    related = doc.find_class("related")[0]
    assert related.findtext(".//h2/a") == "'세계' 카테고리의 다른 글"
    items = related.findall(".//li")
    assert items[0].get("class") == "current"
    assert [li.findtext("time") for li in items] == [
        "2025.06.20",
        "2025.06.10",
        "2025.06.05",
        "2025.05.28",
    ]
    # Relative, so public/ works from disk (issue 8, item 16).
    assert all(
        a.get("href").startswith("../../posts/") and a.get("href").endswith("/index.html")
        for a in related.findall(".//li/a")
    )


def test_post_page_metadata(sample: Path):
    doc = page(sample, "posts/us-china-tech-gap/index.html")
    head = doc.find("head")
    assert (
        head.find("link[@rel='canonical']").get("href")
        == "https://blog.example.com/posts/us-china-tech-gap/"
    )
    assert head.find("meta[@property='og:type']").get("content") == "article"
    feeds = [
        (link.get("type"), link.get("href")) for link in head.findall("link[@rel='alternate']")
    ]
    assert ("application/rss+xml", "../../feed.xml") in feeds
    assert ("application/atom+xml", "../../category/%EC%84%B8%EA%B3%84/atom.xml") in feeds
    import json

    data = json.loads(head.find("script[@type='application/ld+json']").text)
    assert data["@type"] == "BlogPosting" and data["datePublished"] == "2025-06-20T09:00:00+09:00"


def test_every_page_links_feeds_for_autodiscovery(sample: Path):
    for path in sample.rglob("*.html"):
        doc = lxml_html.fromstring(path.read_bytes())
        assert doc.find("head/link[@type='application/atom+xml']") is not None, path


def test_build_is_byte_identical(tmp_path: Path):
    config = load_config(REPO)
    build(config, NOW, output=tmp_path / "a")
    build(config, NOW, output=tmp_path / "b")
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")


def test_b3_titles_are_escaped_everywhere(tmp_path: Path):
    write_config(tmp_path)
    write_post(tmp_path, "x.md", title="'<script>alert(1)</script>'", category="'<b>cat</b>'")
    out = tmp_path / "public"
    build(load_config(tmp_path), NOW, output=out)
    for name, data in tree_bytes(out).items():
        assert b"<script>alert" not in data, name
        assert b"<b>cat</b>" not in data, name


def test_content_errors_fail_the_build_and_write_nothing(tmp_path: Path):
    write_config(tmp_path)
    write_post(tmp_path, "a.md", date="yesterday")
    write_post(tmp_path, "b.md", draft="yes")
    with pytest.raises(ContentError) as info:
        build(load_config(tmp_path), NOW)
    assert str(info.value).splitlines() == [
        "2 content problems:",
        "posts/a.md:3: 'date' must be a date such as 2025-06-20 or 2025-06-20 09:00 (optionally +09:00), got \"yesterday\"",
        "posts/b.md:4: 'draft' must be true or false, got \"yes\"",
    ]
    assert not (tmp_path / "public").exists()


def test_b1_undefined_variable_is_an_error(tmp_path: Path):
    write_config(tmp_path)
    write_post(tmp_path, "a.md")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "404.html").write_text("{{ missing_variable }}", encoding="utf-8")
    with pytest.raises(TemplateError, match="undefined variable: 'missing_variable' is undefined"):
        build(load_config(tmp_path), NOW)
    assert not (tmp_path / "public").exists()


def test_b2_template_syntax_error_names_file_and_line(tmp_path: Path):
    write_config(tmp_path)
    write_post(tmp_path, "a.md")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "404.html").write_text("ok\n{% if %}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        build(load_config(tmp_path), NOW)
    assert re.search(r"templates/404.html:2: syntax error", str(info.value))


def test_site_template_overrides_the_default_theme(tmp_path: Path):
    write_config(tmp_path)
    write_post(tmp_path, "a.md")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "404.html").write_text(
        "custom {{ site.config.site.title }}", encoding="utf-8"
    )
    build(load_config(tmp_path), NOW)
    assert (tmp_path / "public" / "404.html").read_text(encoding="utf-8") == "custom 테스트 블로그"


def test_empty_site_builds(tmp_path: Path):
    write_config(tmp_path)
    result = build(load_config(tmp_path), NOW)
    assert result.site.posts == () and (tmp_path / "public" / "index.html").exists()


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publisher", *args], cwd=cwd, capture_output=True, text=True
    )


def test_cli_build_prints_summary_and_exit_codes(tmp_path: Path):
    write_config(tmp_path)
    write_post(tmp_path, "a.md", title="하나")
    ok = run_cli("--site", str(tmp_path), "build")
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"Built 1 posts, \d+ pages and 2 feeds .* in \d+\.\d\d s\.", ok.stdout)
    write_post(tmp_path, "b.md", date="2025-13-01")
    bad = run_cli("--site", str(tmp_path), "build")
    assert bad.returncode == 1
    assert "error: 1 content problem:\nposts/b.md:3: 'date'" in bad.stderr
    assert "hint: Fix the posts above; nothing was written." in bad.stderr


def test_cli_new_creates_a_valid_post(tmp_path: Path):
    write_config(tmp_path)
    made = run_cli(
        "--site",
        str(tmp_path),
        "new",
        "미중: 기술 격차",
        "--category",
        "세계",
        "--tags",
        "AI,반도체",
    )
    assert made.returncode == 0, made.stderr
    path = tmp_path / "posts" / "미중-기술-격차.md"
    assert made.stdout.splitlines() == [
        "Created posts/미중-기술-격차.md, a draft: it is not published or mailed yet.",
        "To publish it, write the article and set 'draft: false' in its front matter; "
        "`publisher run` then publishes it at its date and mails it.",
    ]
    again = run_cli("--site", str(tmp_path), "new", "미중: 기술 격차")
    assert again.returncode == 1 and "already exists" in again.stderr
    from publisher.publish.content import read_posts

    (post,) = read_posts(load_config(tmp_path)).posts
    assert (
        post.title == "미중: 기술 격차"
        and post.category == "세계"
        and post.tags == ("AI", "반도체")
    )
    assert post.draft  # issue 8, item 2: the next scheduler pass neither publishes nor mails it
    assert post.id is not None and len(post.id) == 36  # a fresh UUID (issue 8, item 1)
    other = run_cli("--site", str(tmp_path), "new", "다른 글", "--no-draft")
    assert other.returncode == 0, other.stderr
    second, first = sorted(read_posts(load_config(tmp_path)).posts, key=lambda p: p.draft)
    assert not second.draft and second.id != first.id
    assert path.exists()


@pytest.mark.parametrize("command", [[], ["build"], ["new"], ["serve"]])
def test_every_command_has_help_with_an_example(command: list[str]):
    result = run_cli(*command, "--help")
    assert result.returncode == 0 and "Example" in result.stdout


# --- issue 8: a located message for every bad input, never a traceback or a hang ------------


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("ok\n{{ 1/0 }}\n", 2, "error while rendering: ZeroDivisionError: division by zero"),
        (
            "{% extends '404.html' %}\n",
            1,
            "the template never ends: it extends, includes or calls itself",
        ),
        (
            "a\nb\n{{ site.now | date(7) }}\n",
            3,
            "error while rendering: TypeError: strftime() argument 1 must be str, not int",
        ),
    ],
)
def test_item11_template_runtime_errors_name_template_and_line(
    tmp_path: Path, source: str, line: int, message: str
):
    write_config(tmp_path)
    write_post(tmp_path, "a.md")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "404.html").write_text(source, encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        build(load_config(tmp_path), NOW)
    (problem,) = info.value.problems
    assert problem.location.path.endswith("templates/404.html")
    assert problem.location.line == line and problem.message.startswith(message)
    assert not (tmp_path / "public").exists()


def test_item12_a_fifo_post_fails_the_build_instead_of_hanging(tmp_path: Path):
    import os

    write_config(tmp_path)
    write_post(tmp_path, "a.md")
    os.mkfifo(tmp_path / "posts" / "pipe.md")
    result = subprocess.run(
        [sys.executable, "-m", "publisher", "--site", str(tmp_path), "build"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "posts/pipe.md: is a named pipe (FIFO), not a file" in result.stderr
    assert "Traceback" not in result.stderr


def test_item11_file_size_limit_during_build_is_reported_and_public_is_kept(tmp_path: Path):
    import resource
    import signal

    write_config(tmp_path)
    write_post(tmp_path, "a.md", body="가" * 3000)
    first = run_cli("--site", str(tmp_path), "build")
    assert first.returncode == 0, first.stderr
    before = tree_bytes(tmp_path / "public")

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    write_post(tmp_path, "b.md", body="나" * 3000)
    result = subprocess.run(
        [sys.executable, "-m", "publisher", "--site", str(tmp_path), "build"],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=60,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: the build could not be written: a file is over the file-size limit" in (
        result.stderr
    )
    assert f"{tmp_path / 'public'} is unchanged" in result.stderr
    assert tree_bytes(tmp_path / "public") == before


def test_item11_dates_just_inside_the_calendar_build_and_report(tmp_path: Path):
    write_config(tmp_path)
    write_post(tmp_path, "old.md", date="0001-01-02 09:00", category="세계", tags="[t]")
    write_post(tmp_path, "far.md", date="9999-12-30T00:00:00Z")
    result = run_cli("--site", str(tmp_path), "build")
    assert result.returncode == 0, result.stderr
    assert "Next scheduled post: '제목' (posts/far.md) becomes due at 9999-12-30 09:00 KST." in (
        result.stdout
    )
    drafts = run_cli("--site", str(tmp_path), "build", "--drafts", "--output", str(tmp_path / "d"))
    assert drafts.returncode == 0, drafts.stderr


def test_item11_cli_build_turns_an_os_error_into_a_message(tmp_path: Path):
    write_config(tmp_path)
    write_post(tmp_path, "a.md")
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    result = run_cli("--site", str(tmp_path), "build", "--output", str(tmp_path / "file" / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {tmp_path / 'file'}: " in result.stderr
    assert "; nothing was written\nhint: Check that the file exists" in result.stderr


def test_item14_item15_tags_differing_in_case_or_punctuation_build(tmp_path: Path):
    write_config(tmp_path)
    write_post(tmp_path, "a.md", tags="[AI, C, 'C++']", category="'!!!'")
    write_post(tmp_path, "b.md", tags="[ai, 'C#']", category="세계")
    build(load_config(tmp_path), NOW)
    files = set(tree_bytes(tmp_path / "public"))
    tags = sorted({f.split("/")[1] for f in files if f.startswith("tag/")})
    assert tags == ["ai", "c", "c-plus-plus", "c-sharp"]
    assert "category/index.html" not in files
    assert "category/exclamation-mark-exclamation-mark-exclamation-mark/index.html" in files
    doc = page(tmp_path / "public", "posts/a/index.html")
    links = {a.get("href") for a in doc.iter("a")}
    assert "../../tag/c-plus-plus/index.html" in links  # relative, works from disk (item 16)
    heading = page(tmp_path / "public", "tag/ai/index.html").findtext(".//h1")
    assert heading is not None and "AI" in heading


def test_item12_run_with_a_fifo_post_reports_it_and_honours_sigterm(tmp_path: Path):
    import os
    import queue
    import signal
    import threading

    write_config(tmp_path)
    write_post(tmp_path, "a.md")
    os.mkfifo(tmp_path / "posts" / "pipe.md")
    env = {**os.environ, "PUBLISHER_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}"}
    lines: queue.Queue[str] = queue.Queue()
    seen = ""
    with subprocess.Popen(
        [sys.executable, "-m", "publisher", "--site", str(tmp_path), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        stderr = proc.stderr
        reader = threading.Thread(target=lambda: [lines.put(line) for line in stderr])
        reader.start()
        try:
            while "newsletter" not in seen:  # the first pass is over: the posts were read
                seen += lines.get(timeout=30)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            proc.kill()
            reader.join(timeout=10)
    assert "posts/pipe.md: is a named pipe (FIFO), not a file" in seen
