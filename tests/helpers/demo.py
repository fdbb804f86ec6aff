"""The demo command as a newcomer runs it: ``bash scripts/demo.sh`` (or the
gallery it execs) in a subprocess, its printed URL, and a bounded stop.

Used by tests/test_demo.py (the gallery from the test environment) and by
scripts/demo_smoke.py (CI: demo.sh from a fresh virtual environment).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import websockets

from .net import http_get
from .server import REPO_ROOT

URL_LINE = re.compile(r"open (http://[^\s/]+/) in a browser")
DEMO_SCRIPT = REPO_ROOT / "scripts" / "demo.sh"

# What a newcomer's shell would not have: the test run's own settings.
_DROP_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST", "VENV",
             "HOST", "PORT")


class DemoError(AssertionError):
    """The demo did not do what the README promises (``with_output``: the
    message ends with the demo's output)."""

    with_output = False


@dataclass
class DemoProcess:
    command: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def fail(self, message: str) -> DemoError:
        tail = "\n".join(self.output().splitlines()[-80:])
        error = DemoError(f"{message}\n--- {' '.join(self.command)} (last lines) ---\n{tail}")
        error.with_output = True
        return error

    def wait_for_url(self, timeout: float) -> str:
        """The URL the demo printed, once it printed it (at most ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            match = URL_LINE.search(self.output())
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                raise self.fail(f"exited with {self.proc.returncode} before printing its URL")
            if time.monotonic() >= deadline:
                raise self.fail(f"printed no URL within {timeout:.0f} s")
            time.sleep(0.2)

    def wait_serving(self, url: str, timeout: float) -> None:
        """Wait until ``GET url`` answers 200 (the URL is printed before the bind)."""
        deadline = time.monotonic() + timeout
        problem = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.fail(f"exited with {self.proc.returncode} instead of serving")
            try:
                response = http_get(url, timeout=2)
            except OSError as error:
                problem = repr(error)
            else:
                if response.status == 200:
                    return
                problem = f"status {response.status}"
            time.sleep(0.1)
        raise self.fail(f"GET {url} not 200 within {timeout:.0f} s ({problem})")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> tuple[int, float]:
        """Signal the demo's process (python, which demo.sh execs) and wait for it.

        Returns (exit code, seconds it took). Kills the process group and
        raises DemoError when it is still running after ``timeout`` s.
        """
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self.fail(f"still running {timeout:.0f} s after signal {sig}; killed") from None
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the whole process group (pip, python...) and reap it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise self.fail("survived SIGKILL") from None


def start_demo(command: Sequence[str], *, log_path: Path,
               env: Mapping[str, str] | None = None) -> DemoProcess:
    """Start ``command`` from the repository root, as a newcomer's shell would
    (no stdin, none of the test run's Python settings), in its own process group."""
    full_env = {key: value for key, value in os.environ.items() if key not in _DROP_ENV}
    full_env.update(env or {})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(command), cwd=REPO_ROOT, env=full_env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return DemoProcess(list(command), proc, log_path)


async def open_session(base_url: str, app_prefix: str,
                       tab: str | None = None) -> websockets.ClientConnection:
    """A raw quartdash WebSocket session on one app of the gallery (what a
    tab's SharedWorker opens), with the page's own Origin. ``tab``: join a
    renderer of that id, which starts the app's persistent callbacks for it."""
    origin = base_url.rstrip("/")
    url = origin.replace("http://", "ws://", 1) + app_prefix + "_dash-ws-callback"
    session = await websockets.connect(url, origin=origin, open_timeout=5, close_timeout=2)
    if tab is not None:
        await session.send(json.dumps({"type": "renderer_joined", "rendererId": tab}))
    return session


async def first_push(session: websockets.ClientConnection, timeout: float) -> dict[str, object]:
    """The first ``set_props`` message the server sends on ``session``."""
    async with asyncio.timeout(timeout):
        async for frame in session:
            decoded = json.loads(frame)
            for message in decoded if isinstance(decoded, list) else [decoded]:  # a batch
                if isinstance(message, dict) and message.get("type") == "set_props":
                    return message
    raise DemoError("the session closed before any set_props arrived")


async def close_code(session: websockets.ClientConnection, timeout: float) -> int | None:
    """Read until the server closes ``session``; its close code (None: no close frame)."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in session:
                pass
    except TimeoutError:
        raise DemoError(f"the session was not closed within {timeout:.0f} s") from None
    except websockets.ConnectionClosed:
        pass
    received = session.protocol.close_rcvd
    return received.code if received is not None else None
