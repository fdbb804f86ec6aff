"""13. Live sessions: who is connected, presence, and a disconnect button per user.

What to look at: sign in under a name on the lobby page (a demo sign-in:
any name, no password; the name ``admin`` gets the admin role), in a few
browsers or private windows, and open the lobby in several tabs.

* **The lobby** (``/live-sessions/``) lists who is here right now, from
  ``topic.presence()``, and updates as tabs open and close
  (``topic.presence_events()``): every tab tracks itself on the topic
  ``live-sessions`` with the page it shows.
* **The admin page** (``/live-sessions/admin/``, for the ``admin`` user
  only) lists the users present (presence: every worker) with a
  "Disconnect" button each, and every live session of both pages in this
  worker (``list_sessions()``): identity, address, connected at, tabs,
  running callbacks, bytes in and out, refreshed once a second and on every
  presence event. "Disconnect" signs the user out (their sign-in is
  dropped) and revokes their sessions in every worker: their sockets close
  with 4003, their tabs show "revoked" and do not reconnect; they must sign
  in again. The button's callback checks by itself that the caller is an
  admin: the page being admin-only is not enough, since any client can send
  a callback request.
* **Sign out** signs the user out in every browser and closes their tabs
  the same way (``revoke``).

The identity comes from a connect hook that looks the ``live_sessions_sid``
cookie up in the sign-in table (:class:`SignIns`), so ``ctx.websocket.identity``
is the user in every callback, and is checked again whenever a tab
reconnects or resumes. The table lives in this process: under several
workers keep it in a shared store (a database, Redis), as a real login does.

Run alone: ``hypercorn examples.live_sessions:asgi`` or
``python -m examples.live_sessions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from typing import Any

from dash import ALL, Input, Output, ctx, dcc, html, no_update, set_props
from quart import Blueprint, Quart, abort, has_websocket_context, redirect, request, websocket

from quartdash import DashBlueprint, Identity, broadcast
from quartdash.broadcast.presence import PresenceEntry
from quartdash.hosting import list_sessions, revoke
from quartdash.session import SessionInfo

COOKIE = "live_sessions_sid"
ADMIN = "admin"
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
HERE = broadcast.Topic("live-sessions")


class SignIns:
    """The demo's sign-in table: session id (the cookie) -> identity."""

    def __init__(self) -> None:
        self._by_sid: dict[str, Identity] = {}

    def sign_in(self, name: str) -> str:
        sid = secrets.token_urlsafe(32)
        self._by_sid[sid] = Identity(name, role="admin" if name == ADMIN else "user")
        return sid

    def identity(self, sid: str | None) -> Identity | None:
        return self._by_sid.get(sid or "")

    def sign_out(self, sid: str | None) -> Identity | None:
        return self._by_sid.pop(sid or "", None)

    def drop_user(self, user: str) -> int:
        """Forget every sign-in of ``user`` (their cookies stop working)."""
        sids = [sid for sid, identity in self._by_sid.items() if identity.id == user]
        for sid in sids:
            del self._by_sid[sid]
        return len(sids)


def is_admin(identity: Identity | None) -> bool:
    return identity is not None and identity.claims.get("role") == "admin"


def cookie() -> str | None:
    return (websocket if has_websocket_context() else request).cookies.get(COOKIE)


# ------------------------------------------------------------------ rendering


def ago(timestamp: float) -> str:
    seconds = int(max(0, time.time() - timestamp))
    return f"{seconds // 60}:{seconds % 60:02d} ago"


def size(count: int) -> str:
    return f"{count} B" if count < 1024 else f"{count / 1024:.1f} KiB"


def who(identity: Identity | None) -> str:
    return "(not signed in)" if identity is None else identity.id


def here_list(entries: list[PresenceEntry]) -> Any:
    if not entries:
        return html.P("Nobody (not even this tab: it is still joining).")
    users: dict[str, list[str]] = {}
    for entry in entries:
        users.setdefault(who(entry.identity), []).append(str(entry.meta.get("page", "?")))
    return html.Ul([html.Li(f"{user}: {len(pages)} tab(s) ({', '.join(sorted(pages))})")
                    for user, pages in sorted(users.items())])


