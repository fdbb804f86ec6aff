"""examples/live_sessions.py in process (DashClient through Quart's test
client): sign-in gives the socket an identity, the lobby and the admin page
follow presence, the admin page is the admin's only, and its Disconnect
button checks the caller by itself before it signs a user out and revokes
them. In Chromium, through the gallery: tests/test_examples_browser.py."""

from __future__ import annotations

from typing import Any

from quart import Quart

from examples import gallery, live_sessions
from quartdash import Identity
from quartdash.testing import DashClient

KICK = '{"type":"kick","user":"%s"}.n_clicks'


async def sign_in(server: Quart, name: str) -> str:
    response = await server.test_client().post("/ls/signin", form={"name": name})
    assert response.status_code == 302, response.status_code
    return response.headers["set-cookie"].split(";")[0]


def text(value: Any) -> str:
    return str(value)


async def test_lobby_admin_and_disconnect() -> None:
    server = Quart(__name__)
    lobby, admin = live_sessions.mount(server, "/ls")
    alice, boss = await sign_in(server, "alice"), await sign_in(server, "admin")
    client = server.test_client()
    assert (await client.post("/ls/signin", form={"name": "no spaces"})).status_code == 400
    assert (await client.get("/ls/admin/", headers={"Cookie": alice})).status_code == 403
    assert (await client.get("/ls/admin/", headers={"Cookie": boss})).status_code == 200

    async with DashClient(lobby, server=server, headers={"Cookie": alice}) as a, \
            DashClient(lobby, server=server) as anonymous, \
            DashClient(admin, server=server, headers={"Cookie": boss}) as b:
        tab = await a.open_renderer()
        await tab.wait_for_push("me", "children", where=lambda v: v == "Signed in as alice "
                                "(user).")
        await tab.wait_for_push("here", "children", where=lambda v: "alice: 1 tab(s) (lobby)"
                                in text(v))
        stranger = await anonymous.open_renderer()
        await stranger.wait_for_push("me", "children", where=lambda v: v == "Not signed in.")
        await tab.wait_for_push("here", "children", where=lambda v: "(not signed in): 1"
                                in text(v))

        desk = await b.open_renderer()
        await desk.wait_for_push("users", "children", where=lambda v: "'alice'" in text(v)
                                 and "'admin'" in text(v))
        sessions = await desk.wait_for_push("sessions", "children",
                                            where=lambda v: text(v).count("'open'") == 3)
        assert "'alice'" in text(sessions[-1].value)
        await tab.wait_for_push("here", "children", where=lambda v: "admin: 1 tab(s) (admin)"
                                in text(v))

        # A socket whose identity is no admin's sends the button's request anyway
        # (here: a connect hook that says mallory, past the page's own check).
        def mallory(ws: Any) -> Identity:
            return Identity("mallory", role="user")

        admin.live.connect_hooks.append(mallory)
        try:
            async with DashClient(admin, server=server, headers={"Cookie": boss}) as forged:
                other = await forged.open_renderer()
                refused = await other.call("kick-result.children", inputs={KICK % "alice": 1})
        finally:
            admin.live.connect_hooks.remove(mallory)
        assert refused.output("kick-result", "children") == "Only an admin may disconnect users."
        await a.heartbeat()  # alice is still here

        result = await desk.call("kick-result.children", inputs={KICK % "alice": 1})
        assert result.output("kick-result", "children").startswith(
            "Disconnected alice: 1 sign-in(s) dropped, 1 session(s) closed")
        assert await a.wait_closed() == (4003, "Revoked")
        await desk.wait_for_push("users", "children", where=lambda v: "'alice'" not in text(v))
        # Her cookie no longer signs her in.
        assert (await client.get("/ls/", headers={"Cookie": alice})).status_code == 200
        async with DashClient(lobby, server=server, headers={"Cookie": alice}) as back:
            again_tab = await back.open_renderer()
            await again_tab.wait_for_push("me", "children", where=lambda v: v == "Not signed in.")


def test_the_gallery_mounts_it() -> None:
    mounted = {m.example.slug: m for m in gallery.MOUNTED}["live-sessions"]
    assert [app.url_prefix for app in mounted.apps] == ["/live-sessions",
                                                        "/live-sessions/admin"]
