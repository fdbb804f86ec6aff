"""A fake quartdash server for driving the SharedWorker in headless Chromium.

Run with ``python -m hypercorn tests.js.fake_server:app --bind 127.0.0.1:PORT``.

* ``GET /worker.js?...``  the real ``static/quartdash-ws-worker.js``; the query
  string is the worker's config (``heartbeat``, ``inactivity``, ...).
* ``GET /page.js``  the real ``static/quartdash-page.js`` (the page helper).
* ``GET /page?rid=R&tag=T&w=Q[&inactivity=ms][&early=1][&helper=1]
  [&nopagehide=1][&nolocks=1]``  a page that plays a renderer: it opens
  ``SharedWorker('/worker.js?' + Q)``, sends ``connect`` for renderer ``R``
  with ``serverUrl`` ``ws://host/ws?tag=T`` (and ``inactivityTimeout``), with
  ``early`` at once a ``callback_request`` (requestId ``early``), records
  what the worker posts in ``window.received`` and exposes
  ``window.post(msg)``. ``helper`` loads ``/page.js`` first, as quartdash's
  pages do (without it the page is Dash's plain one); ``nopagehide`` makes
  the helper's ``pagehide`` listener a no-op, so only its Web Lock can tell
  the worker that the tab went away; ``nolocks`` hides ``navigator.locks``
  from the page (as outside a secure context), so only ``pagehide`` can.
* ``WS /ws?tag=T``  records every event of every connection in the log of
  tag ``T``: ``open``, ``recv`` (with ``msg``), ``close`` (client close, with
  ``code``), ``server_close``. Answers ``heartbeat`` with ``heartbeat_ack``
  unless told not to.
* ``GET /log?tag=T``  that log, as JSON.
* ``GET /push?tag=T&frame=JSON``  send a text frame (a message or a batch) on
  the newest open connection of the tag; ``&close=CODE&reason=...`` closes it.
* ``GET /control?tag=T&ack=0|1``  stop or resume heartbeat acks.

Tags keep tests apart while they share one server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypercorn.protocol.ws_stream import WSStream
from quart import Quart, Response, jsonify, request, websocket
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection

STATIC = Path(__file__).resolve().parents[2] / "static"
WORKER = STATIC / "quartdash-ws-worker.js"
PAGE_HELPER = STATIC / "quartdash-page.js"

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>fake renderer</title>
<link rel="icon" href="data:,">
<!--HELPER-->
<script>
  const q = new URLSearchParams(location.search);
  window.rendererId = q.get("rid");
  window.received = [];
  const worker = new SharedWorker("/worker.js?" + (q.get("w") || ""), {name: "dash-ws-worker"});
  worker.port.onmessage = (event) => window.received.push(event.data);
  worker.port.start();
  window.post = (message) => worker.port.postMessage(message);
  const payload = {serverUrl: `ws://${location.host}/ws?tag=${encodeURIComponent(q.get("tag"))}`};
  if (q.has("inactivity")) payload.inactivityTimeout = Number(q.get("inactivity"));
  window.post({type: "connect", rendererId: window.rendererId, payload});
  if (q.has("early")) {
    // Sent before the socket can be open: the worker must queue it.
    window.post({type: "callback_request", rendererId: window.rendererId, requestId: "early", payload: {output: "o.children"}});
  }
</script>
"""


@dataclass
class Conn:
    id: int
    tag: str
    outbox: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)


@dataclass
class Tag:
    log: list[dict[str, Any]] = field(default_factory=list)
    conns: list[Conn] = field(default_factory=list)  # open ones, oldest first
    ack: bool = True

    def record(self, conn: Conn, event: str, **fields: Any) -> None:
        self.log.append({"conn": conn.id, "event": event, "t": time.monotonic(), **fields})


tags: dict[str, Tag] = {}
conn_ids = itertools.count(1)

app = Quart(__name__)


def tag_state(name: str) -> Tag:
    return tags.setdefault(name, Tag())


@app.get("/worker.js")
async def worker_js() -> Response:
    return Response(
        WORKER.read_text(),
        mimetype="application/javascript",
        headers={"Cache-Control": "no-store"},
    )


@app.get("/page.js")
async def page_helper() -> Response:
    return Response(
        PAGE_HELPER.read_text(),
        mimetype="application/javascript",
        headers={"Cache-Control": "no-store"},
    )


