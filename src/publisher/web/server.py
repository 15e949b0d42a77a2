"""How ``publisher web`` runs under uvicorn: slow and vanishing clients cost little (issue 8 item 9).

uvicorn bounds the size of a request head (``h11_max_incomplete_event_size``)
and the idle time between requests (``timeout_keep_alive``), but not the time a
client may take to send one: headers or a body trickled in a byte every two
seconds held a connection open for as long as the client liked, and the
keep-alive timer is cancelled by every byte that arrives. :class:`BoundedH11Protocol`
gives each request ``REQUEST_SECONDS`` from its first byte until its last
(head and body), not counting the time the app takes to answer. A request
still incomplete then gets ``408 Request Timeout`` if no answer has started,
and the connection is closed either way. The app sees a vanished client as
``http.disconnect`` (Starlette's ``ClientDisconnect``), which publisher.web.app
answers quietly instead of logging an ASGI traceback.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

REQUEST_SECONDS = 10.0  # from a request's first byte to its last; a form needs far less
KEEP_ALIVE_SECONDS = 5  # idle time between two requests on one connection
MAX_HEAD_BYTES = 16 * 1024  # request line and headers together (uvicorn's default, stated)

_TIMEOUT_BODY = b"Request Timeout: the request did not arrive in time.\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TIMEOUT_BODY
)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for receiving each whole request."""

    request_seconds: float = REQUEST_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._request_timer: asyncio.TimerHandle | None = None
        self._arm()  # a connection that sends nothing at all is a slow request too

    def data_received(self, data: bytes) -> None:
        if self._request_timer is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        self._disarm_when_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._request_timer = self.loop.call_later(self.request_seconds, self._timed_out)

    def _disarm(self) -> None:
        timer = getattr(self, "_request_timer", None)
        if timer is not None:
            timer.cancel()
        self._request_timer = None

    def _disarm_when_received(self) -> None:
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._disarm()  # the whole request is here; the app's own time is not counted

    def _timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        cycle: Any = self.cycle
        if self.conn.their_state is h11.IDLE:
            self.transport.write(_TIMEOUT_RESPONSE)  # the head never completed: no app yet
        elif cycle is not None and not cycle.response_complete:
            if not cycle.response_started:
                self.transport.write(_TIMEOUT_RESPONSE)
            cycle.disconnected = True  # the app's receive() now says http.disconnect
            cycle.message_event.set()  # and whatever it sends is dropped
        self.transport.close()
