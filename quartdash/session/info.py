"""A snapshot of one session, for listings (``app.live.list_sessions()``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..types import Identity

__all__ = ["SessionInfo"]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session (one browser connection) as it was when asked: a copy,
    not a view. ``app.live.session(info.id)`` finds the session itself."""

    id: str
    """The session's public id (random, never its resume token)."""
    app: str
    """The app it belongs to: its name and URL prefix (``app.live.app_key``)."""
    identity: Identity | None
    """What the app's connect hook said (None: no identity)."""
    remote: str | None
    """The client's address as the server saw it (a proxy's, behind one)."""
    origin: str | None
    connected_at: float
    """When the connection was accepted (seconds since the epoch)."""
    state: str
    """``open``, ``detached`` (waiting to be resumed), ``closing`` or ``closed``."""
    tabs: tuple[str, ...]
    """The renderer ids of its open tabs."""
    running: tuple[str, ...]
    """The ids of the callbacks running now (persistent ones included), one per run."""
    bytes_in: int
    """What the client sent, in bytes (text frames counted in characters when
    far below the size limit: exact for ASCII)."""
    bytes_out: int
    """What the server sent, in UTF-8 bytes."""
    messages_in: int
    frames_out: int
    props_pushed: int

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (identity as ``{"id", "claims"}``)."""
        return {
            "id": self.id, "app": self.app,
            "identity": None if self.identity is None else self.identity.to_json(),
            "remote": self.remote, "origin": self.origin, "connected_at": self.connected_at,
            "state": self.state, "tabs": list(self.tabs), "running": list(self.running),
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "messages_in": self.messages_in, "frames_out": self.frames_out,
            "props_pushed": self.props_pushed,
        }
