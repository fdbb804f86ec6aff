#!/usr/bin/env python
"""Fan-out benchmark: one publish reaching 1000 WebSocket sessions.

For each scenario the runner starts the server(s) (hypercorn, 127.0.0.1),
opens ``--sessions`` WebSocket sessions (tabs) from ``--clients`` client
processes, then makes ``--publishes`` publishes, one every ``--interval``
seconds, each through an HTTP request to the first server. The server stamps
``t0 = time.time()`` just before ``publish`` and sends ``{"seq", "t0"}``;
every session records ``arrival - t0``. Reported per scenario:

* ``last`` — time until the *last* session has a publish (p50 and max over
  the publishes): the fan-out time;
* ``p50`` / ``p99`` of every single delivery;
* ``cpu/msg`` — server CPU seconds (every server process; ``time.process_time``
  read through an HTTP route before and after) divided by deliveries, and
  for Redis scenarios Redis's own CPU per publish.

Scenarios (``--scenario``, repeatable; default all):

  memory-props      in-process backend, 1 worker; ``topic.set_props`` to
                    joined tabs: the payload is encoded once, spliced per tab
  memory-subscribe  in-process backend, 1 worker; each tab's persistent
                    callback iterates ``topic.subscribe()`` and calls set_props
  redis-props-1     Redis backend, 1 worker (the cost of the Redis hop)
  redis-props-2     Redis backend, 2 worker processes (half the tabs each)
  redis-subscribe-2 Redis backend, 2 worker processes, subscribe mode

The sessions are real WebSocket connections speaking the renderer protocol
(``renderer_joined``); clients and servers share the machine, so on a small
machine the clients' CPU competes with the server's (see bench/FANOUT.md).

    python bench/fanout.py                      # everything, 1000 sessions
    python bench/fanout.py --scenario memory-props --sessions 200 --publishes 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
WS_PATH = "/_dash-ws-callback"

SCENARIOS: dict[str, dict[str, Any]] = {
    "memory-props": {"backend": "memory", "mode": "props", "servers": 1},
    "memory-subscribe": {"backend": "memory", "mode": "subscribe", "servers": 1},
    "redis-props-1": {"backend": "redis", "mode": "props", "servers": 1},
    "redis-props-2": {"backend": "redis", "mode": "props", "servers": 2},
    "redis-subscribe-2": {"backend": "redis", "mode": "subscribe", "servers": 2},
}


# ------------------------------------------------------------------- the served app


def create_app() -> Any:
    """The app every server runs: ``hypercorn 'bench.fanout:create_app()'``."""
    from dash import html, set_props
    from quart import request

    from quartdash import Dash, broadcast

    mode = os.environ.get("FANOUT_MODE", "props")
    feed = broadcast.Topic("fanout")
    app = Dash("fanout", websocket_callbacks=True)
    app.layout = html.Div(id="v")

    if mode == "props":

        @app.callback(persistent=True)
        async def join() -> None:
            await feed.join()  # this tab now gets feed.set_props; nothing else runs

    else:

        @app.callback(persistent=True)
        async def follow() -> None:
            async for message in feed.subscribe(maxsize=64):
                set_props("v", {"children": message})

    asgi = app.asgi

    @asgi.post("/_fanout/publish")
    async def publish() -> dict[str, Any]:
        body = await request.get_json()
        t0 = time.time()
        message = {"seq": body["seq"], "t0": t0}
        if body.get("dry"):  # the baseline: the same request, no publish
            pass
        elif mode == "props":
            await feed.set_props("v", {"children": message}, retain=False)
        else:
            await feed.publish(message)
        return {"t0": t0, "publish_s": time.time() - t0}

    @asgi.get("/_fanout/stats")
    async def stats() -> dict[str, Any]:
        return {
            **broadcast.stats(),
            "pid": os.getpid(),
            "cpu": time.process_time(),
            "sessions": len(app.live.sessions),
        }

    return asgi


# ----------------------------------------------------------------------- the clients


def _mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(
        n, "big"
    )


def _frame(text: bytes) -> bytes:
    key = os.urandom(4)
    n = len(text)
    head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0xFE)) + n.to_bytes(2, "big")
    return head + key + _mask(text, key)


class Session(asyncio.Protocol):
    """One tab: a minimal RFC 6455 client (cheap enough for thousands per process)."""

    def __init__(self, host: str, renderer_id: str, sink: dict[int, array]) -> None:
        self.host = host
        self.renderer_id = renderer_id
        self.sink = sink
        self.buf = b""
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {WS_PATH} HTTP/1.1\r\nHost: {self.host}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: http://{self.host}\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"lost before open: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buf + data if self.buf else data
        if not self.open.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if b" 101 " not in buf[:end].split(b"\r\n", 1)[0] + b" ":
                self.open.set_exception(ConnectionError(buf[:end].decode("latin-1")))
                self.transport.close()
                return
            buf = buf[end + 4 :]
            self.open.set_result(None)
            self.transport.write(
                _frame(orjson.dumps({"type": "renderer_joined", "rendererId": self.renderer_id}))
            )
        pos, n = 0, len(buf)
        while n - pos >= 2:
            length, head = buf[pos + 1] & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if pos + head + length > n:
                break
            if buf[pos] & 0x0F == 1:
                self.on_text(buf[pos + head : pos + head + length], now)
            pos += head + length
        self.buf = buf[pos:]

    def on_text(self, text: bytes, now: float) -> None:
        decoded = orjson.loads(text)
        for message in decoded if isinstance(decoded, list) else (decoded,):
            if message.get("type") != "set_props":
                continue
            value = message["payload"]["props"].get("children")
            if isinstance(value, dict) and "t0" in value:
                latencies = self.sink.get(value["seq"])
                if latencies is None:
                    latencies = self.sink[value["seq"]] = array("d")
                latencies.append(now - value["t0"])


async def _client(targets: list[tuple[str, int]], count: int, tag: str, pipe: Any) -> None:
    loop = asyncio.get_running_loop()
    sink: dict[int, array] = {}
    sessions: list[Session] = []
    for start in range(0, count, 50):  # ramp: 50 handshakes at a time
        batch = []
        for i in range(start, min(count, start + 50)):
            host, port = targets[i % len(targets)]
            _transport, session = await loop.create_connection(
                lambda h=f"{host}:{port}", i=i: Session(h, f"{tag}-{i}", sink), host, port
            )
            batch.append(session)
        await asyncio.wait_for(asyncio.gather(*(s.open for s in batch)), timeout=30)
        sessions += batch
    pipe.send(("ready", len(sessions)))
    await asyncio.to_thread(pipe.recv)  # "stop"
    lost = sum(s.lost for s in sessions)
    pipe.send(("result", {seq: list(values) for seq, values in sink.items()}, lost))
    for session in sessions:
        session.transport.close()


def client_main(targets: list[tuple[str, int]], count: int, tag: str, pipe: Any) -> None:
    asyncio.run(_client(targets, count, tag, pipe))


# ------------------------------------------------------------------------ the runner


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def http_json(url: str, body: Any = None, timeout: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if data else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        import redis

        self.client = redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=2)
        wait_until(lambda: self.client.ping(), 10, "redis-server")

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Server:
    """hypercorn serving ``target`` (a ``module:factory()``) on a free loopback
    port, in its own process group; the other bench scripts use it too."""

    def __init__(self, env: dict[str, str], log: Path, target: str = "bench.fanout:create_app()",
                 stats_path: str = "/_fanout/stats", extra_args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.log = log
        self.stats_path = stats_path
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hypercorn", "--bind", f"{LOOPBACK}:{self.port}",
                 "--graceful-timeout", "2", *extra_args, target],
                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env},
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_until(lambda: bool(self.stats()), 30, f"server on {self.port}")

    @property
    def base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def stats(self) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{self.log.read_text()[-2000:]}")
        return dict(http_json(self.url(self.stats_path), timeout=5))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_scenario(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    spec = SCENARIOS[name]
    load_before = os.getloadavg()[0]
    redis = Redis(workdir) if spec["backend"] == "redis" else None
    env = {
        "FANOUT_MODE": spec["mode"],
        "QUARTDASH_BROADCAST_URL": redis.url if redis else "memory://",
    }
    servers: list[Server] = []
    clients: list[tuple[Any, Any]] = []
    try:
        servers = [Server(env, workdir / f"{name}-{i}.log") for i in range(spec["servers"])]
        targets = [(LOOPBACK, s.port) for s in servers]
        ctx = mp.get_context("spawn")
        share = [
            args.sessions // args.clients + (i < args.sessions % args.clients)
            for i in range(args.clients)
        ]
        for i, count in enumerate(share):
            parent, child = ctx.Pipe()
            # Rotate the targets so every server gets its share from every client.
            rotated = targets[i % len(targets) :] + targets[: i % len(targets)]
            proc = ctx.Process(
                target=client_main, args=(rotated, count, f"c{i}", child), daemon=True
            )
            proc.start()
            clients.append((proc, parent))
        for _, pipe in clients:
            if not pipe.poll(120):
                raise TimeoutError("a client process did not connect its sessions in time")
            kind, _ = pipe.recv()
            assert kind == "ready"
        member_key = "members" if spec["mode"] == "props" else "subscriptions"
        wait_until(
            lambda: sum(s.stats()[member_key] for s in servers) == args.sessions,
            60,
            f"{args.sessions} {member_key}",
        )
        time.sleep(0.5)

        publish_url = servers[0].url("/_fanout/publish")
        for seq in range(args.warmup):  # warm-up: not counted
            http_json(publish_url, {"seq": -1 - seq})
            time.sleep(args.interval)
        # Baseline: the same requests and pauses without publishing (HTTP, idle
        # timers, the stats route), subtracted from the publishing window.
        base0 = [s.stats()["cpu"] for s in servers]
        redis_base0 = redis.cpu() if redis else 0.0
        for seq in range(args.publishes):
            http_json(publish_url, {"seq": seq, "dry": True})
            time.sleep(args.interval)
        base1 = [s.stats()["cpu"] for s in servers]
        redis_base1 = redis.cpu() if redis else 0.0
        before = [s.stats() for s in servers]
        cpu0 = [b["cpu"] for b in before]
        redis_cpu0 = redis.cpu() if redis else 0.0
        publish_s = []
        for seq in range(args.publishes):
            publish_s.append(http_json(publish_url, {"seq": seq})["publish_s"])
            time.sleep(args.interval)
        after = [s.stats() for s in servers]
        cpu1 = [a["cpu"] for a in after]
        redis_cpu1 = redis.cpu() if redis else 0.0
        fanout_s = sum(
            a["fanout_seconds"] - b["fanout_seconds"] for a, b in zip(after, before, strict=True)
        )

        received: dict[int, list[float]] = {}
        lost = 0
        for _, pipe in clients:
            pipe.send("stop")
        for _, pipe in clients:
            if not pipe.poll(60):
                raise TimeoutError("a client process did not report")
            _, sink, client_lost = pipe.recv()
            lost += client_lost
            for seq, values in sink.items():
                received.setdefault(int(seq), []).extend(values)
    finally:
        for proc, _ in clients:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        for server in servers:
            server.stop()
        if redis is not None:
            redis.stop()

    counted = {seq: values for seq, values in received.items() if seq >= 0}
    every = [v for values in counted.values() for v in values]
    lasts = [max(values) for values in counted.values() if len(values) == args.sessions]
    deliveries = len(every)
    expected = args.sessions * args.publishes
    cpu = (sum(cpu1) - sum(cpu0)) - (sum(base1) - sum(base0))
    return {
        "scenario": name,
        **spec,
        "sessions": args.sessions,
        "publishes": args.publishes,
        "delivered": deliveries,
        "expected": expected,
        "complete_publishes": len(lasts),
        "sessions_lost": lost,
        "last_p50_ms": 1000 * statistics.median(lasts) if lasts else None,
        "last_max_ms": 1000 * max(lasts) if lasts else None,
        "p50_ms": 1000 * percentile(every, 0.50) if every else None,
        "p99_ms": 1000 * percentile(every, 0.99) if every else None,
        "publish_call_ms": 1000 * statistics.median(publish_s),
        # Time the hub spent handing each publish to its local tabs/subscribers
        # (all servers together): the broadcast layer's own share.
        "hub_fanout_ms": 1000 * fanout_s / args.publishes,
        "server_cpu_s": cpu,
        "server_cpu_baseline_s": sum(base1) - sum(base0),
        "cpu_us_per_delivery": 1e6 * cpu / deliveries if deliveries else None,
        "redis_cpu_us_per_publish": (
            1e6 * ((redis_cpu1 - redis_cpu0) - (redis_base1 - redis_base0)) / args.publishes
            if redis
            else None
        ),
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def table(results: list[dict[str, Any]]) -> str:
    def fmt(value: Any, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "| scenario | delivered | last p50 (ms) | last max (ms) | p50 (ms) | p99 (ms) "
        "| hub fan-out (ms) | server CPU/delivery (µs) | Redis CPU/publish (µs) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['scenario']} | {r['delivered']}/{r['expected']} | {fmt(r['last_p50_ms'])} "
            f"| {fmt(r['last_max_ms'])} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} "
            f"| {fmt(r['hub_fanout_ms'], 2)} | {fmt(r['cpu_us_per_delivery'])} "
            f"| {fmt(r['redis_cpu_us_per_publish'], 0)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--publishes", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between publishes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    names = args.scenario or list(SCENARIOS)
    print(
        f"# fan-out: {args.sessions} sessions, {args.publishes} publishes, "
        f"{os.cpu_count()} CPUs, {platform.python_version()}",
        file=sys.stderr,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        for name in names:
            print(f"# {name} ...", file=sys.stderr, flush=True)
            result = run_scenario(name, args, Path(tmp))
            print(json.dumps(result), flush=True)
            results.append(result)
    print(table(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "results": results},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
