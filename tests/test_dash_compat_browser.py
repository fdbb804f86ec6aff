"""Dash features found missing or different by Dash's own integration tests,
on a real hypercorn and headless Chromium (issue 18)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.helpers import assert_no_console_errors

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

FETCH = """async ([method, url, body, headers]) => {
    const init = {method, headers: {"Content-Type": "application/json", ...headers}};
    if (body !== null) init.body = JSON.stringify(body);
    const response = await fetch(url, init);
    return [response.status, response.headers.get("content-type") || "", await response.text()];
}"""


async def fetch(page: Page, method: str, url: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """``fetch`` from the page (same origin, as a component would); (status, JSON or text)."""
    status, content_type, text = await asyncio.wait_for(
        page.evaluate(FETCH, [method, url, body, headers or {}]), timeout=10)
    return status, json.loads(text) if content_type.startswith("application/json") else text


@pytest.fixture(scope="module")
def routes_server(serve_app_session: Any) -> Any:
    return serve_app_session("tests.apps.compat_routes:asgi", ready_path="/app/")


@pytest.mark.parametrize(("prefix", "title", "clicked"), [
    ("/app/", "blueprint app", "blue 1"),   # DashBlueprint
    ("/dash/", "mounted app", "mounted 1"),  # quartdash.Dash(server=<a Quart app>)
])
async def test_startup_routes_of_an_app_built_before_its_server(
    routes_server: Any, page: Page, prefix: str, title: str, clicked: str
) -> None:
    await page.goto(routes_server.http_url(prefix))
    await page.click("#go")
    await expect(page.locator("#out")).to_have_text(clicked)
    # Each app serves every startup route, bound to itself (dash.get_app()).
    assert await fetch(page, "GET", f"{prefix}_dash_startup_route/compat-whoami") == (
        200, {"app": title})
    assert await fetch(page, "POST", f"{prefix}_dash_startup_route/compat-echo", {"n": 7}) == (
        200, {"app": title, "echo": {"n": 7}})
    assert_no_console_errors(page)


async def test_api_endpoints_blueprint_under_its_prefix_dropin_at_the_root(
    serve_app_session: Any, page: Page
) -> None:
    server = serve_app_session("tests.apps.compat_api:asgi", ready_path="/early/")
    for prefix, clicked in (("/early/", "2"), ("/late/", "0.5"), ("/dash/", "3")):
        await page.goto(server.http_url(prefix))
        await page.click("#go")  # the callback still serves its page
        await expect(page.locator("#out")).to_have_text(clicked)
    key = {"X-Api-Key": "k1"}
    # A blueprint's: under its prefix, behind its hooks, not at the root.
    assert await fetch(page, "POST", "/early/api/double", {"n_clicks": 4}, key) == (200, 8)
    assert (await fetch(page, "POST", "/early/api/double", {"n_clicks": 4}))[0] == 401
    assert (await fetch(page, "POST", "/api/double", {"n_clicks": 4}, key))[0] == 404
    # ...also when setup_apis() comes after register_blueprint.
    assert await fetch(page, "POST", "/late/api/half", {"n_clicks": 3}) == (200, 1.5)
    assert (await fetch(page, "POST", "/api/half", {"n_clicks": 3}))[0] == 404
    # A drop-in Dash's: at the server root, whatever its url_base_pathname (as Dash).
    assert await fetch(page, "POST", "/api/triple", {"n_clicks": 2}) == (200, 6)
    assert (await fetch(page, "POST", "/dash/api/triple", {"n_clicks": 2}))[0] == 405
    # (Chromium logs each 4xx answer to fetch as a console error.)
    assert_no_console_errors(page, ignore=[re.compile(r"status of 40[145] ")])


@pytest.mark.parametrize("front_door", ["blueprint", "dropin"])
async def test_pages_redirect_from_under_a_prefix(
    serve_app_session: Any, page: Page, front_door: str
) -> None:
    server = serve_app_session("tests.apps.compat_pages:asgi", ready_path="/app/",
                               env={"COMPAT_PAGES_FRONT_DOOR": front_door})
    # The redirect route is where the user asked for it, and points at the page.
    for old in ("/app/v2", "/app/old/two"):
        response = await page.request.get(server.http_url(old), max_redirects=0)
        assert (response.status, response.headers.get("location")) == (301, "/app/page-2"), old
    for doubled in ("/app/app/v2", "/app/app/page-2"):  # nothing lives under a doubled prefix
        response = await page.request.get(server.http_url(doubled), max_redirects=0)
        assert response.status != 301, doubled

    await page.goto(server.http_url("/app/v2"))
    await expect(page.locator("#page-title")).to_have_text("Page two")
    assert page.url == server.http_url("/app/page-2")
    await expect(page.locator("#front-door")).to_have_text(front_door)
    # The pages themselves work under the prefix: home, then a link.
    await page.goto(server.http_url("/app/"))
    await expect(page.locator("#page-title")).to_have_text("Home")
    await page.click("#to-two")
    await expect(page.locator("#page-title")).to_have_text("Page two")
    assert page.url == server.http_url("/app/page-2")
    assert_no_console_errors(page)
