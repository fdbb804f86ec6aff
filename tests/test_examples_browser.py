"""Every example in examples/, driven in headless Chromium through the gallery.

The gallery (``examples.gallery:asgi``: every example as a DashBlueprint under
its own prefix) is served once for the module; each test opens its example
there and checks what the seed guide promises for it, not just that it
loads: streamed intermediate values, ``get_prop`` reading the page as it is
now, server push instead of polling, per-tab cleanup... Each test saves a
screenshot of the working example (``screenshot_dir``) and fails on any
browser console error.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets
from playwright.async_api import ConsoleMessage, Page, Request, expect

from tests.helpers import (
    ServerProcess,
    assert_no_console_errors,
    http_get,
    open_page,
    save_screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

GALLERY = "examples.gallery:asgi"
WS_CONNECTED = "[Dash] WebSocket connected"


@pytest.fixture(scope="module")
def gallery(serve_app_session: Any) -> ServerProcess:
    return serve_app_session(GALLERY)


# ------------------------------------------------------------------ helpers


def _is_ws_connected(message: ConsoleMessage) -> bool:
    return WS_CONNECTED in message.text


async def open_example(page: Page, server: ServerProcess, path: str, ready: str) -> None:
    """Load an example and wait until it rendered ``ready`` and its WebSocket is up."""
    async with page.expect_console_message(_is_ws_connected, timeout=10_000):
        await page.goto(server.http_url(path))
    await page.wait_for_selector(ready, timeout=10_000)


# Keeps, in the page, every distinct value an element shows over time (its
# text, or one attribute), so a test can check the whole sequence afterwards.
_RECORD = """([selector, attribute]) => {
  const el = document.querySelector(selector);
  if (!el) throw new Error("no element " + selector);
  const read = () => attribute ? el.getAttribute(attribute) : el.textContent;
  window.__seen = window.__seen || {};
  const seen = window.__seen[selector] = [read()];
  new MutationObserver(() => {
    const value = read();
    if (seen[seen.length - 1] !== value) seen.push(value);
  }).observe(el, {childList: true, subtree: true, characterData: true, attributes: true});
}"""


async def record(page: Page, selector: str, attribute: str | None = None) -> None:
    await page.evaluate(_RECORD, [selector, attribute])


async def recorded(page: Page, selector: str) -> list[str]:
    return await page.evaluate("(selector) => window.__seen[selector]", selector)


async def choose(page: Page, dropdown: str, option: str) -> None:
    """Pick ``option`` in a Dash 4 ``dcc.Dropdown``."""
    await page.click(dropdown)
    await page.get_by_role("option", name=option, exact=True).click()
    await expect(page.locator(f"{dropdown}-value")).to_have_text(option)


async def wait_for_text(page: Page, selector: str, pattern: str, timeout: float = 5_000) -> None:
    """Wait until ``selector``'s text matches ``pattern`` (a JS regex), checked on
    every animation frame: ``expect`` polls more slowly and can miss a value
    that is shown for less than a second."""
    await page.wait_for_function(
        """([selector, pattern]) => {
            const el = document.querySelector(selector);
            return el !== null && new RegExp(pattern).test(el.textContent);
        }""", arg=[selector, pattern], timeout=timeout)


def is_http_callback(request: Request) -> bool:
    """A callback run over HTTP (the renderer adds a query string)."""
    return (request.method == "POST"
            and urlsplit(request.url).path.endswith("/_dash-update-component"))


async def status_json(server: ServerProcess, path: str) -> dict[str, Any]:
    response = await asyncio.to_thread(http_get, server.http_url(path), timeout=5)
    assert response.status == 200, response.text
    return json.loads(response.body)


# ------------------------------------------------------------------- gallery


async def test_gallery_index_links_every_example(gallery: ServerProcess, page: Page) -> None:
    from examples.gallery import EXAMPLES

    await open_example(page, gallery, "/", "#live-header")
    links = page.locator("li > a")
    await expect(links).to_have_count(len(EXAMPLES))
    hrefs = [await link.get_attribute("href") for link in await links.all()]
    assert hrefs == [f"/{example.slug}/" for example in EXAMPLES]
    # The header is pushed by the landing page's persistent callback.
    await wait_for_text(page, "#live-header",
                        r"^Connected right now: \d+ sessions?, \d+ tabs? \(this one included\)")
    await save_screenshot(page, "examples-gallery-index")
    assert_no_console_errors(page)


async def test_gallery_index_shows_tabs_of_an_example(gallery: ServerProcess,
                                                      page: Page) -> None:
    """Open an example in a second tab: the landing page's live line for it
    counts the tab and its pushes, then forgets it when it closes."""
    await open_example(page, gallery, "/", "#live-header")
    await wait_for_text(page, "#live-header", r"^Connected right now: ")
    sensor = await open_page(page.context)
    await open_example(sensor, gallery, "/persistent/", "#live-display")
    await wait_for_text(page, "#live-persistent",
                        r"^Reading #\d+: .* · 1 tab open · [1-9]\d*\.\d pushes/s$")
    await save_screenshot(page, "examples-gallery-index-live")
    await sensor.close()
    await wait_for_text(page, "#live-persistent", r"^Reading #\d+: .* · no tab open$")
    assert_no_console_errors(page)
    assert_no_console_errors(sensor)


# ------------------------------------------------------------- 1. countdown


async def test_countdown_streams_then_done(gallery: ServerProcess, page: Page) -> None:
    await open_example(page, gallery, "/countdown/", "#start-btn")
    await expect(page.locator("#countdown-display")).to_have_text("Ready")
    await record(page, "#countdown-display")
    await page.click("#start-btn")
    await wait_for_text(page, "#countdown-display", r"^Countdown: [1-8]$")
    await save_screenshot(page, "examples-countdown")
    await expect(page.locator("#countdown-display")).to_have_text("Done!", timeout=12_000)
    # Every intermediate value arrived, in order, before the return value.
    expected = ["Ready", *(f"Countdown: {i}" for i in range(10, 0, -1)), "Done!"]
    assert await recorded(page, "#countdown-display") == expected
    assert_no_console_errors(page)


# -------------------------------------------------------------- 2. greeting


async def test_greeting_reads_name_typed_after_load(gallery: ServerProcess, page: Page) -> None:
    await open_example(page, gallery, "/greeting/", "#greet-btn")
    # Typed after the page loaded and never declared as State: only
    # get_prop, mid-callback, can see it.
    await page.fill("#name-input", "Ada Lovelace")
    await page.click("#greet-btn")
    output = page.locator("#greeting-output")
    await wait_for_text(page, "#greeting-output", r"^Processing for Ada Lovelace\.\.\.$")
    await expect(output).to_have_text("Hello, Ada Lovelace!", timeout=5_000)
    await save_screenshot(page, "examples-greeting")
    assert_no_console_errors(page)


# --------------------------------------------------------- 3. per-callback


async def test_per_callback_websocket_beside_http(gallery: ServerProcess, page: Page) -> None:
    posts: list[Request] = []

    def on_request(request: Request) -> None:
        if is_http_callback(request):
            posts.append(request)

    page.on("request", on_request)
    await open_example(page, gallery, "/per-callback/", "#stream-btn")
    await expect(page.locator("#dropdown-output")).to_have_text("Selected: Option A")

    await record(page, "#stream-output")
    await page.click("#stream-btn")
    await wait_for_text(page, "#stream-output", r"^Update [1-4] of 5\.\.\.$")
    await choose(page, "#my-dropdown", "Option B")
    await expect(page.locator("#dropdown-output")).to_have_text("Selected: Option B")
    await save_screenshot(page, "examples-per-callback")
    await expect(page.locator("#stream-output")).to_have_text("All updates complete!",
                                                              timeout=6_000)
    expected = ["Waiting...", *(f"Update {i} of 5..." for i in range(1, 6)),
                "All updates complete!"]
    assert await recorded(page, "#stream-output") == expected

    outputs = [json.loads(request.post_data or "{}").get("output") for request in posts]
    # The dropdown callback went over HTTP (initial call and the change)...
    assert outputs.count("dropdown-output.children") == 2, outputs
    # ...the websocket=True one never did.
    assert "stream-output.children" not in outputs, outputs
    assert_no_console_errors(page)


# ------------------------------------------------------------ 4. persistent


async def test_persistent_callback_pushes_without_input(gallery: ServerProcess,
                                                        page: Page) -> None:
    # Watch the title from the very start: a persistent callback must never
    # show Dash's "Updating..." indicator.
    await page.add_init_script("""
        window.__titles = new Set();
        setInterval(() => window.__titles.add(document.title), 20);
    """)
    await open_example(page, gallery, "/persistent/", "#live-display")
    display = page.locator("#live-display")
    await expect(display).to_contain_text("Reading #", timeout=3_000)
    await record(page, "#live-display")
    await asyncio.sleep(1.6)  # the loop pushes every 0.5 s
    seen = await recorded(page, "#live-display")
    assert len(seen) >= 3, seen
    numbers = [int(re.search(r"#(\d+)", text).group(1)) for text in seen]  # type: ignore[union-attr]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), seen
    await save_screenshot(page, "examples-persistent")
    titles = await page.evaluate("[...window.__titles]")
    assert not any("Updating" in title for title in titles), titles
    assert_no_console_errors(page)


# ------------------------------------------------------- 5. real-time prices


async def test_realtime_prices_follow_selected_symbol(gallery: ServerProcess,
                                                      page: Page) -> None:
    await open_example(page, gallery, "/realtime-prices/", "#connect-btn")
    await expect(page.locator("#status")).to_have_text("Disconnected")
    await page.click("#connect-btn")
    await expect(page.locator("#status")).to_have_text("Connected", timeout=3_000)
    price = page.locator("#live-price")
    await expect(price).to_have_text(re.compile(r"^AAPL: \$\d+(\.\d+)?$"), timeout=3_000)

    # The loop asks for the selection each tick: it shows the symbol chosen now.
    await choose(page, "#symbol-select", "MSFT")
    await expect(price).to_have_text(re.compile(r"^MSFT: \$\d+(\.\d+)?$"), timeout=3_000)
    first = await price.text_content()
    await expect(price).not_to_have_text(first or "", timeout=3_000)  # still ticking
    await expect(price).to_have_text(re.compile(r"^MSFT: "))
    await save_screenshot(page, "examples-realtime-prices")
    assert_no_console_errors(page)


# ---------------------------------------------------- 6. external WebSocket


async def test_external_feed_messages_appear(gallery: ServerProcess, page: Page) -> None:
    await open_example(page, gallery, "/external-feed/", "#connect-btn")
    await page.click("#connect-btn")
    await expect(page.locator("#status")).to_have_text("Connected", timeout=3_000)
    output = page.locator("#live-output")
    await expect(output).to_have_text(re.compile(r"^upstream quote #\d+: AAPL \$\d+\.\d\d$"),
                                      timeout=3_000)
    # The request sent upstream follows the dropdown (get_prop each round).
    await choose(page, "#symbol-select", "GOOGL")
    await expect(output).to_have_text(re.compile(r"^upstream quote #\d+: GOOGL \$"),
                                      timeout=3_000)
    await save_screenshot(page, "examples-external-feed")
    assert_no_console_errors(page)


# ---------------------------------------------------- 7. Interval migration


async def test_interval_migration_poll_versus_push(gallery: ServerProcess,
                                                   page: Page) -> None:
    posts: dict[str, int] = {"before": 0, "after": 0}

    def on_request(request: Request) -> None:
        if is_http_callback(request):
            for name in posts:
                if f"/interval-migration/{name}/" in request.url:
                    posts[name] += 1

    page.on("request", on_request)
    async with page.expect_console_message(_is_ws_connected, timeout=10_000):
        await page.goto(gallery.http_url("/interval-migration/"))
    before = page.frame_locator("#before").locator("#price-display")
    after = page.frame_locator("#after").locator("#price-display")
    await expect(before).to_have_text(re.compile(r"^AAPL: \$\d"), timeout=5_000)
    await expect(after).to_have_text(re.compile(r"^AAPL: \$\d"), timeout=5_000)

    posts_at_start = dict(posts)
    after_values = {await after.text_content()}
    deadline = time.monotonic() + 2.6
    while time.monotonic() < deadline:
        after_values.add(await after.text_content())
        await asyncio.sleep(0.1)
    await save_screenshot(page, "examples-interval-migration")
    # Before: the browser kept polling. After: new prices, and not one request.
    assert posts["before"] - posts_at_start["before"] >= 2, posts
    assert posts["after"] == 0, posts
    assert len(after_values) >= 2, after_values
    assert_no_console_errors(page)


# ---------------------------------------------------------- 8. Game of Life


async def _generation(page: Page) -> int:
    text = await page.text_content("#gen") or ""
    match = re.fullmatch(r"Generation: (\d+)", text)
    assert match, text
    return int(match.group(1))


async def _board(page: Page) -> list[list[int]]:
    return await page.evaluate("document.querySelector('#board .js-plotly-plot').data[0].z")


async def test_game_of_life_runs_and_stops(gallery: ServerProcess, page: Page) -> None:
    await open_example(page, gallery, "/game-of-life/", "#board .js-plotly-plot")
    assert await _generation(page) == 0
    await page.click("#start")
    await expect(page.locator("#gen")).not_to_have_text("Generation: 0", timeout=3_000)
    start_gen, start_board = await _generation(page), await _board(page)
    await asyncio.sleep(3)
    running_gen, running_board = await _generation(page), await _board(page)
    # 10 frames a second: at least 20 generations in 3 s, and the board moves.
    assert running_gen - start_gen >= 20, (start_gen, running_gen)
    assert running_board != start_board
    await save_screenshot(page, "examples-game-of-life")

    await page.click("#stop")
    await asyncio.sleep(0.6)  # the loop notices on its next get_prop
    stopped_gen, stopped_board = await _generation(page), await _board(page)
    await asyncio.sleep(1)
    assert await _generation(page) == stopped_gen
    assert await _board(page) == stopped_board
    assert_no_console_errors(page)


# --------------------------------------------------------------- 9. AG Grid


async def _prices(page: Page) -> list[str]:
    return await page.locator('.ag-center-cols-container .ag-cell[col-id="price"]').all_inner_texts()


async def test_ag_grid_cells_change_while_streaming(gallery: ServerProcess,
                                                    page: Page) -> None:
    await open_example(page, gallery, "/ag-grid/", '.ag-cell[col-id="price"]')
    initial = await _prices(page)
    assert len(initial) == 5 and all(p.startswith("$") for p in initial), initial
    # Tag a row element: updated in place, it survives the stream.
    await page.evaluate("""document.querySelector('.ag-center-cols-container .ag-row')
                           .dataset.probe = 'kept'""")

    await page.click("#start")  # start streaming
    seen = [initial]
    deadline = time.monotonic() + 3
    while len(seen) < 4 and time.monotonic() < deadline:
        current = await _prices(page)
        if current != seen[-1]:
            seen.append(current)
        await asyncio.sleep(0.05)
    assert len(seen) >= 4, f"prices changed only {len(seen) - 1} times in 3 s: {seen}"
    assert await page.locator(".ag-row[data-probe='kept']").count() == 1
    changes = await page.locator('.ag-center-cols-container .ag-cell[col-id="change"]').all_inner_texts()
    # d3.format writes a true minus sign (U+2212).
    assert all(re.fullmatch(r"[+\u2212]\d+\.\d\d%", c) for c in changes), changes
    await save_screenshot(page, "examples-ag-grid")

    await page.click("#start")  # pause
    await asyncio.sleep(0.8)
    paused = await _prices(page)
    await asyncio.sleep(1)
    assert await _prices(page) == paused
    assert_no_console_errors(page)


# -------------------------------------------------------------- 10. security


async def test_security_close_on_policy_violation(gallery: ServerProcess, page: Page) -> None:
    await open_example(page, gallery, "/security/", "#send-btn")
    reply = page.locator("#reply")

    # Echoed as text: the markup is shown, never run.
    payload = "<img src=x onerror=window.__xss=1>"
    await page.fill("#message", payload)
    await page.click("#send-btn")
    await expect(reply).to_have_text(f"Echo: {payload}", timeout=3_000)
    assert await page.evaluate("window.__xss") is None

    # A violation: the callback closes the connection with 4001, and the
    # browser hears it.
    await page.fill("#message", "'; DROP TABLE users; --")
    async with page.expect_console_message(
        lambda m: "WebSocket disconnected: Policy violation" in m.text, timeout=5_000
    ):
        await page.click("#send-btn")
    await expect(reply).to_have_text(f"Echo: {payload}")  # nothing more arrived
    await save_screenshot(page, "examples-security")

    # 4001 = no automatic reconnect; the next action opens a new connection.
    await page.fill("#message", "hello again")
    async with page.expect_console_message(_is_ws_connected, timeout=5_000):
        await page.click("#send-btn")
    await expect(reply).to_have_text("Echo: hello again", timeout=3_000)
    # The violating request never got its answer: the worker reports it as
    # failed when the socket closes, and the renderer logs that. Expected.
    assert_no_console_errors(page, ignore=["Error: connection lost"])


async def test_security_allowed_origins(gallery: ServerProcess) -> None:
    url = gallery.ws_url("/security/_dash-ws-callback")
    async with websockets.connect(url, origin="https://embedding-site.example.com",
                                  open_timeout=5, close_timeout=2) as ws:
        await ws.send(json.dumps({"type": "heartbeat"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "heartbeat_ack"}

    async with websockets.connect(url, origin="https://evil.example.com",
                                  open_timeout=5, close_timeout=2) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4001
    assert "not allowed" in closed.value.rcvd.reason


# -------------------------------------------------------- 11. disconnections

DISCONNECTIONS_STATUS = "/disconnections/cleanup-status"


async def _start_both_loops(server: ServerProcess, tab: Page) -> None:
    """Open the example in ``tab``; its persistent loop runs, then start the long task."""
    await open_example(tab, server, "/disconnections/", "#btn")
    await expect(tab.locator("#output")).to_contain_text("tick", timeout=3_000)
    await tab.click("#btn")
    await expect(tab.locator("#progress")).to_contain_text("Working...", timeout=3_000)


async def _wait_for_cleanups(server: ServerProcess, before: dict[str, Any],
                             closed_at: float, within: float = 2.0) -> dict[str, int]:
    """Poll the status route until both loops of one more tab have cleaned up."""
    want_persistent = before["counts"].get("persistent cleaned up", 0) + 1
    want_task = before["counts"].get("task cleaned up", 0) + 1
    while True:
        counts = (await status_json(server, DISCONNECTIONS_STATUS))["counts"]
        if (counts.get("persistent cleaned up", 0) >= want_persistent
                and counts.get("task cleaned up", 0) >= want_task):
            assert counts.get("persistent cleaned up", 0) == want_persistent, counts
            assert counts.get("task cleaned up", 0) == want_task, counts
            print(f"both loops cleaned up {time.monotonic() - closed_at:.2f} s after the close")
            return counts
        elapsed = time.monotonic() - closed_at
        assert elapsed < within, f"no cleanup {elapsed:.1f} s after the tab closed: {counts}"
        await asyncio.sleep(0.05)


async def test_disconnections_cleanup_when_tab_closes(gallery: ServerProcess,
                                                      page: Page) -> None:
    """A default Chromium, the tab closes: its socket goes, both loops clean up."""
    await _start_both_loops(gallery, page)
    await save_screenshot(page, "examples-disconnections")
    before = await status_json(gallery, DISCONNECTIONS_STATUS)
    assert before["persistent_running"] >= 1 and before["tasks_running"] >= 1, before
    assert_no_console_errors(page)

    await page.close()
    await _wait_for_cleanups(gallery, before, time.monotonic())


async def test_disconnections_cleanup_of_one_tab_among_two(gallery: ServerProcess,
                                                           page: Page) -> None:
    """Two tabs share one SharedWorker and socket; closing one ends only its loops."""
    closing = await open_page(page.context)
    await open_example(page, gallery, "/disconnections/", "#btn")
    await _start_both_loops(gallery, closing)
    before = await status_json(gallery, DISCONNECTIONS_STATUS)
    assert before["persistent_running"] >= 2 and before["tasks_running"] >= 1, before
    assert_no_console_errors(closing)

    await closing.close()
    await _wait_for_cleanups(gallery, before, time.monotonic())

    # The other tab lives on: its loop keeps ticking over the same socket.
    output = page.locator("#output")
    ticking = await output.text_content()
    await expect(output).not_to_have_text(ticking or "", timeout=3_000)
    await save_screenshot(page, "examples-disconnections-other-tab")
    assert_no_console_errors(page)


# --------------------------------------------------------------- 12. progress


async def wait_for_step(page: Page, low: int, high: int) -> None:
    """Wait until the label shows a step in [low, high]; checked every frame,
    since a step lasts only 0.15 s."""
    await page.wait_for_function(
        """([low, high]) => {
            const label = document.querySelector("#progress-label").textContent;
            const match = /step (\\d+) of/.exec(label);
            return match !== null && +match[1] >= low && +match[1] <= high;
        }""", arg=[low, high], timeout=4_000)


async def test_progress_bar_fills_while_running(gallery: ServerProcess, page: Page) -> None:
    await open_example(page, gallery, "/progress/", "#run-btn")
    await record(page, "#progress-bar", "value")
    await page.click("#run-btn")
    await wait_for_step(page, 5, 15)
    await expect(page.locator("#run-btn")).to_be_disabled()
    await save_screenshot(page, "examples-progress")
    await expect(page.locator("#job-result")).to_have_text("Finished all 20 steps",
                                                           timeout=6_000)
    await expect(page.locator("#run-btn")).to_be_enabled()
    values = [int(v) for v in await recorded(page, "#progress-bar")]
    assert values[0] == 0 and values[-1] == 20, values
    assert values == sorted(values) and len(values) >= 10, values

    # Cancel is read with get_prop between steps.
    await page.click("#run-btn")
    await wait_for_step(page, 2, 10)
    await page.click("#cancel-btn")
    result = page.locator("#job-result")
    await expect(result).to_have_text(re.compile(r"^Cancelled after \d+ of 20 steps$"),
                                      timeout=3_000)
    steps = int(re.search(r"after (\d+)", await result.text_content() or "").group(1))  # type: ignore[union-attr]
    assert 2 <= steps < 20, steps
    assert_no_console_errors(page)


# ----------------------------------------------------------- 13. chat stream


async def test_chat_stream_grows_the_answer_token_by_token(gallery: ServerProcess,
                                                           page: Page) -> None:
    await open_example(page, gallery, "/chat-stream/", "#chat-send")
    await page.fill("#chat-question", "how does streaming work?")
    await record(page, "#chat-answer")
    await page.click("#chat-send")
    await wait_for_text(page, "#chat-status", r"^thinking")
    await save_screenshot(page, "examples-chat-stream")
    await wait_for_text(page, "#chat-status", r"^done: \d+ tokens in ", timeout=10_000)
    from examples.chat_stream import ANSWERS

    await expect(page.locator("#chat-answer")).to_have_text(ANSWERS["stream"])
    shown = [text for text in await recorded(page, "#chat-answer") if text]
    assert len(shown) >= 10 and shown[-1] == ANSWERS["stream"], shown
    assert all(b.startswith(a) for a, b in itertools.pairwise(shown)), shown

    # Asking again mid-answer: the newer question wins, the older answer stops.
    await page.click("#chat-send")
    await wait_for_text(page, "#chat-answer", r"^A streaming callback is")
    await page.fill("#chat-question", "what is quartdash?")
    await page.click("#chat-send")
    await wait_for_text(page, "#chat-status", r"^done: ", timeout=10_000)
    await expect(page.locator("#chat-answer")).to_have_text(ANSWERS["quartdash"])


# ---------------------------------------------------------- 14. live sessions


async def sign_in_as(page: Page, server: ServerProcess, name: str) -> None:
    await open_example(page, server, "/live-sessions/", "#name")
    await page.fill("#name", name)
    async with page.expect_console_message(_is_ws_connected, timeout=10_000):
        await page.click("#sign-in")  # a form post, then the lobby again
    await wait_for_text(page, "#me", f"^Signed in as {name} ")


def users_row(page: Page, name: str) -> Any:
    return page.locator("#users tr", has_text=name)


async def test_live_sessions_admin_disconnects_a_user(gallery: ServerProcess, page: Page,
                                                      new_browser_context: Any) -> None:
    user = f"user-{time.monotonic_ns() % 10**9}"
    alice = await open_page(await new_browser_context())
    await sign_in_as(alice, gallery, user)
    await wait_for_text(alice, "#here", f"{user}: 1 tab")

    await sign_in_as(page, gallery, "admin")
    async with page.expect_console_message(_is_ws_connected, timeout=10_000):
        await page.goto(gallery.http_url("/live-sessions/admin/"))
    row = users_row(page, user)
    await expect(row.locator("td").nth(1)).to_have_text("1")
    await expect(page.locator("#sessions")).to_contain_text(user)

    # A second tab of the user shows up on the admin page, and goes when closed.
    second = await open_page(alice.context)
    await open_example(second, gallery, "/live-sessions/", "#here")
    await expect(row.locator("td").nth(1)).to_have_text("2")
    await wait_for_text(alice, "#here", f"{user}: 2 tab")
    await second.close()
    await expect(row.locator("td").nth(1)).to_have_text("1")
    await save_screenshot(page, "examples-live-sessions-admin")

    await row.get_by_role("button", name="Disconnect").click()
    await wait_for_text(page, "#kick-result", f"^Disconnected {user}: 1 sign-in")
    await alice.wait_for_function(
        "document.documentElement.dataset.quartdashRevoked === 'Revoked'", timeout=3_000)
    await expect(row).to_have_count(0)
    await save_screenshot(alice, "examples-live-sessions-revoked")
    # Reloaded, the user is signed out: the revoked sign-in no longer works.
    await open_example(alice, gallery, "/live-sessions/", "#me")
    await wait_for_text(alice, "#me", "^Not signed in")
    assert_no_console_errors(page)
