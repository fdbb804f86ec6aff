"""The HTTP callback route, ``_dash-update-component``, served natively async.

A malformed request is answered 400 with a fixed reason, never an echo of
what was sent; only the callback's own failure is a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import orjson
from quart import Response, request
from werkzeug.exceptions import BadRequest

from ..wire import protocol
from . import dash_internals, streaming
from .execute import invoke, prepare_callback
from .sanitize import PropPolicy

if TYPE_CHECKING:
    import dash

    from .live import LiveApp

__all__ = ["CheckedProps", "make_dispatch_view", "parse_body"]


class CheckedProps(dict[str, Any]):
    """``ctx.updated_props`` for an HTTP callback: each ``set_props`` is checked
    by the app's :class:`~quartdash.hosting.sanitize.PropPolicy` as it is made
    (so a refused value raises in the callback) and again when Dash reads them
    for the response (a value changed in between is checked as it is sent)."""

    __slots__ = ("_policy", "_raw")

    def __init__(self, policy: PropPolicy) -> None:
        super().__init__()
        self._policy = policy
        self._raw: dict[str, dict[str, Any]] = {}  # as set_props was given them

    def __setitem__(self, component_id: str, props: dict[str, Any]) -> None:
        # Dash merges with the props set earlier (read back with .get): keep
        # the values as first given (a trusted() wrapper included) for those.
        stored = dict.get(self, component_id) or {}
        raw = dict(self._raw.get(component_id, {}))
        raw.update({prop: value for prop, value in props.items()
                    if not (prop in stored and stored[prop] is value)})
        self._raw[component_id] = raw
        super().__setitem__(component_id, self._policy.check_all(component_id, raw))

    def __getitem__(self, component_id: str) -> dict[str, Any]:
        return self._policy.check_all(component_id, self._raw[component_id])

    def __iter__(self) -> Iterator[str]:
        # Overridden so that dict(self) reads each value through __getitem__.
        return iter(list(dict.keys(self)))


def parse_body(data: bytes) -> dict[str, Any]:
    """The callback request in ``data``, or :class:`BadRequest` with a fixed reason."""
    try:
        body = orjson.loads(data)  # nesting deeper than 1024 levels is an error, not a crash
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body is not a callback request")
    try:
        protocol.check_callback_payload(body)
    except protocol.ProtocolError:
        raise BadRequest("the body is not a callback request") from None
    return body


def make_dispatch_view(dash_app: dash.Dash, live: LiveApp) -> Callable[[], Awaitable[Response]]:
    async def dispatch() -> Response:
        body = parse_body(cast(bytes, await request.get_data(as_text=False)))
        # Global dash.callback ones join the app on their first request.
        spec = dash_internals.callback_entry(dash_app, body["output"])
        if spec is None:
            raise BadRequest("unknown callback")
        if dash_internals.request_problem(body["output"], spec, body) is not None:
            raise BadRequest("the request does not match the callback")
        ctx = dash_internals.http_callback_context(dash_app, body)
        ctx.updated_props = CheckedProps(live.prop_policy)
        try:
            dash_internals.set_current_app(dash_app)
            stream = dash_internals.bind_stream(dash_app, body, ctx)
            if stream is None:
                call, is_async = prepare_callback(dash_app, body, ctx)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError):
            # Dash's own binding of ids to the callback: the request does not fit.
            raise BadRequest("the request does not match the callback") from None
        if stream is not None:
            # No stream over HTTP: run to the end, answer with the combined result.
            data = await streaming.run_http(stream, live.executor)
        else:
            data = await invoke(call, is_async, live.executor)
        return ctx.dash_response.set_response(data=data)

    # Keep the view's identity as Dash's, so integrations keyed on it (e.g.
    # CSRF exemptions of "dash.dash.dispatch") keep working.
    dispatch.__name__ = dispatch.__qualname__ = "dispatch"
    dispatch.__module__ = "dash.dash"
    return dispatch
