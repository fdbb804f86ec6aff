"""The HTTP callback route, ``_dash-update-component``, served natively async."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from quart import Response, request
from werkzeug.exceptions import BadRequest

from .execute import run_callback

if TYPE_CHECKING:
    import dash

    from .backend import QuartdashServer


def make_dispatch_view(
    dash_app: dash.Dash, backend: QuartdashServer
) -> Callable[[], Awaitable[Response]]:
    async def dispatch() -> Response:
        body: Any = await request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("output"), str):
            raise BadRequest("expected a JSON callback request with an 'output'")
        if body["output"] not in dash_app.callback_map:
            dash_app._setup_server()  # global dash.callback ones join on first request
            if body["output"] not in dash_app.callback_map:
                raise BadRequest(f"unknown callback {body['output']!r}")
        ctx = dash_app._initialize_context(body)
        assert backend.host is not None
        data = await run_callback(dash_app, body, ctx, backend.host.executor)
        return ctx.dash_response.set_response(data=data)

    # Keep the view's identity as Dash's, so integrations keyed on it (e.g.
    # CSRF exemptions of "dash.dash.dispatch") keep working.
    dispatch.__name__ = dispatch.__qualname__ = "dispatch"
    dispatch.__module__ = "dash.dash"
    return dispatch
