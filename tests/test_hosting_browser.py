"""Real hypercorn + headless Chromium: blueprints side by side, and one stream per tab."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from playwright.async_api import expect

from tests.helpers import assert_no_console_errors, http_get, open_page, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def two_apps(serve_app_session):
    return serve_app_session("tests.apps.hosting_two:asgi", ready_path="/plain")


async def test_every_route_answers_under_its_prefix(two_apps) -> None:
    assert http_get(two_apps.http_url("/plain")).body == b"plain quart route"
    for prefix in ("/a", "/b"):
        index = http_get(two_apps.http_url(f"{prefix}/"))
        assert index.status == 200
        page = index.body.decode()
        for path in ("_dash-layout", "_dash-dependencies", "_reload-hash", "_favicon.ico"):
            assert http_get(two_apps.http_url(f"{prefix}/{path}")).status == 200, path
        script = re.findall(rf'src="({prefix}/_dash-component-suites/[^"]+)"', page)
        assert script and all(http_get(two_apps.http_url(s)).status == 200 for s in script[:3])
    deps_b = json.loads(http_get(two_apps.http_url("/b/_dash-dependencies")).body)
    assert [d["output"] for d in deps_b] == ["out.children"]


async def test_click_in_a_pattern_matching_and_b_untouched(two_apps, page) -> None:
    await page.goto(two_apps.http_url("/a/"))
    await expect(page.locator("#out")).to_have_text("not clicked")
    await page.fill("#name", "Quart")
    await page.click("#btn")
    await expect(page.locator("#out")).to_have_text("clicked 1 times, hello Quart (trigger: btn)")
    await expect(page.locator("#side")).to_have_text("side effect 1")
    await expect(page.locator("#client-out")).to_have_text("client: Quart")
    # Pattern matching: each added item echoes through its MATCH callback.
    await page.click("#add")
    await page.click("#add")
    await expect(page.locator("#store-view")).to_have_text("items: 2")
    await page.locator("input[id*='item-in']").nth(1).fill("second!")
    await expect(page.get_by_text("echo: second!")).to_be_visible()
    await save_screenshot(page, "hosting-app-a")
    assert_no_console_errors(page)

    other = await open_page(page.context)
    await other.goto(two_apps.http_url("/b/"))
    await expect(other.locator("#out")).to_have_text("b untouched")
    await other.click("#btn")
    await expect(other.locator("#out")).to_have_text("b clicked 1")
    assert_no_console_errors(other)


async def test_two_tabs_get_their_own_stream_and_closing_one_stops_it(
    serve_app, new_browser_context
) -> None:
    server = serve_app("tests.apps.hosting_dropin:asgi")
    context = await new_browser_context()
    tabs = [await open_page(context) for _ in range(2)]
    ids = []
    for tab in tabs:
        await tab.goto(server.url)
        await expect(tab.locator("#tick")).to_have_text(re.compile(r"tick \d+"))
        ids.append(await tab.locator("#me").inner_text())
    assert ids[0] != ids[1]

    def status() -> dict:
        return json.loads(http_get(server.http_url("/status")).body)

    assert sorted(status()["running"]) == sorted(ids)
    assert status()["sessions"] == 1  # both tabs share one connection
    await save_screenshot(tabs[0], "persistent-tab-1")

    await tabs[0].close()
    for _ in range(40):  # <= 2 s
        if status()["running"] == [ids[1]]:
            break
        await asyncio.sleep(0.05)
    assert status()["running"] == [ids[1]], status()
    assert status()["cleaned"] == [ids[0]]
    # The other tab keeps streaming.
    before = await tabs[1].locator("#tick").inner_text()
    await expect(tabs[1].locator("#tick")).not_to_have_text(before)
    assert_no_console_errors(tabs[1])
