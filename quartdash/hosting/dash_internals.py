"""Every private Dash attribute quartdash touches, in one place.

quartdash drives Dash's callback internals (``_prepare_callback``,
``_execute_callback``, ``_setup_server``, the backend interface...), which
change between minor releases without notice. Everything of that kind is
reached through this module, so a Dash upgrade is reviewed in one file; and
rather than misbehave subtly, quartdash refuses to import with a Dash
outside the tested range (:mod:`quartdash._dash_version`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import dash
from dash import _validate
from dash._callback import GLOBAL_CALLBACK_MAP
from dash._callback_context import context_value
from dash._get_app import app_context
from dash._utils import (
    AttributeDict,
    get_caller_name,
    inputs_to_dict,
    split_callback_id,
    stringify_id,
)
from dash.exceptions import DependencyException

from .. import __version__
from ..config import WebSocketConfig

__all__ = [
    "AttributeDict",
    "HostedDash",
    "add_url",
    "callback_entry",
    "callback_list",
    "caller_name",
    "current_callback_context",
    "dev_tools_ui",
    "hook_functions",
    "http_callback_context",
    "js_path_served",
    "prepare_callback",
    "request_problem",
    "set_current_app",
    "setup_server",
    "stringify_id",
    "websocket_callback_context",
]

class HostedDash(dash.Dash):
    """``dash.Dash`` wired to quartdash: its own backend, SharedWorker and page helper."""

    quartdash_config: WebSocketConfig
    quartdash_live: Any  # its hosting.live.LiveApp (typed loosely: that module imports this one)
    _quartdash_mounted = False

    def init_app(self, app: Any = None, **kwargs: Any) -> None:
        super().init_app(app, **kwargs)
        self._quartdash_mounted = True
        self.setup_startup_routes()

    def setup_startup_routes(self) -> None:
        # Dash registers its startup routes (Dash.add_startup_route) at the end
        # of __init__, once. Both front doors build the app with server=False
        # and mount it later, so there they would land on the throwaway Quart
        # app Dash made: register them when the app is mounted instead.
        if self._quartdash_mounted:
            super().setup_startup_routes()

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = super()._config()
        # A page with no WebSocket callback opens no socket at all.
        uses_ws = self.quartdash_config.enabled or any(
            spec.get("websocket") or spec.get("persistent") for spec in self._callback_list
        )
        if not uses_ws:
            config.pop("websocket", None)
        return config

    def _setup_server(self) -> None:
        first = not self._got_first_request["setup_server"]
        super()._setup_server()
        if first:
            # A persistent callback only makes sense over the WebSocket: mark
            # it so, or the renderer would post it over HTTP (ctx.websocket None).
            for spec in self._callback_list:
                if spec.get("persistent"):
                    spec["websocket"] = True
                    self.callback_map[spec["output"]]["websocket"] = True

    def _generate_scripts_html(self) -> str:
        # The page helper must run before dash-renderer creates its worker.
        helper = (f'<script src="{self.config.requests_pathname_prefix}'
                  f'_quartdash/page.js?v={__version__}"></script>')
        return helper + str(super()._generate_scripts_html())

    def _get_worker_url(self) -> str:
        config = self.quartdash_config
        # The worker waits one interval for a heartbeat's ack (1 to 10 s): a
        # socket that died silently is noticed, and resumed, that soon.
        ack_timeout = min(10_000, max(1_000, config.heartbeat_interval))
        return (
            f"{self.config.requests_pathname_prefix}_quartdash/ws-worker.js"
            f"?v={__version__}&heartbeat={config.heartbeat_interval}"
            f"&heartbeat_timeout={ack_timeout}&inactivity={config.inactivity_timeout}"
        )


# --- the app and its callbacks ------------------------------------------------------------


def set_current_app(dash_app: dash.Dash) -> None:
    """What ``dash.get_app()`` returns in this context."""
    app_context.set(dash_app)


def add_url(dash_app: dash.Dash, rule: str, view: Callable[..., Any],
            methods: list[str] | None = None) -> None:
    """Dash's ``_add_url``: a route under the app's routes prefix."""
    dash_app._add_url(rule, view, methods=methods or ["GET"])


def setup_server(dash_app: dash.Dash) -> None:
    """Dash's once-per-app setup (adopts ``dash.callback`` callbacks, etc.)."""
    dash_app._setup_server()


def callback_list(dash_app: dash.Dash) -> list[dict[str, Any]]:
    """Every callback spec of the app, after setup."""
    dash_app._setup_server()
    return list(dash_app._callback_list)


