"""VERP return paths: the envelope sender names its delivery row, with a MAC.

Each newsletter message goes out with the envelope sender (Return-Path)
``<local>+<issue>.<subscriber>.<mac>@<domain>`` built from
``[newsletter].bounce_address`` (``bounces@blog.example.com`` gives
``bounces+12.345.k3j5...@blog.example.com``), so a bounce maps to its row even
when the report quotes nothing of the message (Mailman 3 does the same). The
MAC is the first 80 bits of HMAC-SHA256 over the two ids under the key in
``$[newsletter].bounce_key_env``, written in lower-case base32: mail systems
may fold the case of a local part, and the MAC still checks. A return path
that does not verify (forged, altered, another key) is ignored, never acted on;
comparison is constant-time.

Pure: no I/O. The sender imports it to set the envelope; the inbound handler to
read it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from publisher.config import Config
from publisher.errors import PublisherError

MAC_BYTES = 10  # 80 bits: 16 base32 characters, the address stays under 64 octets
_VERP = re.compile(r"^(?P<issue>\d{1,12})\.(?P<sub>\d{1,12})\.(?P<mac>[a-z2-7]{16})$")


@dataclass(frozen=True)
class ReturnPath:
    """Makes and checks VERP addresses under ``base`` (``bounces@domain``)."""

    base: str
    key: bytes

    @property
    def local(self) -> str:
        return self.base.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.base.rpartition("@")[2].lower()

    def address(self, issue_id: int, subscriber_id: int) -> str:
        return f"{self.local}+{issue_id}.{subscriber_id}.{self._mac(issue_id, subscriber_id)}@{self.domain}"

    def decode(self, address: str) -> tuple[int, int] | None:
        """``(issue_id, subscriber_id)`` of a return path that verifies, else None."""
        local, _, domain = address.strip().strip("<>").lower().rpartition("@")
        prefix = self.local.lower() + "+"
        if domain != self.domain or not local.startswith(prefix):
            return None
        match = _VERP.match(local[len(prefix) :])
        if match is None:
            return None
        issue_id, subscriber_id = int(match["issue"]), int(match["sub"])
        if not hmac.compare_digest(match["mac"], self._mac(issue_id, subscriber_id)):
            return None
        return issue_id, subscriber_id

    def is_ours(self, address: str) -> bool:
        """The address is at the bounce mailbox (verified or not)."""
        local, _, domain = address.strip().strip("<>").lower().rpartition("@")
        base = self.local.lower()
        return domain == self.domain and (local == base or local.startswith(base + "+"))

    def _mac(self, issue_id: int, subscriber_id: int) -> str:
        message = f"publisher-verp|{issue_id}.{subscriber_id}".encode("ascii")
        digest = hmac.new(self.key, message, hashlib.sha256).digest()[:MAC_BYTES]
        return base64.b32encode(digest).decode("ascii").lower()


def return_path(config: Config) -> ReturnPath | None:
    """The configured VERP return path; None when ``[newsletter].bounce_address`` is empty."""
    base = config.newsletter.bounce_address
    if not base:
        return None
    name = config.newsletter.bounce_key_env
    key = config.secret(name)
    if not key or len(key) < 16:
        raise PublisherError(
            f"[newsletter].bounce_address is set but ${name} is "
            + ("shorter than 16 characters" if key else "not set"),
            hint=f"Set {name} to a random key, e.g. "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"`, '
            "the same for `publisher send`, `publisher run` and `publisher inbound`.",
        )
    if "+" in base.partition("@")[0]:
        raise PublisherError(
            f"[newsletter].bounce_address {base!r}: the local part may not contain '+', "
            "which separates the VERP part",
        )
    return ReturnPath(base, key.encode("utf-8"))
