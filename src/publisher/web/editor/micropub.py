"""The W3C Micropub endpoint (https://www.w3.org/TR/micropub/) and its media endpoint.

- Auth: ``Authorization: Bearer <token>`` (or ``access_token`` in a form body)
  from ``publisher editors token``; none or an unknown one is ``401
  unauthorized``, a token without the action's scope ``403 insufficient_scope``.
- Create (form-encoded, multipart with ``photo`` files, or JSON ``h-entry``):
  ``name`` → title (a note without one gets its first words), ``content`` →
  body (``{"html": ...}`` converted to Markdown with markdownify), ``category``
  → the post's category when a value names an existing category, tags for the
  rest, ``published`` → date, ``post-status: draft`` → draft, ``mp-slug`` →
  slug, ``photo`` → image (an uploaded file goes through publisher.web.editor.media).
  The post is written like the editor writes it (checked by the build's reader,
  atomic, audited) and the answer is ``201 Created`` with its URL in ``Location``.
- Update (JSON ``action: update`` with ``replace``, ``add``, ``delete``) and
  delete (``action: delete``, form or JSON; the file goes to the trash).
- ``GET ?q=config|source|category``.
- Errors are JSON ``{"error": ..., "error_description": ...}``: ``400
  invalid_request`` for anything the request got wrong, never a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from markdownify import markdownify
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from publisher.errors import PublisherError
from publisher.publish import markup
from publisher.publish.content import read_posts
from publisher.publish.site import build_site, post_path
from publisher.publish.slugs import slug_key, slugify
from publisher.store.editors import Token
from publisher.web.editor import posts as files
from publisher.web.editor.auth import find_bearer
from publisher.web.editor.history import commit_paths
from publisher.web.editor.media import NotAnImage, store_image
from publisher.web.forms import BadInput, read_body
from publisher.web.forms import multipart_parts as split_multipart

if TYPE_CHECKING:
    from publisher.web.editor.routes import EditorService

log = logging.getLogger("publisher.web.editor.micropub")

SLACK_BYTES = 64 * 1024
MAX_FIELDS = 256
TITLE_CHARS = 40


class MicropubError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def _invalid(description: str) -> MicropubError:
    return MicropubError(400, "invalid_request", description)


Properties = dict[str, list[Any]]
Uploads = dict[str, list[bytes]]


class Micropub:
    def __init__(self, service: EditorService) -> None:
        self.service = service
        self.config = service.config
        self.editors = service.editors
        self.limit = self.config.editor.max_upload_bytes + SLACK_BYTES
        self.endpoint = service.base + "micropub"

    # plumbing ------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        try:
            if request.method == "POST":
                return await self._post(request)
            return await self._query(request)
        except MicropubError as exc:
            return _error(exc.status, exc.error, exc.description)
        except BadInput as exc:
            return _error(exc.status, "invalid_request", exc.reason)
        except PublisherError as exc:
            return _error(400, "invalid_request", exc.message)

    async def handle_media(self, request: Request) -> Response:
        try:
            return await self._media(request)
        except MicropubError as exc:
            return _error(exc.status, exc.error, exc.description)
        except BadInput as exc:
            return _error(exc.status, "invalid_request", exc.reason)

    async def _token(self, request: Request, body_token: str | None, scope: str | None) -> Token:
        headers = request.headers.getlist("authorization")
        given = None
        if headers:
            scheme, _, value = headers[0].partition(" ")
            if len(headers) != 1 or scheme.lower() != "bearer" or not value.strip():
                raise MicropubError(401, "unauthorized", "send Authorization: Bearer <token>")
            given = value.strip()
        elif body_token:
            given = body_token
        if not given:
            raise MicropubError(401, "unauthorized", "no access token was given")
        token = await run_in_threadpool(find_bearer, self.editors, given)
        if token is None:
            raise MicropubError(401, "unauthorized", "the access token is unknown or revoked")
        if scope is not None and scope not in token.scopes:
            raise MicropubError(
                403,
                "insufficient_scope",
                f"the token lacks the '{scope}' scope",
            )
        return token

    async def _body(self, request: Request) -> tuple[str, Mapping[str, Any], Uploads]:
        """``("json", object, {})`` or ``("form", properties, uploads)``."""
        body = await read_body(request, self.limit)
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        if kind == b"application/json":
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise _invalid("the body is not valid UTF-8 JSON") from None
            if not isinstance(data, dict):
                raise _invalid("the JSON body must be an object")
            return "json", data, {}
        if kind == b"application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(
                    body.decode("utf-8"),
                    keep_blank_values=True,
                    max_num_fields=MAX_FIELDS,
                    errors="strict",
                )
            except (UnicodeDecodeError, ValueError):
                raise _invalid("the form is not valid UTF-8 or has too many fields") from None
            return "form", _group(pairs), {}
        if kind == b"multipart/form-data":
            boundary = options.get(b"boundary")
            if not boundary:
                raise _invalid("multipart form without a boundary")
            fields, uploads = multipart_fields(body, boundary)
            return "form", _group(fields), uploads
        if not body:
            return "form", {}, {}
        raise BadInput(415, "expected a form, multipart or JSON body")

    # queries -------------------------------------------------------------------------------

    async def _query(self, request: Request) -> Response:
        await self._token(request, None, None)
        q = request.query_params.get("q", "")
        if q == "config":
            return JSONResponse(
                {
                    "media-endpoint": self.endpoint + "/media",
                    "syndicate-to": [],
                    "post-types": [
                        {"type": "note", "name": "Note"},
                        {"type": "article", "name": "Article"},
                        {"type": "photo", "name": "Photo"},
                    ],
                }
            )
        if q == "category":
            categories = await run_in_threadpool(self.service._categories)
            return JSONResponse({"categories": categories})
        if q == "source":
            url = request.query_params.get("url", "")
            name = await run_in_threadpool(self._file_of, url)
            path = files.find_file(self.config, name)
            assert path is not None
            form = files.form_from_text(path.read_text(encoding="utf-8"))
            properties = _properties(form)
            wanted = request.query_params.getlist("properties[]") or request.query_params.getlist(
                "properties"
            )
            if wanted:
                return JSONResponse(
                    {"properties": {k: v for k, v in properties.items() if k in wanted}}
                )
            return JSONResponse({"type": ["h-entry"], "properties": properties})
        if q == "syndicate-to":
            return JSONResponse({"syndicate-to": []})
        raise _invalid("unknown query: use q=config, q=source or q=category")

    def _file_of(self, url: str) -> str:
        """The post file whose public URL is ``url`` (drafts and scheduled posts too)."""
        if not url:
            raise _invalid("give the post's url")
        result = read_posts(self.config)
        site = build_site(self.config, result.posts, self.service.clock(), include_drafts=True)
        prefix = self.config.build.posts_dir + "/"
        for post in result.posts:
            if site.url(post_path(post)) in (url, url + "/"):
                return post.source.removeprefix(prefix)
        raise _invalid(f"no post has the url {url}")

    # create, update, delete ----------------------------------------------------------------

    async def _post(self, request: Request) -> Response:
        kind, data, uploads = await self._body(request)
        body_token = None
        if kind == "form":
            body_token = _first(data.get("access_token"))
        action = (_first(data.get("action")) if kind == "form" else data.get("action")) or "create"
        if not isinstance(action, str):
            raise _invalid("'action' must be text")
        scope = {
            "create": "create",
            "update": "update",
            "delete": "delete",
            "undelete": "update",
        }.get(action)
        if scope is None:
            raise _invalid(f"unknown action {action!r}")
        token = await self._token(request, body_token, scope)
        if action == "delete":
            url = _first(data.get("url")) if kind == "form" else data.get("url")
            return await self._delete(token, url if isinstance(url, str) else "")
        if action == "undelete":
            raise _invalid("undelete is not supported: restore the file from the trash folder")
        if action == "update":
            if kind != "json":
                raise _invalid("updates must be sent as JSON")
            return await self._update(token, data)
        if kind == "json":
            types = data.get("type")
            properties = data.get("properties")
            if types != ["h-entry"] or not isinstance(properties, dict):
                raise _invalid('expected {"type": ["h-entry"], "properties": {...}}')
            props = {k: v if isinstance(v, list) else [v] for k, v in properties.items()}
        else:
            if _first(data.get("h")) not in ("entry", None):
                raise _invalid("only h=entry can be created")
            props = {
                k: list(v) for k, v in data.items() if k not in ("h", "access_token", "action")
            }
        if uploads.get("photo"):
            if "media" not in token.scopes and "create" not in token.scopes:
                raise MicropubError(403, "insufficient_scope", "the token lacks the 'media' scope")
            for data_bytes in uploads["photo"]:
                props.setdefault("photo", []).append(await self._store(data_bytes))
        return await self._create(token, props)

    async def _store(self, data: bytes) -> str:
        try:
            stored = await run_in_threadpool(store_image, self.config, data)
        except NotAnImage as exc:
            raise _invalid(str(exc)) from None
        return stored.url

    async def _create(self, token: Token, props: Properties) -> Response:
        categories = await run_in_threadpool(self.service._categories)
        form = _form_from(props, categories, self.service)
        now = self.service.clock()
        local = now.astimezone(self.config.site.timezone)
        if not form.date:
            form = replace(form, date=f"{local:%Y-%m-%d %H:%M}")
        form = await run_in_threadpool(self._unique_slug, form, local)
        name = files.new_post_name(self.config, form, local)
        text = files.compose(form, None, new_id=files.new_post_id())
        checked = await run_in_threadpool(files.check, self.config, name, text)
        if not checked.ok or checked.post is None:
            problems = [f"{k}: {m}" for k, ms in checked.by_field.items() for m in ms]
            raise _invalid("; ".join(problems + checked.general))
        await run_in_threadpool(files.write_atomic, self.config.posts_path / name, text.encode())
        post = checked.post
        await run_in_threadpool(
            commit_paths,
            self.config,
            token.editor,
            [self.config.posts_path / name],
            f"micropub create: {post.source} ({post.title})",
        )
        await run_in_threadpool(
            self.editors.audit,
            token.editor.name,
            "micropub-create",
            post.source,
            "draft" if post.draft else f"date {post.date.isoformat()}",
        )
        url = self.config.site.base_url + f"posts/{_quote(post.slug)}/"
        return Response(status_code=201, headers={"Location": url})

    def _unique_slug(self, form: files.PostForm, local: datetime) -> files.PostForm:
        """The form with a slug no other post has (``-2``, ``-3``... added when taken)."""
        taken = {slug_key(p.slug) for p in read_posts(self.config).posts}
        wanted = form.slug or slugify(form.title) or files.new_post_id()
        candidate, number = wanted, 2
        while (
            slug_key(candidate) in taken
            or (
                self.config.posts_path
                / files.new_post_name(self.config, replace(form, slug=candidate), local)
            ).exists()
        ):
            candidate = f"{wanted}-{number}"
            number += 1
        return replace(form, slug=candidate) if candidate != wanted or form.slug else form

    async def _update(self, token: Token, data: Mapping[str, Any]) -> Response:
        url = data.get("url")
        name = await run_in_threadpool(self._file_of, url if isinstance(url, str) else "")
        path = files.find_file(self.config, name)
        assert path is not None
        original_bytes = path.read_bytes()
        original = original_bytes.decode("utf-8")
        form = files.form_from_text(original)
        properties = _properties(form)
        replace_ = data.get("replace", {})
        add = data.get("add", {})
        delete = data.get("delete", [])
        if (
            not isinstance(replace_, dict)
            or not isinstance(add, dict)
            or not isinstance(delete, list | dict)
        ):
            raise _invalid("replace and add must be objects, delete a list or an object")
        for key, values in replace_.items():
            properties[key] = values if isinstance(values, list) else [values]
        for key, values in add.items():
            properties.setdefault(key, []).extend(values if isinstance(values, list) else [values])
        if isinstance(delete, list):
            for key in delete:
                properties.pop(str(key), None)
        else:
            for key, values in delete.items():
                gone = values if isinstance(values, list) else [values]
                properties[key] = [v for v in properties.get(key, []) if v not in gone]
        categories = await run_in_threadpool(self.service._categories)
        updated = _form_from(properties, categories, self.service, keep=form)
        text = files.compose(updated, original)
        checked = await run_in_threadpool(files.check, self.config, name, text)
        if not checked.ok or checked.post is None:
            problems = [f"{k}: {m}" for k, ms in checked.by_field.items() for m in ms]
            raise _invalid("; ".join(problems + checked.general))
        if files.digest(path.read_bytes()) != files.digest(original_bytes):
            raise MicropubError(409, "conflict", "the post changed while it was being updated")
        await run_in_threadpool(files.write_atomic, path, text.encode())
        await run_in_threadpool(
            commit_paths,
            self.config,
            token.editor,
            [path],
            f"micropub update: {checked.post.source}",
        )
        await run_in_threadpool(
            self.editors.audit, token.editor.name, "micropub-update", checked.post.source, ""
        )
        new_url = self.config.site.base_url + f"posts/{_quote(checked.post.slug)}/"
        if new_url != url:
            return Response(status_code=201, headers={"Location": new_url})
        return Response(status_code=204)

    async def _delete(self, token: Token, url: str) -> Response:
        name = await run_in_threadpool(self._file_of, url)
        path = files.find_file(self.config, name)
        assert path is not None
        target = await run_in_threadpool(files.to_trash, self.config, path, self.service.clock())
        await run_in_threadpool(
            commit_paths, self.config, token.editor, [path], f"micropub delete: {name}"
        )
        await run_in_threadpool(
            self.editors.audit,
            token.editor.name,
            "micropub-delete",
            f"{self.config.build.posts_dir}/{name}",
            f"moved to {target.relative_to(self.config.root).as_posix()}",
        )
        return Response(status_code=204)

    # media ---------------------------------------------------------------------------------

    async def _media(self, request: Request) -> Response:
        body = await read_body(request, self.limit)
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        if kind != b"multipart/form-data" or not options.get(b"boundary"):
            raise _invalid("send the file as multipart/form-data in a part named 'file'")
        fields, uploads = multipart_fields(body, options[b"boundary"])
        await self._token(request, _first(_group(fields).get("access_token")), "media")
        if len(uploads.get("file", [])) != 1:
            raise _invalid("send exactly one part named 'file'")
        url = await self._store(uploads["file"][0])
        return Response(status_code=201, headers={"Location": url})


# --- conversions -------------------------------------------------------------------------------


def _first(values: Any) -> Any:
    if isinstance(values, list | tuple):
        return values[0] if values else None
    return values


def _text(values: Sequence[Any] | None) -> str:
    value = _first(values)
    if value is None:
        return ""
    if isinstance(value, dict):
        if "html" in value and isinstance(value["html"], str):
            return str(markdownify(value["html"], heading_style="ATX", bullets="-")).strip() + "\n"
        if "value" in value and isinstance(value["value"], str):
            return value["value"]
        raise _invalid('content must be text, {"html": ...} or {"value": ...}')
    if not isinstance(value, str):
        raise _invalid("expected text values")
    return value


def _strings(values: Sequence[Any] | None) -> list[str]:
    out = []
    for value in values or []:
        if isinstance(value, dict) and isinstance(value.get("value"), str):
            value = value["value"]
        if not isinstance(value, str):
            raise _invalid("expected text values")
        out.append(value.strip())
    return [v for v in out if v]


def _form_from(
    props: Properties,
    categories: Sequence[str],
    service: EditorService,
    keep: files.PostForm | None = None,
) -> files.PostForm:
    form = keep or files.PostForm()
    body = _text(props.get("content")) if "content" in props else ""
    title = _text(props.get("name")).strip() if "name" in props else ""
    if not title and body:
        plain = markup.plain_text(markup.parse(body)).strip()
        title = markup.summarize(plain, TITLE_CHARS) or "메모"
    values = _strings(props.get("category"))
    category = next((v for v in values if v in categories), "")
    tags = [v for v in values if v != category]
    photos = _strings(props.get("photo"))
    status = _text(props.get("post-status")).strip()
    if status not in ("", "draft", "published"):
        raise _invalid("post-status must be draft or published")
    published = _text(props.get("published")).strip() if "published" in props else ""
    if photos and keep is None:
        body += "".join(f"\n![]({p})\n" for p in photos[1:])
    return replace(
        form,
        title=title,
        body=body,
        category=category,
        tags=", ".join(tags),
        date=published.replace("T", " ") if published else (form.date if keep else ""),
        slug=_text(props.get("mp-slug")).strip()
        if "mp-slug" in props
        else (form.slug if keep else ""),
        draft=status == "draft",
        image=photos[0] if photos else "",
        summary=_text(props.get("summary")).strip()
        if "summary" in props
        else (form.summary if keep else ""),
    )


def _properties(form: files.PostForm) -> Properties:
    properties: Properties = {}
    if form.title:
        properties["name"] = [form.title]
    properties["content"] = [form.body]
    categories = ([form.category] if form.category else []) + form.tag_list()
    if categories:
        properties["category"] = categories
    if form.date:
        properties["published"] = [form.date]
    if form.summary:
        properties["summary"] = [form.summary]
    if form.slug:
        properties["mp-slug"] = [form.slug]
    if form.image:
        properties["photo"] = [form.image]
    properties["post-status"] = ["draft" if form.draft else "published"]
    return properties


def _group(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name.removesuffix("[]"), []).append(value)
    return grouped


def multipart_fields(body: bytes, boundary: bytes) -> tuple[list[tuple[str, str]], Uploads]:
    """Fields and uploads of a multipart Micropub request (the web service's one reader)."""
    try:
        parts = split_multipart(body, boundary, max_parts=MAX_FIELDS)
    except BadInput as exc:  # Micropub's error shape (invalid_request), for every caller
        raise _invalid(exc.reason) from None
    fields: list[tuple[str, str]] = []
    uploads: Uploads = {}
    for headers, data in parts:
        kind, options = parse_options_header(headers.get(b"content-disposition", b""))
        if kind != b"form-data" or b"name" not in options:
            raise _invalid("multipart part without a form-data name")
        try:
            name = options[b"name"].decode("utf-8")
            if b"filename" in options:
                uploads.setdefault(name.removesuffix("[]"), []).append(data)
            else:
                fields.append((name, data.decode("utf-8")))
        except UnicodeDecodeError:
            raise _invalid("form is not valid UTF-8") from None
    return fields, uploads


def _quote(slug: str) -> str:
    from urllib.parse import quote

    return quote(slug)


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": "Bearer"} if status == 401 else None,
    )


def micropub_routes(service: EditorService) -> list[BaseRoute]:
    endpoint = Micropub(service)
    return [
        Route("/micropub", endpoint.handle, methods=["GET", "POST"]),
        Route("/micropub/media", endpoint.handle_media, methods=["POST"]),
    ]
