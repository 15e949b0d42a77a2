"""The site index: order, visibility, related-category lists, pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from builders import make_config, make_post
from publisher.publish.site import build_site, nearest_window, paginate

NOW = datetime(2025, 7, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return datetime(2025, 6, 1, 9, tzinfo=UTC) + timedelta(days=n)


def world(n: int, **kw: object) -> object:
    return make_post(slug=f"w{n}", title=f"세계 {n}", date=day(n), category="세계", **kw)


def test_public_posts_newest_first_ties_broken_by_slug():
    posts = [world(1), make_post(slug="b", date=day(5)), make_post(slug="a", date=day(5))]
    site = build_site(make_config(), posts, NOW)
    assert [p.slug for p in site.posts] == ["a", "b", "w1"]


def test_a20_drafts_and_future_posts_hidden_and_next_due_reported():
    future = make_post(slug="soon", date=NOW + timedelta(hours=2))
    later = make_post(slug="later", date=NOW + timedelta(days=2))
    draft = make_post(slug="draft", draft=True)
    site = build_site(make_config(), [world(1), future, later, draft], NOW)
    assert [p.slug for p in site.posts] == ["w1"]
    assert site.next_due is future
    assert {p.slug for p in site.hidden} == {"soon", "later", "draft"}
    preview = build_site(make_config(), [world(1), future, draft], NOW, include_drafts=True)
    assert {p.slug for p in preview.posts} == {"w1", "soon", "draft"}


def test_related_list_is_the_current_post_among_its_nearest_neighbours():
    posts = [world(n) for n in range(10)]
    site = build_site(make_config(site={"related_count": 4}), posts, NOW)
    related = site.related["w5"]
    assert related.heading == "'세계' 카테고리의 다른 글"
    assert [i.url for i in related.items] == [f"posts/w{n}/" for n in (7, 6, 5, 4, 3)]
    assert [i.current for i in related.items] == [False, False, True, False, False]
    # At the ends of the category the window slides instead of shrinking.
    assert [i.url for i in site.related["w9"].items] == [f"posts/w{n}/" for n in (9, 8, 7, 6, 5)]


def test_related_list_prefers_the_nearest_in_time_not_the_nearest_index():
    posts = [world(0), world(10), world(11), world(30)]
    window = nearest_window(sorted(posts, key=lambda p: -p.date.timestamp()), 2, 2)
    assert [p.slug for p in window] == ["w11", "w10", "w0"]
    site = build_site(make_config(site={"related_count": 1}), posts, NOW)
    assert [i.url for i in site.related["w10"].items] == ["posts/w11/", "posts/w10/"]


def test_related_list_only_same_category_and_only_public_posts():
    other = make_post(slug="tech", date=day(3), category="기술")
    draft = world(4, draft=True)
    site = build_site(make_config(), [world(1), world(2), other, draft], NOW)
    urls = [i.url for i in site.related["w1"].items]
    assert urls == ["posts/w2/", "posts/w1/"]
    assert "tech" not in site.related  # alone in its category: no list


def test_related_count_zero_turns_lists_off_and_heading_is_configurable():
    posts = [world(1), world(2)]
    assert build_site(make_config(site={"related_count": 0}), posts, NOW).related == {}
    site = build_site(make_config(site={"related_heading": "More in {category}"}), posts, NOW)
    assert site.related["w1"].heading == "More in 세계"


def test_pagination_paths():
    posts = [world(n) for n in range(7)]
    pages = paginate(posts, 3, "category/세계/")
    assert [p.path for p in pages] == [
        "category/세계/",
        "category/세계/page/2/",
        "category/세계/page/3/",
    ]
    assert pages[0].previous_path is None and pages[0].next_path == "category/세계/page/2/"
    assert [len(p.posts) for p in pages] == [3, 3, 1]
    assert len(paginate([], 3, "")) == 1  # an empty site still has a home page


def test_urls_are_absolute_and_percent_encoded():
    site = build_site(make_config(), [world(1)], NOW)
    assert site.url("category/세계/") == "https://blog.example.com/category/%EC%84%B8%EA%B3%84/"
    assert [c.path for c in site.categories] == ["category/세계/"]


def test_related_lists_scale_linearly():
    """10,000 posts in one category: one pass per category, not a scan per post."""
    posts = [
        make_post(slug=f"p{n}", date=day(0) + timedelta(minutes=n), category="세계")
        for n in range(10_000)
    ]
    site = build_site(make_config(), posts, datetime(2030, 1, 1, tzinfo=UTC))
    assert len(site.related) == 10_000
    assert all(len(r.items) == 6 for r in site.related.values())


# --- issue 8: tags and categories that differ only in case or punctuation (items 14, 15) ----


def test_item14_names_equal_after_case_folding_and_nfc_are_one_taxonomy():
    import unicodedata

    nfd = unicodedata.normalize("NFD", "반도체")
    posts = [
        make_post(slug="a", tags=("AI",), category="세계"),
        make_post(slug="b", tags=("ai",), category=nfd),
        make_post(slug="c", tags=("ai", "AI"), category="세계"),
    ]
    site = build_site(make_config(), posts, NOW)
    assert [(t.name, t.slug, t.path) for t in site.tags] == [("AI", "ai", "tag/ai/")]  # 2:2 tie
    assert [p.slug for p in site.tags[0].posts] == ["a", "b", "c"]  # "c" once, not twice
    assert [(t.name, t.path) for t in site.categories] == [
        ("반도체", "category/반도체/"),
        ("세계", "category/세계/"),
    ]
    assert site.tag_path("Ai") == site.tag_path("AI") == "tag/ai/"
    assert site.category(nfd) is site.category("반도체") is not None


def test_item14_most_used_spelling_is_shown_ties_broken_by_code_point():
    tie = build_site(
        make_config(), [make_post(slug="a", tags=("ai",)), make_post(slug="b", tags=("AI",))], NOW
    )
    assert [t.name for t in tie.tags] == ["AI"]
    most = [make_post(slug=s, tags=("ai",)) for s in "ab"] + [make_post(slug="c", tags=("AI",))]
    assert [t.name for t in build_site(make_config(), most, NOW).tags] == ["ai"]


def test_item14_names_that_share_a_slug_get_distinct_slugs_deterministically():
    posts = [
        make_post(slug="a", tags=("C++", "C"), category="C#"),
        make_post(slug="b", tags=("C#",), category="C"),
    ]
    for order in (posts, posts[::-1]):
        site = build_site(make_config(), order, NOW)
        assert [(t.name, t.path) for t in site.tags] == [
            ("C", "tag/c/"),
            ("C++", "tag/c-plus-plus/"),
            ("C#", "tag/c-sharp/"),
        ]
        assert [(t.name, t.path) for t in site.categories] == [
            ("C", "category/c/"),
            ("C#", "category/c-sharp/"),
        ]
        assert site.tag_path("c++") == "tag/c-plus-plus/"


def test_item15_a_name_without_letters_or_digits_gets_a_page_of_its_own():
    posts = [make_post(slug="a", category="!!!", tags=("🚀", "???"))]
    site = build_site(make_config(), posts, NOW)
    assert [t.path for t in site.categories] == [
        "category/exclamation-mark-exclamation-mark-exclamation-mark/"
    ]
    assert [t.path for t in site.tags] == [
        "tag/question-mark-question-mark-question-mark/",
        "tag/rocket/",
    ]
    assert all(t.slug for t in (*site.categories, *site.tags))
