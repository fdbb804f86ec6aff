"""quartdash: host live, server-push Dash apps on Quart.

* :class:`Dash` — a drop-in ``dash.Dash`` that owns a Quart app (``app.asgi``).
* :class:`DashBlueprint` — a Dash app as a Quart blueprint.

Callbacks run as asyncio tasks; WebSocket callbacks stream ``set_props``,
read the page with ``ctx.websocket.get_prop`` and run persistently per tab.
"""

__version__ = "0.1.0"

from dash.exceptions import WebsocketDisconnected

# broadcast: imported with the package so its hub hears session signals in every worker.
from . import broadcast
from .app import Dash
from .blueprint import DashBlueprint
from .config import WebSocketConfig
from .handle import WebSocketHandle
from .protocol import CloseCode, ErrorCode, ProtocolError

__all__ = [
    "CloseCode",
    "Dash",
    "DashBlueprint",
    "ErrorCode",
    "ProtocolError",
    "WebSocketConfig",
    "WebSocketHandle",
    "WebsocketDisconnected",
    "__version__",
    "broadcast",
]
