"""Raw HTTP input to checked values, or a clean 4xx (RELIABILITY E1, E6, E7, S17).

The subscription endpoint (publisher.web.app) reads every request body through
:func:`read_form`, so one set of rules holds everywhere:

- At most ``MAX_BODY_BYTES`` (64 KB): a larger ``Content-Length`` is refused
  before reading, a chunked body is cut off while streaming; both give 413.
- Only ``application/x-www-form-urlencoded`` and ``multipart/form-data`` in
  UTF-8; anything else is 415. An empty body is an empty form, whatever its
  type: the RFC 8058 one-click POST is sometimes sent without one.
- A multipart boundary has 1 to 70 characters (RFC 2046), else 400.
- Bytes and percent-escapes must be valid UTF-8, a parameter may appear once
  (except the named repeatable ones, e.g. the category checkboxes), files are
  refused, and at most ``MAX_FIELDS`` fields: otherwise 400. Starlette's own
  form parser would quietly decode bad UTF-8 as Latin-1, so neither format
  goes through it.

:class:`ClientAddress` finds the visitor's address for the per-IP limit:
``X-Forwarded-For`` counts only when the connecting peer is a configured proxy
(humhub #6625; E6), and IPv6 visitors are limited per /64, the block one
household or server usually gets.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from publisher.errors import PublisherError

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 64
MAX_BOUNDARY_CHARS = 70  # RFC 2046 section 5.1.1: 1 to 70 characters
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


class BadInput(Exception):
    """The request cannot be used; ``status`` is the HTTP answer (400, 413 or 415)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Form:
    """Decoded form fields; each name maps to its values in order."""

    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, name: str) -> str:
        values = self.fields.get(name, ())
        return values[0] if values else ""

    def get_all(self, name: str) -> tuple[str, ...]:
        return self.fields.get(name, ())


async def read_form(request: Request, *, repeatable: frozenset[str] = frozenset()) -> Form:
    """The request's form, under every rule of the module docstring, or BadInput."""
    body = await read_body(request, MAX_BODY_BYTES)
    content_types = request.headers.getlist("content-type")
    if not body:
        return Form()
    if len(content_types) != 1:
        raise BadInput(415, "expected one Content-Type: a form")
    return parse_form(body, content_types[0], repeatable=repeatable)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes, else 413 (E7)."""
    lengths = request.headers.getlist("content-length")
    if lengths:
        if len(set(lengths)) != 1 or not lengths[0].strip().isdigit():
            raise BadInput(400, "invalid Content-Length")
        if int(lengths[0]) > limit:
            raise BadInput(413, "request body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInput(413, "request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(body: bytes, content_type: str, *, repeatable: frozenset[str]) -> Form:
    """Decode ``body`` as a urlencoded or multipart form (strict UTF-8, no duplicates)."""
    kind, options = parse_options_header(content_type)
    charset = options.get(b"charset", b"utf-8").decode("latin-1").lower()
    if charset not in ("utf-8", "utf8"):
        raise BadInput(415, "only UTF-8 forms are accepted")
    if kind == URLENCODED.encode():
        pairs = _urlencoded(body)
    elif kind == MULTIPART.encode():
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadInput(400, "multipart form without a boundary")
        if len(boundary) > MAX_BOUNDARY_CHARS:  # python-multipart raises ValueError beyond 256
            raise BadInput(400, "multipart boundary longer than 70 characters (RFC 2046)")
        pairs = _multipart(body, boundary)
    else:
        raise BadInput(415, "expected application/x-www-form-urlencoded or multipart/form-data")
    return _collect(pairs, repeatable)


def _collect(pairs: Iterable[tuple[str, str]], repeatable: frozenset[str]) -> Form:
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        values = fields.setdefault(name, [])
        if values and name not in repeatable:
            raise BadInput(400, f"parameter {name[:40]!r} given more than once")
        values.append(value)
    if len(fields) > MAX_FIELDS:
        raise BadInput(400, "too many fields")
    return Form({name: tuple(values) for name, values in fields.items()})


def _urlencoded(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
        return parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS * 4,
        )
    except UnicodeDecodeError:
        raise BadInput(400, "form is not valid UTF-8") from None
    except ValueError:
        raise BadInput(400, "too many fields") from None


class _Parts:
    """Callbacks for python-multipart: collect (headers, data) of each part as bytes."""

    def __init__(self) -> None:
        self.parts: list[tuple[dict[bytes, bytes], bytes]] = []
        self.finished = False
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""
        self._data = bytearray()

    def on_part_begin(self) -> None:
        self._headers, self._data = {}, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name, self._value = b"", b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def on_part_end(self) -> None:
        self.parts.append((self._headers, bytes(self._data)))

    def on_end(self) -> None:
        self.finished = True


def _multipart(body: bytes, boundary: bytes) -> list[tuple[str, str]]:
    return [_multipart_field(headers, data) for headers, data in multipart_parts(body, boundary)]


def multipart_parts(
    body: bytes, boundary: bytes, max_parts: int = MAX_FIELDS * 4
) -> list[tuple[Mapping[bytes, bytes], bytes]]:
    """The (headers, data) of each part of a multipart body; BadInput (400) when it is
    malformed, truncated or has more than ``max_parts`` parts. The one multipart reader of
    the web service: signup forms and Micropub uploads both go through it."""
    parts = _Parts()
    callbacks = {
        name: getattr(parts, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_part_data",
            "on_part_end",
            "on_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        raise BadInput(400, "malformed multipart form") from None
    if not parts.finished:
        raise BadInput(400, "truncated multipart form")
    if len(parts.parts) > max_parts:
        raise BadInput(400, "too many fields")
    return list(parts.parts)


def _multipart_field(headers: Mapping[bytes, bytes], data: bytes) -> tuple[str, str]:
    kind, options = parse_options_header(headers.get(b"content-disposition", b""))
    if kind != b"form-data" or b"name" not in options:
        raise BadInput(400, "multipart part without a form-data name")
    if b"filename" in options:
        raise BadInput(400, "file uploads are not accepted")
    try:
        return options[b"name"].decode("utf-8"), data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(400, "form is not valid UTF-8") from None


# --- the client's address (E6) ---------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    """The visitor's address: the peer, or the nearest untrusted hop of X-Forwarded-For."""

    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        self.trusted = tuple(_network(entry) for entry in trusted_proxies)

    def __call__(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        peer_text = peer or "unknown"
        if not self._is_trusted(peer_text):
            return peer_text
        hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
        # Walk from the nearest hop: each trusted proxy appended the address it saw.
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return peer_text  # garbage where a proxy would have written: trust nothing
            if not any(address in network for network in self.trusted):
                return str(address)
        return peer_text

    def _is_trusted(self, text: str) -> bool:
        address = _address(text)
        return address is not None and any(address in network for network in self.trusted)


def _network(entry: str) -> Network:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        raise PublisherError(
            f"config.toml: [web].trusted_proxies: expected IP addresses or networks such as "
            f'"127.0.0.1" or "10.0.0.0/8", got "{entry}"'
        ) from None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def rate_key(client: str) -> str:
    """A short, stable bucket key for a client: IPv6 per /64 (one household), hashed (S20)."""
    address = _address(client)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        client = str(ipaddress.ip_network(f"{address}/64", strict=False))
    elif isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        client = str(address.ipv4_mapped)
    return hashlib.sha256(client.encode("utf-8")).hexdigest()[:32]
