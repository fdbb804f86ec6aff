#!/usr/bin/env python
"""Events and partial reads: how fast ``send_event`` delivers, and what ``path=`` saves.

Three measurements against one hypercorn server (127.0.0.1, 1 worker) serving
``create_app()`` below:

* **events, one tab** — a WebSocket callback sends ``--events`` events with
  ``await ctx.websocket.send_event(...)`` as fast as it can (it yields to the
  loop every 64 events); one client (the ``websockets`` library, playing the
  worker) counts them. Reported: events/s from the request to the last event
  received, and how many the server refused (over the event budget: the tab
  is told, nothing is lost silently).
* **events, many sessions** — ``--sessions`` WebSocket sessions (one tab
  each, from ``--clients`` client processes, minimal RFC 6455 clients from
  bench/fanout.py) join a broadcast topic; an HTTP request makes the server
  call ``topic.send_event`` ``--fanout-events`` times. Reported: events
  delivered per second over every session (from the request to the last
  session's last event), and the slowest session's time.
* **path= vs whole prop** — in headless Chromium (``/usr/bin/chromium``;
  ``$QUARTDASH_CHROMIUM``) with dash-renderer and quartdash's worker and page
  helper: a callback reads one cell of a 10,000-row ``dash_table.DataTable``
  ``--reads`` times with ``get_prop(..., path=[row, "price"])``, then the
  whole ``data`` as many times. Reported: median and p90 milliseconds per
  read, measured in the callback, and the bytes of one answer.

Clients and server share the machine: on a small one the clients' CPU
competes with the server's, so read the figures as a floor.

    python bench/live.py                 # full: 200k events, 1000 sessions, 50 reads
    python bench/live.py --quick         # smoke run, a few seconds each
    python bench/live.py --only events-one,path
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.fanout import LOOPBACK, Server, Session, _frame, http_json, wait_until  # noqa: E402

TABLE_ROWS = 10_000
PARTS = ("events-one", "events-many", "path")


# ------------------------------------------------------------------- the served app


def create_app() -> Any:
    """The app the server runs: ``hypercorn 'bench.live:create_app()'``."""
    from dash import Input, Output, State, ctx, dash_table, dcc, html
    from quart import request

    from quartdash import Dash, broadcast

    feed = broadcast.Topic("live-bench")
    rows = [{"id": i, "name": f"item {i}", "price": round(i * 1.25, 2)}
            for i in range(TABLE_ROWS)]
    app = Dash("live_bench", websocket_callbacks=True)
    app.layout = html.Div([
        html.Button("burst", id="burst"), dcc.Input(id="count", value=1000),
        html.Div(id="burst-out"),
        html.Button("join", id="join"), html.Div(id="joined"),
        dash_table.DataTable(id="table", data=rows, page_size=20,
                             columns=[{"name": c, "id": c} for c in ("id", "name", "price")]),
        dcc.Input(id="reads", value=10),
        html.Button("read one cell", id="read-cell"), html.Button("read all", id="read-all"),
        html.Div(id="read-out"),
    ])

    @app.callback(Output("burst-out", "children"), Input("burst", "n_clicks"),
                  State("count", "value"), prevent_initial_call=True)
    async def burst(n_clicks: int, count: Any) -> str:
        ws = ctx.websocket
        started = time.perf_counter()
        refused = 0
        for i in range(int(count)):
            if not await ws.send_event("e", i):
                refused += 1
            if i % 64 == 63:
                await asyncio.sleep(0)  # let the sender drain what is queued
        return json.dumps({"sent": int(count), "refused": refused,
                           "seconds": time.perf_counter() - started})

    @app.callback(Output("joined", "children"), Input("join", "n_clicks"),
                  prevent_initial_call=True)
    async def join(n_clicks: int) -> str:
        await feed.join()
        return "joined"

    @app.callback(Output("read-out", "children"), Input("read-cell", "n_clicks"),
                  Input("read-all", "n_clicks"), State("reads", "value"),
                  prevent_initial_call=True)
    async def reads(cell: Any, whole: Any, count: Any) -> str:
        ws = ctx.websocket
        partial = ctx.triggered_id == "read-cell"
        times = []
        for i in range(int(count)):
            started = time.perf_counter()
            if partial:
                value = await ws.get_prop("table", "data", path=[(i * 997) % TABLE_ROWS, "price"])
                assert isinstance(value, float | int), value
            else:
                value = await ws.get_prop("table", "data", timeout=60)
                assert len(value) == TABLE_ROWS
            times.append((time.perf_counter() - started) * 1000)
        return json.dumps({"kind": "path" if partial else "whole", "ms": times})

    asgi = app.asgi
    answer_sizes: list[int] = []

    def measure(ws: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "get_props_response":
            answer_sizes.append(len(json.dumps(message.get("payload"))))

    app.live.own_message_hooks.append(measure)

    @asgi.post("/_live/fanout")
    async def fanout() -> dict[str, Any]:
        body = await request.get_json()
        started = time.perf_counter()
        for i in range(int(body["count"])):
            await feed.send_event("e", i)
            if i % 10 == 9:
                await asyncio.sleep(0)
        return {"seconds": time.perf_counter() - started}

    @asgi.get("/_live/stats")
    async def stats() -> dict[str, Any]:
        return {"sessions": len(app.live.sessions), "members": broadcast.stats()["members"],
                "cpu": time.process_time(), "answer_sizes": answer_sizes[-5:],
                "events_dropped": sum(s.events_dropped for s in app.live.sessions)}

    return asgi


# ------------------------------------------------------------------------ the server


def request(renderer: str, request_id: str, output: str,
            inputs: Sequence[tuple[str, str, Any]],
            state: Sequence[tuple[str, str, Any]] = ()) -> bytes:
    """A callback_request as dash-renderer sends it (plain ids, one output)."""
    def deps(items: Sequence[tuple[str, str, Any]]) -> list[dict[str, Any]]:
        return [{"id": i, "property": p, "value": v} for i, p, v in items]

    component, prop = output.rsplit(".", 1)
    return json.dumps({
        "type": "callback_request", "rendererId": renderer, "requestId": request_id,
        "payload": {"output": output, "outputs": {"id": component, "property": prop},
                    "inputs": deps(inputs), "state": deps(list(state)),
                    "changedPropIds": [f"{i}.{p}" for i, p, _ in inputs]}}).encode()


# ---------------------------------------------------------------- events to one tab


async def events_one(server: Server, count: int, timeout: float) -> dict[str, Any]:
    import websockets

    url = f"ws://{LOOPBACK}:{server.port}/_dash-ws-callback"
    async with websockets.connect(url, origin=server.base,  # type: ignore[arg-type]
                                  max_size=None, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "renderer_joined", "rendererId": "r1"}))
        received = 0
        result: dict[str, Any] | None = None
        started = time.perf_counter()
        last = started
        await ws.send(request("r1", "q1", "burst-out.children", [("burst", "n_clicks", 1)],
                              [("count", "value", count)]).decode())
        async with asyncio.timeout(timeout):
            while received < count or result is None:
                text = await ws.recv()
                data = text.encode() if isinstance(text, str) else text
                hits = data.count(b'"type":"event"')
                if hits:
                    received += hits
                    last = time.perf_counter()
                if b'"callback_response"' in data:
                    for message in _messages(data):
                        if message.get("type") == "callback_response":
                            result = json.loads(message["payload"]["data"]["response"]
                                                ["burst-out"]["children"])
                if result is not None and received + result["refused"] >= count:
                    break
    assert result is not None
    seconds = last - started
    return {"events": count, "received": received, "refused": result["refused"],
            "seconds": round(seconds, 3), "events_per_s": round(received / seconds),
            "server_send_s": round(result["seconds"], 3)}


def _messages(data: bytes) -> list[dict[str, Any]]:
    decoded = json.loads(data)
    return decoded if isinstance(decoded, list) else [decoded]


# --------------------------------------------------------- events to many sessions


class Tally:
    """What a client process's sessions have done so far, with events to wait on."""

    def __init__(self, sessions: int, expect: int) -> None:
        self.sessions, self.expect = sessions, expect
        self.joined = self.complete = 0
        self.all_joined, self.all_complete = asyncio.Event(), asyncio.Event()

    def one_joined(self) -> None:
        self.joined += 1
        if self.joined >= self.sessions:
            self.all_joined.set()

    def one_complete(self) -> None:
        self.complete += 1
        if self.complete >= self.sessions:
            self.all_complete.set()