def users_table(entries: list[PresenceEntry]) -> Any:
    users: dict[str, list[PresenceEntry]] = {}
    for entry in entries:
        if entry.identity is not None:
            users.setdefault(entry.identity.id, []).append(entry)
    header = html.Tr([html.Th(c) for c in ("user", "tabs", "pages", "workers", "here since",
                                           "")])
    rows = [html.Tr([
        html.Td(user), html.Td(len(found)),
        html.Td(", ".join(sorted({str(e.meta.get("page")) for e in found}))),
        html.Td(len({e.worker for e in found})),
        html.Td(ago(min(e.joined_at for e in found))),
        html.Td(html.Button("Disconnect", id={"type": "kick", "user": user})),
    ]) for user, found in sorted(users.items())]
    return html.Table([header, *rows]) if rows else html.P("No signed-in user is here.")


def sessions_table(infos: list[SessionInfo]) -> Any:
    header = html.Tr([html.Th(c) for c in ("session", "user", "page", "address", "connected",
                                           "state", "tabs", "running", "in", "out")])
    rows = [html.Tr([
        html.Td(html.Code(info.id[:8])), html.Td(who(info.identity)),
        html.Td(info.app.rsplit("/", 2)[-2] or "lobby"), html.Td(info.remote or "?"),
        html.Td(ago(info.connected_at)), html.Td(info.state), html.Td(len(info.tabs)),
        html.Td(", ".join(info.running) or "-"), html.Td(size(info.bytes_in)),
        html.Td(size(info.bytes_out)),
    ]) for info in infos]
    return html.Table([header, *rows])


def _plain(component: Any) -> Any:
    return component.to_plotly_json()  # json.dumps: a component inside another


STYLE = {"fontFamily": "system-ui, sans-serif", "maxWidth": "60rem", "margin": "1rem auto"}


# ---------------------------------------------------------------------- the apps


def build_lobby(prefix: str, signins: SignIns, base: str) -> DashBlueprint:
    lobby = DashBlueprint("live_sessions", __name__, url_prefix=prefix,
                          websocket_callbacks=True)
    lobby.title = "Live sessions"
    lobby.layout = html.Div(style=STYLE, children=[
        html.H2("Who is here"),
        html.Div("…", id="me"),
        html.Form(action=f"{base}/signin", method="post", children=[
            dcc.Input(id="name", name="name", placeholder="your name (admin: the admin)",
                      maxLength=32),
            html.Button("Sign in", id="sign-in", type="submit"),
        ]),
        html.Form(action=f"{base}/signout", method="post",
                  children=[html.Button("Sign out", id="sign-out", type="submit")]),
        html.P(html.A("The admin page", href=f"{base}/admin/")),
        html.H3("Here now, in every worker"),
        html.Div(id="here"),
    ])

    @lobby.websocket_connect
    def identify(ws: Any) -> Identity | None:
        return signins.identity(ws.cookies.get(COOKIE))  # None: anonymous, welcome too

    @lobby.callback(persistent=True)
    async def here_now() -> None:
        me = ctx.websocket.identity
        set_props("me", {"children": "Not signed in." if me is None
                         else f"Signed in as {me.id} ({me.claims['role']})."})
        async with HERE.presence_events() as events:
            await HERE.track({"page": "lobby"})
            set_props("here", {"children": here_list(await HERE.presence())})
            async for _ in events:
                set_props("here", {"children": here_list(await HERE.presence())})

    return lobby


