"""Slugs that keep Hangul (as Tistory and Hugo do) and are safe as one path segment.

Romanising Korean is lossy and often wrong (pelican-plugins #657, ghost #19907),
so slugs keep every Unicode letter and digit, NFC-normalised and lower-cased;
punctuation such as ``…`` and ``·`` separates words.
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[^\w]+|_+")
_VALID = re.compile(r"[^\W_](?:[\w-]*[^\W_])?")
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")
MAX_SLUG_LENGTH = 120
# A file name is at most 255 bytes on ext4, XFS, APFS and NTFS: 120 Hangul syllables are 360.
MAX_SLUG_BYTES = 255
_SLUGIFY_BYTES = MAX_SLUG_BYTES - 15  # room for "-2" or ".md" when the slug names a file


def slugify(text: str) -> str:
    """Turn a title or file name into a slug: ``"미중 기술…격차"`` → ``"미중-기술-격차"``."""
    text = unicodedata.normalize("NFC", text).lower()
    slug = _SEPARATORS.sub("-", text).strip("-")[:MAX_SLUG_LENGTH]
    while len(slug.encode("utf-8")) > _SLUGIFY_BYTES:
        slug = slug[:-1]
    return slug.strip("-")


def slug_from_filename(stem: str) -> str:
    """A slug from a file name, dropping a Jekyll-style ``2025-06-20-`` prefix."""
    return slugify(_DATE_PREFIX.sub("", stem))


def is_valid_slug(slug: str) -> bool:
    """True when ``slug`` is one safe path segment: letters, digits and inner hyphens."""
    return (
        bool(_VALID.fullmatch(slug))  # fullmatch: "$" would accept a final newline
        and len(slug) <= MAX_SLUG_LENGTH
        and fits_file_name(slug)
        and slug == unicodedata.normalize("NFC", slug)
        and slug == slug.lower()
    )


def fits_file_name(slug: str) -> bool:
    """True when ``slug`` fits in one file name (at most 255 bytes in UTF-8)."""
    return len(slug.encode("utf-8")) <= MAX_SLUG_BYTES


def slug_key(slug: str) -> str:
    """The identity two slugs collide on: NFC and case-folded (A14)."""
    return unicodedata.normalize("NFC", slug).casefold()


# Spoken names for the symbols that tell tags apart: C, C++ and C# (issue 8, item 14).
_SPOKEN = {"+": "plus", "#": "sharp", "&": "and", "@": "at", "%": "percent", "*": "star"}


def spelled_slug(text: str) -> str:
    """A slug that keeps symbols as words: ``"C++"`` → ``"c-plus-plus"``, ``"!!!"`` → names.

    Used only where ``slugify`` would give two names one slug, or no slug at all.
    Symbols without a spoken name use their Unicode name (``"🚀"`` → ``"rocket"``).
    """
    words = []
    for char in unicodedata.normalize("NFC", text):
        if char.isalnum():
            words.append(char)
        elif char in _SPOKEN:
            words.append(f" {_SPOKEN[char]} ")
        elif not char.isspace() and unicodedata.category(char)[0] in "PS":
            words.append(f" {unicodedata.name(char, '')} ")
        else:
            words.append(" ")
    return slugify("".join(words))


def unique_slugs(names: list[str], fallback: str) -> dict[str, str]:
    """A distinct, non-empty slug for each name, the same for the same set of names.

    A name keeps ``slugify(name)`` when no other name has it; names that share one
    (or have none) are spelled out with ``spelled_slug``, the name without symbols
    keeping the plain slug; what still collides gets ``-2``, ``-3`` in name order.
    """
    plain = {name: slugify(name) for name in names}
    sharing: dict[str, list[str]] = {}
    for name in names:
        sharing.setdefault(plain[name], []).append(name)
    chosen: dict[str, str] = {}
    for slug, group in sorted(sharing.items()):
        for name in sorted(group, key=lambda n: (spelled_slug(n) != slug, n)):
            alone = len(group) == 1
            if slug and (alone or (slug not in chosen.values() and spelled_slug(name) == slug)):
                chosen[name] = slug
            else:
                chosen[name] = spelled_slug(name) or plain[name] or fallback
    taken: set[str] = set()
    for name in sorted(names, key=lambda n: (chosen[n] != plain[n], n)):
        base = candidate = chosen[name]
        number = 1
        while candidate in taken:
            number += 1
            candidate = f"{base}-{number}"
        taken.add(candidate)
        chosen[name] = candidate
    return chosen
