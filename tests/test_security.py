"""Security: cross-site WebSocket hijacking, authentication, XSS, and what errors reveal.

Protocol-level tests use a real hypercorn and a real WebSocket client; the
``browser`` ones drive headless Chromium (docs/security.md has the recipes).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.async_api import Page
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.apps import rel_client as rc
from tests.helpers import REPO_ROOT, http_get

APP = "tests.apps.rel_app:asgi"
AUTH_APP = "tests.apps.rel_auth:asgi"
XSS_APP = "tests.apps.rel_xss:asgi"
SECRET = "s3cr3t-token-7f1c"
ALLOW_LIST = {"REL_ALLOWED_ORIGINS": "https://embed.example.com,https://*.partner.example"}


async def refused(server: Any, origin: str | None, **headers: str) -> tuple[int | None, str]:
    """Connect with ``origin``; return the close code and reason the server sent."""
    ws = await rc.open_ws(server, origin=origin, headers=headers)
    try:
        # A message sent at once must not be acted upon.
        await rc.send(ws, rc.echo(renderer="intruder"))
        message = await rc.recv_until(ws, lambda m: True, timeout=5)
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
    raise AssertionError(f"served instead of refused: {message}")


async def accepted(server: Any, origin: str | None) -> None:
    ws = await rc.open_ws(server, origin=origin)
    await rc.expect_alive(ws)
    await ws.close()


# --- cross-site WebSocket hijacking ----------------------------------------------------


@pytest.mark.parametrize("origin", [
    "http://evil.example",
    "null",  # sandboxed iframes, file:// pages
    "http://127.0.0.1:1",  # another port is another origin
    "http://127.0.0.1.evil.example",
    "http://evil.example/http://127.0.0.1",
])
async def test_foreign_origin_is_rejected_by_default(serve_app_session: Any, origin: str
                                                     ) -> None:
    server = serve_app_session(APP)
    before = await rc.astats(server)
    code, reason = await refused(server, origin)
    assert code == 4001
    assert "not allowed" in reason
    after = await rc.wait_stats(server, lambda s: s["sessions"] == 0, what="no session")
    # Nothing ran for the intruder: no persistent callback, no echo.
    assert "intruder" not in after["persistent_starts"]
    assert after["counters"].get("echo", 0) == before["counters"].get("echo", 0)


async def test_own_origin_is_accepted(serve_app_session: Any) -> None:
    server = serve_app_session(APP)
    await accepted(server, rc.origin_of(server))


@pytest.mark.parametrize("origin", [
    "https://embed.example.com",
    "https://embed.example.com/",
    "HTTPS://EMBED.EXAMPLE.COM",
    "https://a.partner.example",
    "https://x.y.partner.example",
])
async def test_allow_list_admits(serve_app_session: Any, origin: str) -> None:
    await accepted(serve_app_session(APP, env=ALLOW_LIST), origin)


@pytest.mark.parametrize("origin", [
    "http://embed.example.com",  # scheme is part of the origin
    "https://embed.example.com.evil.example",
    "https://evil-embed.example.com",
    "https://partner.example",  # the pattern wants a subdomain
    "https://partner.example.evil.example",
    "https://evil.example",
])
async def test_allow_list_still_refuses_the_rest(serve_app_session: Any, origin: str) -> None:
    code, _ = await refused(serve_app_session(APP, env=ALLOW_LIST), origin)
    assert code == 4001


async def test_missing_origin_is_refused_by_default(serve_app_session: Any) -> None:
    code, reason = await refused(serve_app_session(APP), None)
    assert (code, reason) == (4001, "Origin header required")


async def test_missing_origin_allowed_when_configured(serve_app_session: Any) -> None:
    server = serve_app_session(APP, env={"REL_ALLOW_MISSING_ORIGIN": "1"})
    await accepted(server, None)
    code, _ = await refused(server, "http://evil.example")  # still checked when present
    assert code == 4001


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
async def test_hijack_from_a_foreign_page_in_chromium(serve_app: Any, page: Page) -> None:
    """A signed-in user opens a malicious page on another origin (same site:
    cookies *are* sent). Its script's socket to the Dash app is refused."""
    victim = serve_app(AUTH_APP, env={"SECURE_COOKIES": "0"}, ready_path="/login")
    evil = serve_app("tests.apps.hello:asgi")
    await page.goto(victim.url + "/live/")  # 401: not signed in yet
    await sign_in(page, victim, "/login")
    assert await page.wait_for_selector("#who-btn")
    await page.goto(evil.url + "/")
    result = await page.evaluate("""url => new Promise(resolve => {
        const ws = new WebSocket(url);
        const got = [];
        ws.onopen = () => ws.send(JSON.stringify({type: "renderer_joined", rendererId: "x"}));
        ws.onmessage = e => got.push(e.data);
        ws.onclose = e => resolve({code: e.code, reason: e.reason, got});
    })""", victim.ws_url("/live/_dash-ws-callback"))
    assert result["code"] == 4001, result
    assert "not allowed" in result["reason"]
    assert result["got"] == []


