"""The demo's server as scripts/demo.sh runs it: ``python -m examples.gallery``.

Served from this test environment on a free port (fast). It must print the
URL to open, serve the landing page and the examples, and on SIGTERM
(Ctrl-C's SIGINT too) close open sessions with 1001 and exit 0 within a
few seconds. CI's .ci/run runs the whole demo command, scripts/demo.sh,
from a fresh virtual environment with the same checks plus Chromium
(scripts/demo_smoke.py).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import pytest

from examples.gallery import EXAMPLES
from tests.helpers import (
    DemoProcess,
    close_code,
    first_push,
    free_port,
    http_get,
    open_session,
    start_demo,
)

STOP_WITHIN = 5.0  # seconds from the signal to the exit


@pytest.fixture
def gallery_process(tmp_path: Path):
    port = free_port()
    demo = start_demo([sys.executable, "-m", "examples.gallery", "--port", str(port)],
                      log_path=tmp_path / "gallery.log")
    try:
        url = demo.wait_for_url(timeout=30)
        assert url == f"http://127.0.0.1:{port}/", demo.output()
        demo.wait_serving(url, timeout=30)
        yield demo, url
    finally:
        if demo.proc.poll() is None:
            demo.kill()


def test_gallery_serves_the_landing_page_and_examples(gallery_process) -> None:
    demo, url = gallery_process
    page = http_get(url, timeout=5)
    assert page.status == 200 and "<title>quartdash examples</title>" in page.text
    layout = http_get(url + "_dash-layout", timeout=5)
    assert layout.status == 200
    hrefs = [f"/{example.slug}/" for example in EXAMPLES]
    text = json.dumps(json.loads(layout.body))
    assert all(f'"href": "{href}"' in text for href in hrefs), text[:500]
    for href in hrefs:
        response = http_get(url + href.lstrip("/"), timeout=5)
        assert response.status == 200, (href, response.status, demo.output())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_gallery_stops_cleanly(gallery_process, sig: int) -> None:
    demo: DemoProcess
    demo, url = gallery_process
    # The landing page's and the sensor's persistent callbacks run for these
    # tabs (a push arrives): stopping waits for their loops to end.
    sessions = [await open_session(url, "/", tab="landing"),
                await open_session(url, "/persistent/", tab="sensor"),
                await open_session(url, "/countdown/")]
    for session in sessions[:2]:
        push = await first_push(session, timeout=5)
        assert push["rendererId"] in ("landing", "sensor"), push
    try:
        code, seconds = await asyncio.to_thread(demo.stop, sig, STOP_WITHIN)
        closes = [await close_code(session, timeout=5) for session in sessions]
    finally:
        for session in sessions:
            await session.close()
    assert code == 0, demo.output()
    assert seconds < STOP_WITHIN
    assert closes == [1001, 1001, 1001], (closes, demo.output())


def test_gallery_on_a_busy_port_says_which_flag_to_use(tmp_path: Path) -> None:
    """Dash apps default to port 8050 too: a busy port is a one-line error
    with the way out, and no URL that would not answer."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        demo = start_demo([sys.executable, "-m", "examples.gallery", "--port", str(port)],
                          log_path=tmp_path / "busy.log")
        try:
            code = demo.proc.wait(timeout=30)
        finally:
            if demo.proc.poll() is None:
                demo.kill()
    output = demo.output()
    assert code == 2, output
    assert f"error: cannot serve on 127.0.0.1:{port}: Address already in use" in output
    assert f"--port {port + 1}" in output
    assert "open http://" not in output
