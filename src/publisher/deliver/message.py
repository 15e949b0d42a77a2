"""One recipient's copy of an issue as RFC 5322 bytes, optionally DKIM-signed.

The top-level header block is written here, line by line, because the standard
library gets two of our headers wrong (RELIABILITY section 2):

- L1/D2: under ``policy.SMTP`` a ``List-Unsubscribe`` too long for 78 columns
  becomes an RFC 2047 encoded-word, and clients then ignore it (RFC 2369 section 2
  wants it to start with "<"). Here it is one plain line of at most 998 octets.
- L3/D3: ``EmailMessage`` folds Korean subjects into 76-character encoded-words
  and drops the spaces between them. ``encode_subject`` splits UTF-8 between
  characters into B encoded-words of at most 75 characters (RFC 2047 section 2),
  one per line, lines at most 78 columns, and round-trips exactly.

Every free-text input (subject, display name, address) is checked before use:
CR, LF, NUL and other controls, and "=?" (an encoded-word can smuggle a header,
L2), raise ``HeaderInjectionError`` naming the field (D1, D1b). Addresses go
through email-validator: no display names, no non-ASCII local parts (D4, no
SMTPUTF8), IDN domains as punycode, ``parseaddr``'s laxness avoided (D5).

The body is ``multipart/alternative``, text first then HTML (D10, R7), built with
``email.message``; each part is quoted-printable or base64 (lines of 76, D7).
Output is deterministic (the MIME boundary derives from the Message-ID) except
for the DKIM ``t=`` timestamp that dkimpy always takes from the clock.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from email import policy
from email.message import MIMEPart
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

import dkim

from publisher.config import Config
from publisher.errors import PublisherError
from publisher.publish.newsletter import RenderedIssue, personalize, transfer_encode
from publisher.publish.safetext import Unsafe, unsafe_in_header
from publisher.store import InvalidAddress, normalize_email

LINE_MAX = 78  # RFC 5322 section 2.1.1: lines SHOULD be at most 78 characters
HARD_LINE_MAX = 998  # ... and MUST be at most 998 octets
ENCODED_WORD_MAX = 75  # RFC 2047 section 2
_EW_START, _EW_END = "=?UTF-8?B?", "?="

_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f\x41-\x7e]+@[\x21-\x3b\x3d\x3f\x41-\x7e]+>")
_URL = re.compile(r"https://[\x21-\x7e]+")
# Plain http is accepted only for loopback preview and test servers; a real list is https.
_LOOPBACK_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?/[\x21-\x7e]*")
_BODY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Body parts: CRLF and 76 columns, the RFC 2045 limit for quoted-printable and base64.
_BODY_POLICY = policy.SMTP.clone(max_line_length=76)

# Signed once, plus a second time for those an attacker would add a copy of:
# signing a header more often than it occurs locks its count (RFC 6376 section 8.15).
# RFC 8058 section 3.1 asks for both list headers (R5, D9; OpenDKIM omits the second).
DKIM_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
    "mime-version",
    "content-type",
)
DKIM_OVERSIGNED = ("from", "to", "subject", "reply-to", "list-unsubscribe", "list-unsubscribe-post")


class HeaderError(PublisherError):
    """A header value cannot be written; ``field`` names the header."""

    def __init__(self, field: str, problem: str, hint: str | None = None) -> None:
        super().__init__(f"{field}: {problem}", hint)
        self.field = field


class HeaderInjectionError(HeaderError):
    """A free-text header input holds a line break, a control or an encoded-word (D1, D1b)."""


class AddressError(HeaderError):
    """An email address is invalid, or needs SMTPUTF8 (D4, D5)."""


class DkimError(PublisherError):
    """DKIM signing is enabled but cannot be done."""


def build_message(
    config: Config,
    issue: RenderedIssue,
    *,
    to_address: str,
    unsubscribe_url: str,
    preferences_url: str,
    message_id: str,
    date: datetime,
) -> bytes:
    """The complete message for one recipient, DKIM-signed when ``[dkim].enabled``."""
    headers = _headers(
        config,
        issue,
        to_address=to_address,
        unsubscribe_url=unsubscribe_url,
        message_id=message_id,
        date=date,
    )
    html, text = personalize(
        issue, unsubscribe_url=unsubscribe_url, preferences_url=preferences_url
    )
    boundary = "=_" + hashlib.sha256(f"{message_id}\x00{issue.digest}".encode()).hexdigest()[:28]
    message = header_block(headers) + _body(text, html, boundary)
    if config.dkim.enabled:
        message = sign(config, message)
    return message


def make_message_id(issue_id: int, subscriber_id: int, config: Config) -> str:
    """The Message-ID of one delivery row, the same on every attempt (section 1.3, D8)."""
    for name, value in (("issue_id", issue_id), ("subscriber_id", subscriber_id)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return f"<issue-{issue_id}.{subscriber_id}@{site_host(config)}>"


def encode_subject(subject: str) -> str:
    """The Subject header value, folded with CRLF; decodes back to ``subject`` exactly (D3)."""
    check_free_text("Subject", subject)
    return _unstructured(subject, LINE_MAX - len("Subject: "))


def check_free_text(field: str, value: str) -> None:
    """Raise HeaderInjectionError when ``value`` could add or hide a header (D1, D1b, L2).

    The characters are defined once in ``publish.safetext``; the post reader refuses them too.
    """
    reason = unsafe_in_header(value)
    if reason is not None:
        raise HeaderInjectionError(field, f"{_UNSAFE_WORDS[reason]}: {value!r}")


_UNSAFE_WORDS = {
    Unsafe.LINE_BREAK: "contains CR, LF or NUL, which would start a new header line (D1)",
    Unsafe.CONTROL: "contains a control character or line separator",
    Unsafe.ENCODED_WORD: "contains '=?', which mail readers decode as an RFC 2047 encoded-word; "
    "it can smuggle a header (D1b)",
    Unsafe.SURROGATE: "is not valid Unicode",
}


def normalize_address(field: str, address: str) -> str:
    """``address`` free of header tricks, then checked by the one address validator
    (:func:`publisher.store.normalize_email`: email-validator, IDN domain as punycode,
    lower-cased as stored; D4, D5); :class:`AddressError` names the header field."""
    check_free_text(field, address)
    try:
        return normalize_email(address)
    except InvalidAddress as exc:
        raise AddressError(field, exc.message) from None


# --- headers -----------------------------------------------------------------------


def _headers(
    config: Config,
    issue: RenderedIssue,
    *,
    to_address: str,
    unsubscribe_url: str,
    message_id: str,
    date: datetime,
) -> list[tuple[str, str]]:
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError(f"the Date must be timezone-aware, got {date!r}")
    sender = normalize_address("From", config.newsletter.from_address)
    headers = [
        ("From", mailbox(config.from_name, sender)),
        ("To", normalize_address("To", to_address)),
        ("Subject", encode_subject(issue.subject)),
        ("Date", format_datetime(date)),
        ("Message-ID", _message_id(message_id)),
        ("List-Id", _list_id(config)),
        ("List-Unsubscribe", _list_unsubscribe(config, unsubscribe_url)),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),  # RFC 8058 section 3.1
        ("Auto-Submitted", "auto-generated"),  # RFC 3834: no vacation replies (R10)
        ("X-Auto-Response-Suppress", "OOF, AutoReply"),  # the same for Exchange
    ]
    if config.newsletter.reply_to:
        headers.insert(2, ("Reply-To", normalize_address("Reply-To", config.newsletter.reply_to)))
    return headers


def header_block(headers: list[tuple[str, str]]) -> bytes:
    """Serialized header lines; each must be ASCII and within 998 octets (RFC 5322 2.1.1)."""
    block = "".join(f"{name}: {value}\r\n" for name, value in headers)
    for line in block.split("\r\n"):
        if len(line) > HARD_LINE_MAX or not line.isascii():
            raise HeaderError(line.split(":", 1)[0], "header line is not ASCII or over 998 octets")
    return block.encode("ascii")


def _message_id(message_id: str) -> str:
    check_free_text("Message-ID", message_id)
    if not _MESSAGE_ID.fullmatch(message_id):
        raise HeaderError(
            "Message-ID",
            f"expected <left@right> in printable ASCII (RFC 5322 3.6.4), got {message_id!r}",
        )
    return message_id


def _list_id(config: Config) -> str:
    list_id = config.list_id
    if not _DOT_ATOM.fullmatch(list_id):
        raise HeaderError(
            "List-Id",
            f"[newsletter].list_id: expected a dotted name such as news.blog.example.com "
            f"(RFC 2919), got {list_id!r}",
        )
    return f"<{list_id}>"


_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]{20,64}")


def _list_unsubscribe(config: Config, url: str) -> str:
    """``<https-url>[, <mailto:...>]`` on one line: HTTPS first, Gmail uses the first (R3, R4)."""
    check_free_text("List-Unsubscribe", url)
    secure = _URL.fullmatch(url) or _LOOPBACK_URL.fullmatch(url)
    if not secure or any(ch in url for ch in '<>"'):
        raise HeaderError(
            "List-Unsubscribe",
            f"the unsubscribe URL must be https:// and printable ASCII without <, > or "
            f'" (RFC 8058 section 3.1 requires HTTPS), got {url!r}',
        )
    if not url.startswith(config.web_base_url):
        raise HeaderError(
            "List-Unsubscribe",
            f"the unsubscribe URL {url!r} is not under the subscription service "
            f"{config.web_base_url!r} ([web].base_url)",
        )
    value = f"<{url}>"
    if config.newsletter.unsubscribe_mailto:
        mailto = normalize_address("List-Unsubscribe", config.newsletter.unsubscribe_mailto)
        # The subscriber's unsubscribe token rides in the subject, where mail clients keep
        # it as written; `publisher inbound` reads it (issue 12, RFC 6068 percent-encoding).
        token = url.rpartition("/unsubscribe/")[2]
        subject = f"unsubscribe%20{token}" if _TOKEN_CHARS.fullmatch(token) else "unsubscribe"
        value += f", <mailto:{mailto}?subject={subject}>"
    return value


def mailbox(name: str, address: str) -> str:
    """``name <address>``: an atom phrase, a quoted string, or encoded-words (RFC 2047 5(3)).

    A long non-ASCII name takes several encoded-words. Compliant readers join them
    exactly; CPython's own address parser puts a space between them (pinned in
    tests/test_message.py), as it does for names CPython itself folded.
    """
    if not name:
        return address
    check_free_text("From", name)
    if _ATOM_PHRASE.fullmatch(name):
        phrase = name
    elif _PRINTABLE_ASCII.fullmatch(name):
        phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = "\r\n ".join(_encoded_words(name, LINE_MAX - len("From: ")))
    last_line = ("From: " + phrase).rsplit("\r\n", 1)[-1]
    separator = " " if len(last_line) + len(address) + 3 <= LINE_MAX else "\r\n "
    return f"{phrase}{separator}<{address}>"


def _unstructured(text: str, first_room: int) -> str:
    """Plain when printable ASCII that folds at spaces, else B encoded-words."""
    plain = _fold_plain(text, first_room)
    if plain is not None:
        return plain
    return "\r\n ".join(_encoded_words(text, first_room))


def _fold_plain(text: str, first_room: int) -> str | None:
    """``text`` folded before spaces into lines that fit, or None when it cannot be.

    Leading or trailing spaces would be eaten by parsers, so such text is encoded.
    """
    if not _PRINTABLE_ASCII.fullmatch(text) or text != text.strip(" "):
        return None
    lines: list[str] = []
    current = ""
    for chunk in re.findall(r" *[^ ]+", text):  # each chunk keeps the spaces before it
        room = first_room if not lines else LINE_MAX
        if current and len(current) + len(chunk) > room:
            lines.append(current)
            current = chunk
        else:
            current += chunk
    lines.append(current)
    if len(lines[0]) > first_room or any(len(line) > LINE_MAX for line in lines[1:]):
        return None
    return "\r\n".join(lines)


def _encoded_words(text: str, first_room: int) -> list[str]:
    """``text`` as UTF-8 B encoded-words, split between characters, never inside one.

    Each word is at most 75 characters, the first at most ``first_room``; spaces are
    encoded inside the words, so the whitespace between words (dropped by decoders,
    RFC 2047 section 6.2) loses nothing.
    """
    words: list[str] = []
    chunk, size, room = "", 0, min(first_room, ENCODED_WORD_MAX)
    for char in text:
        width = len(char.encode("utf-8"))
        if chunk and _encoded_length(size + width) > room:
            words.append(_encoded_word(chunk))
            chunk, size, room = "", 0, ENCODED_WORD_MAX
        chunk += char
        size += width
    words.append(_encoded_word(chunk))
    return words


def _encoded_length(octets: int) -> int:
    return len(_EW_START) + len(_EW_END) + 4 * ((octets + 2) // 3)


def _encoded_word(text: str) -> str:
    return _EW_START + base64.b64encode(text.encode("utf-8")).decode("ascii") + _EW_END


def site_host(config: Config) -> str:
    """The blog's host name in ASCII (IDNA), for Message-IDs."""
    host = urlsplit(config.site.base_url).hostname or "localhost"
    return host.encode("idna").decode("ascii")


