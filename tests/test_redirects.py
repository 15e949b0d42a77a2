"""Aliases: old URLs become redirect pages and server redirect maps (issue 11)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import html as lxml_html

from builders import write_config, write_post
from publisher.config import load_config
from publisher.errors import ContentError
from publisher.publish.build import build
from publisher.publish.writer import OutputConflictError

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _site(tmp_path: Path, **overrides: dict[str, object]) -> Path:
    root = write_config(tmp_path / "site", **overrides)  # type: ignore[arg-type]
    write_post(
        root,
        "2025-06-20-gap.md",
        title="미중 기술 격차",
        slug="미중-기술-격차",
        aliases='["/entry/미중-기술-격차-분석", "/123", "/2019/05/old.html", '
        '"/entry/%EB%B0%98%EB%8F%84%EC%B2%B4/"]',
    )
    write_post(root, "2025-06-21-plain.md", title="다른 글")
    return root


def _build(root: Path) -> Path:
    out = root / "public"
    build(load_config(root), NOW, output=out)
    return out


def _refresh_target(page: Path) -> tuple[str, str]:
    doc = lxml_html.fromstring(page.read_text(encoding="utf-8"))
    refresh = doc.xpath('//meta[@http-equiv="refresh"]/@content')[0]
    canonical = doc.xpath('//link[@rel="canonical"]/@href')[0]
    assert doc.xpath('//meta[@name="robots"]/@content') == ["noindex"]
    return refresh, canonical


def test_every_alias_gets_a_redirect_page_to_the_post(tmp_path: Path):
    out = _build(_site(tmp_path))
    target = (
        "https://blog.example.com/posts/%EB%AF%B8%EC%A4%91-%EA%B8%B0%EC%88%A0-%EA%B2%A9%EC%B0%A8/"
    )
    for page in [
        "entry/미중-기술-격차-분석/index.html",
        "123/index.html",
        "2019/05/old.html",
        "entry/반도체/index.html",  # percent-encoded alias, decoded
    ]:
        refresh, canonical = _refresh_target(out / page)
        assert refresh == f"0; url={target}"
        assert canonical == target
    assert (out / "posts/미중-기술-격차/index.html").is_file()


def test_redirect_maps_for_netlify_nginx_and_apache(tmp_path: Path):
    out = _build(_site(tmp_path))
    new = "/posts/%EB%AF%B8%EC%A4%91-%EA%B8%B0%EC%88%A0-%EA%B2%A9%EC%B0%A8/"
    netlify = (out / "_redirects").read_text(encoding="utf-8").splitlines()
    assert f"/123 {new} 301" in netlify
    assert f"/2019/05/old.html {new} 301" in netlify
    assert f"/entry/%EB%B0%98%EB%8F%84%EC%B2%B4/ {new} 301" in netlify
    nginx = (out / "redirects.nginx.conf").read_text(encoding="utf-8")
    assert f'location = "/123" {{ return 301 {new}; }}' in nginx
    assert f'location = "/123/" {{ return 301 {new}; }}' in nginx
    assert f'location = "/entry/반도체/" {{ return 301 {new}; }}' in nginx
    htaccess = (out / ".htaccess").read_text(encoding="utf-8").splitlines()
    rule = next(line for line in htaccess if "123" in line)
    pattern = re.search(r'"\^(.*)\$"', rule)
    assert pattern is not None
    assert re.fullmatch(pattern.group(1), "/123")
    assert re.fullmatch(pattern.group(1), "/123/")
    assert not re.fullmatch(pattern.group(1), "/1234")


def test_maps_follow_a_base_url_in_a_subfolder(tmp_path: Path):
    root = _site(tmp_path, site={"base_url": "https://example.github.io/blog/"})
    out = _build(root)
    netlify = (out / "_redirects").read_text(encoding="utf-8")
    assert "/blog/123 /blog/posts/" in netlify


def test_site_without_aliases_writes_no_maps(tmp_path: Path):
    root = write_config(tmp_path / "site")
    write_post(root, "a.md")
    out = _build(root)
    assert not (out / "_redirects").exists()
    assert not (out / ".htaccess").exists()


@pytest.mark.parametrize(
    "value",
    [
        '["https://old.example.com/123"]',
        '["/a/../b"]',
        '["/a b"]',
        '["/?p=12"]',
        '["/"]',
        '"/just-text"',
    ],
)
def test_bad_aliases_are_located_errors(tmp_path: Path, value: str):
    root = write_config(tmp_path / "site")
    write_post(root, "a.md", aliases=value)
    with pytest.raises(ContentError) as info:
        _build(root)
    assert "posts/a.md:4: 'aliases'" in str(info.value)


def test_an_alias_that_hits_another_page_is_refused(tmp_path: Path):
    root = write_config(tmp_path / "site")
    write_post(root, "a.md", title="가", slug="a")
    write_post(root, "b.md", title="나", slug="b", aliases='["/posts/a/"]')
    with pytest.raises(OutputConflictError) as info:
        _build(root)
    assert "posts/b.md (alias /posts/a/)" in str(info.value)