def build_admin(prefix: str, signins: SignIns, apps: list[DashBlueprint]) -> DashBlueprint:
    admin = DashBlueprint("live_sessions_admin", __name__, url_prefix=prefix,
                          websocket_callbacks=True)
    admin.title = "Live sessions: admin"
    admin.layout = html.Div(style=STYLE, children=[
        html.H2("Live sessions: admin"),
        html.P("Users present (presence: every worker)."),
        html.Div(id="users"),
        html.P(id="kick-result"),
        html.H3("Sessions of this worker (list_sessions())"),
        html.Div(id="sessions"),
    ])
    everything = [*apps, admin]

    @admin.before_request
    @admin.before_websocket
    async def admins_only() -> None:
        if not is_admin(signins.identity(cookie())):
            abort(403)  # the page, its assets, its callbacks, its socket

    @admin.websocket_connect
    def identify(ws: Any) -> Identity | None:
        return signins.identity(ws.cookies.get(COOKIE))

    @admin.callback(persistent=True)
    async def dashboard() -> None:
        ws = ctx.websocket
        changed = asyncio.Event()

        async def listen() -> None:
            async for _ in HERE.presence_events():
                changed.set()

        listener = asyncio.ensure_future(listen())
        await HERE.track({"page": "admin"})
        shown: dict[str, Any] = {}
        try:
            while not ws.is_shutdown:
                users = users_table(await HERE.presence())
                sessions = sessions_table(list_sessions(*everything))
                for component_id, value in (("users", users), ("sessions", sessions)):
                    text = json.dumps(value.to_plotly_json(), default=_plain)
                    if shown.get(component_id) != text:  # push only what changed
                        shown[component_id] = text
                        set_props(component_id, {"children": value})
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1):
                        await changed.wait()
        finally:
            listener.cancel()

    @admin.callback(Output("kick-result", "children"),
                    Input({"type": "kick", "user": ALL}, "n_clicks"),
                    prevent_initial_call=True)
    async def disconnect(clicks: list[int | None]) -> str:
        # Its own check: any client can send this request, whatever the page shows.
        caller = ctx.websocket.identity
        if not is_admin(caller):
            return "Only an admin may disconnect users."
        target = ctx.triggered_id
        if not isinstance(target, dict) or not ctx.triggered[0].get("value"):
            return no_update  # a button (re)appeared, nobody clicked
        user = str(target["user"])
        if caller is not None and user == caller.id:
            return "That is you: sign out on the lobby page instead."
        signed_out = signins.drop_user(user)  # first the credentials...
        closed = await revoke(user, *everything)  # ...then the sockets, in every worker
        return (f"Disconnected {user}: {signed_out} sign-in(s) dropped, {closed} session(s) "
                "closed in this worker (the others were told).")

    return admin


def mount(server: Quart, prefix: str = "/") -> list[DashBlueprint]:
    """The lobby at ``prefix``, the admin page under it, and the sign-in routes."""
    base = "/" + prefix.strip("/")
    base = "" if base == "/" else base
    signins = SignIns()
    lobby = build_lobby(base or "/", signins, base)
    admin = build_admin(f"{base}/admin", signins, [lobby])

    routes = Blueprint("live_sessions_signin", __name__, url_prefix=base or None)

    @routes.post("/signin")
    async def sign_in() -> Any:
        name = ((await request.form).get("name") or "").strip()
        if not NAME.match(name):
            abort(400, "a name is 1 to 32 letters, digits, '.', '_' or '-'")
        response = redirect(f"{base}/")
        response.set_cookie(COOKIE, signins.sign_in(name), httponly=True, samesite="Lax",
                            path=base or "/")
        return response

    @routes.post("/signout")
    async def sign_out() -> Any:
        # Everywhere: every sign-in of the user, and their open tabs (4003).
        identity = signins.sign_out(request.cookies.get(COOKIE))
        if identity is not None:
            signins.drop_user(identity.id)
            await revoke(identity.id, lobby, admin)
        response = redirect(f"{base}/")
        response.delete_cookie(COOKIE, path=base or "/")
        return response

    for app in (lobby, admin):
        server.register_blueprint(app)
    server.register_blueprint(routes)
    return [lobby, admin]


asgi = Quart(__name__)
mount(asgi)

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
