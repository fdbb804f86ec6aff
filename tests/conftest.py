"""Fixtures for quartdash's tests: real servers, real Chromium, real redis-server.

Event loops (pytest-asyncio >= 1.0, ``asyncio_mode = auto``)
-------------------------------------------------------------
* Ordinary async tests run on a fresh event loop per test (the default
  ``loop_scope="function"``): a leaked task cannot outlive its test.
* Playwright objects are bound to the loop that created them, and we start
  one browser per session. So ``browser`` and everything built on it
  (``page``, ``new_browser_context``) are async fixtures with
  ``loop_scope="session"``: they all live on pytest-asyncio's session loop,
  and a test that uses them must run on that loop too. Mark browser modules:

      pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

  (or put ``@pytest.mark.asyncio(loop_scope="session")`` on the test). A
  test that uses a browser fixture without running on the session loop is
  reported at collection time with a clear error instead of hanging.
  Tests that use a browser fixture get the ``browser`` marker automatically,
  and tests that use ``redis_server`` the ``redis`` marker.
* Sync Playwright is not used: it refuses to run inside a running event loop,
  which every async test has.
* The server fixtures are synchronous (subprocess + bounded polling); they
  are safe to request from any test. Their ``stop()`` blocks (<= timeout):
  from an async test on a loop that also serves other work, use
  ``await asyncio.to_thread(server.stop)``.

Every wait is bounded: server startup 20 s, server stop 10 s, redis startup
10 s, browser launch 30 s, every Playwright action 10 s (navigation 15 s),
and pytest-timeout's ``timeout = 120`` per test (setup.cfg).

Usage::

    async def test_ws(serve_app):
        server = serve_app("tests.apps.hello:asgi")
        async with websockets.connect(server.ws_url("/ws"), open_timeout=5) as ws: ...

    pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
    async def test_click(serve_app, page):
        server = serve_app("tests.apps.hello:asgi")
        await page.goto(server.url)
        await page.click("#btn")
        await save_screenshot(page, "clicked")
        assert_no_console_errors(page)
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

from tests.helpers import (
    RedisServer,
    ServerProcess,
    launch_chromium,
    new_context,
    open_page,
    save_screenshot,
    start_server,
)

# Fixtures whose objects live on the session event loop.
SESSION_LOOP_FIXTURES = frozenset({"playwright", "browser", "page", "new_browser_context"})

_reports_key = pytest.StashKey[dict[str, pytest.TestReport]]()
_servers_key = pytest.StashKey[list[ServerProcess]]()
_pages_key = pytest.StashKey[list[Page]]()
_timings_key = pytest.StashKey[dict[str, float]]()


# --------------------------------------------------------------------------- hooks


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark browser/redis tests; insist that browser tests run on the session loop."""
    default_scope = config.getini("asyncio_default_test_loop_scope") or "function"
    wrong: list[str] = []
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SESSION_LOOP_FIXTURES:
            if item.get_closest_marker("browser") is None:
                item.add_marker(pytest.mark.browser)
            marker = item.get_closest_marker("asyncio")
            scope = None
            if marker is not None:
                scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
            is_async = inspect.iscoroutinefunction(getattr(item, "obj", None))
            if not is_async or (scope or default_scope) != "session":
                wrong.append(item.nodeid)
        if "redis_server" in names and item.get_closest_marker("redis") is None:
            item.add_marker(pytest.mark.redis)
    if wrong:
        raise pytest.UsageError(
            "these tests use a browser fixture (bound to the session event loop) but do "
            "not run on it; make them `async def` and add\n"
            '    pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]\n'
            "to the module:\n  " + "\n  ".join(wrong)
        )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    item.stash.setdefault(_reports_key, {})[report.when] = report
    if report.failed:
        for server in item.stash.get(_servers_key, []):
            report.sections.append(
                (f"{server.server} {server.target} (port {server.port}) output", server.output())
            )
        for index, page in enumerate(item.stash.get(_pages_key, [])):
            errors = getattr(page, "console_errors", [])
            if errors:
                report.sections.append((f"browser errors (page {index})", "\n".join(errors)))
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    timings = config.stash.get(_timings_key, {})
    if timings:
        terminalreporter.write_line(
            "browser: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in timings.items())
        )


def _test_failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_reports_key, {})
    return any(report.failed for report in reports.values())


# ----------------------------------------------------------------------- servers


class ServeApp(Protocol):
    def __call__(
        self,
        target: str,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        *,
        ready_path: str | None = "/",
        startup_timeout: float = 20.0,
        extra_args: Sequence[str] = (),
        server: str = "hypercorn",
        tls: tuple[str, str] | None = None,
    ) -> ServerProcess: ...


@pytest.fixture
def serve_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServeApp]:
    """Factory: ``serve_app("pkg.module:asgi", env=None, workers=1)`` -> ServerProcess.

    Starts ``python -m hypercorn`` on a free 127.0.0.1 port (cwd and
    PYTHONPATH = repo root, ``--graceful-timeout 2``) and returns once
    ``GET ready_path`` answers < 500 (``ready_path=None``: once the port
    accepts). ``server="uvicorn"`` / ``"granian"`` runs that server instead;
    ``tls=(cert, key)`` serves https/wss. Every server is killed (whole
    process group) at teardown, and its output is attached to the report of
    a failed test.
    """
    servers: list[ServerProcess] = []
    request.node.stash[_servers_key] = servers

    def start(
        target: str,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        *,
        ready_path: str | None = "/",
        startup_timeout: float = 20.0,
        extra_args: Sequence[str] = (),
        server: str = "hypercorn",
        tls: tuple[str, str] | None = None,
    ) -> ServerProcess:
        process = start_server(
            target,
            log_dir=tmp_path / "servers",
            env=env,
            workers=workers,
            ready_path=ready_path,
            startup_timeout=startup_timeout,
            extra_args=extra_args,
            server=server,
            tls=tls,
        )
        servers.append(process)
        return process

    yield start
    for server in servers:
        server.kill()


