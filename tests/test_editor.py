"""The editor over HTTP: sign-in, sessions, CSRF, limits, the post list and saving posts.

Starlette's TestClient drives the real app (the one `publisher web` serves) on a
real SQLite or PostgreSQL database; post files are real files in a temporary site.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from builders import write_config
from editor_helpers import EDITOR, PASSWORD, Room, csrf_of, make_room
from publisher.cli.main import _register_commands, cli
from publisher.store import Store
from publisher.store.editors import EditorStore, create_tables
from publisher.web.editor.auth import SESSION_COOKIE, check_password, find_bearer


@pytest.fixture
def room(tmp_path: Path, db_url: str) -> Iterator[Room]:
    built = make_room(tmp_path, db_url)
    built.add_editor()
    yield built
    built.store.close()


def signed_in(room: Room):
    client = room.client()
    answer = room.signin(client)
    assert answer.status_code == 200, answer.text
    return client, csrf_of(answer.text)


def _without_tokens(html: str) -> str:
    return re.sub(r'name="csrf" value="[^"]+"', "", html)


# --- sessions and sign-in ---------------------------------------------------------------------

PAGES = ["", "new", "edit/2025-06-10-one.md", "audit", "trash"]
ACTIONS = ["save", "preview", "signout", "upload", "restore"]


def test_nothing_is_reachable_without_a_session(room: Room):
    client = room.client()
    for path in PAGES:
        answer = client.get(EDITOR + path)
        assert answer.status_code == 401, path
        assert 'action="https://blog.example.com/editor/signin"' in answer.text
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-robots-tag"] == "noindex"
        assert "noindex" in answer.text
        assert "첫 글" not in answer.text
    for path in ACTIONS:
        answer = client.post(EDITOR + path, data={"csrf": "x", "file": "2025-06-10-one.md"})
        assert answer.status_code == 401, path
        assert answer.headers["cache-control"] == "no-store"
    forged = room.client()
    forged.cookies.set(SESSION_COOKIE, "A" * 40, domain="blog.example.com", path="/editor/")
    assert forged.get(EDITOR).status_code == 401


def test_sign_in_sets_a_strict_http_only_secure_cookie_that_expires(room: Room):
    client = room.client()
    answer = room.signin(client)
    assert answer.status_code == 200
    assert "첫 글" in answer.text and "둘째 글" in answer.text
    cookie = next(
        v
        for k, v in answer.headers.multi_items()
        if k == "set-cookie" and SESSION_COOKIE + "=" in v
    )
    lowered = cookie.lower()
    for attribute in ("httponly", "samesite=strict", "secure", "path=/editor/", "max-age=43200"):
        assert attribute in lowered, cookie
    assert client.get(EDITOR).status_code == 200
    room.clock.advance(hours=12, seconds=1)
    assert client.get(EDITOR).status_code == 401  # expired


def test_http_base_url_gives_a_cookie_without_secure(tmp_path: Path):
    built = make_room(tmp_path, base_url="http://127.0.0.1:9/editor/")
    built.add_editor()
    try:
        client = built.client(base="http://127.0.0.1:9")
        page = client.get("http://127.0.0.1:9/editor/signin")
        answer = client.post(
            "http://127.0.0.1:9/editor/signin",
            data={"csrf": csrf_of(page.text), "name": "minji", "password": PASSWORD},
        )
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"].lower()
        assert "secure" not in cookie and "httponly" in cookie
    finally:
        built.store.close()


def test_a_wrong_name_and_a_wrong_password_get_the_same_answer(room: Room):
    client = room.client()
    wrong_name = room.signin(client, name="nobody")
    wrong_password = room.signin(client, password="not the password")
    assert wrong_name.status_code == wrong_password.status_code == 401
    assert _without_tokens(wrong_name.text) == _without_tokens(wrong_password.text)
    assert SESSION_COOKIE + "=" not in wrong_name.headers.get("set-cookie", "")


def test_sign_in_without_its_csrf_token_is_refused(room: Room):
    client = room.client()
    client.get(EDITOR + "signin")
    answer = client.post(EDITOR + "signin", data={"name": "minji", "password": PASSWORD})
    assert answer.status_code == 403
    assert client.get(EDITOR).status_code == 401


def test_login_attempts_are_limited_per_address_and_per_account(tmp_path: Path, db_url: str):
    room = make_room(tmp_path, db_url, login_attempts_per_hour=3)
    room.add_editor()
    room.add_editor("jisu")
    attacker = room.client(("198.51.100.1", 1))
    for n in range(3):
        assert room.signin(attacker, name=f"guess{n}", password="guess").status_code == 401
    # The address is used up, even with a right name and password.
    refused = room.signin(attacker)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "3600"
    assert room.signin(room.client(("198.51.100.2", 1))).status_code == 200  # others may
    # The account too: many addresses guessing one name.
    for n in range(3):
        assert room.signin(room.client((f"192.0.2.{n + 1}", 1)), "jisu", "guess").status_code == 401
    assert room.signin(room.client(("192.0.2.200", 1)), "jisu").status_code == 429
    # An hour later both limits have passed.
    room.clock.advance(hours=1, seconds=1)
    assert room.signin(attacker).status_code == 200
    assert room.signin(room.client(("192.0.2.201", 1)), "jisu").status_code == 200
    room.store.close()


def test_parallel_guesses_cannot_pass_the_limit_together(tmp_path: Path, db_url: str):
    from concurrent.futures import ThreadPoolExecutor

    room = make_room(tmp_path, db_url, login_attempts_per_hour=3)
    room.add_editor()
    try:
        clients = [room.client(("198.51.100.9", n)) for n in range(12)]
        pages = [c.get(EDITOR + "signin") for c in clients]

        def guess(n: int) -> int:
            data = {"csrf": csrf_of(pages[n].text), "name": "minji", "password": f"guess {n}"}
            return clients[n].post(EDITOR + "signin", data=data).status_code

        with ThreadPoolExecutor(12) as pool:
            statuses = sorted(pool.map(guess, range(12)))
        assert statuses == [401] * 3 + [429] * 9
    finally:
        room.store.close()


def test_sign_out_ends_the_session_server_side(room: Room):
    client, csrf = signed_in(room)
    cookie = client.cookies.get(SESSION_COOKIE)
    assert client.post(EDITOR + "signout", data={"csrf": csrf}).status_code == 200
    replay = room.client()
    replay.cookies.set(SESSION_COOKIE, cookie, domain="blog.example.com", path="/editor/")
    assert replay.get(EDITOR).status_code == 401


def test_a_post_without_the_sessions_csrf_token_changes_nothing(room: Room):
    client, _csrf = signed_in(room)
    before = (room.root / "posts/2025-06-10-one.md").read_bytes()
    page = client.get(EDITOR + "edit/2025-06-10-one.md")
    digest = re.search(r'name="digest" value="([0-9a-f]+)"', page.text).group(1)
    for token in ("", "forged"):
        answer = client.post(
            EDITOR + "save",
            data={
                "csrf": token,
                "file": "2025-06-10-one.md",
                "digest": digest,
                "title": "X",
                "date": "2025-06-10 09:00",
                "body": "바뀜",
            },
        )
        assert answer.status_code == 403
    _other, other_csrf = signed_in(room)  # another session's token does not fit this one
    answer = client.post(
        EDITOR + "save",
        data={
            "csrf": other_csrf,
            "file": "2025-06-10-one.md",
            "digest": digest,
            "title": "X",
            "date": "2025-06-10 09:00",
            "body": "바뀜",
        },
    )
    assert answer.status_code == 403
    assert (room.root / "posts/2025-06-10-one.md").read_bytes() == before


# --- the list and the edit page --------------------------------------------------------------


def test_list_shows_states_search_and_category_filter(room: Room):
    (room.root / "posts/2025-07-01-later.md").write_text(
        "---\ntitle: 나중 글\ndate: 2025-07-01 09:00\ncategory: 세계\n---\n본문\n", encoding="utf-8"
    )
    (room.root / "posts/draft.md").write_text(
        "---\ntitle: 쓰는 중\ndate: 2025-06-01\ndraft: true\n---\n본문\n", encoding="utf-8"
    )
    client, _ = signed_in(room)
    page = client.get(EDITOR).text
    assert "예약" in page and "2025-07-01 09:00 공개 예정" in page
    assert "초안" in page and "쓰는 중" in page
    assert "https://blog.example.com/posts/one/" in page  # published: its public URL
    found = client.get(EDITOR, params={"q": "둘째"}).text
    assert "둘째 글" in found and "첫 글" not in found
    world = client.get(EDITOR, params={"category": "세계"}).text
    assert "나중 글" in world and "둘째 글" not in world


def save_form(page_html: str, **fields: str) -> dict[str, str]:
    def value(name: str) -> str:
        found = re.search(rf'name="{name}" value="([^"]*)"', page_html)
        return found.group(1) if found else ""

    import html

    body = re.search(r'<textarea id="body" name="body"[^>]*>(.*?)</textarea>', page_html, re.S)
    form = {
        k: html.unescape(value(k))
        for k in (
            "csrf",
            "file",
            "digest",
            "title",
            "category",
            "tags",
            "date",
            "summary",
            "slug",
            "image",
        )
    }
    form["body"] = html.unescape(body.group(1)) if body else ""
    if 'name="draft" checked' in page_html:
        form["draft"] = "on"
    form.update(fields)
    return form


def test_a_new_post_is_written_to_date_slug_md_with_an_id(room: Room):
    client, _ = signed_in(room)
    page = client.get(EDITOR + "new").text
    answer = client.post(
        EDITOR + "save",
        data=save_form(
            page,
            title="새로운 글: 반도체",
            date="2025-06-21 10:30",
            tags="경제, 반도체",
            slug="new-chips",
            body="| 가 | 나 |\n|---|---|\n| 1 | 2 |\n",
            category="기술",
        ),
    )
    assert answer.status_code == 200, answer.text
    path = room.root / "posts/2025-06-21-new-chips.md"
    text = path.read_text(encoding="utf-8")
    assert re.match(
        r"---\nid: [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n", text
    )
    assert 'title: "새로운 글: 반도체"\n' in text  # ': ' needs quotes, and reads back exactly
    assert "tags: [경제, 반도체]\n" in text and "draft: true\n" in text
    assert "저장했습니다." in answer.text
    entries = EditorStore(room.store).audit_log()
    assert [(e.editor, e.action, e.target) for e in entries] == [
        ("minji", "save", "posts/2025-06-21-new-chips.md")
    ]


def test_saving_keeps_unknown_keys_and_their_formatting(room: Room):
    path = room.root / "posts/2025-06-10-one.md"
    path.write_text(
        "---\ntitle: 첫 글\n# a comment the editor keeps\nseries:   { name: 연재, part: 2 }\n"
        "date: 2025-06-10 09:00\ncategory: 세계\nlegacy_id: 00123\n---\n본문입니다.\n",
        encoding="utf-8",
    )
    client, _ = signed_in(room)
    page = client.get(EDITOR + "edit/2025-06-10-one.md").text
    answer = client.post(EDITOR + "save", data=save_form(page, title="고친 제목", body="새 본문\n"))
    assert answer.status_code == 200, answer.text
    assert path.read_text(encoding="utf-8") == (
        "---\ntitle: 고친 제목\n# a comment the editor keeps\nseries:   { name: 연재, part: 2 }\n"
        "date: 2025-06-10 09:00\ncategory: 세계\nlegacy_id: 00123\n---\n새 본문\n"
    )


def test_reader_problems_are_shown_next_to_their_field_and_nothing_is_written(room: Room):
    path = room.root / "posts/2025-06-10-one.md"
    before = path.read_bytes()
    client, _ = signed_in(room)
    page = client.get(EDITOR + "edit/2025-06-10-one.md").text
    answer = client.post(
        EDITOR + "save", data=save_form(page, date="2025-02-30 09:00", title="a =?b")
    )
    assert answer.status_code == 400
    date_errors = re.search(
        r'<ul class="field-errors" id="errors-date">(.*?)</ul>', answer.text, re.S
    )
    assert date_errors and "&#39;date&#39; is not a real date or time" in date_errors.group(1)
    title_errors = re.search(r'id="errors-title">(.*?)</ul>', answer.text, re.S)
    assert title_errors and "must not contain &#39;=?&#39;" in title_errors.group(1)
    assert path.read_bytes() == before
    empty = client.post(EDITOR + "save", data=save_form(page, body="  "))
    assert "has no body text" in re.search(r'id="errors-body">(.*?)</ul>', empty.text, re.S).group(
        1
    )


def test_a_file_changed_on_disk_is_never_overwritten(room: Room):
    path = room.root / "posts/2025-06-10-one.md"
    client, _ = signed_in(room)
    page = client.get(EDITOR + "edit/2025-06-10-one.md").text
    theirs = path.read_text(encoding="utf-8").replace("본문입니다.", "다른 사람이 고친 본문")
    path.write_text(theirs, encoding="utf-8")
    answer = client.post(EDITOR + "save", data=save_form(page, body="내가 고친 본문\n"))
    assert answer.status_code == 409
    assert path.read_text(encoding="utf-8") == theirs
    assert "다른 사람이 고친 본문" in answer.text  # their version, shown
    assert "내가 고친 본문" in answer.text  # mine, still in the form
    again = client.post(EDITOR + "save", data=save_form(answer.text))  # saving again is a choice
    assert again.status_code == 200
    assert "내가 고친 본문" in path.read_text(encoding="utf-8")


def test_a_new_post_never_replaces_an_existing_file(room: Room):
    client, _ = signed_in(room)
    page = client.get(EDITOR + "new").text
    existing = (room.root / "posts/2025-06-10-one.md").read_bytes()
    same_name = client.post(
        EDITOR + "save",
        data=save_form(page, title="겹침", slug="one", date="2025-06-10 08:00", body="본문"),
    )
    assert same_name.status_code == 409
    assert "2025-06-10-one.md 파일이 이미 있습니다" in same_name.text
    assert (room.root / "posts/2025-06-10-one.md").read_bytes() == existing
    # Another file with a slug that is taken: the reader's duplicate-slug problem, by the field.
    answer = client.post(
        EDITOR + "save",
        data=save_form(page, title="겹침", slug="one", date="2025-06-11 08:00", body="본문"),
    )
    assert answer.status_code == 400
    slug_errors = re.search(r'id="errors-slug">(.*?)</ul>', answer.text, re.S).group(1)
    assert "is also the slug of posts/2025-06-10-one.md" in slug_errors
    assert not (room.root / "posts/2025-06-11-one.md").exists()


def test_edit_names_only_listed_post_files(room: Room):
    (room.root / "secret.md").write_text("---\ntitle: x\n---\n", encoding="utf-8")
    client, _ = signed_in(room)
    for name in ("../secret.md", "..%2Fsecret.md", "/etc/passwd", "../config.toml"):
        answer = client.get(EDITOR + "edit/" + name)
        assert answer.status_code == 404, name


# --- store and CLI ---------------------------------------------------------------------------


def test_editor_tables_migration_is_idempotent(db_url: str):
    store = Store.open(db_url)
    try:
        with store.engine.begin() as conn:
            create_tables(conn)
            create_tables(conn)
        EditorStore(store).add_editor("a", None, "h")
        assert [e.name for e in EditorStore(store).list_editors()] == ["a"]
    finally:
        store.close()


def test_editors_cli_add_list_token_password_revoke_remove(tmp_path: Path):
    root = write_config(tmp_path / "site", database={"url": "sqlite:///publisher.db"})
    _register_commands()
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None):
        return runner.invoke(cli, ["--site", str(root), "editors", *args], input=stdin)

    assert run("add", "minji", "--email", "m@example.com", stdin=PASSWORD + "\n").exit_code == 0
    assert run("add", "jisu", "--email", "not an address", stdin=PASSWORD + "\n").exit_code != 0
    short = run("add", "jisu", stdin="short\n")
    assert short.exit_code != 0
    again = run("add", "minji", stdin=PASSWORD + "\n")
    assert again.exit_code != 0
    token = run("token", "minji", "--scope", "create,media")
    assert token.exit_code == 0
    printed = token.stdout.strip()
    assert re.fullmatch(r"pe_[A-Za-z0-9_-]{43}", printed)
    assert run("token", "minji", "--scope", "create,admin").exit_code != 0
    listed = run("list")
    assert "minji\tm@example.com\ttokens: #1 (create,media)" in listed.stdout
    store = Store.open(f"sqlite:///{root / 'publisher.db'}")
    try:
        editors = EditorStore(store)
        found = find_bearer(editors, printed)
        assert found is not None and found.scopes == ("create", "media")
        assert find_bearer(editors, printed[:-1] + ("A" if printed[-1] != "A" else "B")) is None
        assert printed not in str(store.engine.url)  # stored hashed only:
        with store.engine.connect() as conn:
            dump = "\n".join(str(r) for r in conn.exec_driver_sql("SELECT * FROM editor_tokens"))
        assert printed not in dump
        assert run("password", "minji", stdin="another long passphrase\n").exit_code == 0
        assert check_password(editors.find_editor("minji").password_hash, "another long passphrase")
        assert run("revoke", "minji").exit_code == 0
        assert find_bearer(editors, printed) is None
        assert run("remove", "minji").exit_code == 0
        assert editors.find_editor("minji") is None
        assert run("remove", "minji").exit_code != 0
    finally:
        store.close()


# --- preview ---------------------------------------------------------------------------------


def test_preview_shows_page_feed_entry_and_email_under_a_script_free_csp(room: Room):
    client, _ = signed_in(room)
    page = client.get(EDITOR + "new").text
    answer = client.post(
        EDITOR + "preview",
        data=save_form(
            page,
            title="미리 보는 글",
            body="안녕하세요 **세계**\n\n| 가 | 나 |\n|---|---|\n| 1 | 2 |\n",
        ),
    )
    assert answer.status_code == 200, answer.text
    csp = answer.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    assert answer.headers["cache-control"] == "no-store"
    assert '<iframe title="블로그 페이지" sandbox srcdoc="' in answer.text
    assert (
        "&lt;h1" in answer.text and "미리 보는 글" in answer.text
    )  # the page, escaped into srcdoc
    assert "&lt;table&gt;" in answer.text  # the table, rendered
    assert "&lt;entry" in answer.text  # the Atom entry
    assert '<iframe title="이메일" sandbox srcdoc="' in answer.text
    assert sorted(p.name for p in (room.root / "posts").iterdir()) == [
        "2025-06-10-one.md",
        "2025-06-12-two.md",
    ]  # previewing writes nothing
    broken = client.post(EDITOR + "preview", data=save_form(page, title="", body="x"))
    assert "&#39;title&#39; is required" in broken.text


# --- publish, schedule, unpublish, delete, test email ------------------------------------------


def edit(client, name: str) -> str:
    return client.get(EDITOR + "edit/" + name).text


def test_publish_now_schedule_and_unpublish(room: Room):
    from publisher.publish.content import read_posts
    from publisher.publish.site import build_site

    client, _ = signed_in(room)
    draft = room.root / "posts/2025-06-15-draft.md"
    draft.write_text(
        "---\ntitle: 초안\ndate: 2025-07-01 09:00\ndraft: true\n---\n본문\n", encoding="utf-8"
    )
    published = client.post(
        EDITOR + "save", data=save_form(edit(client, draft.name), action="publish")
    )
    assert published.status_code == 200, published.text
    text = draft.read_text(encoding="utf-8")
    assert "draft:" not in text and "date: 2025-06-20 18:00\n" in text  # now, in Asia/Seoul
    scheduled = client.post(
        EDITOR + "save",
        data=save_form(edit(client, draft.name), action="schedule", date="2025-06-21 07:30"),
    )
    assert (
        scheduled.status_code == 200
        and "2025-06-21 07:30에 공개되도록 예약했습니다" in scheduled.text
    )
    assert "date: 2025-06-21 07:30\n" in draft.read_text(encoding="utf-8")
    assert "공개 예정" in client.get(EDITOR).text
    # What the scheduler reads: hidden now, public once its time has come.
    posts = read_posts(room.config).posts
    assert "초안" not in [p.title for p in build_site(room.config, posts, room.clock()).posts]
    later = room.clock() + timedelta(hours=14)  # 2025-06-20 23:00 UTC = 06-21 08:00 in Seoul
    assert "초안" in [p.title for p in build_site(room.config, posts, later).posts]
    past = client.post(
        EDITOR + "save",
        data=save_form(edit(client, draft.name), action="schedule", date="2025-06-01 07:30"),
    )
    assert past.status_code == 400 and "미래의 날짜" in past.text
    back = client.post(
        EDITOR + "save", data=save_form(edit(client, draft.name), action="unpublish")
    )
    assert back.status_code == 200 and "draft: true\n" in draft.read_text(encoding="utf-8")
    actions = [(e.action, e.detail) for e in EditorStore(room.store).audit_log()]
    assert actions[:3] == [
        ("unpublish", ""),
        ("schedule", "scheduled for 2025-06-21T07:30:00+09:00"),
        ("publish", "published"),
    ]


def test_unpublishing_a_mailed_post_warns(room: Room):
    from publisher.store import IssueStatus, NewIssue

    issue, _ = room.store.create_issue(
        NewIssue("post:one", ("one",), ("세계",), "첫 글", "", "<p>x</p>", "x", "d" * 64)
    )
    room.store.set_issue_status(issue.id, IssueStatus.DONE)
    client, _ = signed_in(room)
    assert f"뉴스레터 #{issue.id} done" in client.get(EDITOR).text
    answer = client.post(
        EDITOR + "save", data=save_form(edit(client, "2025-06-10-one.md"), action="unpublish")
    )
    assert answer.status_code == 200
    assert "이미 뉴스레터" in answer.text and "회수되지 않습니다" in answer.text


def test_delete_moves_the_file_to_the_trash(room: Room):
    client, _ = signed_in(room)
    before = (room.root / "posts/2025-06-12-two.md").read_bytes()
    answer = client.post(
        EDITOR + "save", data=save_form(edit(client, "2025-06-12-two.md"), action="delete")
    )
    assert answer.status_code == 200
    assert not (room.root / "posts/2025-06-12-two.md").exists()
    trashed = list((room.root / "trash").iterdir())
    assert [p.read_bytes() for p in trashed] == [before]
    assert "둘째 글" not in answer.text
    entry = EditorStore(room.store).audit_log()[0]
    assert (entry.action, entry.target) == ("delete", "posts/2025-06-12-two.md")
    assert entry.detail.startswith("moved to trash/")
    # Restorable from the trash page.
    page = client.get(EDITOR + "trash").text
    name = trashed[0].name
    assert name in page
    assert client.post(EDITOR + "restore", data={"csrf": "forged", "name": name}).status_code == 403
    bad = client.post(EDITOR + "restore", data={"csrf": csrf_of(page), "name": "../config.toml"})
    assert bad.status_code == 409
    back = client.post(EDITOR + "restore", data={"csrf": csrf_of(page), "name": name})
    assert back.status_code == 200 and "posts/2025-06-12-two.md(으)로 되살렸습니다" in back.text
    assert (room.root / "posts/2025-06-12-two.md").read_bytes() == before
    assert EditorStore(room.store).audit_log()[0].action == "restore"


def test_test_email_goes_to_the_editor_only(tmp_path: Path, smtp_sink):
    room = make_room(
        tmp_path,
        sections={
            "newsletter": {"transport": "smtp"},
            "smtp": {"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"},
        },
    )
    room.add_editor()
    try:
        client, _ = signed_in(room)
        answer = client.post(
            EDITOR + "save", data=save_form(edit(client, "2025-06-10-one.md"), action="test-email")
        )
        assert answer.status_code == 200, answer.text
        assert "minji@example.com(으)로 테스트 메일을 보냈습니다" in answer.text
        assert smtp_sink.recipients() == ["minji@example.com"]
        assert room.store.list_issues() == []  # no issue, no deliveries
    finally:
        room.store.close()


# --- images ------------------------------------------------------------------------------------


def test_image_upload_needs_session_and_csrf_checks_content_and_strips_gps(room: Room):
    import io

    from PIL import Image

    from test_micropub import jpeg_with_gps

    data = jpeg_with_gps()
    anonymous = room.client().post(
        EDITOR + "upload", files={"image": ("a.jpg", data, "image/jpeg")}, data={"csrf": "x"}
    )
    assert anonymous.status_code == 401
    client, csrf = signed_in(room)
    forged = client.post(
        EDITOR + "upload", files={"image": ("a.jpg", data, "image/jpeg")}, data={"csrf": "x"}
    )
    assert forged.status_code == 403
    answer = client.post(
        EDITOR + "upload", files={"image": ("a.jpg", data, "image/jpeg")}, data={"csrf": csrf}
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["markdown"].startswith(f'<img src="{found["url"]}" srcset="')
    assert (found["width"], found["height"]) == (64, 48)
    stored = room.root / "templates" / found["url"].removeprefix("https://blog.example.com/")
    assert b"SecretCam" not in stored.read_bytes()
    assert not Image.open(io.BytesIO(stored.read_bytes())).getexif()
    html_named_jpg = client.post(
        EDITOR + "upload",
        files={"image": ("a.jpg", b"<script>alert(1)</script>", "image/jpeg")},
        data={"csrf": csrf},
    )
    assert html_named_jpg.status_code == 400
    assert "not an image" in html_named_jpg.json()["error"]
    too_big = client.post(
        EDITOR + "upload",
        files={
            "image": ("a.jpg", b"\xff" * (room.config.editor.max_upload_bytes + 1), "image/jpeg")
        },
        data={"csrf": csrf},
    )
    assert too_big.status_code in (400, 413)


# --- git -----------------------------------------------------------------------------------------


def test_each_save_commits_with_the_editor_as_author_when_configured(tmp_path: Path):
    import shutil
    import subprocess

    git = shutil.which("git")
    assert git, "git is needed for this test"
    room = make_room(tmp_path, git_commit=True)
    room.add_editor()
    env = {
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_SYSTEM": "/dev/null",
        "HOME": str(tmp_path),
    }

    def run(*args: str) -> str:
        return subprocess.run(
            [git, "-C", str(room.root), *args], check=True, capture_output=True, text=True, env=env
        ).stdout

    try:
        run("init", "-q")
        run("add", "posts")
        run("-c", "user.name=setup", "-c", "user.email=setup@example.com", "commit", "-qm", "start")
        client, _ = signed_in(room)
        answer = client.post(
            EDITOR + "save", data=save_form(edit(client, "2025-06-10-one.md"), title="커밋된 제목")
        )
        assert answer.status_code == 200 and "git 커밋에 실패" not in answer.text
        log = run("log", "-1", "--format=%an <%ae>|%s")
        assert (
            log.strip() == "minji <minji@example.com>|save: posts/2025-06-10-one.md (커밋된 제목)"
        )
        assert run("status", "--porcelain", "posts").strip() == ""
        client.post(
            EDITOR + "save", data=save_form(edit(client, "2025-06-12-two.md"), action="delete")
        )
        assert run("log", "-1", "--format=%s").strip() == "delete: posts/2025-06-12-two.md"
        assert "2025-06-12-two.md" not in run("ls-files", "posts")
    finally:
        room.store.close()


def test_images_get_webp_variants_with_srcset_width_and_height_deterministically(tmp_path: Path):
    import io

    from PIL import Image

    from publisher.publish.content import read_posts
    from publisher.publish.newsletter import render_post_issue
    from publisher.publish.site import build_site
    from publisher.web.editor.media import image_html, store_image, webp_variants

    room = make_room(tmp_path)
    try:
        picture = Image.new("RGB", (2000, 1000), (10, 120, 200))
        out = io.BytesIO()
        picture.save(out, "PNG")
        stored = store_image(room.config, out.getvalue())
        assert (stored.width, stored.height) == (1280, 640)  # at most twice a mail column
        with Image.open(stored.path) as kept:
            assert kept.size == (1280, 640)
        widths = [w for _url, w in stored.variants]
        assert widths == [480, 960, 1280]
        for url, width in stored.variants:
            file = room.root / "templates" / url.removeprefix("https://blog.example.com/")
            with Image.open(file) as variant:
                assert variant.format == "WEBP" and variant.size == (width, width // 2)
        again = store_image(room.config, out.getvalue())
        assert again == stored  # content-addressed: one file per image
        clean = stored.path.read_bytes()
        assert webp_variants(clean, 1280) == webp_variants(clean, 1280)  # same bytes each time
        html = image_html(stored, alt="파란 사각형")
        post = room.root / "posts/2025-06-10-one.md"
        post.write_text(post.read_text(encoding="utf-8") + "\n" + html + "\n", encoding="utf-8")
        posts = read_posts(room.config).posts
        site = build_site(room.config, posts, room.clock())
        one = next(p for p in posts if p.slug == "one")
        assert 'srcset="https://blog.example.com/static/media/' in one.body_html
        assert 'width="1280" height="640"' in one.body_html
        email = render_post_issue(site, one).html
        assert f'src="{stored.url}"' in email  # an absolute URL of a suitable size
    finally:
        room.store.close()


# --- end to end: the editor schedules, `publisher run` publishes and mails once -----------------


def test_a_post_scheduled_in_the_editor_goes_live_and_is_mailed_once_by_run(tmp_path: Path):
    import email
    import time
    from datetime import UTC, datetime
    from email import policy

    from editor_helpers import SECRET, NoMail
    from publisher.cli import main as cli_module
    from publisher.config import load_config
    from publisher.store import utc_now
    from publisher.web.app import create_app

    built = make_room(tmp_path)  # writes the site; the app below runs on the real clock
    built.store.close()
    config = load_config(built.root, env=SECRET)
    store = Store.open(config.database_url)
    room = Room(
        built.root, config, store, built.clock, create_app(config, store, NoMail(), utc_now)
    )
    room.add_editor()
    runner = CliRunner()
    cli_module._register_commands()

    def run_once() -> None:
        result = runner.invoke(
            cli_module.cli, ["--site", str(room.root), "run", "--once"], env=SECRET
        )
        assert result.exit_code == 0, result.output

    def mailed(subject: str) -> int:
        outbox = room.root / "outbox"
        messages = (
            [
                email.message_from_bytes(p.read_bytes(), policy=policy.default)
                for p in sorted(outbox.glob("*.eml"))
            ]
            if outbox.is_dir()
            else []
        )
        return sum(1 for m in messages if str(m["Subject"]) == subject)

    try:
        added = runner.invoke(
            cli_module.cli, ["--site", str(room.root), "subscribers", "add", "reader@example.com"]
        )
        assert added.exit_code == 0, added.output
        run_once()  # the back catalogue goes out first; not what this test is about
        client, _ = signed_in(room)
        page = client.get(EDITOR + "new").text
        due = datetime.now(UTC).astimezone(config.site.timezone).replace(microsecond=0)
        when = due + timedelta(seconds=15)  # room for a slow machine before it is due
        moment = when.strftime("%Y-%m-%d %H:%M:%S")
        answer = client.post(
            EDITOR + "save",
            data=save_form(
                page,
                title="예약한 글",
                slug="scheduled-post",
                date=moment,
                body="곧 공개됩니다.\n",
                action="schedule",
            ),
        )
        assert answer.status_code == 200, answer.text
        run_once()
        assert datetime.now(UTC) < when, "the machine was too slow for this test's margin"
        assert mailed("예약한 글") == 0  # not yet due
        time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()) + 1)
        run_once()
        run_once()
        assert mailed("예약한 글") == 1  # live, and mailed once
        assert (room.root / "public/posts/scheduled-post/index.html").exists()
    finally:
        store.close()


def test_the_editor_needs_a_path_of_its_own(tmp_path: Path):
    from builders import make_config
    from publisher.errors import PublisherError
    from publisher.web.editor import editor_routes

    for base_url in ("https://blog.example.com/", "https://blog.example.com/newsletter/"):
        config = make_config(tmp_path, editor={"enabled": True, "base_url": base_url})
        with pytest.raises(PublisherError, match="needs a path of its own"):
            editor_routes(config, None, [b"k" * 32], None, None)


def test_the_edit_page_shows_the_url_the_slug_gives(room: Room):
    client, _ = signed_in(room)
    assert "주소: <code>https://blog.example.com/posts/one/</code>" in edit(
        client, "2025-06-10-one.md"
    )
    page = client.get(EDITOR + "new").text
    answer = client.post(
        EDITOR + "save", data=save_form(page, title="제목 없음", body="x", slug="mine")
    )
    assert "주소: <code>https://blog.example.com/posts/mine/</code>" in answer.text


def test_the_preview_shows_the_mail_warnings_the_send_command_gives(tmp_path: Path):
    room = make_room(tmp_path, sections={"newsletter": {"max_html_bytes": 10_000}})
    room.add_editor()
    try:
        client, _ = signed_in(room)
        page = client.get(EDITOR + "new").text
        long_body = "\n\n".join(f"문단 {n}: " + "긴 글입니다. " * 20 for n in range(40))
        answer = client.post(
            EDITOR + "preview", data=save_form(page, title="긴 글", body=long_body)
        )
        assert answer.status_code == 200
        assert "확인할 점" in answer.text and "Gmail clips messages" in answer.text
    finally:
        room.store.close()
