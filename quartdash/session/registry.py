"""The sessions of one app, and how a new connection finds its session.

A connection either starts a fresh session or, when its first message is
``resume``, asks for one that lost its socket: the registry finds it by
token, checks that the new connection is the session's (its binding:
origin, cookies and identity, see :func:`binding`), and hands it the new
transport. When that is impossible the
client is told why (``session_lost``) and gets a fresh session on the same
connection: loss is always signalled.

A token is single-use: every resume issues the next one. Tokens of sessions
that ended are remembered for a while with the reason, so that a late
resume learns *why* (expired, over budget) rather than just "unknown".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..types import Identity, SessionApp, Transport
from ..wire import protocol
from ..wire.protocol import LostReason

if TYPE_CHECKING:
    from .session import Session

__all__ = ["RemoteSessions", "SessionRegistry", "accept", "binding", "open_session"]

# Tokens of ended sessions remembered (with why they ended), at most.
REMEMBERED = 10_000
# Seconds a new connection has to say it resumes (its first message).
FIRST_MESSAGE_WAIT = 2.0


def binding(origin: str, cookie: str, identity: Identity | None) -> str:
    """What a connection must share with a session to resume it: the page's
    origin, the cookies it was opened with and the identity the app's connect
    hooks gave it (hashed: kept, never shown). The hooks run again for every
    new connection, so a changed or revoked identity does not get the old
    session back (``session_lost`` ``forbidden``)."""
    who = "" if identity is None else identity.key
    material = f"{origin}\n{cookie}\n{who}"
    return hashlib.sha256(material.encode()).hexdigest()


class RemoteSessions(Protocol):
    """Sessions held by other processes (a Redis relay between workers)."""

    async def attach(self, token: str, last_seq: int, binding: str,
                     transport: Transport) -> LostReason | None:
        """Serve ``transport`` for the session ``token`` held elsewhere, until the
        connection ends; or say why that is impossible."""
        ...

    def announce(self, token: str) -> None:
        """``token`` resumes a session of this process: let the others find it."""
        ...

    def withdraw(self, token: str) -> None:
        """``token`` no longer resumes anything here."""
        ...


class SessionRegistry:
    """The live sessions of one app, and the tokens that resume them."""

    __slots__ = ("_ended", "accepting", "all", "by_token", "remote")

    def __init__(self) -> None:
        self.all: set[Session] = set()
        self.accepting: set[Transport] = set()  # connections not yet sessions (accept)
        self.by_token: dict[str, Session] = {}
        self._ended: dict[str, LostReason] = {}
        self.remote: RemoteSessions | None = None

    def add(self, session: Session) -> None:
        self.all.add(session)

    def by_id(self, session_id: str) -> Session | None:
        """The live session with this public id (``Session.id``), if any."""
        for session in self.all:
            if session.id == session_id:
                return session
        return None

    def of_identity(self, identity_id: str) -> list[Session]:
        """The live sessions (detached ones included) whose identity has this id."""
        return [session for session in self.all
                if session.identity is not None and session.identity.id == identity_id]

    def discard(self, session: Session, reason: LostReason = LostReason.UNKNOWN) -> None:
        self.all.discard(session)
        token = session.token
        if token is not None and self.by_token.get(token) is session:
            del self.by_token[token]
            self._remember(token, reason)
            if self.remote is not None:
                self.remote.withdraw(token)

    async def close_accepting(self, code: int, reason: str) -> None:
        """Close the connections that are not sessions yet (server shutdown)."""
        transports, self.accepting = list(self.accepting), set()
        for transport in transports:
            with contextlib.suppress(TimeoutError, OSError, RuntimeError):
                async with asyncio.timeout(2):
                    await transport.close(code, reason)

    def issue_token(self, session: Session) -> str:
        """A new token for ``session``; the one it had stops working."""
        old = session.token
        if old is not None and self.by_token.get(old) is session:
            del self.by_token[old]
            if self.remote is not None:
                self.remote.withdraw(old)
        token = secrets.token_urlsafe(32)
        self.by_token[token] = session
        if self.remote is not None:
            self.remote.announce(token)
        return token

    def find(self, token: str, binding: str) -> tuple[Session | None, LostReason]:
        """The session ``token`` resumes, if ``binding`` is its; else why not."""
        session = self.by_token.get(token)
        if session is None:
            return None, self._ended.get(token, LostReason.UNKNOWN)
        if not hmac.compare_digest(session.binding, binding):
            return None, LostReason.FORBIDDEN
        return session, LostReason.UNKNOWN

    def _remember(self, token: str, reason: LostReason) -> None:
        self._ended[token] = reason
        while len(self._ended) > REMEMBERED:
            del self._ended[next(iter(self._ended))]


async def accept(app: SessionApp, registry: SessionRegistry, transport: Transport,
                 connection: Mapping[str, Any], binding: str, *,
                 identity: Identity | None = None) -> None:
    """Serve one new connection until it ends: a fresh session, or the one its
    first message asks to resume. ``identity`` is the new connection's (the
    app's connect hooks); ``binding`` (:func:`binding`) includes it."""
    serving = await open_session(app, registry, transport, connection, binding,
                                 identity=identity)
    if serving is not None:
        await serving


async def open_session(app: SessionApp, registry: SessionRegistry, transport: Transport,
                       connection: Mapping[str, Any], binding: str, *,
                       identity: Identity | None = None
                       ) -> Coroutine[Any, Any, None] | None:
    """:func:`accept` in two steps: returns the coroutine that serves a fresh
    session, for the caller to await (so this frame is not kept under every
    connection for its whole life), or None when the connection was already
    served here (a resume) or closed meanwhile."""
    from .session import Session

    # A worker that resumes says so at once; any other client gets a session
    # after FIRST_MESSAGE_WAIT even if it has nothing to say yet.
    first: str | bytes | None = None
    registry.accepting.add(transport)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_MESSAGE_WAIT):
                first = await transport.receive()
    except BaseException:
        registry.accepting.discard(transport)
        raise
    if transport not in registry.accepting:
        return None  # closed meanwhile: the server is stopping (close_accepting)
    registry.accepting.discard(transport)
    request = None if first is None else protocol.resume_request(
        first, app.config.max_message_size)
    if request is None:
        return Session(app, connection, binding=binding, identity=identity).serve(transport,
                                                                                   first)
    token, last_seq = request
    session, reason = registry.find(token, binding)
    if session is not None:
        resumed = await session.resume(transport, last_seq)
        if resumed is None:
            return None
        reason = resumed
    elif reason is LostReason.UNKNOWN and registry.remote is not None:
        outcome = await registry.remote.attach(token, last_seq, binding, transport)
        if outcome is None:
            return None
        reason = outcome
    # Continuity is lost: say so, then carry on as a fresh session the
    # client may resume later.
    fresh = Session(app, connection, binding=binding, identity=identity)
    return fresh.serve(transport, lost=reason)
