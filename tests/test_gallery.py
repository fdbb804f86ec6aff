"""The gallery's live landing page, in process (quartdash's DashClient, no browser).

Its persistent callback pushes the gallery-wide counts and a line per
example once a second, only while a landing tab is connected, and leaves
nothing running behind it. tests/test_examples_browser.py checks the same
page in Chromium; tests/test_demo.py serves it through scripts/demo.sh.
"""

from __future__ import annotations

import asyncio
import re

from examples import gallery
from quartdash.hosting import session_counts
from quartdash.testing import DashClient

HEADER = re.compile(r"^Connected right now: (\d+) sessions?, (\d+) tabs? \(this one included\)"
                    r" · (…|\d+\.\d) pushes/s served by the examples$")


def test_every_example_is_mounted_with_its_apps() -> None:
    assert [m.example.slug for m in gallery.MOUNTED] == [e.slug for e in gallery.EXAMPLES]
    for mounted in gallery.MOUNTED:
        assert mounted.apps, mounted.example.slug
    by_slug = {m.example.slug: m for m in gallery.MOUNTED}
    assert len(by_slug["interval-migration"].apps) == 2  # before/ and after/
    assert gallery.HOME.url_prefix in (None, "/", "")


async def test_landing_page_counts_sessions_and_pushes() -> None:
    assert session_counts(gallery.HOME).sessions == 0
    async with DashClient(gallery.HOME, server=gallery.asgi) as landing:
        tab = await landing.open_renderer()
        pushes = await tab.wait_for_push("live-header", "children", timeout=5,
                                         where=lambda text: HEADER.match(text) is not None)
        sessions, tabs, _ = HEADER.match(pushes[-1].value).groups()  # type: ignore[union-attr]
        assert (int(sessions), int(tabs)) == (1, 1)
        await tab.wait_for_push("live-countdown", "children", timeout=5,
                                where=lambda text: text == "no tab open")
        # A preview from the example's data source, though nobody watches it.
        await tab.wait_for_push("live-persistent", "children", timeout=5,
                                where=lambda text: text.startswith("Reading #"))

        # Two tabs of the persistent example: they show up in the header and
        # on the example's line, with the pushes they get (two a second each).
        persistent = next(m for m in gallery.MOUNTED if m.example.slug == "persistent")
        async with DashClient(persistent.apps[0], server=gallery.asgi) as viewer:
            first = await viewer.open_renderer()
            await viewer.open_renderer()
            await first.wait_for_push("live-display", "children", timeout=5)
            await tab.wait_for_push(
                "live-header", "children", timeout=5,
                where=lambda text: text.startswith("Connected right now: 2 sessions, 3 tabs"))

            def rate(text: str) -> float | None:
                match = re.search(r" · 2 tabs open · (\d+\.\d) pushes/s$", text)
                return float(match.group(1)) if match else None

            # 2 tabs x 2 pushes/s, over about a second: one tick more or less.
            lines = await tab.wait_for_push("live-persistent", "children", timeout=6,
                                            where=lambda text: (rate(text) or 0) >= 2.5)
            assert (rate(lines[-1].value) or 0) <= 8.0, lines[-1].value

        await tab.wait_for_push("live-persistent", "children", timeout=5,
                                where=lambda text: text.endswith(" · no tab open"))
        await tab.wait_for_push(
            "live-header", "children", timeout=5,
            where=lambda text: text.startswith("Connected right now: 1 session, 1 tab"))

    # The landing tab's loop ended with its session: nothing left running.
    for _ in range(200):
        if session_counts(gallery.HOME).sessions == 0:
            break
        await asyncio.sleep(0.01)
    assert session_counts(gallery.HOME).sessions == 0
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert not leftovers, leftovers


async def test_no_tasks_without_a_landing_tab() -> None:
    """Importing and serving the gallery starts no timer of its own: the
    landing page's work exists only as a tab's persistent callback."""
    async with DashClient(gallery.HOME, server=gallery.asgi) as client:
        layout = await client.get_json("_dash-layout")
        assert "live-header" in str(layout)
        await asyncio.sleep(0.2)
        assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
