"""The editor's pages, under the path of ``config.editor_base_url`` (default ``<site>editor/``).

Routes (every one but ``signin`` and ``assets/*`` needs a session; without one
a GET gets the sign-in form with status 401 and a POST a 401 page, never a
redirect)::

    GET        signin             the sign-in form (works without JavaScript)
    POST       signin             signs in: one answer for a wrong name or password
    POST       signout            ends the session
    GET        (base path)        the posts: drafts, scheduled, published; search, category
    GET        new                an empty edit page
    GET        edit/{file}        the edit page of posts/{file}
    POST       save               save / publish / schedule / unpublish / delete / test email
    POST       preview            page, feed entry and email of the form (the preview frame)
    GET        audit              who saved, published, scheduled or deleted what, and when
    GET        assets/{name}      the editor's stylesheet and script
    GET|POST   micropub           the Micropub endpoint (bearer token; publisher.web.editor.micropub)
    POST       micropub/media     its media endpoint

Every response is ``noindex`` and ``Cache-Control: no-store``; every POST of a
signed-in page carries the session's CSRF token (publisher.web.editor.auth).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote, urlsplit

import jinja2
from python_multipart.multipart import parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from publisher.config import Config
from publisher.deliver.proof import send_proof
from publisher.deliver.sender import MessageComposer, new_issue
from publisher.deliver.tokens import Purpose, TokenSigner
from publisher.deliver.transports import Outcome, SendResult
from publisher.errors import PublisherError
from publisher.preview.page import preview_parts
from publisher.publish.content import parse_moment, read_posts
from publisher.publish.newsletter import render_post_issue
from publisher.publish.render import PageRenderer, inline_stylesheets
from publisher.publish.site import build_site, post_path
from publisher.publish.slugs import slug_from_filename, slugify
from publisher.publish.templating import render
from publisher.store import DeliveryCounts, DeliveryStatus, IssueStatus, Store, StoreError
from publisher.store.editors import Editor, EditorStore
from publisher.web.editor import posts as files
from publisher.web.editor.auth import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Sessions,
    check_password,
    hash_password,
    needs_rehash,
)
from publisher.web.editor.history import commit_paths
from publisher.web.forms import BadInput, ClientAddress, Form, parse_form, rate_key, read_body
from publisher.web.pages import SecurityHeaders, origin

log = logging.getLogger("publisher.web.editor")

P = ParamSpec("P")
T = TypeVar("T")

HOUR_SECONDS = 3600
FORM_SLACK_BYTES = 64 * 1024
ASSETS = {"editor.css": "text/css; charset=utf-8", "editor.js": "text/javascript; charset=utf-8"}
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
WRONG_SIGNIN = "이름 또는 비밀번호가 맞지 않습니다."
ACTIONS = ("save", "publish", "schedule", "unpublish", "delete", "test-email")


def editor_csp() -> str:
    return "; ".join(
        (
            "default-src 'none'",
            "style-src 'self'",
            "script-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "frame-src 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


def preview_csp(config: Config) -> str:
    """The preview frame: the blog's styles and images, inline mail CSS, no script at all."""
    site = origin(config.site.base_url)
    return "; ".join(
        (
            "default-src 'none'",
            f"style-src 'unsafe-inline' {site}",
            f"img-src {site} https: data:",
            "frame-src 'self'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'",
        )
    )


@dataclass(frozen=True)
class ListItem:
    name: str
    title: str
    state: str  # draft, scheduled, published, problem
    when: datetime | None
    category: str | None
    url: str | None
    issue: str | None  # "sent (12 sent, 1 failed)" for a published, mailed post


