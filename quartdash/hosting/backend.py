"""Dash's server-backend interface, implemented on a Quart app *or blueprint*.

Dash builds its routes through a backend object (``dash.backends``). This
one registers every route on a Quart *scaffold* — the app for the drop-in
``quartdash.Dash``, a ``Blueprint`` for ``DashBlueprint`` — so several Dash
apps can live side by side in one Quart app with no cross-talk: each
blueprint carries its own error handlers, hooks and routes.

Views are native coroutines: Dash's small synchronous views (layout,
dependencies...) are called inline rather than sent to Quart's thread pool.
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import inspect
import logging
import mimetypes
import pkgutil
import sys
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dash.backends.base_server import BaseDashServer, RequestAdapter, ResponseAdapter
from dash.exceptions import InvalidResourceError, PreventUpdate
from dash.fingerprint import check_fingerprint
from quart import Blueprint, Quart, Response, g, has_request_context, jsonify, request
from quart import redirect as quart_redirect
from quart.helpers import send_from_directory
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wrappers.response import Response as WerkzeugResponse

from ..wire.guards import host_problem
from . import callback_route, dash_internals, websocket_route
from .serving import run as serve

if TYPE_CHECKING:
    import dash

    from .live import LiveApp

__all__ = ["QuartdashRequestAdapter", "QuartdashResponseAdapter", "QuartdashServer",
           "debug_error_page", "plain_error"]

log = logging.getLogger("quartdash")

Scaffold = Quart | Blueprint

@functools.cache
def static_file(name: str) -> bytes:
    """One of quartdash's browser files (the package ``quartdash.static``), read once."""
    return importlib.resources.files("quartdash.static").joinpath(name).read_bytes()


def plain_error(status: int, text: str) -> Response:
    """An error answer that no browser renders as HTML."""
    return Response(text, status=status, content_type="text/plain; charset=utf-8",
                    headers={"X-Content-Type-Options": "nosniff"})


def debug_error_page(error: BaseException, *, prune: bool) -> str:
    """The traceback page dev tools show (debug mode only), every piece escaped.

    Dash's own page interpolates the exception message unescaped, and a
    message may quote the request. ``prune`` drops Dash's frames before the
    callback's, as Dash's ``prune_errors`` does.
    """
    lines = traceback.format_exception(error)
    if prune:
        marks = [i for i, line in enumerate(lines)
                 if "callback invoked" in line and "_callback.py" in line]
        if marks:
            lines = lines[:1] + lines[marks[0] + 1:]
    name = html.escape(type(error).__name__)
    title = html.escape(f"{type(error).__name__}: {error}")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title} // quartdash</title></head><body><h1>{name}</h1>"
            f"<pre>{html.escape(''.join(lines))}</pre></body></html>")


class QuartdashRequestAdapter(RequestAdapter):
    """What Dash reads from the current HTTP request."""

    @property
    def context(self) -> Any:
        if not has_request_context():
            raise RuntimeError("No active request in context")
        return g

    @property
    def root(self) -> str:
        return request.root_url

    @property
    def args(self) -> Any:
        return request.args

    async def get_json(self) -> Any:
        return await request.get_json()

    @property
    def is_json(self) -> bool:
        return request.is_json

    @property
    def cookies(self) -> Any:
        return request.cookies

    @property
    def headers(self) -> Any:
        return request.headers

    @property
    def full_path(self) -> str:
        return request.full_path

    @property
    def url(self) -> str:
        return str(request.url)

    @property
    def remote_addr(self) -> Any:
        return request.remote_addr

    @property
    def origin(self) -> Any:
        return request.headers.get("origin")

    @property
    def path(self) -> str:
        return request.path

    def __call__(self) -> QuartdashRequestAdapter | None:  # type: ignore[override]
        # Dash calls ``request_adapter()`` to get "the current request", and
        # treats a false value as "none" (e.g. while running a WS callback).
        return self if has_request_context() else None


class QuartdashResponseAdapter(ResponseAdapter):
    """Lets a callback set cookies and headers on its HTTP response.

    The Quart ``Response`` is made on first use: a WebSocket callback (a
    persistent one lives as long as its tab) never sends one.
    """

    __slots__ = ("_response",)

    def __init__(self) -> None:
        super().__init__()
        self._response: Response | None = None

    @property
    def response(self) -> Response:
        if self._response is None:
            self._response = Response("", content_type="application/json")
        return self._response

    @property
    def callback_response(self) -> Response:
        return self.response

    def set_cookie(self, key: str, value: str = "", **kwargs: Any) -> None:
        self.response.set_cookie(key, value, **kwargs)

    def append_header(self, key: str, value: str) -> None:
        self.response.headers.add(key, value)

    def set_header(self, key: str, value: str) -> None:
        self.response.headers.set(key, value)

    def set_response(self, **kwargs: Any) -> Response:
        data = kwargs.get("data", "")
        if self._response is None:  # nothing set on it yet: one step
            self._response = Response(data, content_type="application/json")
        else:
            self._response.set_data(data)
        return self._response