# --- authentication ------------------------------------------------------------------------


async def sign_in(page: Page, server: Any, path: str) -> None:
    """Post the login form from inside the page (so the browser keeps the cookie)."""
    await page.evaluate("""([url, body]) => fetch(url, {method: "POST", body: new URLSearchParams(body),
        credentials: "same-origin", redirect: "manual"})""",
                        [server.url + path, {"user": "alice", "password": "wonderland"}])
    await page.goto(server.url + ("/live/" if path == "/login" else "/ops/"))


@pytest.mark.parametrize("prefix", ["/live/", "/ops/"])
async def test_unauthenticated_gets_neither_page_nor_socket(serve_app_session: Any,
                                                            prefix: str) -> None:
    server = serve_app_session(AUTH_APP, env={"SECURE_COOKIES": "0"}, ready_path="/login")
    for path in ("", "_dash-layout", "_dash-dependencies", "_quartdash/ws-worker.js"):
        response = await asyncio.to_thread(http_get, server.http_url(prefix + path))
        assert response.status == 401, (path, response.status)
        assert b"_dash-config" not in response.body
    callback = await asyncio.to_thread(_post, server, prefix + "_dash-update-component",
                                       b"{}", {"Content-Type": "application/json"})
    assert callback == 401
    with pytest.raises(Exception) as refused_handshake:
        await rc.open_ws(server, path=prefix + "_dash-ws-callback")
    assert "401" in str(refused_handshake.value)


def _post(server: Any, path: str, body: bytes, headers: dict[str, str]) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(server.http_url(path), data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.parametrize("prefix, login", [("/live/", "/login"), ("/ops/", "/ops-login")])
async def test_wrong_password_gets_no_session(serve_app_session: Any, prefix: str,
                                              login: str) -> None:
    server = serve_app_session(AUTH_APP, env={"SECURE_COOKIES": "0"}, ready_path="/login")
    body = urlencode({"user": "alice", "password": "guess"}).encode()
    assert await asyncio.to_thread(
        _post, server, login, body, {"Content-Type": "application/x-www-form-urlencoded"}) == 401


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("prefix, login, button, out, expected", [
    ("/live/", "/login", "#who-btn", "#who-out", "signed in as alice"),
    ("/ops/", "/ops-login", "#status-btn", "#status-out", "all systems go (1)"),
], ids=["quart-auth", "before_websocket"])
async def test_browser_sees_the_app_only_after_login(serve_app: Any, page: Page, prefix: str,
                                                     login: str, button: str, out: str,
                                                     expected: str) -> None:
    server = serve_app(AUTH_APP, env={"SECURE_COOKIES": "0"}, ready_path="/login")
    response = await page.goto(server.url + prefix)
    assert response is not None and response.status == 401
    assert await page.query_selector("#react-entry-point") is None
    await sign_in(page, server, login)
    await page.click(button)
    # The callback ran over the WebSocket (websocket_callbacks=True), as the user.
    await page.wait_for_function("([sel, text]) => document.querySelector(sel)?.textContent "
                                 "=== text", arg=[out, expected])


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
async def test_logout_revokes_the_live_tab(serve_app: Any, page: Page) -> None:
    """quart-auth: the socket's identity in a callback; signing out revokes it."""
    server = serve_app(AUTH_APP, env={"SECURE_COOKIES": "0"}, ready_path="/login")
    await page.goto(server.url + "/live/")  # 401: signed out, but same-origin for the form
    await sign_in(page, server, "/login")
    await page.click("#who-btn")
    await page.wait_for_function("document.querySelector('#who-out')?.textContent "
                                 "=== 'signed in as alice'")  # ctx.websocket.identity
    answer = await page.evaluate("""(url) => fetch(url, {method: "POST",
        credentials: "same-origin"}).then((r) => r.json())""", server.url + "/logout")
    assert answer == {"closed": 1}  # the live tab's socket, closed with 4003
    await page.wait_for_function(
        "document.documentElement.dataset.quartdashRevoked === 'Revoked'", timeout=2000)
    # The worker does not come back, not even on a click: the callback fails at once.
    await page.click("#who-btn")
    await asyncio.sleep(1)
    assert await page.inner_text("#who-out") == "signed in as alice"
    response = await page.goto(server.url + "/live/")
    assert response is not None and response.status == 401  # and the cookie is gone


# --- XSS through set_props -------------------------------------------------------------------


CLICKABLE = ("#a-link", "#a-link2", "#dcc-link", "#md a", "#form-btn")


async def push_payloads(page: Page, url: str) -> None:
    await page.goto(url)
    await page.click("#push")
    # The six script URLs are refused by quartdash (then pushed as trusted, for the
    # renderer's own defence); the HTML strings are text and pass.
    await page.wait_for_function(
        "document.getElementById('done')?.textContent === 'pushed 9, 6 refused'")


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
async def test_set_props_cannot_run_script(serve_app: Any, page: Page) -> None:
    server = serve_app(XSS_APP)
    url = server.url + "/"
    # Every payload calls alert(): a dialog is seen even if the page navigated.
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message),
                                      asyncio.ensure_future(dialog.dismiss())))
    await push_payloads(page, url)
    # Every value arrived (HTML as inert text; URLs neutralised by the renderer)...
    assert "onerror" in await page.inner_text("#div")
    assert "<script>" in await page.inner_text("#div2")
    # Navigable URLs lose their javascript: (an <img src="javascript:..."> is
    # inert in every browser; the checks below prove it did not run either).
    urls = await page.evaluate("""() => [
        ...[...document.querySelectorAll('a')].map(e => e.getAttribute('href')),
        ...[...document.querySelectorAll('iframe')].map(e => e.getAttribute('src')),
        ...[...document.querySelectorAll('button')].map(e => e.getAttribute('formaction')),
    ].map(u => u || '')""")
    assert len(urls) >= 7, urls
    live = [u for u in urls if u.strip().lower().startswith("javascript:")
            and u.strip().lower() != "javascript:void(0)"]  # markdown's own neutral link
    assert live == [], urls
    await asyncio.sleep(0.3)  # img onerror, iframe load, markdown: would have run by now
    assert await page.evaluate("window.__pwned || null") is None
    assert dialogs == []
    # ...and following each link or submitting the form runs nothing either.
    for selector in CLICKABLE:
        await push_payloads(page, url)
        element = await page.query_selector(selector)
        assert element is not None, selector
        await element.click()
        await asyncio.sleep(0.3)
        if page.url.startswith(url):  # still our document: check it too
            assert await page.evaluate("window.__pwned || null") is None, selector
        assert dialogs == [], (selector, dialogs)