class EventSession(Session):
    """A tab that joins the topic and counts the events it receives."""

    def __init__(self, host: str, renderer_id: str, tally: Tally) -> None:
        super().__init__(host, renderer_id, {})
        self.tally = tally
        self.events = 0
        self.last = 0.0
        self.joined = False

    def on_text(self, text: bytes, now: float) -> None:
        hits = text.count(b'"type":"event"')
        if hits:
            before = self.events
            self.events += hits
            self.last = now
            if before < self.tally.expect <= self.events:
                self.tally.one_complete()
        if not self.joined and b'"callback_response"' in text:
            self.joined = True
            self.tally.one_joined()

    def join(self) -> None:
        self.transport.write(_frame(request(self.renderer_id, "join", "joined.children",
                                            [("join", "n_clicks", 1)])))


async def _fanout_client(port: int, count: int, tag: str, expect: int, pipe: Any) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally(count, expect)
    sessions: list[EventSession] = []
    for start in range(0, count, 50):  # 50 handshakes at a time
        batch = []
        for i in range(start, min(count, start + 50)):
            _, session = await loop.create_connection(
                lambda i=i: EventSession(f"{LOOPBACK}:{port}", f"{tag}-{i}", tally),
                LOOPBACK, port)
            batch.append(session)
        await asyncio.wait_for(asyncio.gather(*(s.open for s in batch)), timeout=30)
        for session in batch:
            session.join()
        sessions += batch
    try:
        await asyncio.wait_for(tally.all_joined.wait(), timeout=60)
    except TimeoutError:
        pass  # reported: the runner compares the count with the sessions asked for
    pipe.send(("ready", tally.joined))
    timeout = await asyncio.to_thread(pipe.recv)  # the run started: wait for the events
    try:
        await asyncio.wait_for(tally.all_complete.wait(), timeout=timeout)
    except TimeoutError:
        pass  # reported as incomplete sessions
    pipe.send(("result", [(s.events, s.last) for s in sessions]))
    for session in sessions:
        session.transport.close()


