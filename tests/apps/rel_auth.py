"""Protecting Dash apps inside a Quart app: the page *and* the WebSocket.

A browser reaches a hosted Dash app two ways: HTTP (the page, its layout,
assets and HTTP callbacks) and the WebSocket its SharedWorker opens. Guard
both, on the blueprint, with the same check:

* ``/live/``: quart-auth. One function registered as ``before_request`` and
  ``before_websocket`` of the DashBlueprint; a connect hook names the
  socket's user (``Identity``), and signing out revokes the user's open
  sockets (4003: the browser's worker does not come back with them).
* ``/ops/``: no extension, a server-side session table and the same pair of
  hooks. The recipe for apps that bring their own login.

Refusing in ``before_websocket`` happens before the handshake is accepted:
the browser gets an HTTP 401, never a socket.

    hypercorn 'tests.apps.rel_auth:asgi'
"""

from __future__ import annotations

import os
import secrets

from dash import Input, Output, ctx, html
from quart import Quart, abort, has_websocket_context, redirect, request, websocket
from quart_auth import AuthUser, QuartAuth, Unauthorized, current_user, login_user, logout_user

from quartdash import DashBlueprint, Identity

USERS = {"alice": "wonderland"}  # a real app checks a password hash in its user store


def check_password(user: str, password: str) -> bool:
    return user in USERS and secrets.compare_digest(USERS[user], password)


def create_app(*, secure_cookies: bool = True) -> Quart:
    app = Quart(__name__)
    app.secret_key = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
    # Secure cookies need https; the tests serve plain http on 127.0.0.1.
    app.config["QUART_AUTH_COOKIE_SECURE"] = secure_cookies
    QuartAuth(app)

    # --- /live/: quart-auth ------------------------------------------------------
    live = DashBlueprint("live", __name__, url_prefix="/live", websocket_callbacks=True)
    live.layout = html.Div([html.Button("who am I", id="who-btn"), html.Div(id="who-out")])

    @live.callback(Output("who-out", "children"), Input("who-btn", "n_clicks"),
                   prevent_initial_call=True)
    async def who_am_i(n_clicks: int) -> str:
        return f"signed in as {ctx.websocket.identity.id}"  # the socket's own user

    @live.before_request
    @live.before_websocket
    async def require_login() -> None:
        if not await current_user.is_authenticated:
            raise Unauthorized()  # 401 for the page, no handshake for the socket

    @live.websocket_connect
    async def name_the_socket(ws: object) -> Identity:
        return Identity(current_user.auth_id)  # checked again on every (re)connect

    @app.post("/login")
    async def login() -> object:
        form = await request.form
        if not check_password(form.get("user", ""), form.get("password", "")):
            abort(401)
        login_user(AuthUser(form["user"]))
        return redirect("/live/")

    @app.post("/logout")
    async def logout() -> dict[str, int]:
        user = current_user.auth_id
        logout_user()  # the cookie goes...
        # ...and so do the user's open sockets, in every worker (close 4003).
        closed = await live.live.revoke(user) if user is not None else 0
        return {"closed": closed}

    # --- /ops/: your own session, plain hooks ---------------------------------------
    sessions: dict[str, str] = {}  # session id -> user; use your session store

    ops = DashBlueprint("ops", __name__, url_prefix="/ops", websocket_callbacks=True)
    ops.layout = html.Div([html.Button("status", id="status-btn"), html.Div(id="status-out")])

    @ops.callback(Output("status-out", "children"), Input("status-btn", "n_clicks"),
                  prevent_initial_call=True)
    async def status(n_clicks: int) -> str:
        return f"all systems go ({n_clicks})"

    def ops_user() -> str | None:
        cookies = websocket.cookies if has_websocket_context() else request.cookies
        return sessions.get(cookies.get("ops_session", ""))

    @ops.before_request
    @ops.before_websocket
    async def require_ops_session() -> None:
        if ops_user() is None:
            abort(401)

    @app.post("/ops-login")
    async def ops_login() -> object:
        form = await request.form
        if not check_password(form.get("user", ""), form.get("password", "")):
            abort(401)
        session_id = secrets.token_urlsafe(32)
        sessions[session_id] = form["user"]
        response = redirect("/ops/")
        response.set_cookie("ops_session", session_id, httponly=True, samesite="Lax",
                            secure=secure_cookies)
        return response

    app.register_blueprint(live)
    app.register_blueprint(ops)
    return app


asgi = create_app(secure_cookies=os.environ.get("SECURE_COOKIES", "1") == "1")
