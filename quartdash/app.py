"""``quartdash.Dash``: a drop-in for ``dash.Dash`` that owns a Quart app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Quart

from .config import WebSocketConfig
from .hosting import HostedDash, LiveApp, QuartdashServer, attach, dash_internals
from .hosting.serving import install_shutdown_hooks, run


class Dash(HostedDash):
    """``dash.Dash``, served natively async by Quart.

    Takes every ``dash.Dash`` keyword argument (``websocket_callbacks``,
    ``websocket_allowed_origins``, ``websocket_inactivity_timeout``...) plus
    quartdash's limits (``websocket_max_message_size`` and the others in
    docs/reliability.md). ``server`` may be an existing Quart app to mount
    on; by default a new one is made. Serve it with ``hypercorn module:asgi``
    (``app.asgi`` is the Quart app, also ``app.server``) or ``app.run()``.
    """

    def __init__(self, name: str | None = None, server: Quart | bool = True,
                 **kwargs: Any) -> None:
        if "backend" in kwargs:
            raise TypeError("quartdash.Dash is its own backend: drop the 'backend' argument")
        ws_config = WebSocketConfig.pop_from(kwargs)
        if name is None:
            name = dash_internals.caller_name()
        super().__init__(name=name, server=False, backend=QuartdashServer, **kwargs)
        attach(self, ws_config)
        if server is False:
            return  # call init_app(quart_app) later
        target = server if isinstance(server, Quart) else self.server
        self.init_app(target)

    def init_app(self, app: Any = None, **kwargs: Any) -> None:
        if app is not None and not isinstance(app, Quart):
            raise TypeError(f"quartdash.Dash mounts on a Quart app, not {type(app).__name__}")
        super().init_app(app, **kwargs)
        install_shutdown_hooks(self.server)

    @property
    def asgi(self) -> Quart:
        """The Quart (ASGI) application: ``hypercorn module:asgi``."""
        return self.server

    @property
    def live(self) -> LiveApp:
        """This app's live side: its sessions, hooks, and the signals' sender."""
        return self.quartdash_live

    def websocket_connect(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``func(ws)`` to accept or reject each connection of this app
        (``DashBlueprint.websocket_connect``): return ``False`` (close 4001) or
        ``(code, reason)`` to reject, a :class:`quartdash.Identity` to accept the
        connection as that user; may be async."""
        self.live.connect_hooks.append(func)
        return func

    def websocket_message(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``func(ws, message)`` run on every inbound message; same contract."""
        self.live.own_message_hooks.append(func)
        return func

    def run(self, host: str | None = None, port: int | str | None = None,  # type: ignore[override]
            debug: bool | None = None, **kwargs: Any) -> None:
        """Development server: hypercorn under the hood, or
        ``server="uvicorn"`` / ``server="granian"`` (the ``servers`` extra).
        Production: ``hypercorn module:asgi`` (docs/deployment.md)."""
        super().run(host=host, port=port, debug=debug, **kwargs)


__all__ = ["Dash", "run"]