def _record_dialogs(page: Page) -> list[str]:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message),
                                      asyncio.ensure_future(dialog.dismiss())))
    return dialogs


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("button, transport", [("#push-code", "ws"), ("#push-code-http", "http")])
async def test_set_props_refuses_props_that_run_markup(serve_app: Any, page: Page, button: str,
                                                       transport: str) -> None:
    """dangerouslySetInnerHTML, srcDoc, a component carrying srcDoc, Markdown's raw-HTML
    switch: refused in the callback (UnsafePropError), never sent, nothing runs."""
    server = serve_app(XSS_APP)
    dialogs = _record_dialogs(page)
    await page.goto(server.url + "/")
    await page.click(button)
    await page.wait_for_function(
        f"document.getElementById('code-done')?.textContent === '{transport} refused 7 of 7'")
    await asyncio.sleep(0.5)  # an onerror, an iframe's script: would have run by now
    assert await page.evaluate("window.__pwned || null") is None
    assert dialogs == []
    assert await page.evaluate("document.getElementById('code-frame').getAttribute('srcdoc')") \
        is None
    assert await page.inner_html("#code-div") == ""
    assert await page.query_selector("#code-div2 iframe, #code-div3 iframe") is None
    assert await page.query_selector("#code-md img") is None  # still rendered as text
    assert await page.query_selector("#code-div4 img, #code-table img") is None


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
async def test_trusted_markup_and_untrusted_text(serve_app: Any, page: Page) -> None:
    server = serve_app(XSS_APP)
    await page.goto(server.url + "/")
    await page.click("#push-trusted")
    await page.wait_for_function(
        "document.getElementById('trusted-done')?.textContent === 'trusted pushed'")
    for frame_id, words in (("preview", "listed in trusted_props"),
                            ("preview2", "trusted per call")):
        frame = page.frame_locator(f"#{frame_id}")
        await frame.locator("#inside").wait_for(timeout=5000)
        assert await frame.locator("#inside").inner_text() == words
    # text(): a component dict from "another user" shows as characters.
    shown = await page.inner_text("#as-text")
    assert '"srcDoc"' in shown and "<script>" in shown
    assert await page.query_selector("#as-text iframe") is None


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
async def test_a_crafted_link_to_a_missing_file_runs_nothing(serve_app: Any, page: Page) -> None:
    """The reflected-XSS probe: a link to a component-suites path carrying markup."""
    server = serve_app(XSS_APP)
    dialogs = _record_dialogs(page)
    crafted = "/_dash-component-suites/dash/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.js"
    response = await page.goto(server.url + crafted)
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/plain")
    await asyncio.sleep(0.3)
    assert dialogs == []
    assert await page.query_selector("img") is None
    assert "onerror" not in await page.content()


