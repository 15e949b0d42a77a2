"""Slugs that keep Hangul (as Tistory and Hugo do) and are safe as one path segment.

Romanising Korean is lossy and often wrong (pelican-plugins #657, ghost #19907),
so slugs keep every Unicode letter and digit, NFC-normalised and lower-cased;
punctuation such as ``…`` and ``·`` separates words.
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[^\w]+|_+")
_VALID = re.compile(r"^[^\W_](?:[\w-]*[^\W_])?$")
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")
MAX_SLUG_LENGTH = 120


def slugify(text: str) -> str:
    """Turn a title or file name into a slug: ``"미중 기술…격차"`` → ``"미중-기술-격차"``."""
    text = unicodedata.normalize("NFC", text).lower()
    slug = _SEPARATORS.sub("-", text).strip("-")
    return slug[:MAX_SLUG_LENGTH].strip("-")


def slug_from_filename(stem: str) -> str:
    """A slug from a file name, dropping a Jekyll-style ``2025-06-20-`` prefix."""
    return slugify(_DATE_PREFIX.sub("", stem))


def is_valid_slug(slug: str) -> bool:
    """True when ``slug`` is one safe path segment: letters, digits and inner hyphens."""
    return (
        bool(_VALID.match(slug))
        and len(slug) <= MAX_SLUG_LENGTH
        and slug == unicodedata.normalize("NFC", slug)
        and slug == slug.lower()
    )


def slug_key(slug: str) -> str:
    """The identity two slugs collide on: NFC and case-folded (A14)."""
    return unicodedata.normalize("NFC", slug).casefold()
