"""`publisher preview`: page, feed entry, email HTML and text of one post side by side."""

from __future__ import annotations

import dataclasses
import html

from starlette.testclient import TestClient

from conftest import REPO
from publisher.config import load_config
from publisher.preview.server import PreviewServer


def make_server() -> PreviewServer:
    config = load_config(REPO, env={})
    config = dataclasses.replace(
        config, site=dataclasses.replace(config.site, base_url="http://127.0.0.1:8000/")
    )
    server = PreviewServer(config, drafts=True, live_reload="<!--reload-->", log=lambda _m: None)
    server.rebuild()
    return server


def test_preview_shows_the_four_views_of_one_post():
    server = make_server()
    try:
        client = TestClient(server.app())  # type: ignore[arg-type]
        response = client.get("/__preview/us-china-tech-gap")
        assert response.status_code == 200
        body = response.text
        assert 'src="http://127.0.0.1:8000/posts/us-china-tech-gap/"' in body
        assert (
            "&lt;id&gt;http://127.0.0.1:8000/posts/us-china-tech-gap/&lt;/id&gt;" in body
        )  # feed entry
        srcdoc = body.split('srcdoc="', 1)[1].split('"', 1)[0]
        email = html.unescape(srcdoc)
        assert (
            "'세계' 카테고리의 다른 글" in email and "style=" in email
        )  # related list, inlined CSS
        assert "unsubscribe/example" in email
        assert "미중 기술 격차, 정말 좁혀졌나?" in body
        # The post page itself is served by the same preview server.
        assert client.get("/posts/us-china-tech-gap/").status_code == 200
        # Drafts can be previewed too; unknown posts get a clear 404.
        assert client.get("/__preview/posts/semiconductor-supply-chain-map.md").status_code == 200
        missing = client.get("/__preview/nope")
        assert missing.status_code == 404 and "no post with slug or file" in missing.text
    finally:
        server.stop()
