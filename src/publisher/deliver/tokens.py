"""Signed, short, purpose-bound tokens for confirm, unsubscribe and preference links.

A token is ``base64url(version | subscriber_id | state_version | issued_at | mac)``
where ``mac`` is the first 16 bytes (128 bits, S1) of HMAC-SHA256 over the
purpose and the payload (S2). Nothing is stored per token:

- Purpose binding (S4): the purpose is inside the MAC, so an unsubscribe token
  is rejected as a confirm token.
- State binding (S2): ``state_version`` changes on every subscriber status
  change; callers compare it (a confirm link dies once used).
- Expiry: confirm tokens expire (``[web].token_max_age_hours``); unsubscribe
  tokens never do, because opt-out links in old mail must keep working
  (CAN-SPAM: at least 30 days, S10).
- Every failure raises one ``InvalidToken`` with one message (E9); MACs are
  compared with ``hmac.compare_digest`` (S3); the signature, not the id, is
  what grants access (S5).
- Short: about 36 characters, so ``List-Unsubscribe`` stays on one line (L1, D2).

Keys (S23): the environment variable named by ``[web].secret_env`` holds one or
more keys, comma-separated, newest first; tokens are signed with the first and
verified against all, so keys can be rotated. When it is unset, a random 32-byte
key is generated once and kept in the database ``settings`` table (key
``token_secret``): links keep working across restarts, but anyone who can read
the database can forge links, so production setups should set the variable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from publisher.config import Config
from publisher.errors import PublisherError

FORMAT_VERSION = 1
MAC_BYTES = 16
MIN_KEY_CHARS = 16
SETTING_KEY = "token_secret"


class Purpose(StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    EDITOR_SESSION = "editor-session"  # the editor's sign-in cookie (publisher.web.editor)


class InvalidToken(Exception):
    """Any bad token: tampered, truncated, other purpose, expired, unknown key (E9)."""

    def __init__(self) -> None:
        super().__init__("invalid or expired link")


class TokenSigner:
    """Signs and verifies tokens with a key list (newest first) and a clock."""

    def __init__(self, keys: Sequence[bytes], clock: Callable[[], datetime]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._keys = tuple(keys)
        self._clock = clock

    def sign(
        self,
        purpose: Purpose,
        subscriber_id: int,
        state_version: int,
        issued_at: datetime | None = None,
    ) -> str:
        issued = issued_at or self._clock()
        if subscriber_id < 0 or state_version < 0:
            raise ValueError("ids and versions are non-negative")
        payload = (
            bytes([FORMAT_VERSION])
            + _varint(subscriber_id)
            + _varint(state_version)
            + _varint(int(issued.timestamp()))
        )
        mac = _mac(self._keys[0], purpose, payload)
        return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode("ascii")

    def verify(
        self, token: str, purpose: Purpose, max_age: timedelta | None
    ) -> tuple[int, int, datetime]:
        """Return ``(subscriber_id, state_version, issued_at)`` or raise InvalidToken."""
        raw = _decode(token)
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        # Check every key, so timing does not tell which one matched (S3).
        matches = [hmac.compare_digest(mac, _mac(key, purpose, payload)) for key in self._keys]
        if not any(matches):
            raise InvalidToken()
        subscriber_id, state_version, issued = _expand(payload)
        issued_at = datetime.fromtimestamp(issued, UTC)
        if max_age is not None and self._clock() - issued_at > max_age:
            raise InvalidToken()
        return subscriber_id, state_version, issued_at


def _mac(key: bytes, purpose: Purpose, payload: bytes) -> bytes:
    message = b"publisher-token|" + purpose.value.encode("ascii") + b"|" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def _expand(payload: bytes) -> tuple[int, int, int]:
    if not payload or payload[0] != FORMAT_VERSION:
        raise InvalidToken()
    values, rest = _read_varints(payload[1:], 3)
    if rest:
        raise InvalidToken()
    return values[0], values[1], values[2]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varints(data: bytes, count: int) -> tuple[list[int], bytes]:
    values: list[int] = []
    position = 0
    for _ in range(count):
        value = shift = 0
        while True:
            if position >= len(data) or shift > 63:
                raise InvalidToken()
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(value)
    return values, data[position:]


def _decode(token: str) -> bytes:
    if not isinstance(token, str) or not 20 <= len(token) <= 64 or not token.isascii():
        raise InvalidToken()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken() from None
    # Reject non-canonical encodings (trailing bits): one token, one spelling.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise InvalidToken()
    if len(raw) <= MAC_BYTES + 1:
        raise InvalidToken()
    return raw


# --- keys ---------------------------------------------------------------------------------


class SettingsStore(Protocol):
    """What key loading needs from the store (publisher.store.Store has it)."""

    def setting_or_create(self, key: str, make: Callable[[], str]) -> str: ...


def load_keys(
    config: Config,
    store: SettingsStore,
    warn: Callable[[str], None] | None = None,
) -> list[bytes]:
    """Keys from ``[web].secret_env`` (comma-separated, newest first), else from the DB."""
    name = config.web.secret_env
    raw = config.secret(name)
    if raw:
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        short = [i + 1 for i, k in enumerate(keys) if len(k) < MIN_KEY_CHARS]
        if short:
            raise PublisherError(
                f"${name}: key {short[0]} is shorter than {MIN_KEY_CHARS} characters",
                hint='Generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"',
            )
        return [k.encode("utf-8") for k in keys]
    stored = store.setting_or_create(SETTING_KEY, lambda: secrets.token_hex(32))
    if warn is not None and config.newsletter.transport == "smtp":
        warn(
            f"${name} is not set: signing links with a key kept in the database. "
            f"Set {name} (and keep it secret) before sending real mail."
        )
    return [bytes.fromhex(stored)]


def make_signer(
    config: Config,
    store: SettingsStore,
    clock: Callable[[], datetime],
    warn: Callable[[str], None] | None = None,
) -> TokenSigner:
    return TokenSigner(load_keys(config, store, warn), clock)


def confirm_max_age(config: Config) -> timedelta:
    return timedelta(hours=config.web.token_max_age_hours)


# --- URLs ---------------------------------------------------------------------------------


def unsubscribe_url(config: Config, token: str) -> str:
    return f"{config.web_base_url}unsubscribe/{token}"


def preferences_url(config: Config, token: str) -> str:
    return f"{config.web_base_url}preferences/{token}"


def confirm_url(config: Config, token: str) -> str:
    return f"{config.web_base_url}confirm/{token}"
