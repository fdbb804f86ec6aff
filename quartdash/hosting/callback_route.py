"""The HTTP callback route, ``_dash-update-component``, served natively async.

A malformed request is answered 400 with a fixed reason, never an echo of
what was sent; only the callback's own failure is a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import orjson
from quart import Response, request
from werkzeug.exceptions import BadRequest

from ..wire import protocol
from . import dash_internals, streaming
from .callback_plan import RequestMismatch
from .execute import invoke, prepare_callback
from .sanitize import CheckedProps

if TYPE_CHECKING:
    import dash

    from .live import LiveApp

__all__ = ["make_dispatch_view", "parse_body"]


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
        plan = live.plan_for(body["output"], spec)
        if plan is not None:
            try:
                plan.check(body)
            except RequestMismatch:
                raise BadRequest("the request does not match the callback") from None
            # (the view runs with dash.get_app() bound: backend._inline)
            return await plan.run(dash_app, body, cast(Any, request)._get_current_object(),
                                  live.prop_policy, live.inline)
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
