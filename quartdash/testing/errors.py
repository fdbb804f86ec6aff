"""What the test client's waits raise, and how long they wait by default.

Every wait is bounded: one that runs out raises :class:`WaitTimeout`; one
that cannot succeed because the server closed the connection raises
:class:`ConnectionClosed` at once; a WebSocket handshake answered with an
HTTP status raises :class:`HandshakeRejected`.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TIMEOUT", "ConnectionClosed", "HandshakeRejected", "WaitTimeout"]

DEFAULT_TIMEOUT = 10.0
"""Seconds any single wait of the client gives the server, unless told otherwise."""


class WaitTimeout(AssertionError, TimeoutError):
    """A wait of the test client ran out; the message names what it waited for."""


class ConnectionClosed(AssertionError):
    """The WebSocket closed while the client waited for something on it."""

    def __init__(self, message: str, code: int | None, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class HandshakeRejected(AssertionError):
    """The WebSocket handshake got an HTTP response instead of being accepted."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(f"WebSocket handshake rejected with HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body
