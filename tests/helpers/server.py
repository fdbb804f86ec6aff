"""Run an ASGI app under a real server subprocess on a free loopback port.

``start_server("tests.apps.hello:asgi")`` runs ``python -m hypercorn`` (the
interpreter running the tests, i.e. the venv's) with the repository root as
cwd and on ``PYTHONPATH``, so ``tests.apps.x:asgi`` and ``examples.x:asgi``
import; ``server="uvicorn"`` or ``server="granian"`` runs that server
instead, with the equivalent flags (:func:`server_command`). stdout and
stderr go to a file (a pipe could fill up and block the server);
``ServerProcess.output()`` reads it back.

``workers``: hypercorn's meaning. 0 serves in the server's own process
(hypercorn ``--workers 0``; uvicorn without ``--workers``; granian has no
such mode and runs one worker process), 1 one worker process (uvicorn: in
its own process as well), N > 1 that many worker processes.

Signals: the server's parent process owns the listening socket and spawns
the workers. ``stop()`` signals the parent only (it tells the workers to
shut down gracefully; a SIGTERM to the whole group would reach the workers
directly). ``kill()`` SIGKILLs the whole process group.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .net import LOOPBACK, free_port, http_get, port_accepts

REPO_ROOT = Path(__file__).resolve().parents[2]

STARTUP_TIMEOUT = 20.0
GRACEFUL_TIMEOUT = 2
SERVERS = ("hypercorn", "uvicorn", "granian")


class ServerStartError(RuntimeError):
    """The server exited or did not become ready in time; carries its output."""


class ServerStopTimeout(AssertionError):
    """The server did not exit within the timeout after the stop signal."""


@dataclass
class ServerProcess:
    target: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict, repr=False)
    server: str = "hypercorn"
    tls: bool = False

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def http_url(self, path: str = "/") -> str:
        return self.url + _with_slash(path)

    def ws_url(self, path: str = "/") -> str:
        return f"{'wss' if self.tls else 'ws'}://{LOOPBACK}:{self.port}{_with_slash(path)}"

    def exit_code_after(self, sig: int) -> int:
        """The exit status after a graceful stop by ``sig``: 0, except for a
        single-process uvicorn, which re-raises SIGTERM once it is done."""
        if self.server == "uvicorn" and self.workers <= 1 and sig == signal.SIGTERM:
            return -sig
        return 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def is_running(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig`` to the server's main process and wait for it to exit.

        Returns its exit code. Raises ``ServerStopTimeout`` (after killing the
        process group) when it is still running after ``timeout`` seconds.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise ServerStopTimeout(
                    f"{self.server} {self.target} still running {timeout}s after signal {sig}; "
                    f"killed.\n--- server output ---\n{self.output()}"
                ) from None
        # Workers are joined by the parent; reap any straggler of the group.
        _killpg(self.proc.pid, signal.SIGKILL)
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL the whole process group (parent and workers) and reap the parent."""
        _killpg(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise ServerStopTimeout(f"{self.server} {self.target} survived SIGKILL") from None


def _with_slash(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the group is already gone
    except PermissionError:
        pass  # pid reused by a process we do not own: nothing of ours is left


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a served app: ours, the repo root first on PYTHONPATH."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTEST_CURRENT_TEST", None)
    if extra:
        env.update(extra)
    return env


def start_server(
    target: str,
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    ready_path: str | None = "/",
    startup_timeout: float = STARTUP_TIMEOUT,
    extra_args: Sequence[str] = (),
    server: str = "hypercorn",
    tls: tuple[str, str] | None = None,
) -> ServerProcess:
    """Start ``server`` (hypercorn by default) serving ``target`` on a free
    loopback port; wait until it serves. ``tls``: (certificate file, key
    file) to serve https/wss; ``extra_args`` are the server's own flags.

    Ready means: the port accepts TCP connections and, unless ``ready_path``
    is None, ``GET ready_path`` answers with a status below 500. Waits at most
    ``startup_timeout`` seconds overall. Retries with another port if the
    chosen one was taken meanwhile.
    """
    last_error: ServerStartError | None = None
    for _attempt in range(3):
        process = _spawn(target, log_dir=log_dir, env=env, workers=workers,
                         extra_args=extra_args, server=server, tls=tls)
        try:
            _wait_ready(process, ready_path=ready_path, timeout=startup_timeout)
        except ServerStartError as error:
            process.kill()
            if "address already in use" in process.output().lower():
                last_error = error
                continue
            raise
        except BaseException:
            process.kill()
            raise
        return process
    assert last_error is not None
    raise last_error


def _spawn(
    target: str,
    *,
    log_dir: Path,
    env: Mapping[str, str] | None,
    workers: int,
    extra_args: Sequence[str],
    server: str,
    tls: tuple[str, str] | None,
) -> ServerProcess:
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    safe = target.replace(":", "-").replace("/", "-")
    log_path = log_dir / f"{server}-{safe}-{port}.log"
    cmd = server_command(server, target, port, workers=workers, extra_args=extra_args, tls=tls)
    full_env = server_env(env)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: teardown can kill it whole
        )
    return ServerProcess(target, port, proc, log_path, workers, dict(env or {}), server,
                         tls is not None)


def server_command(server: str, target: str, port: int, *, workers: int = 1,
                   extra_args: Sequence[str] = (),
                   tls: tuple[str, str] | None = None) -> list[str]:
    """The command line that serves ``target`` on 127.0.0.1:``port`` with ``server``:
    the same settings on each (a 2 s graceful timeout where there is one)."""
    if server == "hypercorn":
        flags = ["--bind", f"{LOOPBACK}:{port}", "--graceful-timeout", str(GRACEFUL_TIMEOUT),
                 "--workers", str(workers)]
        if tls:
            flags += ["--certfile", tls[0], "--keyfile", tls[1]]
    elif server == "uvicorn":
        flags = ["--host", LOOPBACK, "--port", str(port),
                 "--timeout-graceful-shutdown", str(GRACEFUL_TIMEOUT)]
        if workers > 1:
            flags += ["--workers", str(workers)]
        if tls:
            flags += ["--ssl-certfile", tls[0], "--ssl-keyfile", tls[1]]
    elif server == "granian":
        flags = ["--interface", "asgi", "--host", LOOPBACK, "--port", str(port),
                 "--workers", str(max(1, workers))]
        if tls:
            flags += ["--ssl-certificate", tls[0], "--ssl-keyfile", tls[1]]
    else:
        raise ValueError(f"unknown server {server!r}: one of {SERVERS}")
    return [sys.executable, "-m", server, *flags, *extra_args, target]


def _wait_ready(server: ServerProcess, *, ready_path: str | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_problem = "port not accepting connections"
    while True:
        if server.proc.poll() is not None:
            raise ServerStartError(
                f"{server.server} {server.target} exited with {server.proc.returncode} during "
                f"startup.\n--- server output ---\n{server.output()}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServerStartError(
                f"{server.server} {server.target} not ready after {timeout}s ({last_problem})."
                f"\n--- server output ---\n{server.output()}"
            )
        if port_accepts(server.port, timeout=min(0.5, remaining)):
            if ready_path is None:
                return
            try:
                # hypercorn's and granian's parents listen before the worker
                # has imported the app: the request waits in the backlog.
                response = http_get(
                    server.http_url(ready_path), timeout=max(0.1, min(2.0, remaining))
                )
            except (OSError, http.client.HTTPException) as error:  # not ready yet
                last_problem = f"GET {ready_path}: {error!r}"
            else:
                if response.status < 500:
                    return
                last_problem = f"GET {ready_path} -> {response.status}"
        time.sleep(0.05)
