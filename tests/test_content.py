"""Reading posts: every bad input gets a located error (RELIABILITY A1-A21)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from builders import make_config, write_post
from publisher.errors import Problem
from publisher.publish.content import parse_moment, read_posts


def read(root: Path, **config: dict) -> tuple[list, list[str], list[str]]:
    result = read_posts(make_config(root, **config))
    return list(result.posts), [str(p) for p in result.problems], [str(w) for w in result.warnings]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "posts").mkdir()
    return tmp_path


def write_raw(site: Path, name: str, text: str | bytes) -> None:
    path = site / "posts" / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


def test_good_post_is_read_with_typed_fields(site: Path):
    write_post(
        site,
        "2025-06-20-hello.md",
        title="안녕하세요",
        category="세계",
        tags="[AI, 반도체]",
        color="blue",
    )
    posts, problems, _ = read(site)
    assert problems == []
    (post,) = posts
    assert post.slug == "hello"
    assert post.date == datetime(2025, 6, 20, 0, 0, tzinfo=UTC)
    assert post.tags == ("AI", "반도체")
    assert post.extra == {"color": "blue"}  # unknown keys kept for templates


def test_a1_bom_before_front_matter_is_read(site: Path):
    write_raw(site, "bom.md", "\ufeff---\ntitle: x\ndate: 2025-01-01\n---\nbody\n")
    posts, problems, _ = read(site)
    assert problems == [] and posts[0].title == "x"


def test_a2_unclosed_front_matter(site: Path):
    write_raw(site, "open.md", "---\ntitle: x\ndate: 2025-01-01\nbody\n")
    assert read(site)[1] == [
        "posts/open.md:1: front matter opened but never closed: add a '---' line after it"
    ]


def test_a3_yaml_syntax_error_points_at_the_line(site: Path):
    write_raw(site, "bad.md", '---\ntitle: x\ndate: 2025-01-01\nsummary: "open\n---\nbody\n')
    (problem,) = read(site)[1]
    assert problem.startswith("posts/bad.md:4:10: invalid YAML: while scanning a quoted scalar")


@pytest.mark.parametrize("word", ["no", "NO", "off", "on", "yes", "y", "n", "~", "null"])
def test_a4_yaml11_booleans_stay_text_or_fail_clearly(site: Path, word: str):
    write_raw(
        site,
        "p.md",
        f"---\ntitle: {word}\ndate: 2025-01-01\nlang: {word}\ndraft: {word}\n---\nbody\n",
    )
    problems = read(site)[1]
    assert problems == [f"posts/p.md:5: 'draft' must be true or false, got \"{word}\""]


def test_a4_plain_text_is_kept_exactly(site: Path):
    write_raw(
        site,
        "p.md",
        "---\ntitle: no\ndate: 2025-01-01\nlang: no\nversion: 1.10\ncode: 012345\nat: 12:30\n---\nb\n",
    )
    (post,) = read(site)[0]
    assert post.title == "no"
    assert post.extra == {"lang": "no", "version": "1.10", "code": "012345", "at": "12:30"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-06-20", datetime(2025, 6, 19, 15, 0, tzinfo=UTC)),
        ("2025-06-20 09:00", datetime(2025, 6, 20, 0, 0, tzinfo=UTC)),
        ("2025-06-20T09:00:30", datetime(2025, 6, 20, 0, 0, 30, tzinfo=UTC)),
        ("2025-06-20 09:00+02:00", datetime(2025, 6, 20, 7, 0, tzinfo=UTC)),
        ("2025-06-20T09:00:00Z", datetime(2025, 6, 20, 9, 0, tzinfo=UTC)),
    ],
)
def test_a6_date_forms(value: str, expected: datetime):
    from zoneinfo import ZoneInfo

    moment, warning = parse_moment(value, ZoneInfo("Asia/Seoul"))
    assert moment == expected and moment.tzinfo is not None and warning is None


def test_a6_a7_bad_and_impossible_dates(site: Path):
    write_raw(site, "a.md", "---\ntitle: a\ndate: yesterday\n---\nb\n")
    write_raw(site, "b.md", "---\ntitle: b\ndate: 2025-02-29\n---\nb\n")
    problems = read(site)[1]
    assert problems == [
        "posts/a.md:3: 'date' must be a date such as 2025-06-20 or 2025-06-20 09:00 (optionally +09:00), got \"yesterday\"",
        "posts/b.md:3: 'date' is not a real date or time: \"2025-02-29\"",
    ]


def test_a8_dst_gap_is_rejected_and_fold_warns(site: Path):
    berlin = {"site": {"timezone": "Europe/Berlin"}}
    write_raw(site, "gap.md", "---\ntitle: a\ndate: 2025-03-30 02:30\n---\nb\n")
    write_raw(site, "fold.md", "---\ntitle: b\ndate: 2025-10-26 02:30\n---\nb\n")
    posts, problems, warnings = read(site, **berlin)
    assert problems == [
        "posts/gap.md:3: 'date' 2025-03-30 02:30 does not exist in Europe/Berlin (clocks jump forward); "
        "pick another time or give an offset such as +01:00"
    ]
    assert warnings == [
        "posts/fold.md:3: 'date' 2025-10-26 02:30 happens twice in Europe/Berlin (clocks go back); "
        "using the first, add an offset to choose"
    ]
    assert posts[0].date.utcoffset().total_seconds() == 7200  # fold=0: summer time


def test_a9_duplicate_keys(site: Path):
    write_raw(site, "d.md", "---\ntitle: a\ndate: 2025-01-01\ntitle: b\n---\nb\n")
    assert read(site)[1] == [
        "posts/d.md:4:1: invalid YAML: duplicate key 'title' (first on line 2)"
    ]


def test_a10_list_front_matter(site: Path):
    write_raw(site, "l.md", "---\n- title: a\n---\nb\n")
    assert read(site)[1] == [
        "posts/l.md:2: front matter must be a mapping of 'key: value' lines, got a list"
    ]


def test_a11_unsafe_tags_refused(site: Path):
    write_raw(
        site,
        "u.md",
        "---\ntitle: !!python/object/apply:os.system [echo hi]\ndate: 2025-01-01\n---\nb\n",
    )
    (problem,) = read(site)[1]
    assert "posts/u.md:2:8: invalid YAML: could not determine a constructor" in problem


def test_a12_aliases_refused(site: Path):
    write_raw(
        site, "bomb.md", '---\ntitle: a\ndate: 2025-01-01\na: &a ["x","x"]\nb: [*a,*a]\n---\nb\n'
    )
    assert read(site)[1] == [
        "posts/bomb.md:5:5: invalid YAML: aliases (*name) are not allowed in front matter"
    ]


def test_a13_every_problem_in_a_file_is_listed(site: Path):
    write_raw(site, "m.md", "---\ntitle:\ntags: a, b\ncategory: [x, y]\ndraft: yes\n---\nb\n")
    assert read(site)[1] == [
        "posts/m.md:1: 'date' is required (e.g. date: 2025-06-20 09:00)",
        "posts/m.md:2: 'title' is required",
        "posts/m.md:3: 'tags' must be a list such as [경제, 반도체], got \"a, b\"",
        "posts/m.md:4: 'category' must be text, got a list",
        "posts/m.md:5: 'draft' must be true or false, got \"yes\"",
    ]


def test_a14_same_slug_case_and_unicode_normalisation(site: Path):
    import unicodedata

    write_post(site, "a.md", slug="hello")
    write_post(site, "Hello.md")
    nfd = unicodedata.normalize("NFD", "한글")
    write_post(site, "c.md", slug=nfd)
    write_post(site, "d.md", slug="Upper")
    assert read(site)[1] == [
        "posts/a.md: slug 'hello' is also the slug of posts/Hello.md; both would be written "
        "to the same page (set 'slug:' on one)",
        f"posts/c.md:4: 'slug' must be letters, digits and inner hyphens (one path segment, lower case), got \"{nfd}\"",
        "posts/d.md:4: 'slug' must be letters, digits and inner hyphens (one path segment, lower case), got \"Upper\"",
    ]


def test_a21_slug_cannot_escape_and_symlinks_refused(site: Path, tmp_path: Path):
    write_post(site, "x.md", slug="../../etc")
    outside = tmp_path / "outside.md"
    outside.write_text("---\ntitle: a\ndate: 2025-01-01\n---\nb\n", encoding="utf-8")
    (site / "posts" / "link.md").symlink_to(outside)
    problems = read(site)[1]
    assert (
        problems[0]
        == "posts/link.md: is a symbolic link; posts must be regular files inside the posts folder (A21)"
    )
    assert problems[1].startswith("posts/x.md:4: 'slug' must be letters")


def test_a15_non_utf8_file(site: Path):
    write_raw(site, "k.md", b"---\ntitle: x\ndate: 2025-01-01\n---\n" + "제목".encode("cp949"))
    assert read(site)[1] == [
        "posts/k.md:5: not valid UTF-8 at byte 34 (line 5); save the file as UTF-8 (it may be CP949/EUC-KR)"
    ]


def test_a16_crlf_and_trailing_spaces(site: Path):
    write_raw(site, "w.md", "---  \r\ntitle: 윈도우\r\ndate: 2025-01-01\r\n---\t\r\n본문\r\n")
    posts, problems, _ = read(site)
    assert problems == [] and posts[0].title == "윈도우" and "본문" in posts[0].body_html


def test_a17_empty_and_bodyless_posts(site: Path):
    write_raw(site, "e.md", "")
    write_raw(site, "f.md", "---\ntitle: x\ndate: 2025-01-01\n---\n   \n")
    assert read(site)[1] == [
        "posts/e.md: is empty; a post needs front matter with 'title' and 'date', and a body",
        "posts/f.md: has no body text after the front matter; write the article or mark it draft",
    ]


def test_a18_raw_html_is_sanitized(site: Path):
    body = (
        "<script>alert(1)</script><img src=x onerror=alert(1)> [x](javascript:alert(1)) <b>ok</b>"
    )
    write_post(site, "h.md", body=body)
    (post,) = read(site)[0]
    assert "<script" not in post.body_html and "onerror" not in post.body_html
    assert 'href="javascript' not in post.body_html
    assert "<b>ok</b>" in post.body_html


def test_a19_size_cap(site: Path):
    write_post(site, "big.md", body="가" * 3000)
    assert read(site, build={"max_post_bytes": 2048})[1] == [
        "posts/big.md: is 9,046 bytes; the limit is [build].max_post_bytes = 2,048"
    ]


def test_b4_template_syntax_in_posts_is_literal(site: Path):
    write_post(site, "t.md", title="'{{ 7*7 }}'", body="{{ 7*7 }} {% if true %}x{% endif %}")
    (post,) = read(site)[0]
    assert post.title == "{{ 7*7 }}" and "{{ 7*7 }}" in post.body_html


def test_d1b_encoded_word_in_title_rejected(site: Path):
    write_post(site, "s.md", title="'=?utf-8?q?hello=0D=0ABcc:_evil@x.test?='")
    assert read(site)[1] == [
        "posts/s.md:2: 'title' must not contain '=?' (it would be read as an encoded mail header)"
    ]


def test_korean_summary_is_cut_at_a_sentence_not_mid_word(site: Path):
    sentence = "한국은 HBM 시장에서 강점을 가지고 있습니다. "
    write_post(site, "k.md", body=sentence * 20)
    (post,) = read(site, site={"summary_length": 60})[0]
    assert post.summary == (sentence * 2).strip()


def test_reading_time_counts_hangul_by_character(site: Path):
    write_post(site, "ko.md", body="가" * 1000)
    write_post(site, "en.md", body="word " * 460)
    posts = {p.slug: p for p in read(site)[0]}
    assert posts["ko"].reading_minutes == 2  # 1000 chars at 500/min
    assert posts["en"].reading_minutes == 2  # 460 words at 230/min


def test_slug_keeps_hangul_and_splits_on_ellipsis_and_middle_dot(site: Path):
    write_post(site, "트럼프…이란·중동 위기.md")
    assert read(site)[0][0].slug == "트럼프-이란-중동-위기"


def test_problem_sorting_is_stable():
    from publisher.errors import ContentError, Location

    error = ContentError([Problem(Location("b.md", 2), "x"), Problem(Location("a.md", 9), "y")])
    assert str(error).splitlines()[1:] == ["a.md:9: y", "b.md:2: x"]


# --- 'id': a post's identity across renames (issue 8, item 1) ------------------------------------


def test_id_is_read_and_kept_out_of_extra(site: Path):
    write_post(site, "a.md", id="7f3c2a9e-1b4d-4c8e-9a6f-2d5e8b1c0a47")
    write_post(site, "b.md", id="urn:example:42", slug="bee")
    write_post(site, "c.md")
    posts, problems, _ = read(site)
    assert problems == []
    assert [p.id for p in posts] == ["7f3c2a9e-1b4d-4c8e-9a6f-2d5e8b1c0a47", "urn:example:42", None]
    assert all("id" not in p.extra for p in posts)


@pytest.mark.parametrize(
    "value, shown",
    [
        ('""', '""'),
        ('"two words"', '"two words"'),
        ('"tab\\there"', '"tab\\u0009here"'),
        ('"bidi\\u202eid"', '"bidi\\u202eid"'),
        ('"line\\u2028sep"', '"line\\u2028sep"'),
        ('"<script>"', '"<script>"'),
        ("x" * 201, '"' + "x" * 201 + '"'),
        ("[a, b]", "a list"),
    ],
)
def test_a_bad_id_is_a_located_error(site: Path, value: str, shown: str):
    write_post(site, "a.md", id=value)
    assert read(site)[1] == [
        "posts/a.md:4: 'id' must be one word of visible characters (no spaces), at most 200 "
        f"long, such as 7f3c2a9e-1b4d-4c8e-9a6f-2d5e8b1c0a47, got {shown}; "
        "`publisher new` writes one"
    ]


def test_duplicate_ids_name_both_files(site: Path):
    write_post(site, "a.md", id="same-id")
    write_post(site, "b.md", id="same-id")
    write_post(site, "c.md", id="other-id")
    assert read(site)[1] == [
        "posts/b.md: id 'same-id' is also the id of posts/a.md; every post needs its own id "
        "(a copied file keeps it: remove the 'id' line from the copy)"
    ]


# --- issue 8: a located message for every bad input (items 3, 11, 12, 15) -------------------


HEADER_PROBES = [chr(c) for c in range(0x00, 0x20)] + [chr(c) for c in range(0x7F, 0xA1)]
HEADER_PROBES += ["\u2028", "\u2029", "\ud800", "\udfff", "=?", "\t", "가", "\u200b", "\ufeff"]
HEADER_PROBES += [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def _yaml_escaped(text: str) -> str:
    return '"' + "".join(f"\\u{ord(c):04x}" if not c.isalnum() else c for c in text) + '"'


def test_item3_reader_refuses_whatever_the_message_builder_would_refuse(site: Path):
    """Every probe in a title, a category or an author: refused by the reader when the
    builder would refuse it in a Subject or From name (else every delivery fails)."""
    from publisher.deliver.message import HeaderInjectionError, check_free_text

    refused_by_builder = set()
    for index, probe in enumerate(HEADER_PROBES):
        try:
            check_free_text("Subject", f"a{probe}b")
        except HeaderInjectionError:
            refused_by_builder.add(index)
        for field in ("title", "category", "author"):
            front = {"title": "t", "date": "2025-01-01", field: _yaml_escaped(f"a{probe}b")}
            lines = "".join(f"{key}: {value}\n" for key, value in front.items())
            write_raw(site, f"{field}-{index}.md", f"---\n{lines}---\nb\n")
    problems = read(site)[1]
    located = [re.match(r"posts/(\w+)-(\d+)\.md:(\d+)", p) for p in problems]
    line = {"title": "2", "category": "4", "author": "4"}  # each problem is on its field's line
    assert all(m and line[m[1]] == m[3] for m in located), problems
    refused_by_reader = {(int(m[2]), m[1]) for m in located if m}
    assert len(refused_by_builder) == 69  # C0 but tab, DEL, C1, U+2028/9, two surrogates, "=?"
    for index in refused_by_builder:
        for field in ("title", "category", "author"):
            assert (index, field) in refused_by_reader, (field, repr(HEADER_PROBES[index]))
    assert (HEADER_PROBES.index("가"), "title") not in refused_by_reader


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (
            "\\u2028",
            "'title' must not contain the control character or line separator U+2028; remove it",
        ),
        (
            "\\x85",
            "'title' must not contain the control character or line separator U+0085; remove it",
        ),
        (
            "\\x1b[31m",
            "'title' must not contain the control character or line separator U+001B; remove it",
        ),
        ("\\ud800", "U+D800 is a lone surrogate, not a character; fix the \\u escape"),
        (
            "\\u202e",
            "'title' must not contain the bidirectional control U+202E: it makes the text display "
            "differently from what it is; remove it",
        ),
    ],
)
def test_item3_item15_unsafe_title_characters_are_located(site: Path, probe: str, message: str):
    write_raw(site, "t.md", f'---\ntitle: "abc{probe}def"\ndate: 2025-01-01\n---\nb\n')
    (problem,) = read(site)[1]
    assert problem.startswith("posts/t.md:2") and problem.endswith(message)


def test_item15_bidi_controls_refused_in_summary_category_and_tags(site: Path):
    write_raw(
        site,
        "b.md",
        '---\ntitle: t\ndate: 2025-01-01\nsummary: "x\\u2067y"\ncategory: "\\u202ax"\n'
        'tags: [ok, "\\u2066z"]\n---\nb\n',
    )
    bidi = "it makes the text display differently from what it is; remove it"
    assert read(site)[1] == [
        f"posts/b.md:4: 'summary' must not contain the bidirectional control U+2067: {bidi}",
        f"posts/b.md:5: 'category' must not contain the bidirectional control U+202A: {bidi}",
        f"posts/b.md:6: 'tags' must not contain the bidirectional control U+2066: {bidi}",
    ]


def test_item11_lone_surrogate_anywhere_in_front_matter_is_located(site: Path):
    write_raw(site, "s.md", '---\ntitle: t\ndate: 2025-01-01\ncolor: ["\\udfff"]\n---\nb\n')
    assert read(site)[1] == [
        "posts/s.md:4:9: U+DFFF is a lone surrogate, not a character; fix the \\u escape"
    ]


def test_item15_all_space_title_is_missing(site: Path):
    write_raw(site, "t.md", '---\ntitle: "   "\ndate: 2025-01-01\n---\nb\n')
    assert read(site)[1] == ["posts/t.md:2: 'title' is required"]


def test_item15_slug_ending_in_a_newline_is_refused(site: Path):
    write_raw(site, "n.md", '---\ntitle: t\ndate: 2025-01-01\nslug: "abc\\n"\n---\nb\n')
    assert read(site)[1] == [
        "posts/n.md:4: 'slug' must be letters, digits and inner hyphens (one path segment, "
        'lower case), got "abc\\u000a"'
    ]


def test_item11_hangul_slug_too_long_for_a_file_name(site: Path):
    write_post(site, "h.md", slug="가" * 120)
    assert read(site)[1] == [
        "posts/h.md:4: 'slug' is 360 bytes in UTF-8 and a file name holds at most 255: "
        "set a shorter 'slug:' (a Hangul syllable is 3 bytes)"
    ]
    write_post(site, "h.md", slug="가" * 85)
    assert read(site)[1] == []


@pytest.mark.parametrize(
    "value",
    ["9999-12-31T23:59:00-12:00", "0001-01-01", "9999-12-31 23:59", "0001-01-01T08:00+09:00"],
)
def test_item11_dates_at_the_edges_of_the_calendar(site: Path, value: str):
    write_post(site, "d.md", date=value)
    write_post(site, "u.md", updated=value)
    assert read(site)[1] == [
        f"posts/d.md:3: 'date' must be between 0001-01-02 and 9999-12-30 (UTC), got \"{value}\"",
        f"posts/u.md:4: 'updated' must be between 0001-01-02 and 9999-12-30 (UTC), got \"{value}\"",
    ]


@pytest.mark.parametrize(("opening", "closing", "column"), [("[", "]", 67), ("{a: ", "}", 253)])
def test_item11_front_matter_nested_5000_deep_is_located(
    site: Path, opening: str, closing: str, column: int
):
    deep = opening * 5000 + "1" + closing * 5000
    write_raw(site, "n.md", f"---\ntitle: t\ndate: 2025-01-01\nx: {deep}\n---\nb\n")
    assert read(site)[1] == [
        f"posts/n.md:4:{column}: invalid YAML: nested more than 64 levels deep; "
        "use plain 'key: value' lines"
    ]


def test_item11_nesting_within_the_limit_is_read(site: Path):
    write_raw(site, "n.md", f"---\ntitle: t\ndate: 2025-01-01\nx: {'[' * 60}{']' * 60}\n---\nb\n")
    assert read(site)[1] == []


def test_item11_a_folder_named_like_a_post_is_a_folder(site: Path):
    write_post(site, "2025.md/inside.md", title="안쪽")
    posts, problems, _ = read(site)
    assert problems == [] and [p.source for p in posts] == ["posts/2025.md/inside.md"]


def test_item15_symlinked_folder_and_dangling_link_are_refused(site: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    write_post(tmp_path, "../elsewhere/hidden.md")
    (site / "posts" / "linked").symlink_to(elsewhere, target_is_directory=True)
    (site / "posts" / "gone.md").symlink_to(tmp_path / "missing.md")
    assert read(site)[1] == [
        "posts/gone.md: is a symbolic link; posts must be regular files inside the posts folder (A21)",
        "posts/linked: is a symbolic link to a folder; posts must be regular files inside the "
        "posts folder (A21): move the folder here instead of linking it",
    ]


def test_item12_a_fifo_is_refused_without_blocking(site: Path):
    import os

    os.mkfifo(site / "posts" / "pipe.md")  # nobody writes to it: a blocking open would hang
    write_post(site, "ok.md")
    posts, problems, _ = read(site)
    assert problems == [
        "posts/pipe.md: is a named pipe (FIFO), not a file; posts must be regular files "
        "(rename or remove it)"
    ]
    assert [p.source for p in posts] == ["posts/ok.md"]


def test_item11_unreadable_post_is_located(tmp_path: Path):
    import os
    import shutil
    import tempfile

    # Root reads anything: drop the effective uid to nobody for the read (root can switch back).
    root = Path(tempfile.mkdtemp(prefix="unreadable-"))
    try:
        root.chmod(0o755)
        (root / "posts").mkdir(mode=0o755)
        write_post(root, "secret.md").chmod(0)
        write_post(root, "open.md").chmod(0o644)
        config = make_config(root)
        as_root = os.geteuid() == 0
        if as_root:
            os.seteuid(65534)
        try:
            result = read_posts(config)
        finally:
            if as_root:
                os.seteuid(0)
        assert [str(p) for p in result.problems] == [
            "posts/secret.md: cannot be read: permission denied; make the file readable (chmod a+r)"
        ]
        assert [p.source for p in result.posts] == ["posts/open.md"]
    finally:
        shutil.rmtree(root)


def test_item11_each_post_is_opened_once_and_the_digest_is_of_those_bytes(site: Path):
    import hashlib
    import sys

    path = write_post(site, "once.md")
    opened: list[str] = []
    watching = [str(path)]

    def hook(event: str, args: tuple) -> None:
        if event == "open" and watching and str(args[0]) == watching[0]:
            opened.append(event)

    sys.addaudithook(hook)
    try:
        posts, problems, _ = read(site)
    finally:
        watching.clear()  # audit hooks cannot be removed; this one goes quiet
    assert problems == [] and len(opened) == 1
    assert posts[0].digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_item11_a_post_renamed_away_before_it_is_read(site: Path):
    from publisher.publish.content import read_post

    path = write_post(site, "moved.md")
    path.rename(site / "posts" / "elsewhere.txt")
    post, found = read_post(path, "posts/moved.md", make_config(site))
    assert post is None
    assert [str(p) for p in found.problems] == [
        "posts/moved.md: disappeared while the build read it (renamed or deleted); build again"
    ]


def test_item11_slugs_made_from_long_hangul_fit_a_file_name(site: Path):
    from publisher.publish.slugs import is_valid_slug, slugify

    slug = slugify("가" * 120)
    assert len(slug.encode("utf-8")) <= 240 and is_valid_slug(slug)
    write_post(site, f"{slug}.md")  # a file named after it can exist
    assert read(site)[0][0].slug == slug
