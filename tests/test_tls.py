"""Behind TLS the page's WebSocket is wss://, with no configuration, on every server.

The certificate is a throw-away self-signed one that this test's own
Chromium trusts by its public key (``--ignore-certificate-errors-spki-list``),
as a browser trusts a real certificate. Playwright's ``ignore_https_errors``
is not enough: it does not reach the SharedWorker's WebSocket, which then
only connects when it can ride the page's HTTP/2 connection (hypercorn
offers WebSockets over HTTP/2; uvicorn speaks HTTP/1.1 only and granian has
no WebSockets over HTTP/2, so theirs need a TLS connection of their own).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Playwright, expect

from tests.helpers import (
    CHROMIUM_ARGS,
    SERVERS,
    assert_no_console_errors,
    new_context,
    open_page,
    save_screenshot,
)
from tests.helpers.browser import LAUNCH_TIMEOUT_MS, chromium_path

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


def spki_hash(cert: str) -> str:
    """base64(sha256(SubjectPublicKeyInfo)): how Chromium names a trusted key."""
    pem = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"],
                         check=True, capture_output=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pem,
                         check=True, capture_output=True, timeout=30).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest_asyncio.fixture(loop_scope="session")
async def trusting_browser(playwright: Playwright, certificate: tuple[str, str]
                           ) -> AsyncIterator[Browser]:
    """A Chromium of its own that trusts ``certificate``."""
    browser = await playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, timeout=LAUNCH_TIMEOUT_MS,
        args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_hash(certificate[0])}"],
    )
    try:
        yield browser
    finally:
        await asyncio.wait_for(browser.close(), timeout=30)


@pytest.mark.parametrize("server_name", SERVERS)
async def test_live_updates_over_wss(serve_app, trusting_browser, certificate, screenshot_dir,
                                     server_name) -> None:
    server = serve_app("tests.apps.hosting_dropin:asgi", ready_path=None, tls=certificate,
                       server=server_name)
    context = await new_context(trusting_browser)
    try:
        page = await open_page(context, screenshot_dir)
        await page.goto(f"https://127.0.0.1:{server.port}/")
        await expect(page.locator("#tick")).to_have_text(re.compile(r"tick \d+"))
        first = await page.locator("#tick").inner_text()
        await expect(page.locator("#tick")).not_to_have_text(first)  # still streaming
        # An https page may only open wss:// (mixed content): the server saw it.
        status = json.loads(await page.evaluate("fetch('/status').then(r => r.text())"))
        assert status["sessions"] == 1 and len(status["running"]) == 1
        await save_screenshot(page, f"tls-wss-{server_name}")
        assert_no_console_errors(page)
    finally:
        await asyncio.wait_for(context.close(), timeout=15)