@pytest.fixture(scope="session")
def serve_app_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeApp]:
    """Like ``serve_app`` but shared by the whole session: the same arguments
    return the same running server (restarted if a test stopped it). Tests
    using it must not change server-side state that others depend on."""
    log_dir = tmp_path_factory.mktemp("session-servers")
    cache: dict[tuple[Any, ...], ServerProcess] = {}

    def start(
        target: str,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        *,
        ready_path: str | None = "/",
        startup_timeout: float = 20.0,
        extra_args: Sequence[str] = (),
        server: str = "hypercorn",
        tls: tuple[str, str] | None = None,
    ) -> ServerProcess:
        key = (target, tuple(sorted((env or {}).items())), workers, ready_path,
               tuple(extra_args), server, tls)
        process = cache.get(key)
        if process is None or not process.is_running():
            process = start_server(
                target,
                log_dir=log_dir,
                env=env,
                workers=workers,
                ready_path=ready_path,
                startup_timeout=startup_timeout,
                extra_args=extra_args,
                server=server,
                tls=tls,
            )
            cache[key] = process
        return process

    yield start
    for server in cache.values():
        server.kill()


# ------------------------------------------------------------------------- redis


@pytest.fixture(scope="session")
def redis_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session (no persistence, 127.0.0.1, free port)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_server_session: RedisServer) -> RedisServer:
    """The session's redis-server, running (restarted if a test killed it) and
    empty (FLUSHALL) at the start of each test. ``.url``, ``.port``,
    ``.kill()``, ``.restart()`` (same port), ``.ping()``, ``.client()``."""
    if not redis_server_session.is_running():
        redis_server_session.restart()
    client = redis_server_session.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server_session


# ----------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where ``save_screenshot`` writes: $QUARTDASH_SCREENSHOT_DIR, else a session tmp dir."""
    configured = os.environ.get("QUARTDASH_SCREENSHOT_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def playwright(pytestconfig: pytest.Config) -> AsyncIterator[Playwright]:
    """The async Playwright driver (session loop)."""
    started = time.monotonic()
    manager = async_playwright()
    instance = await asyncio.wait_for(manager.start(), timeout=30)
    pytestconfig.stash.setdefault(_timings_key, {})["playwright driver start"] = (
        time.monotonic() - started
    )
    try:
        yield instance
    finally:
        await asyncio.wait_for(manager.__aexit__(None, None, None), timeout=30)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(playwright: Playwright, pytestconfig: pytest.Config) -> AsyncIterator[Browser]:
    """One headless /usr/bin/chromium for the whole session (session loop)."""
    started = time.monotonic()
    instance = await launch_chromium(playwright)
    pytestconfig.stash.setdefault(_timings_key, {})["chromium launch"] = time.monotonic() - started
    try:
        yield instance
    finally:
        await asyncio.wait_for(instance.close(), timeout=30)


def _track_pages(context: BrowserContext, pages: list[Page]) -> None:
    """Remember every tab of ``context`` so a failed test's report shows its errors."""

    def on_page(new_page: Page) -> None:
        pages.append(new_page)

    context.on("page", on_page)


@pytest_asyncio.fixture(loop_scope="session")
async def new_browser_context(
    browser: Browser, screenshot_dir: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Awaitable[BrowserContext]]]:
    """Factory: ``ctx = await new_browser_context(**options)``, an isolated
    browser session (own cookies and SharedWorkers); open tabs in it with
    ``tests.helpers.open_page(ctx)``. All are closed at teardown."""
    contexts: list[BrowserContext] = []

    async def make(**options: Any) -> BrowserContext:
        context = await new_context(browser, **options)
        context.screenshot_dir = screenshot_dir  # type: ignore[attr-defined]
        _track_pages(context, request.node.stash.setdefault(_pages_key, []))
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        await asyncio.wait_for(context.close(), timeout=15)


@pytest_asyncio.fixture(loop_scope="session")
async def page(
    browser: Browser, screenshot_dir: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    """A tab in a fresh browser context. ``page.console_errors`` lists console
    errors and uncaught page errors; a failed test leaves a screenshot named
    after it in ``screenshot_dir``. A second tab of the same browser session:
    ``await tests.helpers.open_page(page.context)``."""
    context = await new_context(browser)
    context.screenshot_dir = screenshot_dir  # type: ignore[attr-defined]
    _track_pages(context, request.node.stash.setdefault(_pages_key, []))
    tab = await open_page(context, screenshot_dir)
    try:
        yield tab
    finally:
        if _test_failed(request) and not tab.is_closed():
            try:
                path = await save_screenshot(tab, f"FAILED-{request.node.name}")
                print(f"screenshot of the failed test: {path}")
            except Exception as error:  # the page may be what broke; keep the real failure
                print(f"could not take a failure screenshot: {error!r}")
        await asyncio.wait_for(context.close(), timeout=15)
