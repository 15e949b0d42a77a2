"""The W3C Micropub endpoint (filled in by the next step)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from publisher.web.editor.routes import EditorService


def micropub_routes(service: EditorService) -> list[BaseRoute]:
    return []
