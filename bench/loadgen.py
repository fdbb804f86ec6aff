#!/usr/bin/env python
"""Load generator speaking the Dash renderer's WebSocket protocol.

It behaves like many browser tabs (renderers), each behind its own WebSocket
connection (docs/protocol.md):

* connects to ``<url>/_dash-ws-callback`` with ``Origin`` = the server's origin;
* sends ``{"type": "renderer_joined", "rendererId": ...}`` (what quartdash's
  worker sends; Dash's quart and fastapi handlers ignore unknown types) and
  then the ``callback_request`` the renderer sends on page load for the
  persistent callback (its id comes from ``GET /_dash-dependencies``);
* answers ``get_props_request`` with ``{"value": "x"}``, sends a
  ``heartbeat`` every ``--heartbeat`` s (30 by default, the rate of quartdash's
  worker: ``websocket_heartbeat_interval``), answers server pings;
* counts received ``set_props`` for ``live`` (frames may be JSON arrays =
  batches) and takes latency = receive time - ``children.t``.

Scenarios (``--scenario``):
  push     N sessions, each with the persistent callback (the server decides
           the rate: BENCH_HZ; with BENCH_HZ=0 this is the idle scenario)
  getprop  one session sending the echo ``callback_request`` (Input btn.n_clicks
           = K) again and again; the server does K ``get_prop`` round trips each
  http     keep-alive HTTP/1.1 connections POSTing the trivial callback to
           ``/_dash-update-component`` as fast as they get answers
  slow     one session that reads 10 frames/s (small socket receive buffer,
           paused reading), then drains fast and reports its last value

Sessions are spread over ``--procs`` worker processes; each opens its share in
ramps (``--ramp`` connections at a time over all processes).  ``--sources N``
spreads them over N loopback source addresses (127.0.0.1, .2, ... or from
``--source-base``), at most ``--per-source`` each: one source address has only
the ephemeral port range (~28,000 ports) for its connections to one server.  Measuring starts
``--warmup`` seconds after every connection is up and lasts ``--duration``
seconds; the worker processes report their own CPU time over that window.

Output: JSON lines on stdout -- ``{"event": "connected", ...}``,
``{"event": "window", "t0": .., "t1": ..}`` (wall clock; the runner samples the
server's CPU at those instants) and ``{"event": "result", ...}``; with
``--report-close`` also ``{"event": "closed", "t0": .., "t1": .., "closed": n}``
once every session was closed (a close frame, then the socket) after
``--linger``.  Logs go to
stderr.  Everything is bounded in time; only loopback targets are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import json
import multiprocessing as mp
import os
import random
import resource
import socket
import sys
import time
import urllib.request
from array import array
from collections import deque
from typing import Any
from urllib.parse import urlparse

import orjson

try:  # C masking from the websockets package, if present
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover

    def _apply_mask(data: bytes, mask: bytes) -> bytes:
        n = len(data)
        key = (mask * (n // 4 + 1))[:n]
        return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


_time = time.time
_loads = orjson.loads
_dumps = orjson.dumps

HEARTBEAT_INTERVAL = 30.0  # quartdash's worker: websocket_heartbeat_interval = 30,000 ms
WS_PATH = "/_dash-ws-callback"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux >= 4.2


def http_body(output: str) -> bytes:
    """The request dash-renderer posts for a bench app's HTTP callback
    (``http-out.children``: the trivial one; ``fig.figure``: the figure)."""
    component, prop = output.split(".")
    button = "http-btn" if component == "http-out" else "fig-btn"
    return orjson.dumps({
        "output": output,
        "outputs": {"id": component, "property": prop},
        "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
        "changedPropIds": [f"{button}.n_clicks"],
        "state": [],
    })


def log(*parts: object) -> None:
    print("[loadgen]", *parts, file=sys.stderr, flush=True)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds() -> float:
    return time.process_time()  # this process, all threads, ns resolution


# --------------------------------------------------------------------------
# WebSocket framing (client side: frames we send are masked)


def encode_frame(payload: bytes, opcode: int = 1) -> bytes:
    n = len(payload)
    mask = os.urandom(4)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + mask + _apply_mask(payload, mask)


class Stats:
    """Per-worker counters; ``measuring`` is True inside the window."""

    def __init__(self) -> None:
        self.measuring = False
        self.delivered = 0
        self.lat = array("d")
        self.skipped = 0  # seq gaps (pushes the client never saw) inside the window
        self.types: dict[str, int] = {}
        self.errors = 0
        self.error_samples: list[Any] = []
        self.closed = 0  # connections lost while they should have been open
        self.close_samples: list[str] = []
        self.gp_cycles = array("d")  # get_prop round trips (scenario getprop)
        self.callbacks = 0
        self.cb_lat = array("d")
        self.http_ok = 0
        self.http_bad = 0
        self.http_lat = array("d")
        self.heartbeats = 0  # heartbeats sent inside the window

    def note_type(self, typ: str) -> None:
        self.types[typ] = self.types.get(typ, 0) + 1


class Session:
    """Protocol logic of one renderer (tab)."""

    __slots__ = (
        "cb_sent",
        "closing",
        "getprop_k",
        "gp_last",
        "hb_handle",
        "last_seq",
        "last_value",
        "lg",
        "mode",
        "opened",
        "req_n",
        "rid",
        "transport",
    )

    def __init__(self, lg: Worker, rid: str, mode: str) -> None:
        self.lg = lg
        self.rid = rid
        self.mode = mode
        self.transport: Any = None
        self.opened: asyncio.Future = asyncio.get_running_loop().create_future()
        self.last_seq = 0
        self.last_value: Any = None
        self.gp_last = 0.0
        self.cb_sent = 0.0
        self.req_n = 0
        self.getprop_k = lg.args.getprop_k
        self.closing = False
        self.hb_handle: asyncio.TimerHandle | None = None

    # -- sending
    def send(self, obj: dict) -> None:
        self.transport.send_text(_dumps(obj))

    def start(self) -> None:
        """Called once the handshake is done: what a renderer does on page load."""
        args = self.lg.args
        if self.mode in ("push", "slow"):
            if args.joined:
                self.send({"type": "renderer_joined", "rendererId": self.rid})
            if self.lg.persistent_id:
                self.req_n += 1
                self.send(
                    {
                        "type": "callback_request",
                        "rendererId": self.rid,
                        "requestId": f"{self.rid}-p{self.req_n}",
                        "payload": {
                            "output": self.lg.persistent_id,
                            "outputs": [],
                            "inputs": [],
                            "state": [],
                            "changedPropIds": [],
                        },
                    }
                )
        elif self.mode == "getprop":
            if args.joined:
                self.send({"type": "renderer_joined", "rendererId": self.rid})
            self.send_echo()
        interval = args.heartbeat
        if interval > 0:
            loop = asyncio.get_running_loop()
            self.hb_handle = loop.call_later(random.uniform(1.0, interval), self.heartbeat)

    def heartbeat(self) -> None:
        if self.closing or self.transport is None or self.transport.is_closed():
            return
        self.send({"type": "heartbeat"})
        if self.lg.stats.measuring:
            self.lg.stats.heartbeats += 1
        self.hb_handle = asyncio.get_running_loop().call_later(self.lg.args.heartbeat,
                                                               self.heartbeat)

    def send_echo(self) -> None:
        self.req_n += 1
        self.cb_sent = time.perf_counter()
        self.gp_last = 0.0
        self.send(
            {
                "type": "callback_request",
                "rendererId": self.rid,
                "requestId": f"{self.rid}-e{self.req_n}",
                "payload": {
                    "output": "echo-out.children",
                    "outputs": {"id": "echo-out", "property": "children"},
                    "inputs": [{"id": "btn", "property": "n_clicks", "value": self.getprop_k}],
                    "state": [],
                    "changedPropIds": ["btn.n_clicks"],
                },
            }
        )

    # -- receiving
    def on_text(self, data: bytes, now: float) -> None:
        msg = _loads(data)
        if type(msg) is list:
            for m in msg:
                self.handle(m, now)
        else:
            self.handle(msg, now)

    def handle(self, m: dict, now: float) -> None:
        typ = m.get("type")
        stats = self.lg.stats
        if typ == "set_props":
            p = m["payload"]
            if p.get("componentId") == "live":
                v = p["props"].get("children")
                if type(v) is dict:
                    seq = v.get("seq", 0)
                    if stats.measuring:
                        stats.delivered += 1
                        stats.lat.append(now - v["t"])
                        if self.last_seq and seq > self.last_seq + 1:
                            stats.skipped += seq - self.last_seq - 1
                    self.last_seq = seq
                    self.last_value = v
                    return
            stats.note_type("set_props_other")
        elif typ == "get_props_request":
            self.send(
                {
                    "type": "get_props_response",
                    "rendererId": self.rid,
                    "requestId": m.get("requestId"),
                    "payload": {"value": "x"},
                }
            )
            if self.mode == "getprop":
                t = time.perf_counter()
                if stats.measuring and self.gp_last:
                    stats.gp_cycles.append(t - self.gp_last)
                self.gp_last = t
            else:
                stats.note_type(typ)
        elif typ == "callback_response":
            stats.note_type(typ)
            if self.mode == "getprop":
                if stats.measuring:
                    stats.callbacks += 1
                    stats.cb_lat.append(time.perf_counter() - self.cb_sent)
                status = (m.get("payload") or {}).get("status")
                if status != "ok":
                    stats.errors += 1
                    if len(stats.error_samples) < 5:
                        stats.error_samples.append(m)
                if not self.lg.stopping:
                    if status == "ok":
                        self.send_echo()
                    else:  # do not hammer a server that answers with errors
                        asyncio.get_running_loop().call_later(0.5, self.send_echo)
        elif typ == "heartbeat_ack":
            stats.note_type(typ)
        elif typ == "error":
            stats.errors += 1
            if len(stats.error_samples) < 5:
                stats.error_samples.append(m)
        else:
            stats.note_type(str(typ))

    def on_lost(self, reason: str) -> None:
        if self.hb_handle is not None:
            self.hb_handle.cancel()
        if not self.closing:
            st = self.lg.stats
            st.closed += 1
            if len(st.close_samples) < 5:
                st.close_samples.append(reason)


class RawWS(asyncio.Protocol):
    """A minimal RFC 6455 client on asyncio.Protocol: cheap enough for 10k sockets."""

    def __init__(self, session: Session, host: str, path: str, origin: str) -> None:
        self.session = session
        self.host = host
        self.path = path
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.handshake = True
        self.frag: list[bytes] | None = None
        self.closed = False
        self.close_info = ""

    # the session-facing API
    def send_text(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(encode_frame(data))

    def is_closed(self) -> bool:
        return self.closed

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.closed:
            with contextlib.suppress(Exception):
                self.transport.write(encode_frame(code.to_bytes(2, "big"), 8))
            self.transport.close()

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {self.origin}\r\n"
                "User-Agent: quartdash-bench\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc) -> None:
        self.closed = True
        reason = self.close_info or (repr(exc) if exc else "eof")
        if not self.session.opened.done():
            self.session.opened.set_exception(ConnectionError(f"lost before open: {reason}"))
        self.session.on_lost(reason)

    def on_text(self, payload: bytes, now: float) -> None:
        self.session.on_text(payload, now)

    def data_received(self, data: bytes) -> None:
        now = _time()
        buf = self.buf + data if self.buf else data
        if self.handshake:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            head = buf[:end].decode("latin-1")
            buf = buf[end + 4 :]
            status = head.split("\r\n", 1)[0]
            if " 101" not in status:
                self.close_info = f"handshake refused: {status}"
                self.transport.close()
                return
            self.handshake = False
            self.session.opened.set_result(True)
        self.buf = self.parse(buf, now)

    def parse(self, buf: bytes, now: float) -> bytes:
        n = len(buf)
        pos = 0
        on_text = self.on_text
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            ln = b1 & 0x7F
            hl = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hl = 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hl = 10
            masked = b1 & 0x80
            if masked:
                hl += 4
            end = pos + hl + ln
            if end > n:
                break
            payload = buf[pos + hl : end]
            if masked:
                payload = _apply_mask(payload, buf[pos + hl - 4 : pos + hl])
            pos = end
            op = b0 & 0x0F
            fin = b0 & 0x80
            if op == 1 or op == 2:
                if fin:
                    on_text(payload, now)
                else:
                    self.frag = [payload]
            elif op == 0:
                if self.frag is not None:
                    self.frag.append(payload)
                    if fin:
                        data = b"".join(self.frag)
                        self.frag = None
                        on_text(data, now)
            elif op == 9:  # ping -> pong
                if self.transport is not None and not self.closed:
                    self.transport.write(encode_frame(payload, 10))
            elif op == 8:  # close
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close_info = f"close {code} {payload[2:].decode('utf-8', 'replace')}"
                self.close(code if code != 1005 else 1000)
                return b""
        return buf[pos:] if pos < n else b""


class SlowWS(RawWS):
    """Reads ``fps`` frames per second: parsed frames wait in a local queue and
    the socket is paused while that queue is not empty, so the server sees TCP
    back-pressure (the socket's receive buffer is made small)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.frames: deque[bytes] = deque()
        self.paused = False
        self.fast = False

    def on_text(self, payload: bytes, now: float) -> None:
        if self.fast:
            self.session.on_text(payload, now)
        else:
            self.frames.append(payload)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.frames and not self.paused and self.transport is not None and not self.fast:
            self.transport.pause_reading()
            self.paused = True

    def consume_one(self) -> bool:
        if self.frames:
            self.session.on_text(self.frames.popleft(), _time())
        if not self.frames and self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return True

    def go_fast(self) -> None:
        self.fast = True
        while self.frames:
            self.session.on_text(self.frames.popleft(), _time())
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()


class LibWS:
    """The same session over the ``websockets`` client library (for comparison)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.ws: Any = None
        self.closed = False
        self.reader: asyncio.Task | None = None
        self.pending: set[asyncio.Task] = set()

    async def connect(self, url: str, origin: str) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            url, origin=origin, compression=None, ping_interval=None, max_queue=None
        )
        self.session.opened.set_result(True)
        self.reader = asyncio.ensure_future(self.read())

    async def read(self) -> None:
        reason = "eof"
        try:
            async for msg in self.ws:
                self.session.on_text(msg, _time())
        except Exception as exc:
            reason = repr(exc)
        self.closed = True
        self.session.on_lost(reason)

    def send_text(self, data: bytes) -> None:
        if not self.closed:
            t = asyncio.ensure_future(self.ws.send(data.decode()))
            self.pending.add(t)
            t.add_done_callback(self.pending.discard)

    def is_closed(self) -> bool:
        return self.closed

    def close(self, code: int = 1000) -> None:
        if self.ws is not None and not self.closed:
            t = asyncio.ensure_future(self.ws.close(code))
            self.pending.add(t)
            t.add_done_callback(self.pending.discard)


# --------------------------------------------------------------------------
# Worker process


class Worker:
    def __init__(self, args: argparse.Namespace, wid: int, nsessions: int, conn,
                 first: int = 0) -> None:
        self.args = args
        self.wid = wid
        self.nsessions = nsessions
        self.first = first  # global index of this worker's first session (source address)
        self.conn = conn
        self.stats = Stats()
        self.sessions: list[Session] = []
        self.transports: list[Any] = []
        self.persistent_id: str | None = args.persistent_id
        self.stopping = False
        u = urlparse(args.url)
        self.hostname = u.hostname or "127.0.0.1"
        self.port = u.port or 80
        self.netloc = f"{self.hostname}:{self.port}"
        self.origin = f"http://{self.netloc}"
        self.lag: array = array("d")

    def _recv_cmd(self, timeout: float) -> dict:
        """Blocking read of the master's next command (runs in a thread)."""
        try:
            if self.conn.poll(timeout):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        return {"cmd": "stop"}

    async def open_session(self, i: int, mode: str) -> Session | None:
        rid = f"r{self.wid}-{i}-{os.urandom(4).hex()}"
        s = Session(self, rid, mode)
        loop = asyncio.get_running_loop()
        try:
            if self.args.client == "websockets" and mode != "slow":
                t = LibWS(s)
                s.transport = t
                await asyncio.wait_for(
                    t.connect(f"ws://{self.netloc}{WS_PATH}", self.origin),
                    self.args.connect_timeout,
                )
            else:
                cls = SlowWS if mode == "slow" else RawWS
                sock = None
                if mode == "slow":
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.args.slow_rcvbuf)
                    sock.setblocking(False)
                    await loop.sock_connect(sock, (self.hostname, self.port))
                    _, proto = await loop.create_connection(
                        lambda: cls(s, self.netloc, WS_PATH, self.origin), sock=sock
                    )
                elif self.args.source_addrs:
                    sock = await self.connect_from(i)
                    _, proto = await loop.create_connection(
                        lambda: cls(s, self.netloc, WS_PATH, self.origin), sock=sock
                    )
                else:
                    _, proto = await loop.create_connection(
                        lambda: cls(s, self.netloc, WS_PATH, self.origin),
                        self.hostname,
                        self.port,
                    )
                s.transport = proto
                await asyncio.wait_for(asyncio.shield(s.opened), self.args.connect_timeout)
        except Exception as exc:
            if len(self.stats.close_samples) < 5:
                self.stats.close_samples.append(f"connect: {exc!r}")
            if s.transport is not None:
                s.transport.close()
            return None
        s.start()
        return s

    async def connect_from(self, i: int) -> socket.socket:
        """A connected socket from this session's source address: session
        ``first + i`` uses source ``(first + i) // per_source``.  The port is
        chosen at connect(), not at bind() (IP_BIND_ADDRESS_NO_PORT), so the
        kernel needs it unique per (source, destination) pair only and may
        reuse loopback TIME_WAIT ports (net.ipv4.tcp_tw_reuse)."""
        source = self.args.source_addrs[(self.first + i) // self.args.per_source]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.setblocking(False)
            sock.bind((source, 0))
            await asyncio.get_running_loop().sock_connect(sock, (self.hostname, self.port))
        except BaseException:
            sock.close()
            raise
        return sock

    async def ramp(self, mode: str) -> tuple[int, int]:
        per = max(1, self.args.ramp // max(1, self.args.procs))
        ok = failed = 0
        deadline = time.monotonic() + self.args.ramp_timeout
        i = 0
        while i < self.nsessions and time.monotonic() < deadline:
            batch = range(i, min(i + per, self.nsessions))
            res = await asyncio.gather(*(self.open_session(j, mode) for j in batch))
            for s in res:
                if s is None:
                    failed += 1
                else:
                    ok += 1
                    self.sessions.append(s)
            i += len(batch)
        failed += self.nsessions - i
        return ok, failed

    async def lag_probe(self) -> None:
        """Event-loop lag of this worker: how late a 10 ms timer fires."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            t = loop.time()
            await asyncio.sleep(0.01)
            if self.stats.measuring:
                self.lag.append(loop.time() - t - 0.01)

    async def http_conn(self, t1: float, body: bytes) -> None:
        """One keep-alive connection POSTing the callback until t1.  Reconnects
        when the server closes it (hypercorn closes after 1000 requests)."""
        st = self.stats
        req = (
            f"POST /_dash-update-component HTTP/1.1\r\nHost: {self.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Origin: {self.origin}\r\n\r\n"
        ).encode() + body
        reconnects = 0
        while _time() < t1 and not self.stopping and reconnects < 10_000:
            reader, writer = await asyncio.open_connection(self.hostname, self.port)
            try:
                while _time() < t1 and not self.stopping:
                    t = time.perf_counter()
                    writer.write(req)
                    try:
                        head = await reader.readuntil(b"\r\n\r\n")
                    except asyncio.IncompleteReadError:
                        break  # closed by the server between requests: reconnect
                    ok = await self._read_body(reader, head)
                    if st.measuring:
                        if ok:
                            st.http_ok += 1
                            st.http_lat.append(time.perf_counter() - t)
                        else:
                            st.http_bad += 1
                    if b"connection: close" in head.lower():
                        break
            finally:
                writer.close()
            reconnects += 1
            st.note_type("http_reconnect")

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        length = -1
        chunked = False
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length >= 0:
            await reader.readexactly(length)
        else:
            raise RuntimeError("response without length")
        return len(status) > 1 and status[1] == b"200"

    async def main(self) -> None:
        args = self.args
        loop = asyncio.get_running_loop()
        mode = args.scenario
        ok = failed = 0
        if mode in ("push", "getprop", "slow"):
            ok, failed = await self.ramp(mode)
        self.conn.send({"event": "connected", "ok": ok, "failed": failed})
        # wait for the window from the master
        msg = await loop.run_in_executor(None, self._recv_cmd, args.ramp_timeout + 120)
        if msg.get("cmd") != "window":
            return
        t0, t1 = msg["t0"], msg["t1"]

        def at_wall(t: float, fn) -> None:
            loop.call_at(loop.time() + max(0.0, t - _time()), fn)

        cpu: dict[str, float] = {}

        def start() -> None:
            cpu["t0"] = cpu_seconds()
            self.stats.measuring = True

        def stop() -> None:
            self.stats.measuring = False
            cpu["t1"] = cpu_seconds()

        at_wall(t0, start)
        at_wall(t1, stop)
        probe = asyncio.ensure_future(self.lag_probe())
        slow_result: dict[str, Any] = {}
        if mode == "http":
            body = http_body(args.http_output)
            conns = max(1, args.http_conns // args.procs)
            res = await asyncio.gather(
                *(self.http_conn(t1, body) for _ in range(conns)), return_exceptions=True
            )
            errs = [repr(r) for r in res if isinstance(r, BaseException)]
            if errs:
                self.stats.close_samples.extend(errs[:5])
                self.stats.closed += len(errs)
        elif mode == "slow":
            slow_result = await self.slow_reader(t1)
        else:
            await asyncio.sleep(max(0.0, t1 - _time()) + 0.05)
        if "t1" not in cpu:
            stop()
        self.stopping = True
        probe.cancel()
        st = self.stats
        result = {
            "event": "result",
            "wid": self.wid,
            "sessions": len(self.sessions),
            "cpu_s": cpu["t1"] - cpu.get("t0", cpu["t1"]),
            "delivered": st.delivered,
            "skipped": st.skipped,
            "lat": st.lat.tobytes(),
            "types": st.types,
            "errors": st.errors,
            "error_samples": [repr(x)[:300] for x in st.error_samples],
            "closed": st.closed,
            "close_samples": st.close_samples[:5],
            "gp_cycles": st.gp_cycles.tobytes(),
            "callbacks": st.callbacks,
            "cb_lat": st.cb_lat.tobytes(),
            "http_ok": st.http_ok,
            "http_bad": st.http_bad,
            "http_lat": st.http_lat.tobytes(),
            "heartbeats": st.heartbeats,
            "lag": self.lag.tobytes(),
            "slow": slow_result,
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
        self.conn.send(result)
        # keep the sessions open a little: the runner reads the server's state at t1
        await asyncio.sleep(self.args.linger)
        # orderly close, bounded: a close frame, then the socket
        c0 = _time()
        closed = 0
        for s in self.sessions:
            s.closing = True
            if s.hb_handle is not None:
                s.hb_handle.cancel()
            if s.transport is not None:
                s.transport.close()
                closed += 1
        await asyncio.sleep(0.2)
        if self.args.report_close:
            self.conn.send({"event": "closed", "wid": self.wid, "t0": c0, "t1": _time(),
                            "closed": closed})

    async def slow_reader(self, t1: float) -> dict[str, Any]:
        """Scenario slow: consume ``slow_fps`` frames/s until t1, then drain fast."""
        if not self.sessions:
            return {"error": "no session"}
        s = self.sessions[0]
        proto = s.transport
        assert isinstance(proto, SlowWS)
        ages = array("d")
        period = 1.0 / self.args.slow_fps
        read = 0
        while _time() < t1 and not proto.closed:
            before = s.last_value
            proto.consume_one()
            if s.last_value is not before and s.last_value is not None:
                ages.append(_time() - s.last_value["t"])
                read += 1
            await asyncio.sleep(period)
        slow_last = s.last_value
        # drain: read everything now, until the socket stays quiet for 2 s (max 30 s)
        proto.go_fast()
        t_end = time.monotonic() + self.args.drain_timeout
        quiet_since = time.monotonic()
        last_seen = s.last_value
        while time.monotonic() < t_end:
            await asyncio.sleep(0.1)
            if s.last_value is not last_seen:
                last_seen = s.last_value
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 2.0:
                break
        drain_s = time.monotonic() - (t_end - self.args.drain_timeout)
        ages_sorted = sorted(ages)
        return {
            "frames_read_slow": read,
            "age_p50_s": ages_sorted[len(ages_sorted) // 2] if ages_sorted else None,
            "age_max_s": ages_sorted[-1] if ages_sorted else None,
            "slow_last": slow_last,
            "final_value": s.last_value,
            "drain_s": drain_s,
            "closed": proto.closed,
            "close_info": proto.close_info,
        }


def worker_entry(args: argparse.Namespace, wid: int, nsessions: int, conn,
                 first: int = 0) -> None:
    raise_nofile()
    if args.uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    w_args = args

    async def run() -> None:
        w = Worker(w_args, wid, nsessions, conn, first)
        await w.main()

    try:
        asyncio.run(run())
    except Exception as exc:
        with contextlib.suppress(Exception):
            conn.send({"event": "error", "wid": wid, "error": repr(exc)})
        raise


# --------------------------------------------------------------------------
# Master


def percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, round(q / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[i]


def merge(results: list[dict], key: str) -> list[float]:
    out = array("d")
    for r in results:
        a = array("d")
        a.frombytes(r.get(key, b""))
        out.extend(a)
    return sorted(out)


def fetch_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise SystemExit(f"refusing non-loopback target {host!r}")


def collect_closed(workers: list, deadline: float) -> dict:
    """Every worker's ``closed`` message (sent once it closed its sessions),
    merged: the first close's start, the last one's end, sessions closed."""
    out: dict[str, Any] = {"event": "closed", "t0": None, "t1": None, "closed": 0,
                           "workers": 0}
    for _, conn in workers:
        if not conn.poll(max(0.1, deadline - time.time())):
            out["error"] = "a worker did not report its close in time"
            break
        msg = conn.recv()
        if msg.get("event") != "closed":
            out["error"] = f"worker: {msg}"
            break
        out["workers"] += 1
        out["closed"] += msg["closed"]
        out["t0"] = msg["t0"] if out["t0"] is None else min(out["t0"], msg["t0"])
        out["t1"] = msg["t1"] if out["t1"] is None else max(out["t1"], msg["t1"])
    return out


def source_addrs(args: argparse.Namespace) -> list[str]:
    """``--sources`` loopback addresses from ``--source-base`` up (none: the
    kernel picks the source, 127.0.0.1)."""
    if args.sources <= 0:
        return []
    try:
        base = ipaddress.ip_address(args.source_base)
    except ValueError:
        raise SystemExit(f"--source-base {args.source_base!r}: not an IP address") from None
    addrs = [base + k for k in range(args.sources)]
    for a in addrs:
        if not a.is_loopback or a.version != 4:
            raise SystemExit(f"refusing non-loopback source address {a}")
    if args.sessions > args.sources * args.per_source:
        raise SystemExit(f"{args.sessions} sessions need more than {args.sources} source "
                         f"addresses at --per-source {args.per_source}")
    return [str(a) for a in addrs]


def port_range() -> tuple[int, int] | None:
    """The kernel's ephemeral ports (net.ipv4.ip_local_port_range)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return None


def master(args: argparse.Namespace) -> dict:
    check_loopback(args.url)
    args.source_addrs = source_addrs(args)
    nofile = raise_nofile()
    procs = max(1, args.procs)
    need = -(-args.sessions // procs) + 64  # a worker's sockets + some
    if args.scenario in ("push", "slow") and need > nofile:
        raise SystemExit(f"RLIMIT_NOFILE is {nofile}: {args.sessions} sessions over {procs} "
                         f"processes need {need} each; use more --procs")
    ports = port_range()
    per_pair = min(args.sessions, args.per_source) if args.source_addrs else args.sessions
    if ports and per_pair > ports[1] - ports[0] + 1:
        log(f"warning: {per_pair} connections from one source address to one server, but "
            f"only {ports[1] - ports[0] + 1} ephemeral ports ({ports[0]}-{ports[1]}): "
            "use --sources")
    # What a page load does before the renderer opens its WebSocket.  It also
    # matters: Dash's fastapi backend fills its callback map on the first HTTP
    # request, so a WebSocket callback_request before any HTTP request fails.
    base = args.url.rstrip("/")
    with contextlib.suppress(Exception):
        fetch_json(base + "/_dash-layout")
    deps = fetch_json(base + "/_dash-dependencies")
    if args.scenario in ("push", "slow") and not args.persistent_id:
        for d in deps:
            if d.get("persistent"):
                args.persistent_id = d["output"]
                break
        if not args.persistent_id:
            log("no persistent callback in /_dash-dependencies")
    if args.scenario in ("getprop", "slow"):
        args.sessions = 1
        args.procs = 1
    if args.scenario == "http":
        args.sessions = 0
    procs = max(1, args.procs)
    if args.source_addrs:
        log(f"sources: {', '.join(args.source_addrs)} (up to {args.per_source} sessions each)")
    ctx = mp.get_context("fork")
    workers = []
    share = [args.sessions // procs + (1 if i < args.sessions % procs else 0) for i in range(procs)]
    for wid in range(procs):
        parent, child = ctx.Pipe()
        first = sum(share[:wid])
        p = ctx.Process(target=worker_entry, args=(args, wid, share[wid], child, first),
                        daemon=True)
        p.start()
        child.close()
        workers.append((p, parent))
    result: dict[str, Any] = {"event": "result", "scenario": args.scenario}
    try:
        t_start = time.monotonic()
        connected = failed = 0
        deadline = time.monotonic() + args.ramp_timeout + 30
        for _p, conn in workers:
            if not conn.poll(max(0.1, deadline - time.monotonic())):
                raise RuntimeError("a worker did not finish connecting in time")
            msg = conn.recv()
            if msg.get("event") != "connected":
                raise RuntimeError(f"worker failed: {msg}")
            connected += msg["ok"]
            failed += msg["failed"]
        ramp_s = time.monotonic() - t_start
        emit({"event": "connected", "ok": connected, "failed": failed, "ramp_s": ramp_s})
        log(f"{connected} connected, {failed} failed in {ramp_s:.1f}s")
        t0 = time.time() + args.warmup
        t1 = t0 + args.duration
        for _, conn in workers:
            conn.send({"cmd": "window", "t0": t0, "t1": t1})
        emit({"event": "window", "t0": t0, "t1": t1})
        results = []
        extra = args.drain_timeout + 30 if args.scenario == "slow" else 30
        deadline = t1 + extra
        for _, conn in workers:
            if not conn.poll(max(0.1, deadline - time.time())):
                raise RuntimeError("a worker did not report in time")
            msg = conn.recv()
            if msg.get("event") != "result":
                raise RuntimeError(f"worker failed: {msg}")
            results.append(msg)
        if args.report_close:
            emit(collect_closed(workers, time.time() + args.linger + 60))
        dur = t1 - t0
        lat = merge(results, "lat")
        gp = merge(results, "gp_cycles")
        cbl = merge(results, "cb_lat")
        hl = merge(results, "http_lat")
        lag = merge(results, "lag")
        types: dict[str, int] = {}
        for r in results:
            for k, v in r["types"].items():
                types[k] = types.get(k, 0) + v
        ms = 1000.0
        result.update(
            {
                "sessions": connected,
                "failed": failed,
                "ramp_s": ramp_s,
                "t0": t0,
                "t1": t1,
                "duration": dur,
                "procs": procs,
                "client": args.client,
                "delivered": sum(r["delivered"] for r in results),
                "delivered_per_s": sum(r["delivered"] for r in results) / dur,
                "skipped": sum(r["skipped"] for r in results),
                "lat_p50_ms": (percentile(lat, 50) or 0) * ms if lat else None,
                "lat_p99_ms": (percentile(lat, 99) or 0) * ms if lat else None,
                "lat_max_ms": lat[-1] * ms if lat else None,
                "types": types,
                "errors": sum(r["errors"] for r in results),
                "error_samples": [e for r in results for e in r["error_samples"]][:5],
                "closed": sum(r["closed"] for r in results),
                "close_samples": [e for r in results for e in r["close_samples"]][:5],
                "getprops": len(gp),
                "getprops_per_s": len(gp) / dur,
                "getprop_p50_ms": percentile(gp, 50) * ms if gp else None,
                "getprop_p99_ms": percentile(gp, 99) * ms if gp else None,
                "callbacks": sum(r["callbacks"] for r in results),
                "callback_p50_ms": percentile(cbl, 50) * ms if cbl else None,
                "http_ok": sum(r["http_ok"] for r in results),
                "http_bad": sum(r["http_bad"] for r in results),
                "http_per_s": sum(r["http_ok"] for r in results) / dur,
                "heartbeats": sum(r.get("heartbeats", 0) for r in results),
                "http_p50_ms": percentile(hl, 50) * ms if hl else None,
                "http_p99_ms": percentile(hl, 99) * ms if hl else None,
                "loadgen_cpu_s": sum(r["cpu_s"] for r in results),
                "loadgen_cpu_pct": 100.0 * sum(r["cpu_s"] for r in results) / dur,
                "loadgen_cpu_pct_max_proc": 100.0 * max(r["cpu_s"] for r in results) / dur,
                "loadgen_lag_p99_ms": percentile(lag, 99) * ms if lag else None,
                "loadgen_maxrss_mb": sum(r["maxrss_kb"] for r in results) / 1024.0,
                "slow": results[0].get("slow") if args.scenario == "slow" else None,
            }
        )
        if args.scenario == "slow":
            with contextlib.suppress(Exception):
                result["server_stats"] = fetch_json(args.url.rstrip("/") + "/_bench/stats")
    finally:
        for _p, conn in workers:
            with contextlib.suppress(Exception):
                conn.send({"cmd": "stop"})
        for p, _ in workers:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    emit(result)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="http://127.0.0.1:PORT (loopback only)")
    ap.add_argument("--scenario", choices=["push", "getprop", "http", "slow"], default="push")
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--procs", type=int, default=1, help="worker processes")
    ap.add_argument("--ramp", type=int, default=200, help="connections opened at a time")
    ap.add_argument("--ramp-timeout", type=float, default=300.0)
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument(
        "--joined",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send renderer_joined first (quartdash's worker does; Dash ignores it)",
    )
    ap.add_argument("--persistent-id", default=None, help="default: from /_dash-dependencies")
    ap.add_argument("--client", choices=["raw", "websockets"], default="raw")
    ap.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--getprop-k", type=int, default=100, help="get_prop round trips per echo")
    ap.add_argument("--http-conns", type=int, default=16)
    ap.add_argument("--http-output", default="http-out.children",
                    help="the HTTP callback to post: http-out.children or fig.figure")
    ap.add_argument("--slow-fps", type=float, default=10.0)
    ap.add_argument("--slow-rcvbuf", type=int, default=4096)
    ap.add_argument("--drain-timeout", type=float, default=30.0)
    ap.add_argument("--linger", type=float, default=2.0, help="s to stay connected after t1")
    ap.add_argument("--heartbeat", type=float, default=HEARTBEAT_INTERVAL,
                    help="s between a session's heartbeats (0: none)")
    ap.add_argument("--sources", type=int, default=0,
                    help="spread sessions over N loopback source addresses (0: the kernel's)")
    ap.add_argument("--source-base", default="127.0.0.1", help="the first source address")
    ap.add_argument("--per-source", type=int, default=25_000,
                    help="sessions per source address (the ephemeral port range bounds it)")
    ap.add_argument("--report-close", action="store_true",
                    help='after --linger, report {"event": "closed"} once all are closed')
    args = ap.parse_args(argv)
    args.duration = min(max(args.duration, 0.5), 3600.0)
    if args.per_source < 1:
        ap.error("--per-source must be >= 1")
    args.source_addrs = []  # filled by master()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = master(args)
    return 0 if res.get("sessions", 0) or args.scenario == "http" else 1


if __name__ == "__main__":
    sys.exit(main())
