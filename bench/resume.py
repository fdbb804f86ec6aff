#!/usr/bin/env python
"""Lossless resume, measured (bench/RESUME.md).

    .venv/bin/python bench/resume.py                  # both parts (~12 min)
    .venv/bin/python bench/resume.py --quick          # smoke run (~4 min)
    .venv/bin/python bench/resume.py --parts delivery --intervals 2 --sessions 100
    .venv/bin/python bench/resume.py --parts cost --cost-sessions 1000

1. delivery: N tabs (one WebSocket each) receive a persistent callback's
   10 Hz Patch stream through a TCP proxy on 127.0.0.1 that resets every
   connection every I seconds, for a window; quartdash (the client resumes,
   as quartdash's SharedWorker does), Dash's quart backend (the client does
   what Dash's worker and renderer do: reconnect after its back-off, ask for
   the persistent callback again) and raw Quart (reconnect on quartdash's
   quick schedule, the pusher restarts), one after another in the same run.  The server counts
   what each producer produced; the client what it applied.
2. cost: N quartdash sessions at 0 or 10 Hz; server CPU and RSS attached,
   then detached (every connection reset, the clients stay away), then every
   client resumes at once: resumed vs session_lost, time to ``resumed`` and
   to the replayed backlog applied.

Every server, and the proxy, runs in its own process group on a free
127.0.0.1 port and is killed on the way out; every wait is bounded.  The
clients run in this process (uvloop), on bench/loadgen.py's WebSocket client.
Internal: ``resume.py --proxy PORT`` is the proxy process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import run
from loadgen import WS_PATH, RawWS, percentile

ROOT = run.ROOT
PY = run.PY

# Which client behaviour each contender gets after a drop (see Tab).
POLICY = {run.QD: "resume", "dash-quart": "dash", "raw": "plain"}
CONTENDERS = [run.QD, "dash-quart", "raw"]

CONNECT_TIMEOUT = 10.0
# quartdash's worker (static/quartdash-ws-worker.js)
ACK_EVERY = 32
ACK_AFTER = 1.0
CLIENT_LOG_MAX = 4000
NO_RECONNECT = {1000, 1008, 4001}
CONTROL = frozenset({"session", "resumed", "session_lost", "ack", "heartbeat_ack"})
MAX_RETRIES = 10  # both workers give up after 10 failed attempts


def log(*parts: object) -> None:
    run.log("[resume]", *parts)


def quantile_ms(values: list[float], q: float) -> float | None:
    v = percentile(sorted(values), q)
    return None if v is None else v * 1000.0


# --------------------------------------------------------------------------
# the proxy process


def fault_proxy_class() -> Any:
    """tests/helpers/proxy.py's FaultProxy, loaded from its file (the tests
    package's __init__ imports the browser helpers; the proxy needs none)."""
    spec = importlib.util.spec_from_file_location(
        "_fault_proxy", ROOT / "tests" / "helpers" / "proxy.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FaultProxy


async def proxy_main(target: int) -> None:
    """``--proxy PORT``: forward 127.0.0.1:<free port> to PORT; print the port,
    then reset every connection on each ``cut`` line of stdin; stop at EOF."""
    # hypercorn's backlog under bench/run.py: 1000 clients come back at once
    proxy = await fault_proxy_class()(target).start(backlog=4096)
    print(json.dumps({"port": proxy.port}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            if line.strip() == b"cut":
                print(json.dumps({"cut": proxy.cut(), "accepted": proxy.connections}), flush=True)
    finally:
        await proxy.close()


class Proxy:
    """The proxy process, in its own process group, killed on exit."""

    def __init__(self, target: int, logfile: Path) -> None:
        self.target = target
        self.logfile = logfile
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Proxy:
        err = os.open(self.logfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                PY, __file__, "--proxy", str(self.target),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                start_new_session=True, cwd=ROOT,
            )  # fmt: skip
        finally:
            os.close(err)
        try:
            self.port = (await self._reply(30.0))["port"]
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(proc.wait(), 5)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _reply(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"the proxy exited, see {self.logfile}")
        return json.loads(line)

    async def cut(self) -> int:
        """Reset every connection through the proxy (RST both ways); how many."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"cut\n")
        await self.proc.stdin.drain()
        return int((await self._reply(10.0))["cut"])


# --------------------------------------------------------------------------
# the clients


class Link:
    """What one socket reports to its tab; a tab has one socket at a time, and
    what an older one still reports is ignored."""

    __slots__ = ("opened", "ready", "tab", "ws")

    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        self.ws: RawWS | None = None
        # The tab's on_open ran: only then may anything be sent (a browser's
        # socket is OPEN exactly when its onopen runs; ours completes its
        # handshake a loop iteration before, when a timer could send first).
        self.ready = False
        self.opened: asyncio.Future = asyncio.get_running_loop().create_future()
        self.opened.add_done_callback(lambda f: f.cancelled() or f.exception())

    def is_open(self) -> bool:
        """The handshake completed."""
        return self.opened.done() and not self.opened.cancelled() and not self.opened.exception()

    def on_text(self, data: bytes, now: float) -> None:
        if self.tab.link is self:
            self.tab.on_text(data, now)

    def on_lost(self, reason: str) -> None:
        if self.tab.link is self:
            self.tab.on_lost(self, reason)


class Bench:
    """What the tabs of one measurement share: where to connect, their tasks."""

    def __init__(self, port: int, persistent_id: str, policy: str) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.netloc = f"{self.host}:{port}"
        self.origin = f"http://{self.netloc}"
        self.persistent_id = persistent_id
        self.policy = policy
        self.tasks: set[asyncio.Task] = set()
        self.tabs: list[Tab] = []

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def open(self, n: int, ramp: int) -> int:
        """Open ``n`` tabs, ``ramp`` connections at a time; how many opened."""
        self.tabs = [Tab(self, i) for i in range(n)]
        for start in range(0, n, ramp):
            await asyncio.gather(*(t.connect() for t in self.tabs[start:start + ramp]))
        return sum(1 for t in self.tabs if t.is_open())

    async def close(self) -> None:
        for t in self.tabs:
            t.close()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
        await asyncio.sleep(0.2)  # let the close frames go out


class Tab:
    """One browser tab behind its own WebSocket, as the contender's client
    would run it (docs/protocol.md, bench/RESUME.md):

    * ``resume`` (quartdash): static/quartdash-ws-worker.js -- ``hello``, acks
      every 32 messages or 1 s, numbered messages kept until acked; after a
      drop, ``resume`` with the token and the last seq applied after
      100 ms x 2^n (max 1 s) x (1..1.5), within the session's window; a
      ``session_lost`` (or the window passing) restarts the persistent callback.
    * ``dash`` (Dash 4.4.1's dash-ws-worker.js + renderer): reconnect after
      min(1 s x 2^n + 0..1 s, 30 s), then ask for the persistent callback again.
    * ``plain`` (raw Quart): reconnect on quartdash's schedule, rejoin.
    """

    def __init__(self, bench: Bench, index: int) -> None:
        self.b = bench
        self.rid = f"r{index}-{os.urandom(3).hex()}"
        self.policy = bench.policy
        self.link: Link | None = None
        self.closing = False
        self.hold = False  # stay away after a drop until released (cost part)
        self.retries = 0
        self.retry_timer: asyncio.TimerHandle | None = None
        self.requests = 0
        self.restart = False  # ask for the persistent callback on the next `session`
        # the resumable session (the worker's `session` object)
        self.token: str | None = None
        self.timeout = 0.0
        self.last_seq = 0
        self.client_seq = 0
        self.log: list[tuple[int, bytes]] = []
        self.unacked = 0
        self.ack_timer: asyncio.TimerHandle | None = None
        self.dropped_at = 0.0
        self.awaiting = False
        # what was applied: producer -> bitmap of seqs, highest seq, when
        self.seen: dict[int, bytearray] = {}
        self.last: dict[int, int] = {}
        self.last_at: dict[int, float] = {}
        self.applied = 0
        self.dups = 0
        self.ooo = 0
        self.repeats = 0  # numbered messages received again and dropped (replays)
        self.signals: list[tuple[float, str]] = []  # loss signals: (when, reason)
        self.drops = 0
        self.reconnects = 0
        self.failed = 0  # connection attempts that did not open
        self.gave_up = False
        self.drop_t = 0.0  # a drop still waiting for its first value
        self.open_t = 0.0
        self.gap_drop: list[float] = []  # drop noticed -> first value applied
        self.gap_open: list[float] = []  # new socket open -> first value applied
        self.errors: list[str] = []
        self.socket_at = 0.0  # when the current socket opened
        # replay measurement (cost part)
        self.rs = 0.0  # when this tab started reconnecting
        self.answer_at = 0.0  # `resumed` or `session_lost` received
        self.outcome: str | None = None
        self.caught_at = 0.0  # the last value produced before rs applied
        self.backlog = 0  # values produced before rs, applied after it
        self.live_at = 0.0  # the first value produced after rs applied

    # -- the socket
    async def connect(self) -> None:
        if self.link is not None or self.closing:
            return
        b = self.b
        link = self.link = Link(self)
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(loop.create_connection(
                lambda: RawWS(link, b.netloc, WS_PATH, b.origin), b.host, b.port),
                CONNECT_TIMEOUT)  # fmt: skip
            link.ws = proto
            await asyncio.wait_for(asyncio.shield(link.opened), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ConnectionError) as exc:
            if link.ws is not None and link.ws.transport is not None:
                link.ws.transport.abort()
            if self.link is link:  # not already handled by on_lost
                self.link = None
                self.note_error(f"connect: {exc!r}")
                self.failed += 1
                self.after_close(None)
            return
        if self.link is link:
            self.on_open()

    def is_open(self) -> bool:
        return self.link is not None and self.link.ready

    def write(self, msg: dict) -> None:
        if self.is_open():
            self.link.ws.send_text(orjson.dumps(msg))  # type: ignore[union-attr]

    def send(self, msg: dict) -> None:
        """The worker's send(): numbered and kept until acked on a session."""
        if self.token is None:
            self.write(msg)
            return
        self.client_seq += 1
        msg["seq"] = self.client_seq
        data = orjson.dumps(msg)
        self.log.append((self.client_seq, data))
        if len(self.log) > CLIENT_LOG_MAX:
            del self.log[0]
        if self.is_open() and not self.awaiting:
            self.link.ws.send_text(data)  # type: ignore[union-attr]

    def ask_persistent(self) -> None:
        """The renderer's page-load (and reconnect) request for the persistent callback."""
        self.requests += 1
        self.send({
            "type": "callback_request", "rendererId": self.rid,
            "requestId": f"{self.rid}-p{self.requests}",
            "payload": {"output": self.b.persistent_id, "outputs": [], "inputs": [],
                        "state": [], "changedPropIds": []},
        })  # fmt: skip

    def on_open(self) -> None:
        self.link.ready = True  # type: ignore[union-attr]
        self.socket_at = time.time()
        if self.drop_t:
            self.reconnects += 1
            self.open_t = time.time()
        self.retries = 0  # every worker resets its back-off on open
        if self.policy == "dash":  # Dash's worker sends nothing of its own
            self.ask_persistent()
            return
        if self.policy == "plain":
            self.write({"type": "renderer_joined", "rendererId": self.rid})
            self.ask_persistent()
            return
        if self.dropped_at and self.token:
            self.awaiting = True  # nothing else until the answer
            self.write({"type": "resume",
                        "payload": {"token": self.token, "lastSeq": self.last_seq}})
            return
        self.write({"type": "hello", "payload": {"resume": 1}})
        self.send({"type": "renderer_joined", "rendererId": self.rid})
        self.ask_persistent()  # first load, or `connected` after `disconnected`

    def on_lost(self, link: Link, reason: str) -> None:
        self.link = None
        self.awaiting = False
        if self.closing:
            return
        if link.is_open():
            self.drops += 1
            if not self.drop_t:
                self.drop_t = time.time()
            self.open_t = 0.0
        else:
            self.failed += 1
            self.note_error(f"lost before open: {reason}")
        code = None
        if reason.startswith("close "):
            with contextlib.suppress(ValueError):
                code = int(reason.split()[1])
        self.after_close(code)

    def after_close(self, code: int | None) -> None:
        """What the contender's client does once its socket is gone."""
        if self.policy == "dash":
            if code not in (1000, 4001):
                self.schedule(self.dash_delay())
            return
        if self.policy == "plain":
            self.schedule(self.resume_delay())
            return
        # quartdash's worker: onClosed()
        if self.token and self.timeout > 0 and code not in NO_RECONNECT:
            now = time.time()
            if not self.dropped_at:
                self.dropped_at = now
            if now - self.dropped_at < self.timeout:
                self.schedule(self.resume_delay())
                return
            self.continuity_lost("expired (client)", now)
        elif self.token:
            self.reset_session()
        if code not in NO_RECONNECT:
            self.schedule(self.worker_delay())

    def resume_delay(self) -> float | None:
        delay = min(1.0, 0.1 * 2 ** min(self.retries, 4)) * (1 + random.random() / 2)
        self.retries += 1
        return delay

    def worker_delay(self) -> float | None:
        if self.retries >= MAX_RETRIES:
            return None
        delay = min(30.0, 1.0 * 2**self.retries * (1 + random.random()))
        self.retries += 1
        return delay

    def dash_delay(self) -> float | None:
        if self.retries >= MAX_RETRIES:
            return None
        delay = min(1.0 * 2**self.retries + random.random(), 30.0)
        self.retries += 1
        return delay

    def schedule(self, delay: float | None) -> None:
        if delay is None:
            self.gave_up = True
            return
        if self.retry_timer is not None or self.closing or self.hold:
            return
        self.retry_timer = asyncio.get_running_loop().call_later(delay, self._retry)

    def _retry(self) -> None:
        self.retry_timer = None
        self.b.spawn(self.connect())

    def release(self, now: float) -> None:
        """Cost part: come back now (no back-off), timing from ``now``."""
        self.hold = False
        self.rs = now
        if self.retry_timer is not None:
            self.retry_timer.cancel()
            self.retry_timer = None
        self.b.spawn(self.connect())

    def close(self) -> None:
        self.closing = True
        for timer in (self.retry_timer, self.ack_timer):
            if timer is not None:
                timer.cancel()
        if self.link is not None and self.link.ws is not None:
            self.link.ws.close()

    # -- receiving
    def on_text(self, data: bytes, now: float) -> None:
        msg = orjson.loads(data)
        for m in msg if type(msg) is list else (msg,):
            typ = m.get("type")
            if typ in CONTROL:
                self.on_control(typ, m.get("payload") or {}, now)
                continue
            seq = m.get("seq")
            if type(seq) is int:  # the worker's fresh(): apply a numbered message once
                if seq <= self.last_seq:
                    self.repeats += 1
                    continue
                self.last_seq = seq
                self.unacked += 1
                if self.unacked >= ACK_EVERY:
                    self.send_ack()
                elif self.ack_timer is None:
                    self.ack_timer = asyncio.get_running_loop().call_later(
                        ACK_AFTER, self.send_ack)
            if typ == "set_props":
                payload = m.get("payload") or {}
                if payload.get("componentId") == "live":
                    self.on_live(payload.get("props", {}).get("children"), now)
            elif typ == "error" or (
                typ == "callback_response" and (m.get("payload") or {}).get("status") == "error"
            ):
                since = now - self.socket_at if self.socket_at else -1.0
                self.note_error(f"{since * 1000:.0f} ms after open: {repr(m)[:200]}")

    def on_live(self, children: Any, now: float) -> None:
        if type(children) is not dict:
            return
        if "operations" in children:  # a Patch: its appends, in order
            for op in children["operations"]:
                self.apply(op["params"]["value"], now)
        else:
            self.apply(children, now)

    def apply(self, value: dict, now: float) -> None:
        p, seq = value.get("p", 0), value["seq"]
        bits = self.seen.get(p)
        if bits is None:
            bits = self.seen[p] = bytearray(128)
        if seq >= len(bits):
            bits.extend(bytes(max(seq + 1 - len(bits), len(bits))))
        if bits[seq]:
            self.dups += 1
            return
        bits[seq] = 1
        if seq < self.last.get(p, 0):
            self.ooo += 1
        else:
            self.last[p] = seq
        self.last_at[p] = now
        self.applied += 1
        if self.drop_t:
            self.gap_drop.append(now - self.drop_t)
            self.drop_t = 0.0
        if self.open_t:
            self.gap_open.append(now - self.open_t)
            self.open_t = 0.0
        if self.rs:
            if value["t"] < self.rs:
                self.caught_at = now
                self.backlog += 1
            elif not self.live_at:
                self.live_at = now

    def on_control(self, typ: str, payload: dict, now: float) -> None:
        if typ == "session":  # a fresh session: number from 1
            self.token = payload.get("token")
            self.timeout = float(payload.get("resumeTimeout") or 0) / 1000.0
            self.last_seq = self.client_seq = 0
            self.log = []
            self.dropped_at = 0.0
            if self.restart:  # after session_lost: the renderer asks again
                self.restart = False
                self.ask_persistent()
        elif typ == "resumed":
            self.token = payload.get("token")
            self.awaiting = False
            self.dropped_at = 0.0
            self.retries = 0
            got = int(payload.get("lastSeq") or 0)
            self.log = [entry for entry in self.log if entry[0] > got]
            for _, data in self.log:  # what the server missed, once more
                self.link.ws.send_text(data)  # type: ignore[union-attr]
            self.answer_at, self.outcome = now, "resumed"
        elif typ == "session_lost":
            self.awaiting = False
            self.answer_at = now
            self.continuity_lost(str(payload.get("reason")), now)
            self.restart = True
        elif typ == "ack":
            got = int(payload.get("seq") or 0)
            if self.log and self.log[0][0] <= got:
                self.log = [entry for entry in self.log if entry[0] > got]

    def continuity_lost(self, reason: str, now: float) -> None:
        """The loss signal: recorded with when it came."""
        self.signals.append((now, reason))
        self.outcome = f"lost: {reason}"
        self.reset_session()

    def reset_session(self) -> None:
        self.token = None
        self.last_seq = self.client_seq = self.unacked = 0
        self.log = []
        if self.ack_timer is not None:
            self.ack_timer.cancel()
            self.ack_timer = None
        self.dropped_at = 0.0

    def send_ack(self) -> None:
        if self.ack_timer is not None:
            self.ack_timer.cancel()
        self.ack_timer = None
        if not self.unacked or not self.is_open() or self.awaiting:
            return
        self.unacked = 0
        self.write({"type": "ack", "payload": {"seq": self.last_seq}})

    def note_error(self, what: str) -> None:
        if len(self.errors) < 3:
            self.errors.append(what)

    # -- accounting
    def told_after(self, t: float) -> bool:
        return any(when >= t for when, _ in self.signals)

    def holes(self) -> int:
        """Values missing below the highest one applied, per producer."""
        return sum(self.last[p] - self.seen[p][1:self.last[p] + 1].count(1) for p in self.last)


# --------------------------------------------------------------------------
# measurements


async def poll(predicate: Any, timeout: float, every: float = 0.1) -> bool:
    """Wait (at most ``timeout`` s) until ``predicate()``; whether it held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)
    return True


async def sleep_until(wall: float) -> None:
    await asyncio.sleep(max(0.0, wall - time.time()))


async def server_stats(server: run.Server) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, run.get_json, server.url + "/_bench/stats", 20.0)


async def persistent_callback_id(server: run.Server) -> str:
    """As the load generator: a page load, then the callback flagged persistent."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(Exception):
        await loop.run_in_executor(None, run.get_json, server.url + "/_dash-layout")
    deps = await loop.run_in_executor(None, run.get_json, server.url + "/_dash-dependencies")
    for d in deps:
        if d.get("persistent"):
            return d["output"]
    raise RuntimeError("no persistent callback in /_dash-dependencies")


def cpu_window(a: dict[str, float], b: dict[str, float]) -> float:
    return 100.0 * (b["cpu_s"] - a["cpu_s"]) / max(1e-9, b["time"] - a["time"])


async def delivery(server: run.Server, proxy: Proxy, name: str, args: argparse.Namespace,
                   interval: float) -> dict[str, Any]:
    """Part 1: cut every connection every ``interval`` s for the window."""
    bench = Bench(proxy.port, await persistent_callback_id(server), POLICY[name])
    try:
        opened = await bench.open(args.sessions, args.ramp)
        tabs = bench.tabs
        if not await poll(lambda: all(t.applied for t in tabs), 30):
            log(f"{sum(1 for t in tabs if t.applied)}/{len(tabs)} tabs got a first value")
        await asyncio.sleep(args.warmup)
        pid = server.proc.pid  # type: ignore[union-attr]
        st0 = await server_stats(server)
        s0, x0, c0 = run.sample(pid), run.sample(proxy.pid), time.process_time()
        t0 = s0["time"]
        t1 = t0 + args.duration
        cuts: list[tuple[float, int]] = []
        k = 1
        while t0 + k * interval < t1 - 1e-6:
            await sleep_until(t0 + k * interval)
            cuts.append((time.time() - t0, await proxy.cut()))
            k += 1
        await sleep_until(t1)
        st1 = await server_stats(server)
        s1, x1, c1 = run.sample(pid), run.sample(proxy.pid), time.process_time()
        await asyncio.sleep(args.settle)  # what was produced in the window arrives
        st2 = await server_stats(server)
    finally:
        await bench.close()
    out = account(tabs, st0, st1, t0)
    dur = s1["time"] - s0["time"]
    # what an uninterrupted stream would have produced for the tabs between
    # the two snapshots of the producers
    out["demanded"] = demanded = len(tabs) * args.hz * (st1["time"] - st0["time"])
    out["demanded_pct"] = 100.0 * out["delivered"] / demanded if demanded else None
    busy = s1["sys_busy_s"] - s0["sys_busy_s"]
    ours = (s1["cpu_s"] - s0["cpu_s"]) + (x1["cpu_s"] - x0["cpu_s"]) + (c1 - c0)
    out.update(
        opened=opened, cuts=len(cuts), cut_log=cuts, duration=dur,
        server_cpu_pct=cpu_window(s0, s1), proxy_cpu_pct=cpu_window(x0, x1),
        client_cpu_pct=100.0 * (c1 - c0) / dur, other_cpu_pct=100.0 * (busy - ours) / dur,
        server_rss_mb=s1["rss_mb"], cb_started_window=st1.get("started", 0) - st0.get("started", 0),
        cb_active_end=st2.get("active"), resume_server=st2.get("resume"),
    )  # fmt: skip
    return out


def account(tabs: list[Tab], st0: dict[str, Any], st1: dict[str, Any], t0: float
            ) -> dict[str, Any]:
    """What each producer made in the window (server) against what its tab
    applied (client), per producer: values seq0 < seq <= seq1."""
    by_rid = {t.rid: t for t in tabs}
    before = st0.get("producers", {})
    produced = delivered = told = unowned = restarts = 0
    for key, (owner, last) in st1.get("producers", {}).items():
        first = before.get(key, [owner, 0])[1]
        if key not in before:
            restarts += 1
        n = last - first
        if n <= 0:
            continue
        produced += n
        tab = by_rid.get(owner)
        if tab is None:
            unowned += n
            continue
        bits = tab.seen.get(int(key))
        got = bits[first + 1:last + 1].count(1) if bits else 0
        delivered += got
        if got < n and tab.told_after(tab.last_at.get(int(key), t0)):
            told += n - got
    lost = produced - delivered
    gaps_drop = [g for t in tabs for g in t.gap_drop]
    gaps_open = [g for t in tabs for g in t.gap_open]
    reasons = Counter(r for t in tabs for _, r in t.signals)
    return {
        "sessions": len(tabs),
        "produced": produced,
        "delivered": delivered,
        "delivered_pct": 100.0 * delivered / produced if produced else None,
        "lost": lost,
        "lost_told": told,
        "silent": lost - told,
        "unowned": unowned,
        "dups": sum(t.dups for t in tabs),
        "ooo": sum(t.ooo for t in tabs),
        "repeats_dropped": sum(t.repeats for t in tabs),
        "signals": sum(len(t.signals) for t in tabs),
        "signal_reasons": dict(reasons),
        "drops": sum(t.drops for t in tabs),
        "reconnects": sum(t.reconnects for t in tabs),
        "failed_attempts": sum(t.failed for t in tabs),
        "gave_up": sum(1 for t in tabs if t.gave_up),
        "restarts": restarts,
        "gap_drop_p50_ms": quantile_ms(gaps_drop, 50),
        "gap_drop_p99_ms": quantile_ms(gaps_drop, 99),
        "gap_open_p50_ms": quantile_ms(gaps_open, 50),
        "gap_open_p99_ms": quantile_ms(gaps_open, 99),
        "errors": sum(len(t.errors) for t in tabs),
        "error_samples": [e for t in tabs for e in t.errors][:5],
    }


async def cost(server: run.Server, proxy: Proxy, args: argparse.Namespace, hz: float,
               away: float) -> dict[str, Any]:
    """Part 2: attached, then detached for ``away`` s, then all resume at once."""
    pid = server.proc.pid  # type: ignore[union-attr]
    n = args.cost_sessions
    base = run.sample(pid)
    bench = Bench(proxy.port, await persistent_callback_id(server), "resume")
    out: dict[str, Any] = {"hz": hz, "away_s": away, "sessions": n,
                           "rss_base_mb": base["rss_mb"]}
    try:
        out["opened"] = await bench.open(n, args.ramp)
        tabs = bench.tabs
        ready = (lambda: all(t.applied for t in tabs)) if hz > 0 else \
            (lambda: all(t.token for t in tabs))
        if not await poll(ready, 60):
            log("not every session got going:", sum(1 for t in tabs if t.token), "tokens")
        await asyncio.sleep(2.0)
        a0 = run.sample(pid)
        await asyncio.sleep(args.measure)
        a1 = run.sample(pid)
        out.update(attached_cpu_pct=cpu_window(a0, a1), attached_rss_mb=a1["rss_mb"],
                   attached_kb_per_session=(a1["rss_mb"] - base["rss_mb"]) * 1024 / n)
        for t in tabs:
            t.hold = True
        t_cut = time.time()
        out["cut"] = await proxy.cut()
        await poll(lambda: not any(t.is_open() for t in tabs), 10)
        st = await server_stats(server)
        if away > 0:
            while (st.get("session_states") or {}).get("detached", 0) < n \
                    and time.time() - t_cut < away:
                await asyncio.sleep(0.2)
                st = await server_stats(server)
            out["detach_s"] = time.time() - t_cut
            await asyncio.sleep(1.0)  # the detaching itself is not the detached state
            d0 = run.sample(pid)
            rss_series = []
            while time.time() < t_cut + away:
                await asyncio.sleep(min(1.0, max(0.0, t_cut + away - time.time())))
                rss_series.append(run.sample(pid)["rss_mb"])
            d1 = run.sample(pid)
            st = await server_stats(server)
            out.update(
                detached_cpu_pct=cpu_window(d0, d1), detached_rss_mb=d1["rss_mb"],
                detached_kb_per_session=(d1["rss_mb"] - base["rss_mb"]) * 1024 / n,
                detached_minus_attached_kb=(d1["rss_mb"] - a1["rss_mb"]) * 1024 / n,
                detached_rss_series=rss_series,
            )  # fmt: skip
        out["states_before_resume"] = st.get("session_states")
        rs = time.time()
        for t in tabs:
            t.release(rs)
        answered = await poll(lambda: all(t.outcome for t in tabs), 60)
        if hz > 0:
            await poll(lambda: all(t.live_at for t in tabs if t.outcome == "resumed"), 30)
        await asyncio.sleep(1.0)
        st_end = await server_stats(server)
    finally:
        await bench.close()
    resumed = [t for t in tabs if t.outcome == "resumed"]
    answer = [t.answer_at - t.rs for t in tabs if t.answer_at]
    # caught up: the resumed reply in, and every value produced before the
    # reconnect started that came after it applied
    caught = [max(t.answer_at, t.caught_at) - t.rs for t in resumed]
    outcomes = Counter(t.outcome or "no answer" for t in tabs)
    out.update(
        all_answered=answered, resumed=len(resumed), lost=len(tabs) - len(resumed),
        outcomes=dict(outcomes), answer_p50_ms=quantile_ms(answer, 50),
        answer_p99_ms=quantile_ms(answer, 99), caught_p50_ms=quantile_ms(caught, 50),
        caught_p99_ms=quantile_ms(caught, 99),
        backlog_mean=sum(t.backlog for t in resumed) / len(resumed) if resumed else None,
        dups=sum(t.dups for t in tabs), ooo=sum(t.ooo for t in tabs),
        holes=sum(t.holes() for t in tabs), repeats_dropped=sum(t.repeats for t in tabs),
        resume_server=st_end.get("resume"), errors=[e for t in tabs for e in t.errors][:5],
    )  # fmt: skip
    return out


async def with_proxy(server: run.Server, logfile: Path, part: Any, *a: Any) -> dict[str, Any]:
    async with Proxy(server.port, logfile) as proxy:
        return await part(server, proxy, *a)


# --------------------------------------------------------------------------
# tables


run.COLUMNS["resume"] = [
    ("cuts", "cuts", 0),
    ("demanded", "demanded", 0),
    ("produced", "produced", 0),
    ("delivered", "delivered", 0),
    ("deliv%", "delivered_pct", 2),
    ("of demand%", "demanded_pct", 1),
    ("lost", "lost", 0),
    ("silent", "silent", 0),
    ("told", "told", 0),
    ("dups", "dups", 0),
    ("out-of-order", "ooo", 0),
    ("gaps signalled", "signals", 0),
    ("reconnects", "reconnects", 0),
    ("cb restarts", "restarts", 0),
    ("drop->1st p50 ms", "gap_drop_p50_ms", 0),
    ("p99 ms", "gap_drop_p99_ms", 0),
    ("open->1st p50 ms", "gap_open_p50_ms", 0),
    ("p99 ms", "gap_open_p99_ms", 0),
    ("srv cpu%", "server_cpu_pct", 0),
    ("other%", "other_cpu_pct", 0),
]
run.RATIOS["resume"] = []


def told(row: dict[str, Any]) -> str:
    """Was every lost value's loss signalled to the client?"""
    if row.get("lost") is None:
        return "-"
    if not row["lost"]:
        return "nothing lost"
    return "yes" if not row.get("silent") else "NO"


def render_cost(rows: list[dict[str, Any]]) -> str:
    fmt = run.fmt
    head = ["Hz", "away s", "sessions", "att cpu%", "att MB", "att KB/sess", "det cpu%",
            "det MB", "det KB/sess", "det-att KB/sess", "resumed", "lost", "answer p50 ms",
            "p99 ms", "caught up p50 ms", "p99 ms", "backlog/sess", "dups", "holes"]
    table = []
    for r in rows:
        if "error" in r:
            table.append([fmt(r.get("hz"), 0), fmt(r.get("away_s"), 0),
                          "failed: " + str(r["error"])[:100]])
            continue
        table.append([
            fmt(r["hz"], 0), fmt(r["away_s"], 0), fmt(r.get("opened")),
            fmt(r.get("attached_cpu_pct"), 1), fmt(r.get("attached_rss_mb"), 0),
            fmt(r.get("attached_kb_per_session"), 1), fmt(r.get("detached_cpu_pct"), 1),
            fmt(r.get("detached_rss_mb"), 0), fmt(r.get("detached_kb_per_session"), 1),
            fmt(r.get("detached_minus_attached_kb"), 1), fmt(r.get("resumed")),
            fmt(r.get("lost")), fmt(r.get("answer_p50_ms"), 0), fmt(r.get("answer_p99_ms"), 0),
            fmt(r.get("caught_p50_ms"), 0), fmt(r.get("caught_p99_ms"), 0),
            fmt(r.get("backlog_mean"), 1), fmt(r.get("dups")), fmt(r.get("holes")),
        ])  # fmt: skip
    return run.layout("(2) cost of resume: quartdash sessions attached, detached (every "
                      "connection reset, clients away), then all resuming at once", head, table)


# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="quartdash resume benchmark (bench/RESUME.md)")
    ap.add_argument("--proxy", type=int, help=argparse.SUPPRESS)  # internal: the proxy process
    ap.add_argument("--quick", action="store_true", help="smoke run: short, small N")
    ap.add_argument("--parts", default="delivery,cost", help="comma list of delivery,cost")
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--runs", type=int, default=1, help="runs of part 1 (medians)")
    ap.add_argument("--sessions", type=int, default=None, help="part 1 N (100; quick 50)")
    ap.add_argument("--intervals", default="2,10", help="part 1: s between cuts")
    ap.add_argument("--duration", type=float, default=None, help="part 1 window (60; quick 20)")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="s after the window for what it produced to arrive")
    ap.add_argument("--hz", type=float, default=10.0, help="part 1 pushes/s per session")
    ap.add_argument("--cost-sessions", type=int, default=None, help="part 2 N (1000; quick 200)")
    ap.add_argument("--cost-cases", default=None,
                    help="part 2 'Hz:away s' list (0:10,10:10,10:0; quick 0:5,10:5,10:0)")
    ap.add_argument("--measure", type=float, default=None, help="part 2 attached window (5; 3)")
    ap.add_argument("--resume-timeout", type=float, default=30.0,
                    help="quartdash's websocket_resume_timeout")
    ap.add_argument("--ramp", type=int, default=200, help="connections opened at a time")
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument("--quiet-wait", type=float, default=None,
                    help="max s to wait for a quiet machine before each measurement (30; quick 0)")
    ap.add_argument("--quiet-below", type=float, default=15.0)
    ap.add_argument("--max-other", type=float, default=None,
                    help="redo a part 1 measurement whose window saw other processes use "
                    "more than this %% of a core (25; quick: never)")
    ap.add_argument("--retries", type=int, default=2)
    args = ap.parse_args(argv)
    q = args.quick
    args.sessions = args.sessions or (50 if q else 100)
    args.duration = args.duration or (20.0 if q else 60.0)
    args.cost_sessions = args.cost_sessions or (200 if q else 1000)
    args.cost_cases = args.cost_cases or ("0:5,10:5,10:0" if q else "0:10,10:10,10:0")
    args.measure = args.measure or (3.0 if q else 5.0)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if q else 30.0
    if args.max_other is None and not q:
        args.max_other = 25.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if args.proxy:
        (uvloop.run if uvloop else asyncio.run)(proxy_main(args.proxy))
        return 0
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    intervals = [float(x) for x in args.intervals.split(",") if x.strip()]
    cases = [tuple(float(v) for v in c.split(":")) for c in args.cost_cases.split(",") if c]
    wanted = [c for c in args.contenders.split(",") if c]
    nofile = run.raise_nofile()
    out_path, logdir = run.result_paths(args.out, "resume-")
    skipped = {n: why for n in wanted if (why := run.import_problem(n))}
    for n, why in skipped.items():
        log(f"skipping {n}: its app does not import: {why}")
    names = [n for n in CONTENDERS if n in wanted and n not in skipped]
    env = {"BENCH_PATCH": "1", "BENCH_PRODUCER_ID": "1",
           "BENCH_RESUME_TIMEOUT": str(args.resume_timeout)}
    report: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "nofile": nofile, "versions": run.versions()},
        "settings": {k: v for k, v in vars(args).items() if k != "proxy"},
        "skipped": skipped,
        "delivery": {},
        "cost": [],
    }
    tables: list[str] = []
    t_start = time.monotonic()

    def measure(tag: str, name: str, extra: dict[str, str], part: Any, *a: Any,
                budget: float) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            with run.Server(name, {**env, **extra}, logdir, tag) as srv:
                return asyncio.run(asyncio.wait_for(
                    with_proxy(srv, logdir / f"{tag}-{name}.proxy.log", part, *a), budget))

        return run.quietest(once, args, lambda: f"[{time.monotonic() - t_start:5.0f}s] "
                            f"{tag}: {name}")

    try:
        if "delivery" in parts:
            for interval in intervals:
                runs_res = []
                for r in range(args.runs):
                    row = {}
                    for name in names:
                        row[name] = measure(
                            f"delivery-I{interval:g}-r{r}", name, {"BENCH_HZ": str(args.hz)},
                            delivery, name, args, interval,
                            budget=args.duration + args.warmup + args.settle + 300,
                        )  # fmt: skip
                    runs_res.append(row)
                summary = run.summarize("resume", runs_res)
                for vals in summary["median"].values():
                    vals["told"] = told(vals)
                report["delivery"][f"{interval:g}"] = {"runs": runs_res, **summary}
                title = (f"(1) delivery and order, N = {args.sessions} x {args.hz:g} Hz Patch "
                         f"stream, every connection cut every {interval:g} s for "
                         f"{args.duration:g} s (+{args.settle:g} s to settle)"
                         + (f", medians of {args.runs} runs" if args.runs > 1 else ""))
                tables.append(run.render("resume", title, summary))
                print(tables[-1] + "\n", flush=True)
        if "cost" in parts and run.QD in names:
            rows = []
            for hz, away in cases:
                res = measure(f"cost-{hz:g}Hz-away{away:g}", run.QD, {"BENCH_HZ": f"{hz:g}"},
                              cost, args, hz, away, budget=away + 400)
                res.setdefault("hz", hz)
                res.setdefault("away_s", away)
                rows.append(res)
            report["cost"] = rows
            tables.append(render_cost(rows))
            print(tables[-1] + "\n", flush=True)
    finally:
        run.save(report, tables, out_path, logdir, t_start)
    run.print_tables(f"quartdash resume bench {report['date']}"
                     + ("  (--quick: smoke figures)" if args.quick else ""), skipped, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
