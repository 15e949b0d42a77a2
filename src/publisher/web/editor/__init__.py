"""The editor: a writing room in the browser and a Micropub endpoint, served by ``publisher web``.

- ``auth``: passwords (argon2), session cookies, CSRF tokens, bearer tokens.
- ``posts``: reading, validating and atomically writing post files.
- ``routes``: the signed-in pages (sign-in, list, edit, preview, actions).
- ``micropub``: the W3C Micropub endpoint and its media endpoint.

:func:`editor_routes` is what ``publisher.web.app`` mounts.
"""

from __future__ import annotations

from publisher.web.editor.routes import editor_routes

__all__ = ["editor_routes"]