# --- body ----------------------------------------------------------------------------


def _body(text: str, html: str, boundary: str) -> bytes:
    """MIME-Version, Content-Type and the multipart/alternative body, text first (RFC 2046 5.1.4)."""
    container = MIMEPart(policy=_BODY_POLICY)
    container["MIME-Version"] = "1.0"
    container["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
    container.attach(_part("plain", text))
    container.attach(_part("html", html))
    return container.as_bytes()


def _part(subtype: str, content: str) -> MIMEPart:
    cte, payload = transfer_encode(_clean_body(content))
    part = MIMEPart(policy=_BODY_POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = cte
    part.set_payload(payload)
    return part


def _clean_body(content: str) -> str:
    """LF line ends and no C0 controls but tab: bare CR and NUL must not reach the wire (D6)."""
    return _BODY_CONTROLS.sub("", content.replace("\r\n", "\n").replace("\r", "\n"))


# --- DKIM ----------------------------------------------------------------------------


def sign(config: Config, message: bytes) -> bytes:
    """``message`` with a DKIM-Signature covering both list headers (R5, D9)."""
    settings = config.dkim
    if not settings.domain or not settings.selector:
        raise DkimError("[dkim].domain and [dkim].selector are required when [dkim].enabled = true")
    _check_alignment(config)
    include = [h.encode("ascii") for h in DKIM_HEADERS + DKIM_OVERSIGNED]
    try:
        signature = dkim.sign(
            message,
            settings.selector.encode("ascii"),
            settings.domain.encode("ascii"),
            _private_key(config),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )
    except dkim.DKIMException as exc:
        raise DkimError(f"DKIM signing failed: {exc}") from None
    return bytes(signature) + message


def _check_alignment(config: Config) -> None:
    """DMARC passes on DKIM only when d= and the From domain are aligned (R1, R5)."""
    from_domain = config.newsletter.from_address.rsplit("@", 1)[1].lower()
    domain = config.dkim.domain.lower().rstrip(".")
    if not (
        from_domain == domain
        or from_domain.endswith("." + domain)
        or domain.endswith("." + from_domain)
    ):
        raise DkimError(
            f"[dkim].domain {domain!r} is not aligned with the From domain {from_domain!r}; "
            "DMARC would fail (R5)"
        )


def _private_key(config: Config) -> bytes:
    """The PEM key from the environment variable [dkim].key_env, else [dkim].key_file."""
    from_env = config.secret(config.dkim.key_env)
    if from_env:
        # Env files often hold the PEM on one line with literal "\n" escapes.
        pem = from_env if "\n" in from_env else from_env.replace("\\n", "\n")
        return pem.encode("ascii")
    if not config.dkim.key_file:
        raise DkimError(
            f"no DKIM key: set the environment variable {config.dkim.key_env} or [dkim].key_file",
        )
    path = Path(config.dkim.key_file)
    path = path if path.is_absolute() else config.root / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DkimError(f"[dkim].key_file: cannot read {path}: {exc.strerror}") from None
