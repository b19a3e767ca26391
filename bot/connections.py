"""uvicorn's HTTP protocols with a deadline on a request's line and headers.

uvicorn times out nothing before the app is called: `timeout_keep_alive` only closes a
connection idle *after* a response, and any byte received disarms it, so a client that
opens connections and sends a header byte every few seconds (slowloris) holds each one
for as long as it likes. Nothing at the ASGI level can help, since the app is called only
once the headers are complete. These subclasses close a connection whose request line
and headers are not complete `HERALD_HEADER_TIMEOUT_SECONDS` (10) after it opened, or
after the first byte of a later request on a kept-alive connection; the body has its own
deadline in the app (`bot.webhooks.BodyDeadlines`). A client that had started a request
is answered 408 first; an idle one is closed silently, as keep-alive would (an unsolicited 408 on an
idle connection can be misread as the answer to the client's next request).

`protocol_class(seconds)` gives the class for uvicorn's `http=` setting, built on
httptools when it is installed (uvicorn's own choice), else on h11. `HttpTools` and `H11`
read the timeout from the environment, for `uvicorn.run(..., workers=N)`, whose worker
processes import the class by name.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, ClassVar, Final

from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.settings import Settings

_TIMEOUT_BODY: Final = b"request line and headers not received in time\n"
REQUEST_TIMEOUT: Final = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)

if TYPE_CHECKING:
    _Base = H11Protocol
else:
    _Base = object


@functools.cache
def _environment_timeout() -> float:
    return Settings.from_env().header_timeout_seconds()


class HeaderDeadline(_Base):
    """The deadline, mixed in before a uvicorn HTTP protocol class."""

    #: Seconds; None reads `HERALD_HEADER_TIMEOUT_SECONDS` (once per process).
    header_timeout: ClassVar[float | None] = None
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes: int = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._waiting_for_headers():
            # the first bytes of the next request on a kept-alive connection: until now
            # the connection was idle, which is keep-alive's to time out
            self._arm_header_deadline()
        super().data_received(data)
        if self._header_timer is None:
            return
        if self._waiting_for_headers():
            self._header_bytes += len(data)
        else:
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        # A request is in progress from its headers' end to its response's end; pipelined
        # requests make a new cycle as soon as their headers are in.
        cycle = self.cycle
        return cycle is None or cycle.response_complete

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        seconds = self.header_timeout if self.header_timeout is not None else (
            _environment_timeout()
        )
        self._header_bytes = 0
        self._header_timer = self.loop.call_later(seconds, self._header_deadline_passed)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._waiting_for_headers():
            return
        if self._header_bytes:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


class H11(HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with the header deadline."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
    HttpTools: type[H11Protocol] | None = None
else:

    class _HttpTools(HeaderDeadline, HttpToolsProtocol):  # type: ignore[misc]
        """uvicorn's httptools protocol with the header deadline."""

    HttpTools = _HttpTools  # type: ignore[assignment]


def protocol_class(seconds: float | None = None, *, base: str = "auto") -> type[Any]:
    """The protocol class for uvicorn's `http=`: `base` "auto" (httptools when installed,
    as uvicorn picks), "httptools" or "h11"; `seconds` None reads the environment."""
    if base == "auto":
        base = "httptools" if HttpTools is not None else "h11"
    chosen: type[Any] = H11 if base == "h11" else HttpTools  # type: ignore[assignment]
    if chosen is None:
        raise ValueError("httptools is not installed")
    if seconds is None:
        return chosen
    return type(chosen.__name__, (chosen,), {"header_timeout": seconds})
