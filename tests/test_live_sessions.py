"""Identity, listing and closing sessions, revoke: in process (DashClient through
Quart's test client). Across worker processes with Redis, and in Chromium:
tests/test_live_sessions_cluster.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from dash import Input, Output, ctx, html

from quartdash import CloseCode, Dash, DashBlueprint, Identity, signals
from quartdash.hosting import list_sessions, revoke
from quartdash.testing import ConnectionClosed, DashClient


def build(users: dict[str, Identity]) -> Dash:
    """An app whose connect hook maps the ``sid`` cookie to an identity
    (``users``: the server-side session table the test edits)."""
    app = Dash(__name__, websocket_callbacks=True)
    app.layout = html.Div([html.Button("who", id="who"), html.Div(id="out"),
                           html.Button("wait", id="wait"), html.Div(id="waited")])

    @app.websocket_connect
    def identify(ws: Any) -> Any:
        identity = users.get(ws.cookies.get("sid", ""))
        return identity if identity is not None else (4001, "sign in")

    @app.callback(Output("out", "children"), Input("who", "n_clicks"),
                  prevent_initial_call=True)
    async def who(n: int) -> str:
        identity = ctx.websocket.identity
        return f"{identity.id} ({identity.claims.get('role')})"

    @app.callback(Output("waited", "children"), Input("wait", "n_clicks"),
                  prevent_initial_call=True)
    async def wait(n: int) -> str:
        await asyncio.sleep(30)
        return "done"

    return app


def client(app: Dash, sid: str, **options: Any) -> DashClient:
    return DashClient(app, headers={"Cookie": f"sid={sid}"}, **options)


async def wait_until(predicate: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_identity_reaches_callbacks_signals_and_the_listing() -> None:
    users = {"s1": Identity("alice", role="admin")}
    app = build(users)
    seen: list[Any] = []

    def on_connected(sender: Any, session: Any, **_: Any) -> None:
        seen.append(session.identity)

    signals.session_connected.connect(on_connected, sender=app.live)
    try:
        async with client(app, "s1") as alice:
            tab = await alice.open_renderer()
            result = await tab.call("out.children", inputs={"who.n_clicks": 1})
            assert result.output("out", "children") == "alice (admin)"
            assert seen == [Identity("alice", role="admin")]
            await tab.start("waited.children", inputs={"wait.n_clicks": 1})
            await wait_until(lambda: app.live.list_sessions()[0].running, "a running callback")

            [info] = app.live.list_sessions()
            assert info.identity == Identity("alice", role="admin")
            assert info.app == app.live.app_key and info.state == "open"
            assert info.tabs == (tab.id,)
            assert info.running == ("waited.children",)
            assert abs(info.connected_at - time.time()) < 10
            assert info.bytes_in > 100 and info.bytes_out > 20, info
            assert info.messages_in >= 3 and info.frames_out >= 1
            assert info.to_json()["identity"] == {"id": "alice", "claims": {"role": "admin"}}
            assert [i.id for i in list_sessions(app)] == [info.id]
            assert info.id in {i.id for i in list_sessions()}  # every app of the process
            assert app.live.session(info.id) in app.live.sessions
    finally:
        signals.session_connected.disconnect(on_connected, sender=app.live)


async def test_a_hook_without_identity_leaves_it_none() -> None:
    app = Dash(__name__, websocket_callbacks=True)
    app.layout = html.Div([html.Button(id="b"), html.Div(id="o")])

    @app.callback(Output("o", "children"), Input("b", "n_clicks"), prevent_initial_call=True)
    async def show(n: int) -> str:
        return repr(ctx.websocket.identity)

    async with DashClient(app) as anonymous:
        tab = await anonymous.open_renderer()
        assert (await tab.call("o.children", inputs={"b.n_clicks": 1})
                ).output("o", "children") == "None"
        assert app.live.list_sessions()[0].identity is None


async def test_close_session_closes_that_one_only() -> None:
    app = build({"s1": Identity("alice"), "s2": Identity("bob")})
    async with client(app, "s1") as alice, client(app, "s2") as bob:
        await alice.open_renderer()
        await bob.open_renderer()
        await alice.heartbeat()  # a round trip: the sessions exist
        await bob.heartbeat()
        by_user = {info.identity.id: info for info in app.live.list_sessions()}
        assert await app.live.close_session(by_user["bob"].id, 4000 + 42, "kicked")
        assert await bob.wait_closed() == (4042, "kicked")
        await alice.heartbeat()
        assert not await app.live.close_session("no-such-session")
        await wait_until(lambda: len(app.live.sessions) == 1, "bob's session to end")


async def test_revoke_closes_every_socket_of_that_identity() -> None:
    users = {"a1": Identity("alice"), "a2": Identity("alice", device="phone"),
             "b1": Identity("bob")}
    app = build(users)
    async with client(app, "a1", resumable=True) as laptop, client(app, "a2") as phone, \
            client(app, "b1") as bob:
        for c in (laptop, phone, bob):
            await c.open_renderer()
            await c.heartbeat()
        assert await app.live.revoke("alice") == 2
        assert await laptop.wait_closed() == (CloseCode.REVOKED, "Revoked")
        assert await phone.wait_closed() == (4003, "Revoked")
        await bob.heartbeat()
        await wait_until(lambda: len(app.live.sessions) == 1, "alice's sessions to end")
        # A revoked session cannot come back, even with its token and cookies:
        # the client learns why and starts afresh (connect hooks run again).
        assert await laptop.resume() == "revoked"
        await wait_until(lambda: len(app.live.sessions) == 2, "the fresh session")
        assert sorted(i.identity.id for i in app.live.list_sessions()) == ["alice", "bob"]


async def test_revoke_also_ends_detached_sessions() -> None:
    app = build({"a1": Identity("alice")})
    async with client(app, "a1", resumable=True) as alice:
        await alice.open_renderer()
        await alice.drop()
        await wait_until(lambda: [i.state for i in app.live.list_sessions()] == ["detached"],
                         "the session to wait for its client")
        assert await revoke("alice", app) == 1
        await wait_until(lambda: not app.live.sessions, "the detached session to end")
        assert await alice.resume() == "revoked"


async def test_revoke_of_every_app() -> None:
    from quart import Quart

    users = {"c1": Identity("carol")}
    server = Quart(__name__)
    first = DashBlueprint("first", __name__, url_prefix="/first", websocket_callbacks=True)
    second = DashBlueprint("second", __name__, url_prefix="/second", websocket_callbacks=True)
    for bp in (first, second):
        bp.layout = html.Div("x")
        bp.websocket_connect(lambda ws: users.get(ws.cookies.get("sid", "")))
        server.register_blueprint(bp)
    headers = {"Cookie": "sid=c1"}
    async with DashClient(first, server=server, headers=headers) as one, \
            DashClient(second, server=server, headers=headers) as two:
        for c in (one, two):
            await c.open_renderer()
            await c.heartbeat()
        assert await revoke(Identity("carol")) == 2  # no app named: every app
        assert (await one.wait_closed())[0] == (await two.wait_closed())[0] == 4003


async def test_a_changed_identity_does_not_resume_the_old_session() -> None:
    users = {"s1": Identity("alice", role="admin")}
    app = build(users)
    async with client(app, "s1", resumable=True) as alice:
        await alice.open_renderer()
        await alice.heartbeat()
        [before] = app.live.list_sessions()
        await alice.drop()
        users["s1"] = Identity("alice", role="viewer")  # the role changed meanwhile
        assert await alice.resume() == "forbidden"
        await wait_until(lambda: len(app.live.sessions) == 2, "a fresh session")
        fresh = [i for i in app.live.list_sessions() if i.id != before.id]
        assert [i.identity for i in fresh] == [Identity("alice", role="viewer")]
        # The same identity resumes as before.
        await alice.open_renderer()
        await alice.drop()
        assert await alice.resume() is None


async def test_a_revoked_credential_gets_neither_the_session_nor_a_new_one() -> None:
    users = {"s1": Identity("alice")}
    app = build(users)
    async with client(app, "s1", resumable=True) as alice:
        await alice.open_renderer()
        await alice.drop()
        del users["s1"]  # signed out elsewhere: the connect hook now refuses
        with pytest.raises(ConnectionClosed) as closed:  # refused before any resume
            await alice.resume(timeout=2)
        assert (closed.value.code, closed.value.reason) == (4001, "sign in")
        assert not alice.lost
        # The old session still waits out its window, untouched; revoke ends it.
        assert [i.state for i in app.live.list_sessions()] == ["detached"]
        assert await app.live.revoke("alice") == 1


def test_identity_is_a_value() -> None:
    a = Identity("alice", role="admin", teams=["x"])
    assert a == Identity("alice", teams=["x"], role="admin")
    assert a != Identity("alice") and hash(a) == hash(Identity("alice", role="admin",
                                                               teams=["x"]))
    assert a.claims["role"] == "admin" and a.to_json()["id"] == "alice"
    assert Identity.from_json(a.to_json()) == a
    with pytest.raises(AttributeError):
        a.id = "mallory"  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.claims["role"] = "root"  # type: ignore[index]
    for bad in ("", None, 7):
        with pytest.raises(ValueError):
            Identity(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Identity("x", when=object())
