"""A throw-away ``redis-server`` on a free loopback port (no persistence)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .net import LOOPBACK, free_port, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
STARTUP_TIMEOUT = 10.0


class RedisServer:
    """``redis-server --port P --bind 127.0.0.1 --save "" --appendonly no``.

    ``kill()`` SIGKILLs it (a crash, as seen by clients); ``restart()`` starts
    it again on the same port, empty.
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.log_path = workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}"

    def client(self) -> redis.Redis:
        """A synchronous client with short timeouts and no retries (close it when done)."""
        return redis.Redis(
            host=LOOPBACK,
            port=self.port,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )

    def ping(self) -> bool:
        """True when the server answers PING now."""
        client = self.client()
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        if self.is_running():
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {proc.returncode} during startup:\n{self.output()}"
                )
            return self.ping()

        try:
            wait_until(ready, timeout=timeout, interval=0.05, message=f"redis PING on {self.port}")
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the server (clients see the connection drop) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"redis-server {self.proc.pid} survived SIGKILL") from None

    def restart(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Kill the server if it runs, then start a fresh one on the same port."""
        self.kill()
        self.start(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
