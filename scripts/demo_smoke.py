"""CI's smoke test of the README's demo command, from a fresh virtual environment.

    .venv/bin/python scripts/demo_smoke.py [--venv DIR] [--keep]

Runs ``VENV=<fresh dir> bash scripts/demo.sh --port <free port>`` exactly as
a newcomer would (no stdin, none of this run's Python settings), then:

1. waits for the URL it prints and for the server to answer;
2. checks the fresh environment got the examples extra and not the test one;
3. fetches ``/`` (its layout links every example) and two example pages;
4. in headless Chromium (Debian's /usr/bin/chromium through Playwright, from
   the test environment this script runs in) opens the sensor example and
   the landing page and sees pushes arrive on both, and the AG Grid
   example render its grid;
5. holds a WebSocket session open, sends SIGTERM, and checks that the
   session is closed with 1001 and the demo exits 0 within a few seconds;
6. runs demo.sh again in the same environment (``--help``): nothing to install.

Every wait is bounded; any failure prints why with the demo's output and
exits 1. ``.ci/run`` runs it after ``bash scripts/test.sh``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from playwright.async_api import Page, async_playwright  # noqa: E402

from tests.helpers import (  # noqa: E402
    CHROMIUM_ARGS,
    CHROMIUM_PATH,
    DemoError,
    DemoProcess,
    assert_no_console_errors,
    close_code,
    free_port,
    http_get,
    new_context,
    open_page,
    open_session,
    start_demo,
)

INSTALL_TIMEOUT = 900.0  # venv + pip install of .[examples]; about a minute with a warm cache
SERVE_TIMEOUT = 60.0
STOP_WITHIN = 5.0
PAGE_TIMEOUT_MS = 15_000
EXAMPLE_PAGES = ("/countdown/", "/ag-grid/")
_STARTED = time.monotonic()


def step(message: str) -> None:
    print(f"[demo smoke {time.monotonic() - _STARTED:6.1f}s] {message}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DemoError(message)


def check_environment(venv: Path) -> None:
    """The demo installed the examples extra, and only that: no test packages."""
    python = venv / "bin" / "python"
    check((venv / ".installed-examples-stamp").is_file(),
          f"{venv} has no .installed-examples-stamp: demo.sh did not install .[examples]")
    probe = ("import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None "
             "for m in ['quartdash', 'websockets', 'numpy', 'dash_ag_grid', 'pytest', "
             "'playwright']}))")
    result = subprocess.run([str(python), "-c", probe], cwd="/", stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    check(result.returncode == 0, f"probing {python} failed: {result.stderr}")
    found = json.loads(result.stdout)
    expected = {"quartdash": True, "websockets": True, "numpy": True, "dash_ag_grid": True,
                "pytest": False, "playwright": False}
    check(found == expected, f"{venv}: modules found {found}, expected {expected}")


def check_http(url: str) -> None:
    from examples.gallery import EXAMPLES

    landing = http_get(url, timeout=10)
    check(landing.status == 200 and "<title>quartdash examples</title>" in landing.text,
          f"GET / -> {landing.status}")
    layout = http_get(url + "_dash-layout", timeout=10)
    check(layout.status == 200, f"GET /_dash-layout -> {layout.status}")
    text = json.dumps(json.loads(layout.body))
    missing = [e.slug for e in EXAMPLES if f'"href": "/{e.slug}/"' not in text]
    check(not missing, f"the landing page links no {missing}")
    for path in EXAMPLE_PAGES:
        page = http_get(url + path.lstrip("/"), timeout=10)
        check(page.status == 200 and 'id="react-entry-point"' in page.text,
              f"GET {path} -> {page.status}")
        page_layout = http_get(url + path.lstrip("/") + "_dash-layout", timeout=10)
        check(page_layout.status == 200, f"GET {path}_dash-layout -> {page_layout.status}")


async def wait_for_text(page: Page, selector: str, pattern: str, differs_from: str = "") -> str:
    """Wait (bounded) until ``selector``'s text matches the JS regex ``pattern``
    (and is not ``differs_from``); return it."""
    await page.wait_for_function(
        """([selector, pattern, old]) => {
            const el = document.querySelector(selector);
            return el !== null && el.textContent !== old
                && new RegExp(pattern).test(el.textContent);
        }""", arg=[selector, pattern, differs_from], timeout=PAGE_TIMEOUT_MS)
    return await page.text_content(selector) or ""


async def check_browser(url: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            context = await new_context(browser)
            sensor = await open_page(context)
            await sensor.goto(url + "persistent/")
            first = await wait_for_text(sensor, "#live-display", r"^Reading #\d+")
            later = await wait_for_text(sensor, "#live-display", r"^Reading #\d+", first)
            step(f"Chromium: /persistent/ pushed {first!r}, then {later!r}")

            landing = await open_page(context)
            await landing.goto(url)
            header = await wait_for_text(
                landing, "#live-header",
                r"^Connected right now: 2 sessions, 2 tabs \(this one included\)")
            line = await wait_for_text(landing, "#live-persistent",
                                       r" · 1 tab open · [1-9]\d*\.\d pushes/s$")
            step(f"Chromium: landing page pushed {header!r}; sensor line {line!r}")

            grid = await open_page(context)
            await grid.goto(url + "ag-grid/")
            await grid.wait_for_selector('.ag-cell[col-id="price"]')
            step("Chromium: /ag-grid/ rendered its grid (dash-ag-grid from the fresh venv)")
            for page in (sensor, landing, grid):
                assert_no_console_errors(page)
        finally:
            await asyncio.wait_for(browser.close(), timeout=30)


async def check_stop(demo: DemoProcess, url: str) -> None:
    session = await open_session(url, "/countdown/")
    try:
        code, seconds = await asyncio.to_thread(demo.stop, signal.SIGTERM, STOP_WITHIN)
        closed_with = await close_code(session, timeout=5)
    finally:
        await session.close()
    check(code == 0, f"exit code {code} after SIGTERM")
    check(closed_with == 1001, f"the open session was closed with {closed_with}, not 1001")
    step(f"SIGTERM: exit 0 after {seconds:.2f}s, the open session closed with 1001")


def check_rerun(venv: Path, log_dir: Path) -> None:
    again = start_demo(["bash", "scripts/demo.sh", "--help"], log_path=log_dir / "again.log",
                       env={"VENV": str(venv)})
    try:
        try:
            code = again.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise DemoError("a second demo.sh --help did not finish within 120 s") from None
        output = again.output()
        check(code == 0, f"a second demo.sh --help exited {code}")
        check("already installed" in output and "pip install" not in output,
              "a second demo.sh installed again")
        check("--port" in output, "demo.sh --help shows no gallery options")
    except AssertionError as error:
        raise again.fail(str(error)) from None
    finally:
        if again.proc.poll() is None:
            again.kill()
    step("second demo.sh run: nothing to install")


def run(venv: Path, log_dir: Path) -> None:
    port = free_port()
    step(f"VENV={venv} bash scripts/demo.sh --port {port}")
    demo = start_demo(["bash", "scripts/demo.sh", "--port", str(port)],
                      log_path=log_dir / "demo.log", env={"VENV": str(venv)})
    try:
        url = demo.wait_for_url(timeout=INSTALL_TIMEOUT)
        check(url == f"http://127.0.0.1:{port}/", f"printed {url!r}")
        step(f"printed {url}")
        demo.wait_serving(url, timeout=SERVE_TIMEOUT)
        check_environment(venv)
        step("the fresh venv holds quartdash and the examples extra, no test packages")
        check_http(url)
        step(f"GET / (links every example) and {', '.join(EXAMPLE_PAGES)}: 200")
        asyncio.run(asyncio.wait_for(check_browser(url), timeout=120))
        asyncio.run(asyncio.wait_for(check_stop(demo, url), timeout=30))
    except Exception as error:
        if getattr(error, "with_output", False):
            raise
        raise demo.fail(f"{type(error).__name__}: {error}") from error
    finally:
        if demo.proc.poll() is None:
            demo.kill()
    check_rerun(venv, log_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, help="virtual environment to use (default: a "
                        "fresh one in a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="quartdash-demo-smoke-"))
    venv = args.venv.resolve() if args.venv else workdir / "venv"
    try:
        run(venv, workdir)
    except DemoError as error:
        print(f"DEMO SMOKE TEST FAILED: {error}", file=sys.stderr, flush=True)
        print(f"(logs and the environment are left in {workdir})", file=sys.stderr)
        return 1
    if args.keep:
        step(f"kept {workdir}")
    else:
        shutil.rmtree(workdir)
    step("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
