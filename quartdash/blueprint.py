"""``DashBlueprint``: one Dash app as a Quart blueprint.

Register several on one Quart app, at different prefixes, next to ordinary
Quart routes: each carries its own layout, callbacks, assets, error handlers
and WebSocket route, with no cross-talk::

    live = DashBlueprint("live", __name__, url_prefix="/live", websocket_callbacks=True)
    live.layout = html.Div(...)

    @live.callback(Output("o", "children"), Input("b", "n_clicks"), websocket=True)
    async def update(n): ...

    asgi.register_blueprint(live)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quart import Blueprint

from .config import WebSocketConfig
from .hosting import HostedDash, QuartdashServer, attach
from .hosting.serving import install_shutdown_hooks

if TYPE_CHECKING:
    from flask.sansio.blueprints import BlueprintSetupState

# Attributes read and written on the Dash app rather than the blueprint.
_DASH_ATTRIBUTES = frozenset({"layout", "title", "index_string", "validation_layout",
                              "update_title", "_favicon"})


class DashBlueprint(Blueprint):
    """A Quart blueprint that serves one Dash app under ``url_prefix``.

    ``name`` and ``import_name`` are the blueprint's; every other keyword
    argument goes to ``dash.Dash`` (``title``, ``websocket_callbacks``,
    ``websocket_allowed_origins``...) or sets a quartdash limit
    (``websocket_max_message_size``...). The Dash app is ``bp.dash``; its
    signals' sender is ``bp.live``. See docs/hosting.md.
    """

    def __init__(self, name: str, import_name: str, url_prefix: str | None = None,
                 **dash_kwargs: Any) -> None:
        super().__init__(name, import_name, url_prefix=url_prefix)
        # One per registration: routes Dash adds after it (see add_late_url_rule).
        self.setup_states: list[BlueprintSetupState] = []
        for key in ("server", "backend", "url_base_pathname", "routes_pathname_prefix"):
            if key in dash_kwargs:
                raise TypeError(f"DashBlueprint sets {key!r} itself; use url_prefix")
        prefix = "/" + (url_prefix or "").strip("/")
        self._mount_prefix = prefix.rstrip("/")
        ws_config = WebSocketConfig.pop_from(dash_kwargs)
        requests_prefix = dash_kwargs.pop("requests_pathname_prefix", None)
        if requests_prefix is None:
            requests_prefix = prefix.rstrip("/") + "/"
        object.__setattr__(self, "dash", HostedDash(
            name=import_name,
            server=False,
            backend=QuartdashServer,
            routes_pathname_prefix="/",
            requests_pathname_prefix=requests_prefix,
            **dash_kwargs,
        ))
        self.live = attach(self.dash, ws_config)
        self.dash.init_app(self)

    # -- the Dash side ---------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the blueprint lacks: the Dash app's API
        # (get_asset_url, get_relative_path, enable_dev_tools, callback_map...).
        if name == "dash":
            raise AttributeError(name)
        return getattr(self.dash, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _DASH_ATTRIBUTES:
            setattr(self.dash, name, value)
        else:
            super().__setattr__(name, value)

    # Properties, not wrapper methods: Dash names a callback without inputs after
    # the line that declared it, so the call must come from the user's frame
    # (through a wrapper every such callback got the same id and replaced the last).

    @property
    def callback(self) -> Callable[..., Any]:
        """``dash.Dash.callback`` for this blueprint's app (``websocket=``, ``persistent=``...)."""
        return self.dash.callback

    @property
    def clientside_callback(self) -> Callable[..., Any]:
        """``dash.Dash.clientside_callback`` for this blueprint's app."""
        return self.dash.clientside_callback

    # -- WebSocket hooks (the Quart-native spelling of dash.hooks.websocket_*) -----------

    def websocket_connect(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``func(ws)`` to accept or reject each connection of this app.

        Return ``False`` (close 4001) or ``(code, reason)`` to reject, a
        :class:`quartdash.Identity` to accept the connection as that user
        (docs/live-sessions.md); may be async. Runs for every new socket, a
        resumed session's included.
        """
        self.live.connect_hooks.append(func)
        return func

    def websocket_message(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``func(ws, message)`` run on every inbound message; same contract."""
        self.live.own_message_hooks.append(func)
        return func

    # -- registration ---------------------------------------------------------------------

    def register(self, app: Any, options: dict[str, Any]) -> None:
        url_prefix = options.get("url_prefix")
        if url_prefix is not None and url_prefix.rstrip("/") != self._mount_prefix:
            raise ValueError(
                f"DashBlueprint {self.name!r} was built for url_prefix={self._mount_prefix!r}; "
                f"it cannot be registered at {url_prefix!r} (the page needs its own URLs)"
            )
        install_shutdown_hooks(app)
        super().register(app, options)

    def make_setup_state(self, app: Any, options: dict[str, Any],
                         first_registration: bool = False) -> BlueprintSetupState:
        state = super().make_setup_state(app, options, first_registration)
        self.setup_states.append(state)
        return state

    def add_late_url_rule(self, rule: str, **options: Any) -> None:
        """``add_url_rule``, also once registered: Dash adds some routes when
        asked (``setup_apis()``, ``dash.register_page(redirect_from=...)``),
        which may be after ``register_blueprint``. Such a route goes to every
        app the blueprint is registered on, under its prefix and as its own
        (its hooks and error handlers apply), as if added before."""
        if not self._got_registered_once:
            self.add_url_rule(rule, **options)
            return
        for state in self.setup_states:
            state.add_url_rule(rule, **options)