def callback_entry(dash_app: dash.Dash, callback_id: str) -> dict[str, Any] | None:
    """The app's ``callback_map`` entry for ``callback_id``; a global
    ``dash.callback`` not yet adopted by the app joins it first."""
    entry = dash_app.callback_map.get(callback_id)
    if entry is None and callback_id in GLOBAL_CALLBACK_MAP:
        dash_app._setup_server()
        entry = dash_app.callback_map.get(callback_id)
    return entry


def request_problem(callback_id: str, entry: Mapping[str, Any],
                    body: Mapping[str, Any]) -> str | None:
    """Why a callback request does not fit its callback, or None.

    Checked before the callback runs: how many inputs and state values, and
    which outputs (each property, each plain id; a pattern-matching output
    may stand for a list), the way Dash will read them.
    """
    for key in ("inputs", "state"):
        want, got = len(entry.get(key, [])), len(body.get(key, []))
        if got != want:
            return f"takes {want} {key}, the request has {got}"
    if entry.get("no_output"):
        return None
    wanted = split_callback_id(callback_id)
    outputs = body.get("outputs")
    if isinstance(wanted, dict):
        wanted, outputs = [wanted], [outputs]
    if not isinstance(outputs, list) or len(outputs) != len(wanted):
        return f"has {len(wanted)} outputs, the request's do not match"
    for spec, given in zip(wanted, outputs, strict=True):
        pattern = spec["id"].startswith("{")
        for item in given if pattern and isinstance(given, list) else [given]:
            if not isinstance(item, dict) or item.get("property") != spec["property"]:
                return "the request's outputs do not match"
            if not pattern and item.get("id") != spec["id"]:
                return "the request's outputs do not match"
            if pattern and not isinstance(item.get("id"), dict):
                return "the request's outputs do not match"
    return None


def hook_functions(dash_app: dash.Dash, name: str) -> list[Callable[..., Any]]:
    """Functions registered with ``dash.hooks.<name>``."""
    return list(dash_app._hooks.get_hooks(name))


def dev_tools_ui(dash_app: dash.Dash) -> bool:
    return bool(dash_app._dev_tools.get("ui"))


def caller_name() -> str:
    """The module name Dash would give an app built here."""
    return str(get_caller_name())


def js_path_served(dash_app: dash.Dash, package_name: str, path_in_package: str) -> bool:
    """May ``_dash-component-suites`` serve this file of this package?"""
    try:
        _validate.validate_js_path(dash_app.registered_paths, package_name, path_in_package)
    except DependencyException:
        return False
    return True


# --- running a callback -------------------------------------------------------------------


def http_callback_context(dash_app: dash.Dash, body: dict[str, Any]) -> AttributeDict:
    """The callback context Dash builds for an HTTP request (needs a request context)."""
    return dash_app._initialize_context(cast(Any, body))


def websocket_callback_context(body: Mapping[str, Any], *, handle: Any, response: Any,
                               connection: Mapping[str, Any]) -> AttributeDict:
    """The callback context (``dash.ctx``) for a callback run over a WebSocket.

    Mirrors what Dash builds for an HTTP request, with ``dash_websocket`` set so
    ``ctx.websocket`` and ``set_props`` use the socket. ``connection`` carries
    the handshake's cookies, headers, path, remote address and origin.
    """
    ctx = AttributeDict({})
    ctx.inputs_list = body.get("inputs", [])
    ctx.states_list = body.get("state", [])
    ctx.outputs_list = body.get("outputs", [])
    ctx.input_values = inputs_to_dict(ctx.inputs_list)
    ctx.state_values = inputs_to_dict(ctx.states_list)
    ctx.triggered_inputs = [
        {"prop_id": x, "value": ctx.input_values.get(x)} for x in body.get("changedPropIds", [])
    ]
    ctx.dash_response = response
    ctx.updated_props = {}
    ctx.dash_websocket = handle
    ctx.update(connection)
    return ctx


def prepare_callback(dash_app: dash.Dash, body: dict[str, Any], ctx: AttributeDict
                     ) -> tuple[Callable[[], Any], Callable[..., Any]]:
    """Bind the request ``body`` to its callback: ``(call, the user's function)``."""
    func = dash_app._prepare_callback(ctx, cast(Any, body))
    args = dash_app._inputs_to_vals(ctx.inputs_list + ctx.states_list)
    call = dash_app._execute_callback(func, args, ctx.outputs_list, ctx)
    return call, func


def current_callback_context() -> Any:
    """The callback context of the running callback (``dash.ctx``'s storage), or None."""
    return context_value.get(None)
