"""LiveApp: one Dash app's live side, as quartdash serves it.

What both front doors (:class:`quartdash.Dash` and
:class:`quartdash.DashBlueprint`) share: the ``dash.Dash`` object, its
WebSocket settings, the thread pool for ``def`` callbacks, the connection
and message hooks, and the live sessions: listed
(:meth:`LiveApp.list_sessions`), closed one by one, or by identity in every
worker (:meth:`LiveApp.revoke`). It is what a
:class:`~quartdash.session.Session` knows as its app
(:class:`~quartdash.types.SessionApp`), and the sender of every signal
about the app (``app.live`` / ``bp.live``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import dash
from dash import Patch
from dash.exceptions import PreventUpdate, WebsocketDisconnected

from ..config import WebSocketConfig
from ..session import Session, SessionInfo
from ..session.registry import RemoteSessions, SessionRegistry
from ..types import CallbackInfo, Identity, Verdict
from ..wire.protocol import CloseCode
from . import dash_internals, streaming
from .callback_plan import CallbackPlan
from .execute import invoke, prepare_callback
from .inline import InlinePolicy
from .sanitize import PropPolicy

__all__ = ["LiveApp", "RevokeRelay", "SessionCounts", "close_all_sessions", "list_sessions",
           "live_apps", "revoke", "session_counts", "set_revoke_relay"]

log = logging.getLogger("quartdash")

Hook = Callable[..., Any]

# Every LiveApp in the process, so a server shutdown can close all sessions.
live_apps: weakref.WeakSet[LiveApp] = weakref.WeakSet()

RemoteFactory = Callable[[str, SessionRegistry], RemoteSessions | None]
# Set by quartdash.broadcast: reaches sessions held by other workers (Redis).
_remote_factory: list[RemoteFactory] = []


def set_remote_sessions(factory: RemoteFactory) -> None:
    """Install what finds sessions in other processes (the broadcast relay)."""
    _remote_factory[:] = [factory]


# Seconds revoke() waits for the close frames of this process's sessions.
REVOKE_WAIT = 3.0


class RevokeRelay(Protocol):
    """Tells every other worker process to revoke an identity
    (:mod:`quartdash.broadcast` installs one: its control channel, memory:// or
    Redis; not to be confused with the resume relay, ``RemoteSessions``)."""

    async def revoke(self, app: str | None, identity: str, code: int, reason: str) -> None:
        """Publish the revocation; ``app`` is :attr:`LiveApp.app_key` (None: every
        app). Raises ``ConnectionError`` when it could not be sent."""
        ...


_revoke_relay: RevokeRelay | None = None


def set_revoke_relay(relay: RevokeRelay | None) -> None:
    """Install what :meth:`LiveApp.revoke` uses to reach the other workers."""
    global _revoke_relay
    _revoke_relay = relay


class LiveApp:
    """One Dash app's live side (``app.live`` / ``bp.live``).

    ``sessions`` holds its open sessions (one per browser connection); every
    signal about the app is sent with this object as sender.
    """

    def __init__(self, dash_app: dash.Dash, config: WebSocketConfig) -> None:
        self.dash = dash_app
        self._config = config
        self.executor = ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix="quartdash-callback"
        )
        self.registry = SessionRegistry()
        # What the sessions that already ended pushed and sent (session_counts).
        self.closed_props_pushed = 0
        self.closed_frames_sent = 0
        self.connect_hooks: list[Hook] = []
        self.own_message_hooks: list[Hook] = []
        self.shutdown_grace = config.shutdown_grace
        self.prop_policy = PropPolicy(config.trusted_props)
        # Per session: how many of its def callbacks may hold a pool thread.
        self._slots: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())
        self.inline = InlinePolicy(config.inline_threshold, self.executor)
        # HTTP callbacks, worked out once each (callback_plan); keyed by callback
        # id, so bounded by the app's callbacks. False: all of them Dash's way.
        self.use_plans = True
        self._plans: dict[str, tuple[Any, CallbackPlan | None]] = {}
        live_apps.add(self)

    @property
    def config(self) -> WebSocketConfig:
        return self._config

    @property
    def app_key(self) -> str:
        """This app's name among the apps of a deployment, its name and URL prefix:
        the same in every worker running it (the relays route by it)."""
        config = self.dash.config
        return f"{config.name}{config.requests_pathname_prefix}"

    def connect_remote(self) -> None:
        """Reach sessions held by other workers, once (when broadcast uses Redis)."""
        if self.registry.remote is None and _remote_factory:
            self.registry.remote = _remote_factory[0](self.app_key, self.registry)

    @property
    def sessions(self) -> set[Session]:
        """The open sessions (one per browser connection, detached ones included)."""
        return self.registry.all

    # -- enumerate and control ----------------------------------------------------------------

    def list_sessions(self) -> list[SessionInfo]:
        """A snapshot of every live session of this app in this process (detached
        ones included), oldest first: identity, remote address, connected-at,
        tabs, running callbacks, bytes in and out. Other workers have their own
        (presence spans them: docs/live-sessions.md)."""
        infos = [session.snapshot(self.app_key) for session in list(self.sessions)]
        return sorted(infos, key=lambda info: info.connected_at)

    def session(self, session_id: str) -> Session | None:
        """The live session with this id (:attr:`SessionInfo.id`) in this process."""
        return self.registry.by_id(session_id)

    async def close_session(self, session_id: str, code: int = CloseCode.NORMAL,
                            reason: str = "Closed by the server") -> bool:
        """Close one session of this process (False: no such session here)."""
        session = self.session(session_id)
        if session is None:
            return False
        await session.close(code, reason)
        return True

    async def revoke(self, identity: str | Identity, *, code: int = CloseCode.REVOKED,
                     reason: str = "Revoked") -> int:
        """Close every session of ``identity`` (an id, or an :class:`Identity`: its
        id) of this app, in this process and in every other worker.

        Closes with 4003 by default: quartdash's worker does not reconnect on
        its own after it, and the sessions cannot be resumed. Revoke the
        credentials too (log the user out, drop their server-side session),
        or the user's next action connects again with them. Returns how
        many sessions of this process it closed, once their close frames
        went out (bounded); the other workers are told through the broadcast
        backend (with Redis: within milliseconds) and close theirs on
        receipt. Raises ``ConnectionError`` when the broadcast backend could
        not send it (Redis unreachable): this process's sessions are closed
        anyway.
        """
        identity_id = identity.id if isinstance(identity, Identity) else identity
        closing = self.revoke_local(identity_id, code, reason)
        if _revoke_relay is not None:
            await _revoke_relay.revoke(self.app_key, identity_id, code, reason)
        await _closed(closing)
        return len(closing)

    def revoke_local(self, identity_id: str, code: int = CloseCode.REVOKED,
                     reason: str = "Revoked") -> list[Session]:
        """Start closing the sessions of ``identity_id`` in this process only;
        returns them (what a relay calls when another worker revokes)."""
        loop = asyncio.get_running_loop()
        # (A session of another event loop, as tests leave behind, is not ours to close.)
        sessions = [s for s in self.registry.of_identity(identity_id) if s.loop is loop]
        for session in sessions:
            _keep(asyncio.ensure_future(session.close(code, reason)))
        return sessions

    @property
    def debug(self) -> bool:
        """True when dev tools are on: tracebacks may reach the browser."""
        error_mode = getattr(self.dash.backend, "error_mode", "hide")
        return dash_internals.dev_tools_ui(self.dash) or error_mode != "hide"

    def plan_for(self, callback_id: str, entry: Mapping[str, Any]) -> CallbackPlan | None:
        """The HTTP plan of a callback; None: run it Dash's way."""
        if not self.use_plans:
            return None
        cached = self._plans.get(callback_id)
        if cached is None or cached[0] is not entry.get("callback"):
            # New, or registered again (a dynamic callback): read it (again).
            cached = self._plans[callback_id] = (entry.get("callback"), CallbackPlan.of(entry))
        return cached[1]

    # -- what a session asks (types.SessionApp) ---------------------------------------------

    def callback_info(self, callback_id: str) -> CallbackInfo | None:
        entry = dash_internals.callback_entry(self.dash, callback_id)
        if entry is None:
            return None
        return CallbackInfo(callback_id, bool(entry.get("websocket")),
                            dash_internals.retrigger_policy(entry))

    def request_problem(self, callback_id: str, payload: Mapping[str, Any]) -> str | None:
        entry = dash_internals.callback_entry(self.dash, callback_id)
        if entry is None:
            return "no such callback"
        return dash_internals.request_problem(callback_id, entry, payload)

    def persistent_callback_ids(self) -> Sequence[str]:
        return [spec["output"] for spec in dash_internals.callback_list(self.dash)
                if spec.get("persistent")]

    async def run_callback(self, payload: dict[str, Any], handle: Any,
                           connection: Mapping[str, Any]) -> bytes | None:
        ctx = dash_internals.websocket_callback_context(
            payload, handle=handle, response=self.dash.backend.response_adapter(),
            connection=connection)
        try:
            dash_internals.set_current_app(self.dash)
            stream = dash_internals.bind_stream(self.dash, payload, ctx)
            if stream is not None:
                return await streaming.run_websocket(stream, handle, self.executor,
                                                     self._sync_slots(handle.session))
            call, is_async = prepare_callback(self.dash, payload, ctx)
            if is_async:
                # Awaited here rather than in invoke(): a persistent callback
                # keeps its whole stack alive, one frame less per session.
                data = await call()
            else:
                # A connection gets a share of the thread pool, not all of it
                # (held until the thread returns, even if this task is cancelled).
                data = await invoke(call, False, self.executor,
                                    self._sync_slots(handle.session))
        except (PreventUpdate, WebsocketDisconnected):
            return None
        return data.encode() if isinstance(data, str) else data

    def _sync_slots(self, session: Any) -> asyncio.Semaphore:
        slots = self._slots.get(session)
        if slots is None:
            slots = self._slots[session] = asyncio.Semaphore(self.config.sync_callback_slots)
        return slots

    def failure_message(self, error: Exception) -> str:
        if self.debug:
            detail = "".join(traceback.format_exception(error))
            return f"{type(error).__name__}: {error}\n\n{detail}"
        # Outside debug mode the client learns that it failed, never how.
        return "Callback error (see the server log)"

    def prepare_prop(self, component_id: str, prop: str, value: Any) -> tuple[Any, bool]:
        value = self.prop_policy.check(component_id, prop, value)
        return value, isinstance(value, Patch)

    def disconnected(self, reason: str) -> Exception:
        return WebsocketDisconnected(reason)

    @property
    def has_message_hooks(self) -> bool:
        return bool(self.own_message_hooks) or bool(
            dash_internals.hook_functions(self.dash, "websocket_message"))

    async def check_message(self, connection: Mapping[str, Any],
                            raw: dict[str, Any]) -> Verdict | None:
        return await self.run_hooks(self.message_hooks(), connection.get("websocket"), raw)

    def session_opened(self, session: Any) -> None:
        self.registry.add(session)

    def session_closed(self, session: Any) -> None:
        self.registry.discard(session)
        self.closed_props_pushed += session.props_pushed
        self.closed_frames_sent += session.frames_sent

    # -- hooks -----------------------------------------------------------------------------

    def message_hooks(self) -> list[Hook]:
        return [*dash_internals.hook_functions(self.dash, "websocket_message"),
                *self.own_message_hooks]

    def all_connect_hooks(self) -> list[Hook]:
        return [*dash_internals.hook_functions(self.dash, "websocket_connect"),
                *self.connect_hooks]

    async def run_connect_hooks(self, ws: Any) -> tuple[Verdict | None, Identity | None]:
        """Run the connect hooks: a refusal, or None and the identity they gave
        (a hook returning an :class:`Identity` accepts the connection as that
        identity; when several do, the last one counts)."""
        identity: Identity | None = None

        def note(result: Any) -> Any:
            nonlocal identity
            if isinstance(result, Identity):
                identity = result
                return None
            return result

        verdict = await self.run_hooks(self.all_connect_hooks(), ws, _result=note)
        return verdict, (None if verdict is not None else identity)

    async def run_hooks(self, hooks: list[Hook], ws: Any, *args: Any,
                        _result: Callable[[Any], Any] | None = None) -> Verdict | None:
        """Dash's hook contract: ``False`` rejects with 4001, ``(code, reason)``
        rejects with that code, anything else accepts; a hook that raises rejects
        (the error is logged, not sent). ``_result`` sees each result first."""
        for hook in hooks:
            try:
                result = hook(ws, *args)
                if inspect.isawaitable(result):
                    result = await result
                if _result is not None:
                    result = _result(result)
            except Exception:
                log.exception("WebSocket hook %r raised; rejecting", hook)
                return (CloseCode.REJECTED, "Rejected")
            if result is False:
                return (CloseCode.REJECTED, "Rejected by hook")
            if isinstance(result, tuple) and len(result) == 2:
                return (int(result[0]), str(result[1]))
        return None

    # -- lifecycle ----------------------------------------------------------------------------

    async def close_all(self, code: int = CloseCode.GOING_AWAY, reason: str = "Server shutdown",
                        grace: float | None = None) -> None:
        """Close every session of this app and wait for their callbacks to end."""
        if grace is not None:
            self.shutdown_grace = grace
        await self.registry.close_accepting(code, reason)
        sessions = list(self.sessions)
        for session in sessions:
            session.request_close(code, reason)
        if sessions:
            waits = [asyncio.ensure_future(session.wait_closed()) for session in sessions]
            await asyncio.wait(waits, timeout=(grace or self.config.shutdown_grace) * 2 + 1)
            for wait in waits:
                wait.cancel()

    def __repr__(self) -> str:
        return f"<LiveApp {self.dash.config.name!r} sessions={len(self.sessions)}>"


