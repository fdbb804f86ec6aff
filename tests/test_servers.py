"""``app.run(server=...)``: the development server on hypercorn, uvicorn or granian.

Each runs a real script in a subprocess: the page is served, a persistent
callback pushes over the WebSocket, an oversized message stops at the
server's own limit where it has one (the app's ``websocket_max_message_size``),
and SIGTERM closes the session with 1001 after the callback saw
``is_shutdown``, then exits 0. The serving subprocesses of the other tests
(``serve_app(..., server=...)``) cover the production command lines.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dash import html

from quartdash import Dash
from quartdash.hosting.servers import SERVERS, ServerNotInstalled
from tests.helpers import (
    REPO_ROOT,
    close_code,
    first_push,
    free_port,
    http_get,
    open_session,
    port_accepts,
    server_env,
    wait_until,
)

SCRIPT = """
import asyncio
import re
from dash import ctx, html, set_props
from quartdash import Dash

app = Dash(__name__, websocket_max_message_size=65536)
app.layout = html.Div(id="tick")

@app.callback(persistent=True, websocket=True)
async def ticker():
    n = 0
    try:
        while not ctx.websocket.is_shutdown:
            n += 1
            set_props("tick", {{"children": n}})
            await asyncio.sleep(0.05)
    finally:
        print("ticker cleanup, is_shutdown:", ctx.websocket.is_shutdown, flush=True)

app.run(host="127.0.0.1", port={port}, server={server!r})
"""

# Where an oversized message stops: the server's own limit (1009) where
# app.run() can set it; granian has no such setting, so quartdash's (1008).
TOO_BIG = {"hypercorn": 1009, "uvicorn": 1009, "granian": 1008}


@pytest.mark.parametrize("server", SERVERS)
async def test_app_run_on_each_server(server: str, tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "run_app.py"
    script.write_text(textwrap.dedent(SCRIPT.format(port=port, server=server)))
    log_path = tmp_path / "output.log"
    with log_path.open("wb") as log:
        proc = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, str(script)], cwd=REPO_ROOT, env=server_env(),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")

    try:
        await asyncio.to_thread(wait_until, lambda: port_accepts(port), timeout=30,
                                message=f"app.run(server={server!r}) to listen")
        page = await asyncio.to_thread(http_get, base + "/", timeout=10)
        assert page.status == 200 and "_dash-config" in page.text, output()
        session = await open_session(base, "/", tab="t1")
        push = await first_push(session, timeout=10)
        assert push["payload"]["componentId"] == "tick", push

        oversized = await open_session(base, "/")
        await oversized.send("x" * 200_000)
        assert await close_code(oversized, timeout=10) == TOO_BIG[server], output()

        proc.send_signal(signal.SIGTERM)
        assert await close_code(session, timeout=10) == 1001, output()
        exit_code = await asyncio.to_thread(proc.wait, 15)
        assert exit_code == 0, output()
        assert "ticker cleanup, is_shutdown: True" in output()
        assert "Traceback" not in output(), output()
        if server != "hypercorn":
            assert f"quartdash serving on http://localhost:{port}/ with {server}" in output()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_a_missing_server_names_the_extra(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, server, None)  # import uvicorn -> ImportError
    app = Dash(__name__)
    app.layout = html.Div("x")
    with pytest.raises(ServerNotInstalled) as raised:
        app.run(port=free_port(), server=server)
    message = str(raised.value)
    assert "pip install 'quartdash[servers]'" in message
    assert f"server={server!r}" in message


def test_an_unknown_server_is_refused() -> None:
    app = Dash(__name__)
    app.layout = html.Div("x")
    with pytest.raises(ValueError, match="'hypercorn', 'uvicorn', 'granian'"):
        app.run(port=free_port(), server="daphne")


def test_every_server_module_is_installed_with_the_test_extra() -> None:
    """The test command runs the suite on all three: none may be skipped."""
    from quartdash.hosting.servers import require

    for server in SERVERS:
        require(server)


def _doc_command_lines() -> list[str]:
    """The server command lines of the ```bash blocks of docs/deployment.md and
    docs/security.md, continuation lines joined, comments dropped."""
    lines: list[str] = []
    for name in ("deployment.md", "security.md"):
        text = (REPO_ROOT / "docs" / name).read_text(encoding="utf-8")
        for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                command = line.split("#", 1)[0].strip()
                if command.split(" ", 1)[0] in SERVERS:
                    lines.append(command)
    return lines


@pytest.mark.parametrize("server", SERVERS)
def test_the_documented_flags_exist(server: str) -> None:
    """Every ``--flag`` of a documented command line is one the installed
    server knows (a typo or a renamed flag fails here, not in production)."""
    lines = [line for line in _doc_command_lines() if line.startswith(server + " ")]
    assert len(lines) >= 4, lines  # serve, workers, TLS, logging at least
    usage = subprocess.run([sys.executable, "-m", server, "--help"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    known = set(re.findall(r"(--[a-z0-9][a-z0-9-]*)", usage))
    for line in lines:
        for flag in re.findall(r"(?<!\S)(--[a-z0-9][a-z0-9-]*)", line):
            assert flag in known, f"{server} has no {flag}: {line}"
