"""Every private Dash attribute quartdash touches, in one place.

quartdash drives Dash's callback internals (``_prepare_callback``,
``_execute_callback``, ``_setup_server``, the backend interface...), which
change between minor releases without notice. Everything of that kind is
reached through this module, so a Dash upgrade is reviewed in one file; and
rather than misbehave subtly, quartdash refuses to import with a Dash
outside the tested range (:mod:`quartdash._dash_version`).

Reviewing an upgrade to Dash 4.5 (its renderer streams and reads paths):

* its renderer answers ``get_props_request`` with a ``path`` itself, without
  quartdash's ``pathResolved`` mark: the session would read the path a
  second time (``Session.get_prop``); mark such answers resolved;
* streaming callbacks could then use Dash's own ``stream: true`` responses
  (hosting/streaming.py sends set_props pushes because 4.4 cannot read them),
  and Dash registers generators itself (``_install_callback_options``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import dash
from dash import _callback, _validate
from dash._callback import GLOBAL_CALLBACK_MAP, _async_invoke_callback, _invoke_callback
from dash._callback_context import context_value
from dash._get_app import app_context
from dash._grouping import flatten_grouping, update_args_group
from dash._no_update import NoUpdate
from dash._utils import (
    AttributeDict,
    clean_property_name,
    convert_to_AttributeDict,
    get_caller_name,
    inputs_to_dict,
    inputs_to_vals,
    split_callback_id,
    stringify_id,
    to_json,
)
from dash.dependencies import Output
from dash.development.base_component import ComponentRegistry
from dash.exceptions import DependencyException

from .. import __version__
from ..config import WebSocketConfig

__all__ = [
    "RETRIGGER_POLICIES",
    "AttributeDict",
    "BoundStream",
    "CallbackDefinition",
    "HostedDash",
    "add_url",
    "args_grouping",
    "bind_stream",
    "callback_definition",
    "callback_entry",
    "callback_list",
    "caller_name",
    "clean_property_name",
    "component_packages",
    "current_callback_context",
    "dev_tools_ui",
    "fail_callback_output",
    "flatten_grouping",
    "hook_functions",
    "http_callback_context",
    "inputs_to_dict",
    "inputs_to_vals",
    "invoke_marked",
    "invoke_marked_async",
    "is_no_update",
    "js_path_served",
    "prepare_callback",
    "request_problem",
    "retrigger_policy",
    "set_callback_context",
    "set_current_app",
    "setup_server",
    "stream_function",
    "stringify_id",
    "to_json",
    "validate_and_group_input_args",
    "validate_multi_return",
    "validate_output_spec",
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
                entry = self.callback_map[spec["output"]]
                if spec.get("persistent"):
                    spec["websocket"] = True
                    entry["websocket"] = True
                # A streaming callback streams over the WebSocket (marked when
                # decorated; again here for one decorated before quartdash was imported).
                if stream_function(entry) is not None:
                    spec["websocket"] = spec["stream"] = True
                    entry["websocket"] = entry["stream"] = True

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


# --- a callback's definition, for the lean HTTP path (callback_plan) ----------------------


@dataclass(frozen=True, slots=True)
class CallbackDefinition:
    """What ``@callback`` captured about one callback, read once.

    Dash keeps these in the closure of the ``add_context`` wrapper it registers
    (they are not in ``callback_map``): reading them is as private as it gets,
    hence the checks in :func:`callback_definition`.
    """

    callback_id: str
    func: Callable[..., Any]  # the user's function
    multi: bool
    has_output: bool
    output: Any  # the Output, or the grouping (list/dict) of Outputs
    insert_output: Any  # the Output, or the flat list of them
    inputs_state_indices: Any  # an int, a list or a dict: how arguments are grouped
    outputs_indices: Any
    on_error: Callable[[Exception], Any] | None
    allow_dynamic_callbacks: bool
    background: Any
    no_output: bool
    manager: Any


_WRAPPERS = ("add_context", "async_add_context")
_CLOSURE = ("allow_dynamic_callbacks", "background", "callback_id", "func", "has_output",
            "inputs_state_indices", "insert_output", "multi", "on_error", "output")


def callback_definition(entry: Mapping[str, Any]) -> CallbackDefinition | None:
    """The definition behind a ``callback_map`` entry, or None when the entry
    is not Dash's own wrapper as this Dash version makes it."""
    wrapper: Any = entry.get("callback")
    code = getattr(wrapper, "__code__", None)
    if code is None or code.co_name not in _WRAPPERS or wrapper.__closure__ is None:
        return None
    cells = dict(zip(code.co_freevars, wrapper.__closure__, strict=True))
    if any(name not in cells for name in _CLOSURE):
        return None
    try:
        values = {name: cells[name].cell_contents for name in _CLOSURE}
    except ValueError:  # an empty cell
        return None
    if not callable(values["func"]):
        return None
    return CallbackDefinition(
        callback_id=values["callback_id"], func=values["func"], multi=bool(values["multi"]),
        has_output=bool(values["has_output"]), output=values["output"],
        insert_output=values["insert_output"],
        inputs_state_indices=values["inputs_state_indices"],
        outputs_indices=entry.get("outputs_indices", []), on_error=values["on_error"],
        allow_dynamic_callbacks=bool(values["allow_dynamic_callbacks"]),
        background=values["background"], no_output=bool(entry.get("no_output")),
        manager=entry.get("manager"))


