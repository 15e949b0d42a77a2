"""The validators of config values: each returns the typed value or raises Invalid."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Invalid(ValueError):
    """A value failed validation; the message completes 'expected ...'."""


Validator = Callable[[Any], Any]
E = TypeVar("E", bound=StrEnum)


def describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("a string")
    if any(ch in value for ch in "\r\n\x00"):
        raise Invalid("a single-line string without CR, LF or NUL")
    return value


def nonempty_string(value: Any) -> str:
    text = string(value).strip()
    if not text:
        raise Invalid("a non-empty string")
    return text


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false")
    return value


def integer(low: int, high: int) -> Validator:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"an integer {low}-{high}")
        return value

    return check


def number(low: float, high: float) -> Validator:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"a number {low}-{high}")
        if not low <= value <= high:
            raise Invalid(f"a number {low}-{high}")
        return float(value)

    return check


def choice(options: type[E]) -> Callable[[Any], E]:
    """One of the values of ``options``, as its member."""

    def check(value: Any) -> E:
        if not isinstance(value, str) or value not in options._value2member_map_:
            raise Invalid("one of " + ", ".join(f'"{o.value}"' for o in options))
        return options(value)

    return check


def http_url(value: Any) -> str:
    text = string(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("an absolute http(s) URL such as https://blog.example.com/")
    if parts.query or parts.fragment:
        raise Invalid("a URL without query or fragment")
    # One canonical form: a trailing slash, so joining relative paths is simple.
    return text if text.endswith("/") else text + "/"


def timezone(value: Any) -> ZoneInfo:
    text = string(value)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid("an IANA time zone such as Asia/Seoul") from exc


_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def language(value: Any) -> str:
    text = string(value)
    # RSS/Atom validators reject "ko_KR" (RELIABILITY C5): BCP 47 uses hyphens.
    if not _LANG.match(text):
        raise Invalid('a BCP 47 language tag such as "ko" or "en-US"')
    return text


_EMAIL = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def email_address(value: Any) -> str:
    text = string(value)
    if not _EMAIL.match(text) or not text.isascii():
        raise Invalid("an ASCII email address such as news@example.com")
    return text


def optional(inner: Validator) -> Validator:
    def check(value: Any) -> Any:
        if value == "":
            return None
        return inner(value)

    return check


def clock_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    text = string(value)
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", text)
    if not match:
        raise Invalid('a 24-hour time "HH:MM"')
    return time(int(match[1]), int(match[2]))


def weekday(value: Any) -> str:
    text = string(value).lower()
    if text not in WEEKDAYS:
        raise Invalid("a weekday name such as monday")
    return text


def moment(value: Any) -> datetime | date:
    """A TOML date or datetime; zone-less values are read in the site timezone later."""
    if isinstance(value, datetime | date):
        return value
    raise Invalid("a TOML date or datetime such as 2025-06-20 or 2025-06-20T09:00:00+09:00")


def string_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("a list of strings")
    return tuple(value)


def related_heading(value: Any) -> str:
    text = nonempty_string(value)
    try:
        text.format(category="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise Invalid("text with at most the placeholder {category}") from exc
    return text


def env_name(value: Any) -> str:
    text = string(value)
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", text):
        raise Invalid("an environment variable name such as PUBLISHER_SMTP_PASSWORD")
    return text


def relative_dir(value: Any) -> str:
    text = nonempty_string(value)
    return text
