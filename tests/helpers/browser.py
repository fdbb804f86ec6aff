"""Headless Chromium through async Playwright: launch options, error capture, screenshots.

The browser is Debian's ``/usr/bin/chromium`` (``QUARTDASH_CHROMIUM``
overrides the path); Playwright never downloads one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

CHROMIUM_PATH = os.environ.get("QUARTDASH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
LAUNCH_TIMEOUT_MS = 30_000
# Every Playwright action and wait (click, fill, wait_for_selector, expect...)
# gives up after this long unless the call passes its own timeout.
DEFAULT_TIMEOUT_MS = 10_000
NAVIGATION_TIMEOUT_MS = 15_000


def chromium_path() -> str:
    """The Chromium binary to drive; a clear error when it is not installed."""
    if not os.path.exists(CHROMIUM_PATH):
        raise FileNotFoundError(
            f"{CHROMIUM_PATH} not found: run `bash scripts/test.sh` (it apt-installs "
            "chromium) or set QUARTDASH_CHROMIUM"
        )
    return CHROMIUM_PATH


async def launch_chromium(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(
        executable_path=chromium_path(),
        headless=True,
        args=CHROMIUM_ARGS,
        timeout=LAUNCH_TIMEOUT_MS,
    )


async def new_context(browser: Browser, **options: Any) -> BrowserContext:
    """A fresh browser context (own cookies, storage, SharedWorkers) with our timeouts."""
    context = await browser.new_context(**options)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    return context


async def open_page(context: BrowserContext, screenshot_dir: Path | None = None) -> Page:
    """A new tab in ``context`` that records its errors in ``page.console_errors``.

    Tabs of one context share SharedWorkers (one WebSocket per app), so use
    ``open_page(page.context)`` for a second tab of the same browser session.
    """
    page = await context.new_page()
    watch_errors(page)
    if screenshot_dir is None:
        screenshot_dir = getattr(context, "screenshot_dir", None)
    page.screenshot_dir = screenshot_dir  # type: ignore[attr-defined]
    return page


def watch_errors(page: Page) -> list[str]:
    """Collect console messages of type "error" and uncaught page errors
    into ``page.console_errors`` (a list of strings) and return that list."""
    errors: list[str] = getattr(page, "console_errors", None) or []
    page.console_errors = errors  # type: ignore[attr-defined]

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location or {}
            where = location.get("url", "")
            errors.append(f"console.error: {message.text}" + (f" ({where})" if where else ""))

    def on_page_error(error: Any) -> None:
        errors.append(f"pageerror: {getattr(error, 'message', error)}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return errors


def assert_no_console_errors(page: Page, ignore: Iterable[str | re.Pattern[str]] = ()) -> None:
    """Fail if the page logged a console error or threw an uncaught error.

    ``ignore``: substrings or compiled regexes; matching errors are allowed.
    """
    patterns = list(ignore)

    def ignored(error: str) -> bool:
        for pattern in patterns:
            if isinstance(pattern, re.Pattern):
                if pattern.search(error):
                    return True
            elif pattern in error:
                return True
        return False

    errors: list[str] = getattr(page, "console_errors", [])
    remaining = [error for error in errors if not ignored(error)]
    assert not remaining, "browser reported errors:\n" + "\n".join(remaining)


async def save_screenshot(page: Page, name: str, directory: Path | None = None) -> Path:
    """Save a full-page PNG as ``<directory>/<name>.png`` and return its path.

    ``directory`` defaults to the session's screenshot directory that the
    ``page`` fixture attached to the page (``$QUARTDASH_SCREENSHOT_DIR`` if set).
    """
    directory = directory or getattr(page, "screenshot_dir", None)
    if directory is None:
        raise ValueError("no screenshot directory: pass one or use the `page` fixture")
    directory.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    path = directory / (safe if safe.endswith(".png") else safe + ".png")
    await page.screenshot(path=str(path), full_page=True)
    return path
