"""Behind TLS the page's WebSocket is wss://, with no configuration."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.helpers import assert_no_console_errors, open_page, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    return str(cert), str(key)


async def test_live_updates_over_wss(serve_app, new_browser_context, certificate) -> None:
    cert, key = certificate
    server = serve_app("tests.apps.hosting_dropin:asgi", ready_path=None,
                       extra_args=("--certfile", cert, "--keyfile", key))
    context = await new_browser_context(ignore_https_errors=True)
    page = await open_page(context)
    await page.goto(f"https://127.0.0.1:{server.port}/")
    await expect(page.locator("#tick")).to_have_text(re.compile(r"tick \d+"))
    first = await page.locator("#tick").inner_text()
    await expect(page.locator("#tick")).not_to_have_text(first)  # still streaming
    # An https page may only open wss:// (mixed content): the server saw it.
    status = json.loads(await page.evaluate("fetch('/status').then(r => r.text())"))
    assert status["sessions"] == 1 and len(status["running"]) == 1
    await save_screenshot(page, "tls-wss")
    assert_no_console_errors(page)