def _inline(view: Callable[..., Any], backend: QuartdashServer) -> Callable[..., Any]:
    """Make a view a coroutine that runs with ``dash.get_app()`` bound to its app."""
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_view(*args: Any, **kwargs: Any) -> Any:
            dash_internals.set_current_app(backend.dash_app)
            return await view(*args, **kwargs)

        return async_view

    @functools.wraps(view)
    async def sync_view(*args: Any, **kwargs: Any) -> Any:
        dash_internals.set_current_app(backend.dash_app)
        result = view(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    return sync_view


class QuartdashServer(BaseDashServer[Any]):
    """The backend quartdash hands to ``dash.Dash``; ``live`` is the app's
    :class:`~quartdash.hosting.live.LiveApp`."""

    server_type = "quart"  # Dash checks this name for its quart code paths
    websocket_capability = True
    request_adapter = QuartdashRequestAdapter()  # type: ignore[assignment]
    response_adapter = QuartdashResponseAdapter

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.config: dict[str, Any] = {}
        self.live: LiveApp | None = None  # set by the front door before init_app
        self.error_mode = "hide"  # "hide" | "prune" | "raise" (debug tracebacks)
        self.timing = False
        self._setup_server: Callable[[], Any] | None = None  # Dash's, until it has run
        self._suite_cache: dict[tuple[str, str], tuple[bytes, str]] = {}

    # -- creation -------------------------------------------------------------

    @staticmethod
    def create_app(name: str = "__main__", config: dict[str, Any] | None = None) -> Quart:
        app = Quart(name)
        app.config.update(config or {})
        return app

    @property
    def scaffold(self) -> Scaffold:
        return self.server

    @property
    def dash_app(self) -> dash.Dash:
        assert self.live is not None, "QuartdashServer used without a quartdash LiveApp"
        return self.live.dash

    # -- routes ---------------------------------------------------------------

    def add_url_rule(
        self,
        rule: str,
        view_func: Callable[..., Any],
        endpoint: str | None = None,
        methods: list[str] | None = None,
    ) -> None:
        # Blueprint endpoints may not contain dots ("_favicon.ico").
        endpoint = (endpoint or rule).replace(".", "_")
        self.scaffold.add_url_rule(
            rule,
            endpoint=endpoint,
            view_func=_inline(view_func, self),
            methods=methods or ["GET"],
        )

    def register_assets_blueprint(
        self, blueprint_name: str, assets_url_path: str, assets_folder: str
    ) -> None:
        async def asset(filename: str) -> Response:
            return await send_from_directory(assets_folder, filename)

        self.scaffold.add_url_rule(
            assets_url_path.rstrip("/") + "/<path:filename>",
            endpoint=blueprint_name.replace(".", "_"),
            view_func=asset,
            methods=["GET"],
        )

    def setup_index(self, dash_app: dash.Dash) -> None:
        async def index(*args: Any, **kwargs: Any) -> Response:
            return Response(dash_app.index(*args, **kwargs), content_type="text/html")

        dash_internals.add_url(dash_app, "", index)

    def setup_catchall(self, dash_app: dash.Dash) -> None:
        async def catchall(path: str, *args: Any, **kwargs: Any) -> Response:
            return Response(dash_app.index(*args, **kwargs), content_type="text/html")

        dash_internals.add_url(dash_app, "<path:path>", catchall)

    def setup_component_suites(self, dash_app: dash.Dash) -> None:  # type: ignore[override]
        # (Dash's base class says -> str, but Dash ignores the value.)
        async def serve(package_name: str, fingerprinted_path: str) -> Response:
            return self.serve_component_suite(dash_app, package_name, fingerprinted_path)

        dash_internals.add_url(
            dash_app, "_dash-component-suites/<string:package_name>/<path:fingerprinted_path>",
            serve)

    def serve_component_suite(
        self, dash_app: dash.Dash, package_name: str, fingerprinted_path: str
    ) -> Response:
        path_in_pkg, has_fingerprint = check_fingerprint(fingerprinted_path)
        if not dash_internals.js_path_served(dash_app, package_name, path_in_pkg):
            raise InvalidResourceError(f"{package_name}/{path_in_pkg} is not served")
        key = (package_name, path_in_pkg)
        cached = self._suite_cache.get(key)
        if cached is None:
            data = pkgutil.get_data(package_name, path_in_pkg)
            if data is None or package_name not in sys.modules:
                raise InvalidResourceError(f"{package_name}/{path_in_pkg} not found")
            extension = "." + path_in_pkg.rsplit(".", 1)[-1]
            mimetype = mimetypes.types_map.get(extension, "application/octet-stream")
            cached = self._suite_cache[key] = (data, mimetype)
        data, mimetype = cached
        headers = {}
        if has_fingerprint:
            # The fingerprint changes with the file, so it may be cached forever.
            headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return Response(data, content_type=mimetype, headers=headers)

    def setup_backend(self, dash_app: dash.Dash) -> None:
        # quartdash's SharedWorker (static/), a drop-in for Dash's that also
        # tells the server when a tab arrives and leaves, and the page helper
        # that tells the worker when this tab goes away. Versioned URLs (?v=).
        async def browser_file(name: str) -> Response:
            return Response(static_file(name), content_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

        # Endpoints named after the rule, as Dash names its own: several drop-in
        # apps (different url_base_pathname) can share one Quart app.
        prefix = dash_app.config.routes_pathname_prefix + "_quartdash/"
        for url, name in (("ws-worker.js", "quartdash-ws-worker.js"),
                          ("page.js", "quartdash-page.js")):
            rule = prefix + url
            self.scaffold.add_url_rule(
                rule, endpoint=rule.replace(".", "_"),
                view_func=functools.partial(browser_file, name), methods=["GET"])

    def serve_callback(self, dash_app: dash.Dash) -> Callable[..., Any]:
        assert self.live is not None
        return callback_route.make_dispatch_view(dash_app, self.live)

    def serve_websocket_callback(self, dash_app: dash.Dash) -> None:
        assert self.live is not None
        rule = dash_app.config.routes_pathname_prefix + "_dash-ws-callback"
        self.scaffold.add_websocket(
            rule,
            endpoint=rule.replace(".", "_"),
            view_func=websocket_route.make_websocket_view(self.live),
        )

    def register_callback_api_routes(
        self, callback_api_paths: dict[str, Callable[..., Any]]
    ) -> None:
        for path, handler in callback_api_paths.items():
            route = path if path.startswith("/") else f"/{path}"

            async def api_view(handler: Callable[..., Any] = handler) -> Response:
                data = await request.get_json(silent=True)
                data = {} if data is None else data
                # The body must name the handler's arguments: anything else is
                # the client's error (400), not the handler's (500).
                try:
                    if not isinstance(data, dict):
                        raise TypeError("not an object")
                    inspect.signature(handler).bind(**data)
                except TypeError:
                    raise BadRequest("the body does not match this endpoint's "
                                     "arguments") from None
                result = handler(**data)
                if inspect.isawaitable(result):
                    result = await result
                return jsonify(result)

            self._add_late_url_rule(
                route,
                endpoint=f"dash_callback_api_{path}".replace(".", "_"),
                view_func=api_view,
                methods=["POST"],
            )

    def add_redirect_rule(self, app: dash.Dash, fullname: str, path: str) -> None:
        # Dash pages' redirect_from. Dash passes both URLs as the browser asks
        # for them (requests_pathname_prefix applied): ``fullname`` the old
        # one, ``path`` the page's. The route is the old URL as this scaffold
        # sees it: without the requests prefix, with the routes prefix (a
        # blueprint adds its url_prefix itself). ``path`` is the target as it
        # is: Dash's own backends prefix it a second time (/app/app/page).
        requests_prefix = app.config.requests_pathname_prefix
        if fullname.startswith(requests_prefix):
            fullname = fullname[len(requests_prefix):]
        rule = app.config.routes_pathname_prefix + fullname.lstrip("/")

        async def redirect_view() -> WerkzeugResponse:
            return quart_redirect(path, code=301)

        self._add_late_url_rule(rule, endpoint=rule.replace(".", "_"), view_func=redirect_view)

    def _add_late_url_rule(self, rule: str, **options: Any) -> None:
        # For routes Dash adds when the user asks (setup_apis, register_page),
        # possibly after a DashBlueprint was registered.
        add_late = getattr(self.scaffold, "add_late_url_rule", None)
        if add_late is not None:
            add_late(rule, **options)
        else:
            self.scaffold.add_url_rule(rule, **options)

    # -- hooks and errors -----------------------------------------------------

    def before_request(self, func: Callable[..., Any]) -> None:
        if (getattr(func, "__name__", None) == "_setup_server"
                and getattr(func, "__self__", None) is self.dash_app):
            # Dash's once-per-app setup: run by the hook every request already
            # passes (register_error_handlers), not a hook of its own.
            self._setup_server = func
            return
        self.scaffold.before_request(_inline(func, self))

    def after_request(self, func: Callable[..., Any]) -> None:
        hook = _inline(func, self)

        async def after(response: Response) -> Response:
            await hook()
            return response

        self.scaffold.after_request(after)

    def register_error_handlers(self) -> None:
        scaffold = self.scaffold

        # Every error answer is plain text with a fixed reason: nothing the
        # request carried (a path, an id) is echoed, and nosniff stops a
        # browser from reading it as HTML (docs/security.md).

        @scaffold.before_request
        async def before() -> Response | None:
            # One hook, not three: each costs every request.
            assert self.live is not None
            if host_problem(request.headers.get("host"), self.live.config.allowed_hosts):
                return plain_error(400, "Bad Request: host not allowed")
            if self.timing:
                g.timing_information = {"__dash_server": {"dur": time.time(), "desc": None}}
            if self._setup_server is not None:
                dash_internals.set_current_app(self.dash_app)
                self._setup_server()
                self._setup_server = None  # done (Dash's own flag says so too)
            return None

        @scaffold.errorhandler(PreventUpdate)
        async def prevent_update(_: PreventUpdate) -> tuple[str, int]:
            return "", 204

        @scaffold.errorhandler(InvalidResourceError)
        async def invalid_resource(err: InvalidResourceError) -> Response:
            log.debug("not served: %s", err)
            return plain_error(404, "Not Found")

        @scaffold.errorhandler(Exception)
        async def unhandled(error: Exception) -> Any:
            if isinstance(error, HTTPException):
                if error.code is None or error.code < 400:
                    return error  # a redirect (trailing slash): a response, not an error
                return plain_error(error.code, f"{error.code} {error.name}: {error.description}")
            where = f"{request.method} {request.path}" if has_request_context() else "websocket"
            log.error("Exception on %s", where, exc_info=error)
            if self.error_mode == "hide":
                # Never leak a traceback (paths, code, secrets) unless debug is on.
                return plain_error(500, "Internal server error.")
            page = debug_error_page(error, prune=self.error_mode == "prune")
            return Response(page, status=500, content_type="text/html; charset=utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

        @scaffold.after_request
        async def server_timing(response: Response) -> Response:
            timing = getattr(g, "timing_information", None) if self.timing else None
            if not timing:
                return response
            total = timing.get("__dash_server")
            if total is not None:
                total["dur"] = round((time.time() - total["dur"]) * 1000)
            for name, info in timing.items():
                value = name
                if info.get("desc") is not None:
                    value += f';desc="{info["desc"]}"'
                if info.get("dur") is not None:
                    value += f";dur={info['dur']}"
                response.headers.add("Server-Timing", value)
            return response

    def register_prune_error_handler(self, secret: str, prune_errors: bool) -> None:
        # The handler is registered once in register_error_handlers (a
        # blueprint cannot take new handlers after registration); debug
        # mode only switches what it shows.
        self.error_mode = "prune" if prune_errors else "raise"

    def register_timing_hooks(self, first_run: bool) -> None:
        self.timing = True

    def has_request_context(self) -> bool:
        return has_request_context()

    def enable_compression(self) -> None:
        try:
            from quart_compress import Compress  # type: ignore[import-not-found]
        except ImportError as error:
            raise ImportError(
                "compress=True needs the quart_compress package: pip install quart-compress"
            ) from error
        if not isinstance(self.scaffold, Quart):
            raise ValueError("compress=True on a DashBlueprint: enable it on the Quart app")
        Compress(self.scaffold)

    # -- responses ------------------------------------------------------------

    def make_response(
        self,
        data: Any,
        mimetype: str | None = None,
        content_type: str | None = None,
        status: int | None = None,
    ) -> Response:
        return Response(data, mimetype=mimetype, content_type=content_type, status=status)

    def jsonify(self, obj: Any) -> Response:
        return jsonify(obj)

    # -- serving --------------------------------------------------------------

    def run(self, dash_app: dash.Dash, host: str, port: int, debug: bool, **kwargs: Any) -> None:
        if not isinstance(self.scaffold, Quart):
            raise RuntimeError(
                "a DashBlueprint is served by the Quart app it is registered on: "
                "run that app (e.g. `hypercorn module:asgi`)"
            )
        serve(self.scaffold, host=host, port=int(port), debug=bool(debug),
              server=kwargs.get("server") or "hypercorn")