class EditorService:
    """Request handlers of the signed-in editor."""

    def __init__(
        self,
        config: Config,
        store: Store,
        keys: Sequence[bytes],
        clock: Callable[[], datetime],
        env: jinja2.Environment,
    ) -> None:
        from publisher.web.app import Csrf  # app.py mounts this module: imported late

        self.config = config
        self.store = store
        self.editors = EditorStore(store)
        self.clock = clock
        self.env = env
        self.sessions = Sessions(self.editors, keys, clock, config.editor.session_hours)
        self.csrf = Csrf(keys)
        self.signer = TokenSigner(keys, clock)
        self.client = ClientAddress(config.web.trusted_proxies)
        self.base = config.editor_base_url
        self.path = urlsplit(self.base).path.rstrip("/")
        self.secure = self.base.startswith("https://")
        self.form_limit = config.build.max_post_bytes + FORM_SLACK_BYTES

    async def _db(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await run_in_threadpool(func, *args, **kwargs)

    # rendering -------------------------------------------------------------------------------

    def page(
        self,
        template: str,
        *,
        title: str,
        status: int = 200,
        editor: Editor | None = None,
        cookie: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        body = render(
            self.env,
            template,
            title=title,
            base=self.base,
            editor=editor,
            csrf=self.csrf.token(Purpose.EDITOR_SESSION, cookie) if cookie else "",
            site_title=self.config.site.title,
            **context,
        )
        return HTMLResponse(body, status_code=status, headers=PRIVATE)

    def message(
        self, title: str, text: str, *, status: int = 200, editor: Editor | None = None
    ) -> HTMLResponse:
        return self.page(
            "editor/message.html", title=title, status=status, editor=editor, text=text
        )

    # sessions --------------------------------------------------------------------------------

    async def _signed_in(self, request: Request) -> tuple[Editor, str] | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        editor = await self._db(self.sessions.editor, cookie)
        return None if editor is None else (editor, cookie)

    async def _read(self, request: Request) -> Form:
        body = await read_body(request, self.form_limit)
        types = request.headers.getlist("content-type")
        if not body:
            return Form()
        if len(types) != 1:
            raise BadInput(415, "expected one Content-Type: a form")
        return parse_form(body, types[0], repeatable=frozenset())

    async def _post(self, request: Request) -> tuple[Editor, str, Form] | Response:
        """A signed-in POST with a valid CSRF token, or the page that refuses it."""
        found = await self._signed_in(request)
        if found is None:
            return self.message("로그인이 필요합니다", "다시 로그인해 주세요.", status=401)
        form = await self._read(request)
        if not self.csrf.valid(Purpose.EDITOR_SESSION, found[1], form.get("csrf")):
            return self.message(
                "요청을 처리할 수 없습니다",
                "페이지가 오래되었습니다. 새로 고친 뒤 다시 시도해 주세요.",
                status=403,
                editor=found[0],
            )
        return found[0], found[1], form

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=self.path + "/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    # sign-in ---------------------------------------------------------------------------------

    def signin_page(self, status: int = 200, error: str | None = None) -> Response:
        nonce = secrets.token_urlsafe(24)
        response = self.page(
            "editor/signin.html",
            title="편집실 로그인",
            status=status,
            signin_csrf=self.csrf.token(Purpose.EDITOR_SESSION, "signin:" + nonce),
            error=error,
        )
        self._set_cookie(response, SIGNIN_COOKIE, nonce, HOUR_SECONDS)
        return response

    async def signin_form(self, request: Request) -> Response:
        found = await self._signed_in(request)
        if found is not None:
            return await self._list(request, *found)
        return self.signin_page()

    async def signin(self, request: Request) -> Response:
        form = await self._read(request)
        nonce = request.cookies.get(SIGNIN_COOKIE, "")
        if not nonce or not self.csrf.valid(
            Purpose.EDITOR_SESSION, "signin:" + nonce, form.get("csrf")
        ):
            return self.signin_page(403, "페이지가 오래되었습니다. 다시 시도해 주세요.")
        name = form.get("name").strip()
        password = form.get("password")
        peer = request.client.host if request.client else None
        client = self.client(peer, request.headers.getlist("x-forwarded-for"))
        buckets = [
            "ip:" + rate_key(client),
            "name:" + hashlib.sha256(name.casefold().encode()).hexdigest()[:32],
        ]
        limit = self.config.editor.login_attempts_per_hour
        attempt = await self._db(self.editors.take_attempt, buckets, limit, _hours(1))
        if attempt is None:
            response = self.signin_page(
                429, "로그인 시도가 너무 많습니다. 한 시간 뒤에 다시 시도해 주세요."
            )
            response.headers["Retry-After"] = str(HOUR_SECONDS)
            return response
        editor = await self._db(self.editors.find_editor, name) if name else None
        ok = await run_in_threadpool(
            check_password, editor.password_hash if editor else None, password
        )
        if not ok or editor is None:
            return self.signin_page(401, WRONG_SIGNIN)  # the attempt stays counted
        await self._db(self.editors.forgive, attempt)
        if needs_rehash(editor.password_hash):
            await self._db(self.editors.rehash, editor.id, hash_password(password))
        cookie = await self._db(self.sessions.start, editor)
        response = await self._list(
            request, editor, cookie, notice=f"{editor.name}님, 어서 오세요."
        )
        self._set_cookie(
            response, SESSION_COOKIE, cookie, self.config.editor.session_hours * HOUR_SECONDS
        )
        response.delete_cookie(SIGNIN_COOKIE, path=self.path + "/")
        return response

    async def signout(self, request: Request) -> Response:
        checked = await self._post(request)
        if isinstance(checked, Response):
            return checked
        session_id = self.sessions.session_id(checked[1])
        if session_id is not None:
            await self._db(self.editors.end_session, session_id)
        response = self.signin_page()
        response.delete_cookie(SESSION_COOKIE, path=self.path + "/")
        return response

    # the list --------------------------------------------------------------------------------

    async def posts_list(self, request: Request) -> Response:
        found = await self._signed_in(request)
        if found is None:
            return self.signin_page(401)
        return await self._list(request, *found)

    async def _list(
        self, request: Request, editor: Editor, cookie: str, notice: str | None = None
    ) -> Response:
        query = request.query_params.get("q", "").strip()
        category = request.query_params.get("category", "").strip()
        items, categories = await self._db(self._items, query, category)
        return self.page(
            "editor/list.html",
            title="글 목록",
            editor=editor,
            cookie=cookie,
            items=items,
            categories=categories,
            query=query,
            category=category,
            notice=notice,
            zone=self.config.site.timezone,
        )

    def _items(self, query: str, category: str) -> tuple[list[ListItem], list[str]]:
        result = read_posts(self.config)
        now = self.clock()
        site = build_site(self.config, result.posts, now)
        mailed = self._mailed()
        items: list[ListItem] = []
        prefix = self.config.build.posts_dir + "/"
        seen = set()
        for post in result.posts:
            name = post.source.removeprefix(prefix)
            seen.add(name)
            state = "draft" if post.draft else "scheduled" if post.date > now else "published"
            url = site.url(post_path(post)) if state == "published" else None
            items.append(
                ListItem(
                    name, post.title, state, post.date, post.category, url, mailed.get(post.slug)
                )
            )
        for name in files.post_files(self.config):
            if name not in seen:
                items.append(ListItem(name, name, "problem", None, None, None, None))
        categories = sorted(
            {c.name for c in site.categories} | {p.category for p in result.posts if p.category}
        )
        if query:
            items = [i for i in items if query.casefold() in i.title.casefold()]
        if category:
            items = [i for i in items if i.category == category]
        order = {"problem": 0, "draft": 1, "scheduled": 2, "published": 3}
        items.sort(key=lambda i: (order[i.state], -(i.when.timestamp() if i.when else 0), i.name))
        return items, categories

    def _mailed(self) -> dict[str, str]:
        """slug → "issue #3 done: 12 sent, 1 failed" for posts that have an issue."""
        shown: dict[str, str] = {}
        for issue in self.store.list_issues():
            summary = _counts_text(self.store.counts(issue.id))
            label = f"뉴스레터 #{issue.id} {issue.status.value}" + (
                f" ({summary})" if summary else ""
            )
            for slug in issue.post_slugs:
                shown[slug] = label
        return shown

    # editing ---------------------------------------------------------------------------------

    async def new_page(self, request: Request) -> Response:
        found = await self._signed_in(request)
        if found is None:
            return self.signin_page(401)
        now = self.clock().astimezone(self.config.site.timezone)
        form = files.PostForm(date=f"{now:%Y-%m-%d %H:%M}", draft=True)
        return await self._edit(found[0], found[1], form, name="", digest="")

    async def edit_page(self, request: Request) -> Response:
        found = await self._signed_in(request)
        if found is None:
            return self.signin_page(401)
        path = files.find_file(self.config, request.path_params["name"])
        if path is None:
            raise HTTPException(404)
        data = path.read_bytes()
        text = data.decode("utf-8", errors="replace")
        checked = await self._db(files.check, self.config, request.path_params["name"], text)
        return await self._edit(
            found[0],
            found[1],
            files.form_from_text(text),
            name=request.path_params["name"],
            digest=files.digest(data),
            checked=checked,
        )

    async def _edit(
        self,
        editor: Editor,
        cookie: str,
        form: files.PostForm,
        *,
        name: str,
        digest: str,
        checked: files.Checked | None = None,
        status: int = 200,
        notice: str | None = None,
        conflict: str | None = None,
        warning: str | None = None,
    ) -> Response:
        categories = await self._db(self._categories)
        from_name = slug_from_filename(name.rsplit("/", 1)[-1].removesuffix(".md")) if name else ""
        slug = form.slug or from_name or slugify(form.title)
        return self.page(
            "editor/edit.html",
            title=form.title or "새 글",
            status=status,
            editor=editor,
            cookie=cookie,
            form=form,
            file=name,
            digest=digest,
            errors=checked.by_field if checked else {},
            general=checked.general if checked else [],
            categories=categories,
            url=self.config.site.base_url + f"posts/{quote(slug)}/" if slug else None,
            notice=notice,
            conflict=conflict,
            warning=warning,
            zone=self.config.site.timezone.key,
            can_mail=bool(editor.email),
        )

    def _categories(self) -> list[str]:
        posts = read_posts(self.config).posts
        return sorted({p.category for p in posts if p.category})

    async def save(self, request: Request) -> Response:
        checked = await self._post(request)
        if isinstance(checked, Response):
            return checked
        editor, cookie, raw = checked
        action = raw.get("action") or "save"
        if action not in ACTIONS:
            raise BadInput(400, "알 수 없는 요청입니다.")
        form = _form_of(raw)
        name = raw.get("file")
        digest = raw.get("digest")
        path = None
        if name:
            path = files.find_file(self.config, name)
            if path is None:
                return self.message(
                    "글이 없습니다", f"{name} 파일을 찾을 수 없습니다.", status=404, editor=editor
                )
        if action == "delete":
            return await self._delete(editor, cookie, form, name, digest)
        now = self.clock()
        warning = None
        if action == "publish":
            local = now.astimezone(self.config.site.timezone)
            moment = _parsed(form.date, self.config)
            date = form.date if moment is not None and moment <= now else f"{local:%Y-%m-%d %H:%M}"
            form = replace(form, draft=False, date=date)
        elif action == "schedule":
            moment = _parsed(form.date, self.config)
            if moment is None or moment <= now:
                checked_form = files.Checked(
                    None, {"date": ["예약하려면 미래의 날짜와 시간을 입력하세요."]}
                )
                return await self._edit(
                    editor, cookie, form, name=name, digest=digest, checked=checked_form, status=400
                )
            form = replace(form, draft=False)
        elif action == "unpublish":
            form = replace(form, draft=True)
        return await self._write(editor, cookie, form, name, digest, action, now, warning)

    async def _write(
        self,
        editor: Editor,
        cookie: str,
        form: files.PostForm,
        name: str,
        digest: str,
        action: str,
        now: datetime,
        warning: str | None,
    ) -> Response:
        path = files.find_file(self.config, name) if name else None
        original: str | None = None
        if path is not None:
            current = path.read_bytes()
            if files.digest(current) != digest:
                return await self._conflict(editor, cookie, form, name, current)
            original = current.decode("utf-8", errors="replace")
        new_id = None if path is not None else files.new_post_id()
        text = files.compose(form, original, new_id=new_id)
        target_name = name or files.new_post_name(
            self.config, form, now.astimezone(self.config.site.timezone)
        )
        target = self.config.posts_path / target_name
        if path is None and (target.exists() or target.is_symlink()):
            return await self._conflict(
                editor,
                cookie,
                form,
                "",
                b"" if target.is_symlink() else target.read_bytes(),
                taken=target_name,
            )
        checked = await self._db(files.check, self.config, target_name, text)
        if not checked.ok:
            return await self._edit(
                editor, cookie, form, name=name, digest=digest, checked=checked, status=400
            )
        data = text.encode("utf-8")
        await run_in_threadpool(files.write_atomic, target, data)
        post = checked.post
        assert post is not None
        if action == "unpublish":
            warning = await self._db(self._mailed_warning, post.slug)
        failed = await run_in_threadpool(
            commit_paths, self.config, editor, [target], f"{action}: {post.source} ({post.title})"
        )
        warning = " ".join(w for w in (warning, failed) if w) or None
        detail = {"publish": "published", "schedule": f"scheduled for {post.date.isoformat()}"}
        await self._db(self.editors.audit, editor.name, action, post.source, detail.get(action, ""))
        if action == "test-email":
            return await self._test_email(editor, cookie, form, target_name, data)
        notices = {
            "save": "저장했습니다.",
            "publish": "발행했습니다. 다음 빌드에 공개됩니다.",
            "schedule": f"{post.date.astimezone(self.config.site.timezone):%Y-%m-%d %H:%M}에 공개되도록 예약했습니다.",
            "unpublish": "초안으로 되돌렸습니다.",
        }
        return await self._edit(
            editor,
            cookie,
            files.form_from_text(text),
            name=target_name,
            digest=files.digest(data),
            notice=notices.get(action, "저장했습니다."),
            warning=warning,
        )

    def _mailed_warning(self, slug: str) -> str | None:
        for issue in self.store.list_issues():
            if slug in issue.post_slugs and issue.status in (
                IssueStatus.SENDING,
                IssueStatus.DONE,
            ):
                return (
                    f"이 글은 이미 뉴스레터 #{issue.id}로 발송되었습니다. 초안으로 되돌려도 "
                    "보낸 메일은 회수되지 않습니다."
                )
        return None

    async def _conflict(
        self,
        editor: Editor,
        cookie: str,
        form: files.PostForm,
        name: str,
        current: bytes,
        taken: str | None = None,
    ) -> Response:
        text = current.decode("utf-8", errors="replace")
        message = (
            f"{taken} 파일이 이미 있습니다. 주소(slug)나 날짜를 바꿔 주세요."
            if taken
            else "편집을 시작한 뒤에 다른 곳에서 파일이 바뀌었습니다. 저장하지 않았습니다. "
            "아래 두 버전을 비교한 뒤, 내 버전을 저장하려면 다시 저장을 누르세요."
        )
        return await self._edit(
            editor,
            cookie,
            form,
            name=name,
            digest=files.digest(current) if not taken else "",
            status=409,
            conflict=text,
            warning=message,
        )

    async def _delete(
        self, editor: Editor, cookie: str, form: files.PostForm, name: str, digest: str
    ) -> Response:
        path = files.find_file(self.config, name) if name else None
        if path is None:
            raise BadInput(400, "삭제할 글이 없습니다.")
        current = path.read_bytes()
        if files.digest(current) != digest:
            return await self._conflict(editor, cookie, form, name, current)
        target = await run_in_threadpool(files.to_trash, self.config, path, self.clock())
        source = f"{self.config.build.posts_dir}/{name}"
        failed = await run_in_threadpool(
            commit_paths, self.config, editor, [path], f"delete: {source}"
        )
        kept = target.relative_to(self.config.root).as_posix()
        await self._db(self.editors.audit, editor.name, "delete", source, f"moved to {kept}")
        notice = f"{name}을(를) 휴지통({kept})으로 옮겼습니다."
        return await self._list_after(editor, cookie, notice + (f" {failed}" if failed else ""))

    async def _list_after(self, editor: Editor, cookie: str, notice: str) -> Response:
        items, categories = await self._db(self._items, "", "")
        return self.page(
            "editor/list.html",
            title="글 목록",
            editor=editor,
            cookie=cookie,
            items=items,
            categories=categories,
            query="",
            category="",
            notice=notice,
            zone=self.config.site.timezone,
        )

    async def _test_email(
        self, editor: Editor, cookie: str, form: files.PostForm, name: str, data: bytes
    ) -> Response:
        notice, warning = None, None
        if not editor.email:
            warning = (
                "테스트 메일을 받을 주소가 없습니다: `publisher editors add --email`로 정하세요."
            )
        else:
            to, result = await self._db(self._send_proof, name, editor.email)
            if result.outcome == Outcome.SENT:
                notice = f"저장하고 {to}(으)로 테스트 메일을 보냈습니다."
            else:
                warning = f"테스트 메일을 보내지 못했습니다 ({result.outcome}): {result.reply}"
        return await self._edit(
            editor,
            cookie,
            files.form_from_text(data.decode("utf-8")),
            name=name,
            digest=files.digest(data),
            notice=notice,
            warning=warning,
        )

    def _send_proof(self, name: str, address: str) -> tuple[str, SendResult]:
        """The saved post as its issue, one copy to ``address`` (as `send --test-to` does)."""
        posts = read_posts(self.config).posts
        site = build_site(self.config, posts, self.clock(), include_drafts=True)
        source = f"{self.config.build.posts_dir}/{name}"
        post = next(p for p in site.posts if p.source == source)
        rendered = render_post_issue(site, post)
        composer = MessageComposer(self.config, self.signer, self.clock)
        return send_proof(self.config, composer, new_issue(rendered, (post,)), address, self.clock)

    # preview ---------------------------------------------------------------------------------

    async def preview(self, request: Request) -> Response:
        checked = await self._post(request)
        if isinstance(checked, Response):
            return checked
        _editor, _cookie, raw = checked
        form = _form_of(raw)
        name = raw.get("file")
        html = await self._db(self._preview_html, form, name)
        return HTMLResponse(
            html,
            headers={
                **PRIVATE,
                "Content-Security-Policy": preview_csp(self.config),
                "X-Frame-Options": "SAMEORIGIN",
            },
        )

    def _preview_html(self, form: files.PostForm, name: str) -> str:
        path = files.find_file(self.config, name) if name else None
        original = path.read_text(encoding="utf-8", errors="replace") if path else None
        text = files.compose(replace(form, draft=False), original, new_id=None)
        target = name or files.new_post_name(self.config, form, self.clock())
        checked = files.check(self.config, target, text)
        post = checked.post
        if post is None:
            problems = [m for ms in checked.by_field.values() for m in ms] + checked.general
            return render(self.env, "editor/preview.html", problems=problems, parts=None)
        others = [p for p in read_posts(self.config).posts if p.source != post.source]
        site = build_site(self.config, [*others, post], self.clock(), include_drafts=True)
        site_post = next(p for p in site.posts if p.source == post.source)
        shown = preview_parts(site, site_post)  # what `publisher preview` shows, from the same code
        parts = {
            # The theme's CSS inlined: the page's relative links lead nowhere in an srcdoc frame.
            "page": inline_stylesheets(PageRenderer(site, self.env).post(site_post), self.env),
            "feed": shown.feed_entry,
            "email": shown.email_html,
            "text": shown.email_text,
            "subject": shown.subject,
            "warnings": shown.warnings,
        }
        return render(self.env, "editor/preview.html", problems=[], parts=parts)

    # images --------------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        """An image pasted, dropped or chosen on the edit page; JSON with its Markdown."""
        from publisher.web.editor.media import NotAnImage, image_html, store_image
        from publisher.web.editor.micropub import MicropubError, multipart_fields

        found = await self._signed_in(request)
        if found is None:
            return JSONResponse(
                {"error": "다시 로그인해 주세요."}, status_code=401, headers=PRIVATE
            )
        body = await read_body(request, self.config.editor.max_upload_bytes + FORM_SLACK_BYTES)
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        if kind != b"multipart/form-data" or not options.get(b"boundary"):
            raise BadInput(415, "이미지는 multipart/form-data로 보내 주세요.")
        try:
            fields, uploads = multipart_fields(body, options[b"boundary"])
        except MicropubError as exc:
            return JSONResponse({"error": exc.description}, status_code=400, headers=PRIVATE)
        csrf = next((v for k, v in fields if k == "csrf"), "")
        if not self.csrf.valid(Purpose.EDITOR_SESSION, found[1], csrf):
            return JSONResponse(
                {"error": "페이지를 새로 고쳐 주세요."}, status_code=403, headers=PRIVATE
            )
        images = uploads.get("image", [])
        if len(images) != 1:
            raise BadInput(400, "이미지 하나를 보내 주세요.")
        try:
            stored = await run_in_threadpool(store_image, self.config, images[0])
        except NotAnImage as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=PRIVATE)
        await self._db(self.editors.audit, found[0].name, "upload", stored.url, "")
        return JSONResponse(
            {
                "url": stored.url,
                "width": stored.width,
                "height": stored.height,
                "markdown": image_html(stored),
            },
            headers=PRIVATE,
        )

    # trash -----------------------------------------------------------------------------------

    async def trash(self, request: Request) -> Response:
        found = await self._signed_in(request)
        if found is None:
            return self.signin_page(401)
        return await self._trash_page(*found)

    async def _trash_page(self, editor: Editor, cookie: str, notice: str | None = None) -> Response:
        names = await run_in_threadpool(files.trash_files, self.config)
        return self.page(
            "editor/trash.html",
            title="휴지통",
            editor=editor,
            cookie=cookie,
            names=names,
            notice=notice,
            folder=self.config.editor.trash_dir,
        )

    async def restore(self, request: Request) -> Response:
        checked = await self._post(request)
        if isinstance(checked, Response):
            return checked
        editor, cookie, form = checked
        name = form.get("name")
        target = await run_in_threadpool(files.restore, self.config, name)
        if target is None:
            return self.message(
                "되살릴 수 없습니다",
                "휴지통에 없는 파일이거나, 같은 이름의 글이 이미 있습니다.",
                status=409,
                editor=editor,
            )
        source = target.relative_to(self.config.root).as_posix()
        await self._db(self.editors.audit, editor.name, "restore", source, f"from {name}")
        await run_in_threadpool(commit_paths, self.config, editor, [target], f"restore: {source}")
        return await self._trash_page(editor, cookie, f"{source}(으)로 되살렸습니다.")

    # audit and assets ------------------------------------------------------------------------

    async def audit(self, request: Request) -> Response:
        found = await self._signed_in(request)
        if found is None:
            return self.signin_page(401)
        entries = await self._db(self.editors.audit_log, 200)
        return self.page(
            "editor/audit.html",
            title="기록",
            editor=found[0],
            cookie=found[1],
            entries=entries,
            zone=self.config.site.timezone,
        )

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise HTTPException(404)
        assert self.env.loader is not None
        source = self.env.loader.get_source(self.env, f"editor/{name}")[0]
        return Response(source, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})

    # errors ----------------------------------------------------------------------------------

    async def bad_input(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadInput)
        return self.message("요청을 처리할 수 없습니다", exc.reason, status=exc.status)

    async def unavailable(self, request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", exc)
        response = self.message(
            "잠시 후 다시 시도해 주세요", "지금은 요청을 처리할 수 없습니다.", status=503
        )
        response.headers["Retry-After"] = "5"
        return response

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {404: "페이지를 찾을 수 없습니다", 405: "허용되지 않는 요청입니다"}
        response = self.message(
            titles.get(exc.status_code, "요청을 처리할 수 없습니다"), "", status=exc.status_code
        )
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.posts_list, methods=["GET"]),
            Route("/signin", _by_method(self.signin_form, self.signin), methods=["GET", "POST"]),
            Route("/signout", self.signout, methods=["POST"]),
            Route("/new", self.new_page, methods=["GET"]),
            Route("/edit/{name:path}", self.edit_page, methods=["GET"]),
            Route("/save", self.save, methods=["POST"]),
            Route("/preview", self.preview, methods=["POST"]),
            Route("/upload", self.upload, methods=["POST"]),
            Route("/audit", self.audit, methods=["GET"]),
            Route("/trash", self.trash, methods=["GET"]),
            Route("/restore", self.restore, methods=["POST"]),
            Route("/assets/{name}", self.asset, methods=["GET"]),
        ]


