"""Who may use the editor: passwords, session cookies, CSRF and bearer tokens.

- Passwords: argon2id through argon2-cffi (RFC 9106 parameters of its
  ``PasswordHasher``); a hash made under older parameters is replaced at the
  next good sign-in. An unknown name is checked against a dummy hash, so a
  wrong name and a wrong password take the same time and get the same answer.
- Sessions: a row in ``editor_sessions`` (so signing out ends it), named in the
  cookie by a token of publisher.deliver.tokens (HMAC-SHA256 under the service's
  keys, purpose ``editor-session``, expiring after ``[editor].session_hours``).
  The cookie is ``HttpOnly``, ``SameSite=Strict``, limited to the editor's path,
  and ``Secure`` whenever the editor's base URL is https.
- CSRF: every form carries an HMAC of the session cookie (publisher.web.app's
  ``Csrf``), checked on every POST; the sign-in form, which has no session yet,
  uses a random pre-session cookie the same way.
- Bearer tokens (Micropub): 256 random bits, stored as their SHA-256, looked up
  by hash and compared with ``hmac.compare_digest``; each has scopes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from publisher.deliver.tokens import InvalidToken, Purpose, TokenSigner
from publisher.store.editors import Editor, EditorStore, Token

SESSION_COOKIE = "publisher_editor"
SIGNIN_COOKIE = "publisher_editor_signin"
TOKEN_PREFIX = "pe_"  # noqa: S105 (a marker, not a secret)
MIN_PASSWORD_CHARS = 10

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an absent hash costs the same time and fails."""
    try:
        _hasher.verify(password_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_CHARS:
        return f"the password must have at least {MIN_PASSWORD_CHARS} characters"
    return None


class Sessions:
    """Session cookies over ``editor_sessions`` rows."""

    def __init__(
        self,
        store: EditorStore,
        keys: Sequence[bytes],
        clock: Callable[[], datetime],
        hours: int,
    ) -> None:
        self.store = store
        self.signer = TokenSigner(keys, clock)
        self.lifetime = timedelta(hours=hours)

    def start(self, editor: Editor) -> str:
        session_id = self.store.create_session(editor.id, self.lifetime)
        return self.signer.sign(Purpose.EDITOR_SESSION, session_id, 0)

    def session_id(self, cookie: str | None) -> int | None:
        if not cookie:
            return None
        try:
            session_id, _version, _issued = self.signer.verify(
                cookie, Purpose.EDITOR_SESSION, self.lifetime
            )
        except InvalidToken:
            return None
        return session_id

    def editor(self, cookie: str | None) -> Editor | None:
        session_id = self.session_id(cookie)
        return None if session_id is None else self.store.session_editor(session_id)


def new_bearer_token() -> tuple[str, str]:
    """A new token and the hash to store."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def find_bearer(store: EditorStore, token: str) -> Token | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    wanted = token_hash(token)
    found = store.find_token(wanted)
    if found is None:
        return None
    # The row was found by hash; compare again in constant time all the same.
    return found if hmac.compare_digest(found.token_hash, wanted) else None