def fanout_client_main(port: int, count: int, tag: str, expect: int, pipe: Any) -> None:
    asyncio.run(_fanout_client(port, count, tag, expect, pipe))


def events_many(server: Server, sessions: int, clients: int, count: int,
                timeout: float) -> dict[str, Any]:
    context = mp.get_context("spawn")
    procs = []
    try:
        for i in range(clients):
            share = sessions // clients + (i < sessions % clients)
            parent, child = context.Pipe()
            proc = context.Process(target=fanout_client_main,
                                   args=(server.port, share, f"c{i}", count, child), daemon=True)
            proc.start()
            procs.append((proc, parent))
        joined = 0
        for _, pipe in procs:
            if not pipe.poll(180):
                raise TimeoutError("a client process did not join its sessions in time")
            joined += pipe.recv()[1]
        wait_until(lambda: server.stats()["members"] >= joined, 30, f"{joined} members")
        cpu0 = server.stats()["cpu"]
        started = time.time()
        for _, pipe in procs:
            pipe.send(timeout)
        publish = http_json(server.base + "/_live/fanout", {"count": count}, timeout=timeout)
        results: list[tuple[int, float]] = []
        for _, pipe in procs:
            if not pipe.poll(timeout + 30):
                raise TimeoutError("a client process did not report")
            results += pipe.recv()[1]
        cpu1 = server.stats()["cpu"]
    finally:
        for proc, _ in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    delivered = sum(events for events, _ in results)
    complete = sum(events >= count for events, _ in results)
    slowest = max(last for _, last in results) - started
    return {"sessions": joined, "events_each": count, "delivered": delivered,
            "complete_sessions": complete, "seconds_to_last": round(slowest, 3),
            "events_per_s": round(delivered / slowest), "publish_s": round(publish["seconds"], 3),
            "server_cpu_s": round(cpu1 - cpu0, 3),
            "dropped": server.stats()["events_dropped"]}


# --------------------------------------------------------------- path= vs whole prop


async def path_reads(server: Server, reads: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from tests.helpers.browser import CHROMIUM_ARGS, chromium_path

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(),
                                                   headless=True, args=CHROMIUM_ARGS,
                                                   timeout=30_000)
        try:
            page = await browser.new_page()
            page.set_default_timeout(120_000)
            await page.goto(server.base + "/")
            await page.wait_for_selector("#table td")
            await page.fill("#reads", str(reads))
            out: dict[str, Any] = {"rows": TABLE_ROWS, "reads": reads}
            for button, kind in (("#read-cell", "path"), ("#read-all", "whole")):
                await page.evaluate("document.querySelector('#read-out').textContent = ''")
                await page.click(button)
                await page.wait_for_function(
                    f"document.querySelector('#read-out').textContent.includes('\"{kind}\"')")
                result = json.loads(await page.text_content("#read-out") or "{}")
                times = sorted(result["ms"][1:] or result["ms"])  # the first one warms up
                out[kind] = {"median_ms": round(statistics.median(times), 2),
                             "p90_ms": round(times[int(0.9 * (len(times) - 1))], 2),
                             "answer_bytes": server.stats()["answer_sizes"][-1]}
            out["speedup"] = round(out["whole"]["median_ms"] / out["path"]["median_ms"], 1)
            return out
        finally:
            await browser.close()


# --------------------------------------------------------------------------- runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--events", type=int, default=200_000, help="events to one tab")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--fanout-events", type=int, default=100, help="events per session")
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300.0, help="per measurement")
    args = parser.parse_args()
    if args.quick:
        args.events, args.sessions, args.clients = 20_000, 100, 1
        args.fanout_events, args.reads, args.timeout = 20, 10, 60.0
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    results_dir = REPO / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report: dict[str, Any] = {
        "settings": vars(args), "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "load_1m": os.getloadavg()[0]},
    }
    server = Server({}, results_dir / f"live-{stamp}-server.log", "bench.live:create_app()",
                    "/_live/stats")
    try:
        if "events-one" in parts:
            report["events_one_tab"] = asyncio.run(events_one(server, args.events,
                                                              args.timeout))
            print("events to one tab:", json.dumps(report["events_one_tab"]))
        if "events-many" in parts:
            report["events_many_sessions"] = events_many(server, args.sessions, args.clients,
                                                         args.fanout_events, args.timeout)
            print("events to many sessions:", json.dumps(report["events_many_sessions"]))
        if "path" in parts:
            report["path_vs_whole"] = asyncio.run(path_reads(server, args.reads))
            print("path= vs whole prop:", json.dumps(report["path_vs_whole"]))
    finally:
        server.stop()
    path = results_dir / f"live-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"written: {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
