"""uvicorn's HTTP/1.1 protocol (h11) with a read timeout: idle and slow clients cannot hold sockets.

uvicorn times out an idle keep-alive connection only after a response (``timeout_keep_alive``): a socket
that connects and sends nothing, or sends its headers or body a byte at a time (slowloris), stays open for
ever, and enough of them exhaust the process's file descriptors. Here each request must arrive whole
(headers and body) within ``read_timeout`` of the connection or of the previous response; otherwise the
connection is closed. A request that did arrive is never cut while the application works on it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ReadTimeoutH11Protocol", "protocol_with_read_timeout"]

log = logging.getLogger("vecdb.server.rest")


class ReadTimeoutH11Protocol(H11Protocol):
    read_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_read_timer()  # the next request on this connection gets its own read_timeout

    def _arm_read_timer(self) -> None:
        self._disarm_read_timer()
        if not self.transport.is_closing():
            self._read_timer = self.loop.call_later(self.read_timeout, self._on_read_timeout)

    def _disarm_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _on_read_timeout(self) -> None:
        self._read_timer = None
        # IDLE: no request (or only part of its headers); SEND_BODY: the body is still coming.
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            log.debug("closing a REST connection: no whole request within %.1f s", self.read_timeout)
            self.transport.close()  # connection_lost tells a running request it was disconnected


def protocol_with_read_timeout(seconds: float) -> type[ReadTimeoutH11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this read timeout."""
    return type("ReadTimeoutH11Protocol", (ReadTimeoutH11Protocol,), {"read_timeout": seconds})