@dataclass(frozen=True)
class SessionCounts:
    """What :func:`session_counts` returns: a snapshot, not a live view."""

    sessions: int
    """Open WebSocket connections (a browser shares one per app among its tabs)."""
    tabs: int
    """Tabs (dash-renderers) joined on those connections."""
    props_pushed: int
    """``set_props`` values pushed since the apps started, ended sessions included:
    a counter that only grows; its change over time is the push rate."""
    frames_sent: int
    """WebSocket frames sent since the apps started, ended sessions included."""


def session_counts(*apps: Any) -> SessionCounts:
    """Count the live sessions and tabs of ``apps``, and what they pushed.

    ``apps``: ``quartdash.Dash`` or ``DashBlueprint`` objects (or their
    ``.live``); none means every quartdash app in this process. Costs one
    pass over the open sessions: call it on the event loop, e.g. once a
    second from a persistent callback, rather than per push.
    """
    lives = [_live_of(app) for app in apps] if apps else list(live_apps)
    sessions = tabs = pushed = frames = 0
    for live in lives:
        pushed += live.closed_props_pushed
        frames += live.closed_frames_sent
        for session in list(live.sessions):
            sessions += 1
            tabs += len(session.renderers)
            pushed += session.props_pushed
            frames += session.frames_sent
    return SessionCounts(sessions, tabs, pushed, frames)


