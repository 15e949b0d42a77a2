"""Which characters free text may hold where it can reach a mail header or a title.

One definition for both layers: the post reader (``content.py``) refuses these in a
title, category, author, summary or tag with the file and line, and the message
builder (``deliver/message.py``) refuses the same ones in every header it writes, so
a post the reader accepts can always be mailed (issue 8, item 3).

- line breaks: CR, LF and NUL start a new header line (RELIABILITY D1);
- other C0 and C1 controls, U+0085 (NEL), U+2028 and U+2029: line separators and
  invisible controls that mail readers and terminals treat as breaks;
- bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069): they make a
  subject read differently from what it is ("Trojan Source", CVE-2021-42574);
- ``=?``: starts an RFC 2047 encoded-word, which can smuggle a header (D1b);
- lone surrogates: not characters at all, so the text cannot be encoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

LINE_BREAKS = re.compile(r"[\r\n\x00]")
CONTROLS = re.compile(r"[\x01-\x08\x0b-\x1f\x7f\x80-\x9f\u2028\u2029]")
BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
SURROGATES = re.compile(r"[\ud800-\udfff]")
ENCODED_WORD = "=?"


class Unsafe(StrEnum):
    """Why a text cannot go into a header, in the order the checks run."""

    LINE_BREAK = "line break"
    CONTROL = "control"
    BIDI = "bidi"
    ENCODED_WORD = "encoded word"
    SURROGATE = "surrogate"


@dataclass(frozen=True)
class Finding:
    """What makes a text unsafe, and the character (or ``=?``) that does."""

    reason: Unsafe
    text: str

    def shown(self) -> str:
        """The offending text for a message: ``U+2028`` or ``'=?'``."""
        if self.reason is Unsafe.ENCODED_WORD:
            return repr(self.text)
        return f"U+{ord(self.text):04X}"


def unsafe_in_header(value: str) -> Unsafe | None:
    """Why the message builder cannot write ``value`` into a header, or None when it can.

    The builder refuses what could add or hide a header; bidi controls are not that,
    so it leaves them to the reader, which refuses them in every title it accepts.
    """
    finding = find_unsafe(value, bidi=False)
    return None if finding is None else finding.reason


def find_unsafe(
    value: str, *, one_line: bool = True, in_header: bool = True, bidi: bool = True
) -> Finding | None:
    """The first unsafe character in ``value``, or None.

    ``one_line=False`` allows LF (a summary may span lines); ``in_header=False``
    allows ``=?``, harmless in text that is never put into a header itself (a tag).
    """
    checks: list[tuple[Unsafe, re.Pattern[str]]] = [
        (Unsafe.LINE_BREAK, LINE_BREAKS if one_line else _NUL),
        (Unsafe.CONTROL, CONTROLS),
    ]
    if bidi:
        checks.append((Unsafe.BIDI, BIDI_CONTROLS))
    if in_header:
        checks.append((Unsafe.ENCODED_WORD, _ENCODED_WORD))
    checks.append((Unsafe.SURROGATE, SURROGATES))
    for reason, pattern in checks:
        match = pattern.search(value)
        if match:
            return Finding(reason, match.group())
    return None


_NUL = re.compile(r"\x00")
_ENCODED_WORD = re.compile(re.escape(ENCODED_WORD))
