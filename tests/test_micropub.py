"""Micropub over real HTTP, as a writing app would: uvicorn on loopback, httpx as the client."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from editor_helpers import Room, make_live_room
from live_server import Server
from publisher.store.editors import EditorStore
from publisher.web.editor.auth import hash_password, new_bearer_token
from smtp_sink import free_port


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Room, str, httpx.Client]]:
    port = free_port()
    room = make_live_room(tmp_path, port)
    with Server(room.app, port), httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        yield room, f"http://127.0.0.1:{port}/", client
    room.store.close()


def token_for(room: Room, *scopes: str) -> str:
    editors = EditorStore(room.store)
    editor = editors.find_editor("app") or editors.add_editor("app", None, hash_password("x" * 12))
    token, digest = new_bearer_token()
    editors.add_token(editor.id, digest, scopes or ("create", "update", "delete", "media"))
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_text(room: Room, name: str) -> str:
    return (room.root / "posts" / name).read_text(encoding="utf-8")


def test_no_token_a_wrong_token_and_a_missing_scope(live):
    room, _base, client = live
    no_token = client.post("/editor/micropub", data={"h": "entry", "content": "x"})
    assert no_token.status_code == 401 and no_token.json()["error"] == "unauthorized"
    wrong = client.post("/editor/micropub", data={"h": "entry"}, headers=bearer("pe_" + "A" * 43))
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    assert client.get("/editor/micropub?q=config").status_code == 401
    media_only = token_for(room, "media")
    refused = client.post(
        "/editor/micropub", data={"h": "entry", "content": "x"}, headers=bearer(media_only)
    )
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    revoked = token_for(room, "create")
    editors = EditorStore(room.store)
    editors.revoke_tokens(editors.find_editor("app").id)
    assert (
        client.post("/editor/micropub", data={"h": "entry"}, headers=bearer(revoked)).status_code
        == 401
    )
    assert sorted(p.name for p in (room.root / "posts").iterdir()) == [
        "2025-06-10-one.md",
        "2025-06-12-two.md",
    ]


def test_form_encoded_create_of_a_draft(live):
    room, base, client = live
    token = token_for(room)
    answer = client.post(
        "/editor/micropub",
        content="h=entry&name=%EB%A7%88%EC%9D%B4%ED%81%AC%EB%A1%9C&content=%EC%95%88%EB%85%95%ED%95%98%EC%84%B8%EC%9A%94"
        "&category[]=%EC%84%B8%EA%B3%84&category[]=%EB%B0%98%EB%8F%84%EC%B2%B4&mp-slug=micro&post-status=draft",
        headers={**bearer(token), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == base + "posts/micro/"
    text = post_text(room, "2025-06-20-micro.md")
    assert "title: 마이크로\n" in text and "category: 세계\n" in text
    assert "tags: [반도체]\n" in text and "draft: true\n" in text and "slug: micro\n" in text
    assert text.endswith("---\n안녕하세요\n")
    audit = EditorStore(room.store).audit_log()
    assert (audit[0].editor, audit[0].action, audit[0].target) == (
        "app",
        "micropub-create",
        "posts/2025-06-20-micro.md",
    )


def test_json_create_with_html_content_and_published(live):
    room, base, client = live
    token = token_for(room, "create")
    entry = {
        "type": ["h-entry"],
        "properties": {
            "name": ["표가 있는 글"],
            "content": [
                {"html": "<h2>소제목</h2><p><strong>굵게</strong></p><ul><li>하나</li></ul>"}
            ],
            "published": ["2025-06-18T10:00:00+09:00"],
            "category": ["기술", "메모"],
            "mp-slug": ["table-post"],
        },
    }
    answer = client.post("/editor/micropub", json=entry, headers=bearer(token))
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == base + "posts/table-post/"
    text = post_text(room, "2025-06-18-table-post.md")
    assert "date: 2025-06-18 10:00:00+09:00\n" in text
    assert "## 소제목" in text and "**굵게**" in text and "- 하나" in text
    assert "category: 기술\n" in text and "tags: [메모]\n" in text
    # A note without a name gets its first words as title; the slug is unique.
    note = client.post(
        "/editor/micropub",
        json={
            "type": ["h-entry"],
            "properties": {"content": ["짧은 메모입니다"], "mp-slug": ["table-post"]},
        },
        headers=bearer(token),
    )
    assert note.status_code == 201
    assert (
        note.headers["location"] == base + "posts/table-post-2/"
        or "table-post" in note.headers["location"]
    )


def test_queries_config_category_and_source(live):
    room, base, client = live
    token = token_for(room)
    config = client.get("/editor/micropub", params={"q": "config"}, headers=bearer(token))
    assert config.status_code == 200
    assert config.json()["media-endpoint"] == base + "editor/micropub/media"
    categories = client.get("/editor/micropub", params={"q": "category"}, headers=bearer(token))
    assert categories.json() == {"categories": ["기술", "세계"]}
    source = client.get(
        "/editor/micropub",
        params={"q": "source", "url": base + "posts/one/"},
        headers=bearer(token),
    )
    assert source.status_code == 200
    properties = source.json()["properties"]
    assert properties["name"] == ["첫 글"] and properties["category"] == ["세계"]
    assert properties["content"] == ["본문입니다.\n"]
    unknown = client.get("/editor/micropub", params={"q": "nonsense"}, headers=bearer(token))
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_request"
    missing = client.get(
        "/editor/micropub",
        params={"q": "source", "url": base + "posts/none/"},
        headers=bearer(token),
    )
    assert missing.status_code == 400


def test_update_replace_add_delete_and_delete(live):
    room, base, client = live
    token = token_for(room)
    url = base + "posts/one/"
    original = post_text(room, "2025-06-10-one.md")
    assert (
        client.post(
            "/editor/micropub",
            json={"action": "update", "url": url, "replace": {"name": ["새 제목"]}},
            headers=bearer(token_for(room, "create")),
        ).status_code
        == 403
    )
    answer = client.post(
        "/editor/micropub",
        json={
            "action": "update",
            "url": url,
            "replace": {"name": ["새 제목"], "content": ["새 본문"]},
            "add": {"category": ["태그하나"]},
        },
        headers=bearer(token),
    )
    assert answer.status_code == 204, answer.text
    text = post_text(room, "2025-06-10-one.md")
    assert (
        "title: 새 제목\n" in text and "tags: [태그하나]\n" in text and text.endswith("새 본문\n")
    )
    assert "date: 2025-06-10 09:00\n" in text and text != original
    removed = client.post(
        "/editor/micropub",
        json={"action": "update", "url": url, "delete": {"category": ["태그하나"]}},
        headers=bearer(token),
    )
    assert removed.status_code == 204
    assert "tags:" not in post_text(room, "2025-06-10-one.md")
    gone = client.post(
        "/editor/micropub", data={"action": "delete", "url": url}, headers=bearer(token)
    )
    assert gone.status_code == 204
    assert not (room.root / "posts/2025-06-10-one.md").exists()
    trashed = list((room.root / "trash").iterdir())
    assert len(trashed) == 1 and "새 제목" in trashed[0].read_text(encoding="utf-8")


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (37.0, 33.0, 59.0), 3: "E", 4: (126.0, 58.0, 41.0)}  # GPSInfo
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def test_media_endpoint_checks_content_strips_location_and_limits_size(live):
    room, base, client = live
    token = token_for(room, "media")
    data = jpeg_with_gps()
    assert b"SecretCam" in data
    answer = client.post(
        "/editor/micropub/media",
        files={"file": ("photo.jpg", data, "image/jpeg")},
        headers=bearer(token),
    )
    assert answer.status_code == 201, answer.text
    location = answer.headers["location"]
    assert location.startswith(base + "static/media/") and location.endswith(".jpg")
    stored = room.root / "templates" / location.removeprefix(base)
    clean = stored.read_bytes()
    assert b"SecretCam" not in clean
    assert not Image.open(io.BytesIO(clean)).getexif()
    fake = client.post(
        "/editor/micropub/media",
        files={"file": ("photo.jpg", b"<?php system($_GET[1]);", "image/jpeg")},
        headers=bearer(token),
    )
    assert fake.status_code == 400 and "not an image" in fake.json()["error_description"]
    no_scope = client.post(
        "/editor/micropub/media",
        files={"file": ("p.jpg", data, "image/jpeg")},
        headers=bearer(token_for(room, "create")),
    )
    assert no_scope.status_code == 403


def test_bad_requests_are_400_never_500(live):
    room, _base, client = live
    token = token_for(room)
    cases = [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ({"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}),
        ({"json": {"type": ["h-card"], "properties": {}}}),
        ({"json": {"type": ["h-entry"], "properties": {"content": [{"bogus": 1}]}}}),
        (
            {
                "json": {
                    "type": ["h-entry"],
                    "properties": {"content": ["x"], "published": ["yesterday"]},
                }
            }
        ),
        ({"json": {"action": "explode"}}),
        ({"json": {"action": "update", "url": 3}}),
        (
            {
                "content": b"\xff\xfe",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            }
        ),
    ]
    for case in cases:
        headers = {**bearer(token), **case.pop("headers", {})}
        answer = client.post("/editor/micropub", headers=headers, **case)
        assert answer.status_code == 400, (case, answer.text)
        assert answer.json()["error"] == "invalid_request"
    dated = client.post(
        "/editor/micropub",
        json={"type": ["h-entry"], "properties": {"content": ["x"], "published": ["yesterday"]}},
        headers=bearer(token),
    )
    assert "'date'" in dated.json()["error_description"]


def test_blog_pages_advertise_micropub_only_when_the_editor_is_on(tmp_path: Path):
    from datetime import UTC, datetime

    from builders import write_config, write_post
    from publisher.config import load_config
    from publisher.publish.build import build

    for enabled in (True, False):
        root = write_config(tmp_path / str(enabled), editor={"enabled": enabled})
        write_post(root, "2025-06-10-one.md", title="첫 글", date="2025-06-10 09:00")
        config = load_config(root, env={})
        build(config, datetime(2025, 6, 20, tzinfo=UTC), output=root / "public")
        for page in ("index.html", "posts/one/index.html"):
            html = (root / "public" / page).read_text(encoding="utf-8")
            link = '<link rel="micropub" href="https://blog.example.com/editor/micropub">'
            assert (link in html) is enabled, page


def test_multipart_create_with_an_uploaded_photo(live):
    room, base, client = live
    token = token_for(room, "create", "media")
    answer = client.post(
        "/editor/micropub",
        data={"h": "entry", "name": "사진 글", "content": "사진입니다", "mp-slug": "photo-post"},
        files={"photo": ("p.jpg", jpeg_with_gps(), "image/jpeg")},
        headers=bearer(token),
    )
    assert answer.status_code == 201, answer.text
    text = post_text(room, "2025-06-20-photo-post.md")
    image = next(line for line in text.splitlines() if line.startswith("image: "))
    url = image.removeprefix("image: ")
    assert url.startswith(base + "static/media/") and url.endswith(".jpg")
    assert b"SecretCam" not in (room.root / "templates" / url.removeprefix(base)).read_bytes()
    bad = client.post(
        "/editor/micropub",
        data={"h": "entry", "content": "x"},
        files={"photo": ("p.jpg", b"GIF89a-not-really", "image/jpeg")},
        headers=bearer(token),
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
