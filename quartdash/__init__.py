"""quartdash: host live, server-push Dash apps on Quart.

* :class:`Dash` — a drop-in ``dash.Dash`` that owns a Quart app (``app.asgi``).
* :class:`DashBlueprint` — a Dash app as a Quart blueprint.

Callbacks run as asyncio tasks; WebSocket callbacks stream ``set_props``,
read the page with ``ctx.websocket.get_prop`` and run persistently per tab.
"""

__version__ = "0.1.0"

import dash as _dash

from ._dash_version import check_dash_version

check_dash_version(_dash.__version__)

from dash.exceptions import WebsocketDisconnected  # noqa: E402

# broadcast: imported with the package so its hub hears session signals in every worker.
from . import broadcast  # noqa: E402
from .app import Dash  # noqa: E402
from .blueprint import DashBlueprint  # noqa: E402
from .config import WebSocketConfig  # noqa: E402
from .hosting.sanitize import PropPolicy, UnsafePropError, text, trusted  # noqa: E402
from .session.handle import WebSocketHandle  # noqa: E402
from .session.info import SessionInfo  # noqa: E402
from .types import Identity  # noqa: E402
from .wire.protocol import CloseCode, ErrorCode, ProtocolError  # noqa: E402

__all__ = [
    "CloseCode",
    "Dash",
    "DashBlueprint",
    "ErrorCode",
    "Identity",
    "PropPolicy",
    "ProtocolError",
    "SessionInfo",
    "UnsafePropError",
    "WebSocketConfig",
    "WebSocketHandle",
    "WebsocketDisconnected",
    "__version__",
    "broadcast",
    "text",
    "trusted",
]
