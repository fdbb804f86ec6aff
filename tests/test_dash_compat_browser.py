"""Dash features found missing or different by Dash's own integration tests,
on a real hypercorn and headless Chromium (issue 18)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.helpers import assert_no_console_errors, http_get

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


@pytest.fixture(scope="module")
def background_server(serve_app_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    cache = tmp_path_factory.mktemp("background-cache")
    return serve_app_session("tests.apps.compat_background:asgi", ready_path="/jobs",
                             env={"COMPAT_BACKGROUND_CACHE": str(cache)})


async def jobs(server: Any) -> dict[str, Any]:
    """The server's worker pid and its background job processes alive."""
    response = await asyncio.to_thread(http_get, server.http_url("/jobs"), timeout=5)
    return json.loads(response.body)


async def alive_jobs(server: Any) -> list[int]:
    return (await jobs(server))["alive"]


WATCH_PROGRESS = """() => {
    window.progressSeen = [];
    const node = document.getElementById("progress");
    new MutationObserver(() => window.progressSeen.push(node.textContent))
        .observe(node, {childList: true, characterData: true, subtree: true});
}"""


@pytest.mark.parametrize("prefix", ["/dash/", "/bp/"])
async def test_background_callback_progress_running_set_props(
    background_server: Any, page: Page, prefix: str
) -> None:
    await page.goto(background_server.http_url(prefix))
    await expect(page.locator("#status")).to_have_text("idle")
    await page.evaluate(WATCH_PROGRESS)
    await page.click("#run")
    # running=: applied while the job runs...
    await expect(page.locator("#status")).to_have_text("running")
    await expect(page.locator("#run")).to_be_disabled()
    await expect(page.locator("#cancel")).to_be_enabled()
    # ...set_props from the job process, and the result.
    await expect(page.locator("#side")).to_have_text(re.compile(r"job pid \d+"))
    await expect(page.locator("#result")).to_have_text("run 1: 4 steps done")
    await expect(page.locator("#status")).to_have_text("stopped")
    await expect(page.locator("#run")).to_be_enabled()
    await expect(page.locator("#cancel")).to_be_disabled()
    # progress=: the steps arrived one by one while it ran (polls may skip one).
    seen = [s for s in await page.evaluate("window.progressSeen") if s]
    assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] == "4/4", seen
    job_pid = int((await page.locator("#side").inner_text()).split()[-1])
    assert job_pid not in await alive_jobs(background_server)
    assert_no_console_errors(page)


@pytest.mark.parametrize("prefix", ["/dash/", "/bp/"])
async def test_background_callback_cancel_stops_the_job(
    background_server: Any, page: Page, prefix: str
) -> None:
    await page.goto(background_server.http_url(prefix))
    await page.fill("#steps", "300")  # a minute of work
    await page.click("#run")
    await expect(page.locator("#progress")).to_have_text(re.compile(r"^([3-9]|\d\d+)/300$"))
    job_pid = int((await page.locator("#side").inner_text()).split()[-1])
    assert job_pid in await alive_jobs(background_server)

    await page.click("#cancel")
    await expect(page.locator("#status")).to_have_text("stopped")
    await expect(page.locator("#run")).to_be_enabled()
    for _ in range(50):  # the job process is killed: <= 5 s
        if job_pid not in await alive_jobs(background_server):
            break
        await asyncio.sleep(0.1)
    assert job_pid not in await alive_jobs(background_server)
    stopped_at = await page.locator("#progress").inner_text()
    await asyncio.sleep(5 * 0.2)  # five steps' time: no more progress, no result
    assert await page.locator("#progress").inner_text() == stopped_at
    assert await page.locator("#result").inner_text() == "no result"
    assert_no_console_errors(page)


@pytest.mark.parametrize("prefix", ["/dash/", "/bp/"])
async def test_background_callback_async_def(
    background_server: Any, page: Page, prefix: str
) -> None:
    await page.goto(background_server.http_url(prefix))
    await page.click("#run-async")
    await expect(page.locator("#async-result")).to_have_text(
        re.compile(r"^async run 1 in job pid \d+$"))
    job_pid = int((await page.locator("#async-result").inner_text()).split()[-1])
    assert job_pid != (await jobs(background_server))["worker"]  # not in the server
    assert_no_console_errors(page)
