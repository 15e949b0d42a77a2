"""Small builders for tests: a valid config with overrides, posts on disk or in memory."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from publisher.config import Config, config_from_mapping
from publisher.publish.content import Post

SEOUL = ZoneInfo("Asia/Seoul")

BASE_CONFIG: dict[str, Any] = {
    "site": {
        "title": "테스트 블로그",
        "base_url": "https://blog.example.com/",
        "author": "편집부",
        "author_email": "editor@blog.example.com",
        "description": "테스트용 블로그",
        "timezone": "Asia/Seoul",
        "posts_per_page": 3,
        "related_count": 5,
    },
    "newsletter": {"from_address": "news@blog.example.com"},
}


def merged(overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    raw = copy.deepcopy(BASE_CONFIG)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    return raw


def make_config(
    root: Path | str = ".", env: dict[str, str] | None = None, **overrides: dict[str, Any]
) -> Config:
    """A valid Config rooted at ``root``; ``site={"related_count": 3}`` overrides keys."""
    return config_from_mapping(merged(overrides), root=root, env=env or {})


def write_config(root: Path, **overrides: dict[str, Any]) -> Path:
    """Write config.toml for ``merged(overrides)`` into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(_to_toml(merged(overrides)), encoding="utf-8")
    (root / "posts").mkdir(exist_ok=True)
    return root


def _to_toml(raw: dict[str, Any]) -> str:
    lines = []
    for section, values in raw.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_literal(value)}")
        lines.append("")
    return "\n".join(lines)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return str(value)


def write_post(
    root: Path,
    name: str,
    title: str = "제목",
    date: str = "2025-06-20 09:00",
    body: str = "본문입니다.",
    **fields: str,
) -> Path:
    """Write ``posts/<name>`` with the given front matter (values written verbatim)."""
    lines = ["---", f"title: {title}", f"date: {date}"]
    lines += [f"{key}: {value}" for key, value in fields.items()]
    lines += ["---", body, ""]
    path = root / "posts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def make_post(**overrides: Any) -> Post:
    """An in-memory Post with sensible defaults."""
    values: dict[str, Any] = {
        "source": "posts/sample.md",
        "slug": "sample",
        "title": "샘플 글",
        "date": datetime(2025, 6, 20, 9, 0, tzinfo=SEOUL),
        "updated": None,
        "category": "세계",
        "tags": (),
        "summary": "요약입니다.",
        "draft": False,
        "author": None,
        "image": None,
        "body_html": "<p>본문입니다.</p>",
        "reading_minutes": 1,
        "digest": "0" * 64,
        "extra": {},
    }
    values.update(overrides)
    return Post(**values)