@app.get("/page")
async def page() -> Response:
    helper = ""
    if "nopagehide" in request.args:
        # Before the helper adds its listener: drop every pagehide listener.
        helper += (
            "<script>const add = window.addEventListener;"
            "window.addEventListener = function (type, ...rest) {"
            " if (type !== 'pagehide') add.call(this, type, ...rest); };</script>"
        )
    if "nolocks" in request.args:
        helper += (
            "<script>Object.defineProperty(Navigator.prototype, 'locks',"
            " {get: () => undefined});</script>"
        )
    if "helper" in request.args:
        # As quartdash's pages: the helper runs before the worker is created.
        helper += '<script src="/page.js"></script>'
    return Response(
        PAGE.replace("<!--HELPER-->", helper),
        mimetype="text/html",
        headers={"Cache-Control": "no-store"},
    )


@app.get("/log")
async def log() -> Response:
    return jsonify(tag_state(request.args["tag"]).log)


@app.get("/push")
async def push() -> tuple[Response, int]:
    state = tag_state(request.args["tag"])
    if not state.conns:
        return jsonify({"error": "no open connection"}), 404
    conn = state.conns[-1]
    if "close" in request.args:
        await conn.outbox.put(
            ("close", (int(request.args["close"]), request.args.get("reason", "")))
        )
    else:
        await conn.outbox.put(("frame", request.args["frame"]))
    return jsonify({"conn": conn.id}), 200


@app.get("/control")
async def control() -> Response:
    state = tag_state(request.args["tag"])
    if "ack" in request.args:
        state.ack = request.args["ack"] == "1"
    return jsonify({"ack": state.ack})


@app.websocket("/ws")
async def ws() -> None:
    state = tag_state(websocket.args.get("tag", ""))
    conn = Conn(next(conn_ids), websocket.args.get("tag", ""))
    websocket.scope["fake_conn"] = (state, conn)  # read by the recorders below
    await websocket.accept()
    state.conns.append(conn)
    state.record(conn, "open")

    async def receive() -> None:
        while True:
            msg = json.loads(await websocket.receive())
            if isinstance(msg, dict) and msg.get("type") == "heartbeat" and state.ack:
                await conn.outbox.put(("frame", json.dumps({"type": "heartbeat_ack"})))

    async def send() -> None:
        while True:
            kind, value = await conn.outbox.get()
            if kind == "frame":
                await websocket.send(value)
            else:
                code, reason = value
                websocket.scope["fake_closed"] = True
                state.record(conn, "server_close", code=code, reason=reason)
                await websocket.close(code, reason)
                return

    tasks = [asyncio.create_task(receive()), asyncio.create_task(send())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        if conn in state.conns:
            state.conns.remove(conn)


# Hypercorn 0.18 does not pass the client's close code to the app: it answers
# the close frame and then reports ``websocket.disconnect`` with 1006. The
# tests need the code the worker sent, so note it where Hypercorn echoes the
# client's close frame (test server only); RecordReceived logs it when the
# disconnect reaches the app, after the frames that came before it.
_send_wsproto_event = WSStream._send_wsproto_event


async def _note_client_close(self: WSStream, event: Any) -> None:
    if (
        isinstance(event, CloseConnection)
        and self.connection.state == ConnectionState.REMOTE_CLOSING
    ):
        self.scope["fake_client_close"] = (event.code, event.reason)
    await _send_wsproto_event(self, event)


WSStream._send_wsproto_event = _note_client_close  # type: ignore[method-assign]


class RecordReceived:
    """ASGI middleware: log each frame as it arrives (so the log keeps wire
    order with the close recorded above), and a connection that ended
    without a close frame."""

    def __init__(self, asgi_app: Any) -> None:
        self.asgi_app = asgi_app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.asgi_app(scope, receive, send)
            return

        async def recording_receive() -> dict[str, Any]:
            event = await receive()
            if event["type"] == "websocket.receive" and "fake_conn" in scope:
                state, conn = scope["fake_conn"]
                state.record(conn, "recv", msg=json.loads(event.get("text") or event["bytes"]))
            elif event["type"] == "websocket.disconnect" and "fake_conn" in scope:
                state, conn = scope["fake_conn"]
                if conn in state.conns:
                    state.conns.remove(conn)
                if not scope.get("fake_closed"):
                    scope["fake_closed"] = True
                    code, reason = scope.get("fake_client_close", (event.get("code"), ""))
                    state.record(conn, "close", code=code, reason=reason)
            return event

        await self.asgi_app(scope, recording_receive, send)


app.asgi_app = RecordReceived(app.asgi_app)  # type: ignore[method-assign]
