"""Links between pages (issue 8, items 16 and 20): relative, to files, the menu's current item."""

from __future__ import annotations

import pytest

from publisher.publish.render import nav_current, relative_url


@pytest.mark.parametrize(
    ("target", "page", "expected"),
    [
        ("static/style.css", "", "static/style.css"),
        ("", "", "index.html"),
        ("", "posts/a/", "../../index.html"),
        ("posts/b/", "posts/a/", "../../posts/b/index.html"),
        (
            "category/세계/",
            "category/세계/page/2/",
            "../../../../category/%EC%84%B8%EA%B3%84/index.html",
        ),
        ("feed.xml", "archive/", "../feed.xml"),
        ("archive/", "404.html", "archive/index.html"),
    ],
)
def test_relative_url_climbs_to_the_root_and_names_index_html(
    target: str, page: str, expected: str
) -> None:
    assert relative_url(target, page) == expected


def test_menu_marks_the_current_section() -> None:
    assert nav_current("category/세계/", "category/세계/", None) == "page"
    assert nav_current("category/세계/", "category/세계/page/3/", None) == "page"
    assert nav_current("category/세계/", "posts/a/", "category/세계/") == "true"
    assert nav_current("category/세계/", "posts/a/", "category/기술/") is None
    assert nav_current("archive/", "archive/", None) == "page"
    assert nav_current("", "", None) == "page"
    assert nav_current("", "page/2/", None) == "page"
    assert nav_current("", "posts/a/", None) is None
    assert nav_current("", "archive/", None) is None


def test_inline_stylesheets_puts_the_theme_css_into_the_page(tmp_path) -> None:
    """The editor's srcdoc preview has no folder for relative links: the CSS goes inline."""
    from builders import make_config
    from publisher.publish.render import inline_stylesheets
    from publisher.publish.templating import DEFAULT_TEMPLATES, make_environment

    (tmp_path / "templates" / "static").mkdir(parents=True)
    (tmp_path / "templates" / "static" / "style.css").write_text("body{color:red}", "utf-8")
    env = make_environment(make_config(tmp_path))
    page = (
        '<head><link rel="stylesheet" href="../../static/style.css">'
        '<link rel="stylesheet" href="../../static/pygments.css">'
        '<link rel="stylesheet" href="../../static/missing.css"></head>'
    )
    inlined = inline_stylesheets(page, env)
    assert "<style>body{color:red}</style>" in inlined  # the site's theme before the default
    assert ".highlight" in inlined  # the generated code stylesheet
    assert '<link rel="stylesheet" href="../../static/missing.css">' in inlined  # left alone
    assert (DEFAULT_TEMPLATES / "static" / "style.css").read_text("utf-8") not in inlined