# --- what errors reveal ----------------------------------------------------------------------


def _no_leak(text: str) -> None:
    assert SECRET not in text
    assert "Traceback" not in text
    # No server-side file path: the checkout, the interpreter, installed packages.
    for path in (str(REPO_ROOT), sys.prefix, sys.base_prefix, "site-packages"):
        assert path not in text, path


async def test_errors_reveal_nothing_outside_debug(serve_app_session: Any) -> None:
    server = serve_app_session(APP)
    ws = await rc.open_ws(server)
    seen: list[str] = []
    await rc.send(ws, rc.click("boom-btn", "boom-out.children", request_id="boom"))
    reply = await rc.recv_until(ws, lambda m: seen.append(json.dumps(m)) or m.get(
        "requestId") == "boom")
    assert reply["payload"]["status"] == "error"
    for bad in ("nonsense", '{"type": "callback_request", "rendererId": "r", "requestId": "x",'
                ' "payload": {"output": "boom-out.children", "inputs": [{"id": "boom-btn", '
                '"property": "n_clicks"}], "outputs": [7]}}'):
        await rc.send(ws, bad)
        seen.append(json.dumps(await rc.recv_until(ws, rc.of_type("error"))))
    await ws.close()
    _no_leak("\n".join(seen))
    # The HTTP paths: a callback that raises, a malformed request, a missing file.
    body = json.dumps({"output": "http-boom-out.children",
                       "outputs": {"id": "http-boom-out", "property": "children"},
                       "inputs": [{"id": "http-boom-btn", "property": "n_clicks", "value": 1}],
                       "changedPropIds": ["http-boom-btn.n_clicks"]}).encode()
    for path, data in (("/_dash-update-component", body), ("/_dash-update-component", b"{"),
                       ("/_dash-update-component", b'{"output": 5}')):
        status, text = await asyncio.to_thread(_post_text, server, path, data)
        assert status in (400, 500), (path, status)
        _no_leak(text)
    for path in ("/_dash-component-suites/dash/../../../etc/passwd",
                 "/_dash-component-suites/os/path.py", "/assets/../rel_app.py"):
        response = await asyncio.to_thread(http_get, server.http_url(path))
        assert response.status in (400, 404), (path, response.status)
        _no_leak(response.text)
    # The server's log has the whole story.
    assert f"RuntimeError: http boom with {SECRET}" in server.output()


def _post_text(server: Any, path: str, data: bytes) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(server.http_url(path), data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


async def test_a_crashing_connect_hook_rejects_without_telling(serve_app_session: Any
                                                               ) -> None:
    server = serve_app_session(APP)
    code, reason = await refused(server, "", **{"X-Crash-Hook": "1"})
    assert (code, reason) == (4001, "Rejected")
    assert f"RuntimeError: hook crashed with {SECRET}" in server.output()


async def test_debug_mode_shows_the_traceback(serve_app_session: Any) -> None:
    server = serve_app_session(APP, env={"REL_DEBUG": "1"})
    ws: ClientConnection = await rc.open_ws(server)
    await rc.send(ws, rc.click("boom-btn", "boom-out.children", request_id="boom"))
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "boom"))
    await ws.close()
    assert SECRET in reply["payload"]["message"] and "Traceback" in reply["payload"]["message"]


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
async def test_browser_shows_callback_errors_only_in_debug(serve_app: Any, page: Page,
                                                           debug: bool) -> None:
    server = serve_app(APP, env={"REL_DEBUG": "1" if debug else "0"})
    await page.goto(server.url + "/")
    await page.click("#boom-btn")
    if debug:
        await wait_console(page, SECRET)
        await page.wait_for_selector(".test-devtools-error-count")
        assert any("Traceback" in e for e in page.console_errors)  # type: ignore[attr-defined]
    else:
        await wait_console(page, "Callback error (see the server log)")
        assert await page.query_selector(".test-devtools-error-count") is None
        assert SECRET not in await page.content()
        errors = "\n".join(page.console_errors)  # type: ignore[attr-defined]
        assert SECRET not in errors and "Traceback" not in errors


async def wait_console(page: Page, text: str, timeout: float = 10.0) -> None:
    """Wait until a console error of ``page`` contains ``text``."""
    for _ in range(int(timeout / 0.05)):
        if any(text in e for e in page.console_errors):  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no console error with {text!r} after {timeout}s: "
                         f"{page.console_errors}")  # type: ignore[attr-defined]