def _counts_text(counts: DeliveryCounts) -> str:
    shown = [f"{counts[s]} {s.value}" for s in DeliveryStatus if counts[s]]
    return ", ".join(shown)


def _hours(hours: int) -> timedelta:
    return timedelta(hours=hours)


def _parsed(value: str, config: Config) -> datetime | None:
    try:
        return parse_moment(value, config.site.timezone)[0]
    except ValueError:
        return None


def _form_of(raw: Form) -> files.PostForm:
    return files.PostForm(
        title=raw.get("title").strip(),
        category=raw.get("category").strip(),
        tags=raw.get("tags"),
        date=raw.get("date").strip().replace("T", " "),
        summary=raw.get("summary").strip(),
        slug=raw.get("slug").strip(),
        draft=raw.get("draft") == "on",
        image=raw.get("image").strip(),
        body=raw.get("body"),
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def _by_method(get: Endpoint, post: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await (post if request.method == "POST" else get)(request)

    return endpoint


def editor_routes(
    config: Config,
    store: Store,
    keys: Sequence[bytes],
    clock: Callable[[], datetime],
    env: jinja2.Environment,
) -> list[BaseRoute]:
    """The editor (and Micropub) as one Mount at the editor's path; none when disabled."""
    if not config.editor.enabled:
        return []
    web_path = urlsplit(config.web_base_url).path.rstrip("/")
    editor_path = urlsplit(config.editor_base_url).path.rstrip("/")
    if not editor_path or editor_path == web_path:
        raise PublisherError(
            f"[editor].base_url {config.editor_base_url} needs a path of its own",
            hint="Use a path such as <site.base_url>editor/, different from [web].base_url's.",
        )
    service = EditorService(config, store, keys, clock, env)
    routes = service.routes()
    from publisher.web.editor.micropub import micropub_routes

    routes.extend(micropub_routes(service))
    inner = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                SecurityHeaders,
                headers=(
                    ("Content-Security-Policy", editor_csp()),
                    ("Cache-Control", "no-store"),
                    ("X-Robots-Tag", "noindex"),
                ),
            )
        ],
        exception_handlers={
            BadInput: service.bad_input,
            StoreError: service.unavailable,
            HTTPException: service.http_error,
        },
    )
    inner.router.redirect_slashes = False
    inner.state.editor = service
    return [Mount(service.path, app=inner)]
