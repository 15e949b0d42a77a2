"""``publisher inbound --listen``: an LMTP (or plain SMTP) receiver for the one handler.

Built on aiosmtpd, the server the test suite already runs. Rules:

- **No relaying**: RCPT TO is accepted only for the bounce mailbox
  (``[newsletter].bounce_address`` and its VERP ``+`` addresses) and the
  unsubscribe mailbox (``[newsletter].unsubscribe_mailto`` and its ``+``
  addresses); anything else gets ``550 5.7.1`` (RFC 5321 section 3.6.2).
  The receiver never sends mail.
- **Size**: ``[inbound].max_message_bytes``, announced as ``SIZE`` and enforced
  by aiosmtpd (``552``), so a huge message is refused before it is read.
- **Never lose a report**: when the database is unavailable the reply is
  ``451 4.3.0``, so the sending MTA keeps the message and retries; bad input
  still gets ``250`` (it was read and deliberately ignored, with a log line).
- LMTP (RFC 2033) answers once per recipient after DATA.

Bind it to loopback or a private network: it authenticates nobody, which is
what an MTA's ``lmtp:`` transport expects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from publisher.inbound.handler import Handled
from publisher.store import StoreError

log = logging.getLogger("publisher.inbound")

Receive = Callable[[bytes, list[str], str], Handled]  # (raw, envelope_to, source)
Accepts = Callable[[str], bool]


class _Session:
    """aiosmtpd handler: RCPT policy and DATA into the inbound handler."""

    def __init__(self, receive: Receive, accepts: Accepts, source: str) -> None:
        self.receive = receive
        self.accepts = accepts
        self.source = source

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if not self.accepts(address):
            log.info(
                "%s: refused RCPT TO %r: not a bounce or unsubscribe address",
                self.source,
                address[:100],
            )
            return "550 5.7.1 relaying denied: this server only takes reports for its own addresses"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        recipients = list(envelope.rcpt_tos)
        try:
            handled = await asyncio.to_thread(self.receive, raw, recipients, self.source)
        except StoreError as exc:
            log.warning(
                "%s: database unavailable, asking the sender to retry: %s", self.source, exc
            )
            reply = "451 4.3.0 database unavailable, try again later"
        except Exception:  # a bug must not lose a report: keep it queued at the sender
            log.exception("%s: unexpected error; asking the sender to retry", self.source)
            reply = "451 4.3.0 temporary failure, try again later"
        else:
            reply = f"250 2.0.0 {handled.outcome}"
        if self.source == "lmtp":
            return "\r\n".join([reply] * max(len(recipients), 1))  # RFC 2033 section 4.2
        return reply


class _Controller(Controller):
    def __init__(self, handler: _Session, *, lmtp: bool, max_bytes: int, **kw: Any) -> None:
        self.lmtp = lmtp
        super().__init__(handler, data_size_limit=max_bytes, **kw)

    def factory(self) -> SMTP:
        server_class = LMTP if self.lmtp else SMTP
        return server_class(self.handler, **self.SMTP_kwargs)


class Listener:
    """A running receiver; :meth:`stop` ends it."""

    def __init__(
        self,
        receive: Receive,
        accepts: Accepts,
        *,
        host: str,
        port: int,
        lmtp: bool = True,
        max_bytes: int = 10_000_000,
        hostname: str = "publisher.inbound",
    ) -> None:
        source = "lmtp" if lmtp else "smtp"
        self._controller = _Controller(
            _Session(receive, accepts, source),
            lmtp=lmtp,
            max_bytes=max_bytes,
            hostname=host,
            port=port,
            server_hostname=hostname,
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
