"""The interfaces the layers meet at, as Protocols (a leaf module).

The session core (:mod:`quartdash.session`) is written against these alone:
it knows no Quart and no Dash. The glue (:mod:`quartdash.hosting`) provides
the real ones; tests provide fakes (tests/test_session.py).

* :class:`Transport` — the socket under a session.
* :class:`SessionApp` — what a session needs from the app it serves.
* :class:`CallbackInfo` — what a session checks about a callback.
* :class:`SessionPort` and :class:`Tab` — what ``ctx.websocket`` needs from
  its session.
* :class:`Identity` — who the app says is on the other end of a session.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from .wire.protocol import LostReason

if TYPE_CHECKING:
    from .config import WebSocketConfig

__all__ = ["CallbackInfo", "Identity", "Registry", "SessionApp", "SessionPort", "Tab",
           "Transport", "Verdict"]

Verdict = tuple[int, str]
"""A refusal: ``(close code, reason)``; close code 0 refuses one message only."""


class Identity:
    """Who is on the other end of a session, as the app decided when it connected.

    ``Identity("alice", role="admin")``: ``id`` names the user (what
    ``revoke("alice")`` and presence go by); the keyword arguments are
    ``claims``, read-only, JSON values. A connect hook returns one
    (docs/live-sessions.md); ``ctx.websocket.identity`` and ``session.identity``
    read it. Two identities are equal when their ``id`` and claims are: a
    session resumes only on a connection whose identity equals its own.
    """

    __slots__ = ("_key", "claims", "id")

    id: str
    claims: Mapping[str, Any]
    _key: str

    def __init__(self, id: str, /, **claims: Any) -> None:
        if not isinstance(id, str) or not id:
            raise ValueError(f"an Identity needs a non-empty string id, not {id!r}")
        try:
            key = json.dumps([id, claims], sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"Identity claims must be JSON values: {error}") from None
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "claims", MappingProxyType(dict(claims)))
        object.__setattr__(self, "_key", key)

    @property
    def key(self) -> str:
        """``id`` and claims as one canonical string (JSON, sorted keys)."""
        return self._key

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "claims": dict(self.claims)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Identity:
        return cls(str(data["id"]), **dict(data.get("claims") or {}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("an Identity is read-only")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        claims = "".join(f", {name}={value!r}" for name, value in sorted(self.claims.items()))
        return f"Identity({self.id!r}{claims})"


class Transport(Protocol):
    """The socket under a session: Quart's websocket, or a test double."""

    async def receive(self) -> str | bytes:
        """The next text (or bytes) frame; raises when the client is gone."""
        ...

    async def send(self, text: str) -> None:
        """Send one text frame; blocks under TCP back-pressure."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Send the close frame."""
        ...


@dataclass(frozen=True, slots=True)
class CallbackInfo:
    """What a session knows of a callback before it runs it."""

    callback_id: str
    websocket: bool
    """It may run over the WebSocket."""
    retrigger: str = "cancel"
    """What a new request does while a run of this callback for the same tab is
    still going: ``cancel`` (the newest wins), ``queue`` or ``parallel``."""


class Registry(Protocol):
    """What a session needs of its app's registry (``session.registry.SessionRegistry``)."""

    def issue_token(self, session: Any) -> str:
        """A new resume token for ``session``; its old one stops working."""
        ...

    def discard(self, session: Any, reason: LostReason = ...) -> None:
        """``session`` ended; a late resume with its token learns ``reason``."""
        ...


class SessionApp(Protocol):
    """What a session needs from the app it serves (``hosting.LiveApp``).

    Signals about the session are sent with the app as sender.
    """

    @property
    def config(self) -> WebSocketConfig: ...

    @property
    def registry(self) -> Registry:
        """The app's live sessions, and the tokens that resume them."""
        ...

    @property
    def shutdown_grace(self) -> float:
        """Seconds callbacks get to clean up when their session ends (a stopping
        server may shorten it)."""
        ...

    def callback_info(self, callback_id: str) -> CallbackInfo | None:
        """The callback ``callback_id`` names, or None when the app has none."""
        ...

    def request_problem(self, callback_id: str, payload: Mapping[str, Any]) -> str | None:
        """Why a request does not fit its callback (inputs, state, outputs), or None."""
        ...

    def persistent_callback_ids(self) -> Sequence[str]:
        """Callbacks started once per tab when it first makes contact."""
        ...

    async def run_callback(self, payload: dict[str, Any], handle: Any,
                           connection: Mapping[str, Any]) -> bytes | None:
        """Run one callback for a request; ``handle`` is its ``ctx.websocket``.

        Returns the response data as JSON, or None when the callback chose
        not to update. Raises what the callback raised.
        """
        ...

    def failure_message(self, error: Exception) -> str:
        """What the client is told of a callback's failure (never how, outside debug)."""
        ...

    def prepare_prop(self, component_id: str, prop: str, value: Any) -> tuple[Any, bool]:
        """A ``set_props`` value as it may be sent, and whether it is a patch.

        Raises (in the calling callback) for a value the app refuses.
        """
        ...

    def disconnected(self, reason: str) -> Exception:
        """The exception ``get_prop`` raises once the tab or connection is gone."""
        ...

    @property
    def has_message_hooks(self) -> bool: ...

    async def check_message(self, connection: Mapping[str, Any],
                            raw: dict[str, Any]) -> Verdict | None:
        """Run the app's message hooks: None accepts, a :data:`Verdict` refuses."""
        ...

    def session_opened(self, session: Any) -> None: ...

    def session_closed(self, session: Any) -> None: ...


class Tab(Protocol):
    """A tab (renderer) of a session, as ``ctx.websocket`` sees it."""

    @property
    def id(self) -> str: ...

    @property
    def left(self) -> bool: ...


class SessionPort(Protocol):
    """What ``ctx.websocket`` (:class:`~quartdash.session.handle.WebSocketHandle`)
    needs from the session it belongs to."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def thread_id(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    @property
    def connection(self) -> Mapping[str, Any]: ...

    @property
    def identity(self) -> Identity | None:
        """Who the app said is on the other end (a connect hook's :class:`Identity`)."""
        ...

    @property
    def id(self) -> str:
        """The session's public id (never its resume token)."""
        ...

    def prepare_prop(self, component_id: str, prop: str, value: Any) -> tuple[Any, bool]: ...

    def push_prop(self, renderer: Any, component_id: str, prop: str, value: Any,
                  is_patch: bool, owner: Any = None) -> None:
        """``renderer``: the session's own record of the :class:`Tab`; ``owner``:
        the run that pushes (its pushes are dropped once it is superseded)."""
        ...

    def encode_prop(self, renderer: Any, component_id: str, prop: str, value: Any) -> bytes:
        """The frame of one ``set_props`` value; safe to call from any thread."""
        ...

    def push_prop_frame(self, renderer: Any, component_id: str, prop: str, frame: bytes,
                        is_patch: bool, owner: Any = None) -> None: ...

    def encode_event(self, renderer: Any, name: str, data: Any) -> bytes:
        """The frame of one event; safe to call from any thread."""
        ...

    def push_event_frame(self, renderer: Any, frame: bytes, owner: Any = None) -> bool:
        """Queue an event frame; False when it did not fit (the tab is told)."""
        ...

    async def get_prop(self, renderer: Any, component_id: str, prop: str,
                       timeout: float, path: list[str | int] | None = None) -> Any: ...

    async def close_from_callback(self, code: int, reason: str) -> None: ...