def _live_of(app: Any) -> LiveApp:
    live = app if isinstance(app, LiveApp) else getattr(app, "live", None)
    if not isinstance(live, LiveApp):
        raise TypeError(f"expected quartdash apps or their .live, not {app!r}")
    return live


def list_sessions(*apps: Any) -> list[SessionInfo]:
    """:meth:`LiveApp.list_sessions` of ``apps`` (none: every quartdash app in
    this process), oldest first."""
    lives = [_live_of(app) for app in apps] if apps else list(live_apps)
    infos = [info for live in lives for info in live.list_sessions()]
    return sorted(infos, key=lambda info: info.connected_at)


async def revoke(identity: str | Identity, *apps: Any, code: int = CloseCode.REVOKED,
                 reason: str = "Revoked") -> int:
    """:meth:`LiveApp.revoke` for ``apps``; none: every quartdash app, in this
    process and every other worker. Returns how many sessions of this process
    it closed."""
    if apps:
        counts = [await _live_of(app).revoke(identity, code=code, reason=reason)
                  for app in apps]
        return sum(counts)
    identity_id = identity.id if isinstance(identity, Identity) else identity
    closing = [s for live in list(live_apps) for s in live.revoke_local(identity_id, code,
                                                                          reason)]
    if _revoke_relay is not None:
        await _revoke_relay.revoke(None, identity_id, code, reason)
    await _closed(closing)
    return len(closing)


async def _closed(sessions: list[Session]) -> None:
    """Wait (at most REVOKE_WAIT s) until each session's close frame went out."""
    if not sessions:
        return
    waits = [asyncio.ensure_future(session.close_frame_sent()) for session in sessions]
    await asyncio.wait(waits, timeout=REVOKE_WAIT)
    for wait in waits:
        wait.cancel()


_closing: set[asyncio.Future[None]] = set()


def _keep(task: asyncio.Future[None]) -> None:
    """Hold a close until it ends (the loop keeps only weak references)."""
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def close_all_sessions(code: int = CloseCode.GOING_AWAY, reason: str = "Server shutdown",
                             grace: float | None = None) -> None:
    """Close every quartdash session in this process (server shutdown).

    ``grace`` defaults to each app's ``websocket_shutdown_grace``; keep that
    below hypercorn's ``--graceful-timeout`` (3 s by default), which cancels
    whatever is still running when it expires.
    """
    lives = list(live_apps)
    if lives:
        await asyncio.gather(*(live.close_all(code, reason, grace) for live in lives))
