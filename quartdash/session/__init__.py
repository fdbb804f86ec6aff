"""The session core: one browser connection, independent of Quart and Dash.

* :class:`~quartdash.session.session.Session` — a connection's life, its
  tabs, inbound messages and outbound frames;
* :mod:`~quartdash.session.runs` — the callbacks it runs;
* :mod:`~quartdash.session.reads` — the ``get_prop`` questions it asked;
* :mod:`~quartdash.session.sender` — its outbound side;
* :class:`~quartdash.session.handle.WebSocketHandle` — ``ctx.websocket``;
* :class:`~quartdash.session.info.SessionInfo` — a session's snapshot.

It talks to its app and its socket only through the Protocols of
:mod:`quartdash.types`, so it can be built and driven with fakes.
"""

from .handle import WebSocketHandle
from .info import SessionInfo
from .records import Renderer, Run
from .session import Session, State

__all__ = ["Renderer", "Run", "Session", "SessionInfo", "State", "WebSocketHandle"]