def app_error_handler(dash_app: dash.Dash) -> Callable[[Exception], Any] | None:
    """The app's ``on_error`` (Dash's ``app_on_error``)."""
    handler: Callable[[Exception], Any] | None = dash_app._on_error
    return handler


def background_manager(dash_app: dash.Dash) -> Any:
    return dash_app._background_manager


def custom_data_hooks(dash_app: dash.Dash) -> list[Any]:
    return list(dash_app._hooks.get_hooks("custom_data"))


def args_grouping(dash_app: dash.Dash, ctx: AttributeDict, entry: Mapping[str, Any],
                  changed: list[str]) -> tuple[Any, Any, Any, Any]:
    """``(args_grouping, using_args_grouping, outputs_grouping,
    using_outputs_grouping)`` as Dash's ``_prepare_callback`` works them out."""
    inputs_state = convert_to_AttributeDict(ctx.inputs_list + ctx.states_list)
    for item in inputs_state:
        if isinstance(item, list):
            for pattern_item in item:
                update_args_group(pattern_item, changed)
        update_args_group(item, changed)
    args, using_args = dash_app._prepare_grouping(inputs_state, entry["inputs_state_indices"])
    outs, using_outs = dash_app._prepare_grouping(ctx.outputs_list,
                                                  entry.get("outputs_indices", []))
    return args, using_args, outs, using_outs


is_no_update: Callable[[Any], bool] = NoUpdate.is_no_update
no_update = NoUpdate


def set_callback_context(ctx: AttributeDict) -> None:
    """What ``dash.ctx`` reads in this context."""
    context_value.set(ctx)


_packages: frozenset[str] = frozenset()


def component_packages() -> frozenset[str]:
    """The component packages imported so far (a callback may not add one)."""
    global _packages
    if len(ComponentRegistry.registry) != len(_packages):  # only ever grows
        _packages = frozenset(ComponentRegistry.registry)
    return _packages


def invoke_marked(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call ``func`` through Dash's marked frame (debug tracebacks are pruned at it)."""
    return _invoke_callback(func, *args, **kwargs)


async def invoke_marked_async(func: Callable[..., Any], args: list[Any],
                              kwargs: dict[str, Any]) -> Any:
    return await _async_invoke_callback(func, *args, **kwargs)


def validate_output_spec(insert_output: Any, output_spec: Any) -> None:
    _validate.validate_output_spec(insert_output, output_spec, Output)


def validate_and_group_input_args(args: list[Any], indices: Any
                                  ) -> tuple[list[Any], dict[str, Any]]:
    func_args, func_kwargs = _validate.validate_and_group_input_args(args, indices)
    return list(func_args), dict(func_kwargs)


def validate_multi_return(output_spec: Any, values: Any, callback_id: str) -> None:
    _validate.validate_multi_return(output_spec, values, callback_id)


def fail_callback_output(output_value: Any, output: Any) -> None:
    _validate.fail_callback_output(output_value, output)


# --- callback options Dash does not know: on_retrigger ---------------------------------------

RETRIGGER_POLICIES = ("cancel", "queue", "parallel")
"""``on_retrigger=`` values (docs/websocket-callbacks.md, re-triggering)."""


def _install_callback_options() -> None:
    """Teach ``@callback`` (``dash.callback``, ``app.callback``, ``bp.callback``)
    quartdash's own keyword, ``on_retrigger``, and mark streaming callbacks.

    Dash 4.4 accepts unknown keyword arguments and drops them: they reach
    ``dash._callback.register_callback`` in ``**_kwargs`` and nothing stores
    them. So that function is wrapped (once, when quartdash is imported): the
    keyword is taken out, checked, and stored in the callback's spec (sent in
    ``_dash-dependencies``) and its ``callback_map`` entry, where
    :func:`retrigger_policy` reads it. Both ``dash.callback`` and
    ``Dash.callback`` look ``register_callback`` up in that module when called.

    The decorator it returns is wrapped too: a generator function (a
    streaming callback, docs/websocket-callbacks.md) is marked ``stream`` and
    ``websocket`` in its spec (it streams over the WebSocket; the renderer
    posts it there), and refused with ``background=True``.
    """
    original = _callback.register_callback
    if getattr(original, "__quartdash__", False):
        return

    @functools.wraps(original)
    def register_callback(callback_list: list[dict[str, Any]], callback_map: dict[str, Any],
                          *args: Any, **kwargs: Any) -> Any:
        policy = kwargs.pop("on_retrigger", None)
        if policy is not None and policy not in RETRIGGER_POLICIES:
            raise ValueError(f"on_retrigger must be one of {RETRIGGER_POLICIES}, "
                             f"not {policy!r}")
        before = len(callback_list)
        decorator = original(callback_list, callback_map, *args, **kwargs)
        if len(callback_list) != before + 1:  # not the Dash this module was written for
            raise RuntimeError("quartdash: dash.callback did not register one callback")
        spec = callback_list[-1]
        entry = callback_map[spec["output"]]
        if policy is not None:
            spec["on_retrigger"] = entry["on_retrigger"] = policy

        @functools.wraps(decorator)
        def wrap(func: Callable[..., Any]) -> Any:
            if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
                if entry.get("background") is not None:
                    raise TypeError(f"callback {spec['output']!r}: a streaming (generator) "
                                    "callback cannot be a background callback")
                spec["stream"] = entry["stream"] = True
                spec["websocket"] = entry["websocket"] = True
            return decorator(func)

        return wrap

    # Dash names a callback without inputs or outputs after its call site: the
    # first frame on the stack outside the dash package (create_callback_id).
    # This wrapper's frame must not be that frame, or every such callback of
    # every app would get one id and replace the last: its code says it is
    # dash's own (a traceback through it shows dash/_callback.py).
    code = register_callback.__code__  # type: ignore[attr-defined]
    register_callback.__code__ = code.replace(  # type: ignore[attr-defined]
        co_filename=str(_callback.__file__))
    register_callback.__quartdash__ = True  # type: ignore[attr-defined]
    _callback.register_callback = register_callback


_install_callback_options()


def retrigger_policy(entry: Mapping[str, Any]) -> str:
    """A callback's ``on_retrigger`` (``cancel`` unless it said otherwise)."""
    return str(entry.get("on_retrigger") or "cancel")


# --- streaming (generator) callbacks ---------------------------------------------------------


def stream_function(entry: Mapping[str, Any]) -> Callable[..., Any] | None:
    """The user's function of a streaming callback (an ``async def`` or ``def``
    generator function), or None for any other callback."""
    func = getattr(entry.get("callback"), "__wrapped__", None)
    if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
        return cast(Callable[..., Any], func)
    return None


@dataclass(frozen=True)
class BoundStream:
    """A streaming callback bound to one request (:func:`bind_stream`)."""

    function: Callable[..., Any]
    args: list[Any]
    kwargs: dict[str, Any]
    is_async: bool
    context: AttributeDict
    """The callback context (``dash.ctx``); ``updated_props`` holds ``set_props``
    made over HTTP."""
    frame: Callable[[Any], dict[str, Any]]
    """One yielded value as Dash's callback JSON (``{"multi", "response",
    "sideUpdate"?, "dist"?}``), built and validated by Dash's own code, as a
    return value would be."""
    on_error: Callable[[Exception], Any] | None

    def start(self) -> Any:
        """The generator (call it where ``dash.ctx`` is this request's context)."""
        return self.function(*self.args, **self.kwargs)


def bind_stream(dash_app: dash.Dash, body: dict[str, Any], ctx: AttributeDict
                ) -> BoundStream | None:
    """Bind a request to its streaming callback, or None when it is not one.

    Does what Dash's callback wrapper does before and after calling the
    function (context, output and input checks, grouping), for a function
    Dash itself cannot run: it would try to send the generator as the value.
    Sets ``dash.ctx`` for the calling task.
    """
    entry = callback_entry(dash_app, body["output"])
    if entry is None:
        return None
    func = stream_function(entry)
    definition = callback_definition(entry)
    if func is None or definition is None:
        return None
    dash_app._prepare_callback(ctx, cast(Any, body))
    ctx.custom_data = AttributeDict({})
    for hook in dash_app._hooks.get_hooks("custom_data"):
        ctx.custom_data[hook.data["namespace"]] = hook(ctx)
    context_value.set(ctx)
    if definition.has_output:
        _validate.validate_output_spec(definition.insert_output, ctx.outputs_list, Output)
    values = dash_app._inputs_to_vals(ctx.inputs_list + ctx.states_list)
    args, kwargs = _validate.validate_and_group_input_args(values,
                                                           definition.inputs_state_indices)
    packages = set(ComponentRegistry.registry)

    def frame(value: Any) -> dict[str, Any]:
        response: dict[str, Any] = {"multi": True}
        _callback._prepare_response(
            value, ctx.outputs_list, definition.multi, cast(Any, response), ctx, dash_app,
            packages, None, False, definition.has_output, definition.output,
            definition.callback_id, definition.allow_dynamic_callbacks)
        return response

    return BoundStream(func, list(args), dict(kwargs), inspect.isasyncgenfunction(func), ctx,
                       frame, definition.on_error or dash_app._on_error)
