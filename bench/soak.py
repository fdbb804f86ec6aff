#!/usr/bin/env python
"""Soak: minutes of session churn against one quartdash server; does anything leak?

    .venv/bin/python bench/soak.py --duration 600 --sessions 40

Starts ``tests/apps/rel_app.py`` under a real ``python -m hypercorn`` on a free
127.0.0.1 port (the app's ``GET /_rel/stats`` reports the worker's RSS, live
asyncio tasks, open file descriptors, live sessions and pending
``get_prop`` futures), then keeps ``--sessions`` virtual users busy until
``--duration`` seconds have passed. Each user loops over short sessions,
picked at random:

  stream_drop   click the streaming callback, read a few set_props, drop
                (half with a clean close, half with a TCP reset)
  getprop       a callback that calls get_prop; answer it; read the response
  getprop_drop  start the same callback, then reset without answering
  tabs          two or three tabs (renderers) on one connection: persistent
                callbacks tick; one tab leaves; then close
  slow_cancel   start a long callback and reset mid-flight
  bad_input     garbage frames (not JSON, unknown type, unknown callback),
                expect an error each, then close
  flood         more messages per second than the limit: expect close 4008

The server's figures are taken at start (idle), after ``--warmup`` seconds of
churn, every ``--sample`` seconds, and at the end, once every user has gone
and the server has settled. Printed as a table and, with ``--json``, written
as JSON. Exit status 1 when the end state leaks: sessions, pending futures or
running callbacks left, live tasks or fds above the idle start, or RSS more
than ``--rss-slack`` MiB above the after-warm-up figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from websockets.exceptions import ConnectionClosed, InvalidHandshake  # noqa: E402

from tests.apps import rel_client as rc  # noqa: E402
from tests.helpers import start_server  # noqa: E402

# The soak's own server limits: roomy enough for ordinary churn, the flood
# scenario still trips max_messages_per_second.
SERVER_ENV = {
    "REL_MAX_MPS": "300",
    "REL_MAX_CONCURRENT": "16",
    "REL_TICK": "0.1",
    "REL_SLOW_SECONDS": "30",
    "REL_SHUTDOWN_GRACE": "2",
    "REL_TRACK_RENDERERS": "0",
}

SCENARIOS = {
    "stream_drop": 3,
    "getprop": 3,
    "getprop_drop": 2,
    "tabs": 3,
    "slow_cancel": 2,
    "bad_input": 1,
    "flood": 1,
}


class Soak:
    def __init__(self, server: Any, rng: random.Random) -> None:
        self.server = server
        self.rng = rng
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.failure_examples: list[str] = []
        self.frames = 0
        self._ids = 0

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    async def user(self, deadline: float) -> None:
        names, weights = zip(*SCENARIOS.items(), strict=True)
        while time.monotonic() < deadline:
            scenario = self.rng.choices(names, weights)[0]
            conns: list[Any] = []
            try:
                async with asyncio.timeout(30):
                    await getattr(self, scenario)(conns)
                self.counts[scenario] += 1
            except (
                TimeoutError,
                ConnectionClosed,
                InvalidHandshake,
                OSError,
                AssertionError,
            ) as error:
                self.failures[scenario] += 1
                if len(self.failure_examples) < 20:
                    self.failure_examples.append(f"{scenario}: {error!r}")
            finally:
                for ws in conns:  # a failed scenario must not leave its socket open
                    if ws.transport is not None and not ws.transport.is_closing():
                        ws.transport.abort()
            await asyncio.sleep(self.rng.uniform(0, 0.2))

    async def _connect(self, conns: list[Any]) -> Any:
        ws = await rc.open_ws(self.server)
        conns.append(ws)
        return ws

    async def _recv(self, ws: Any, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await ws.recv()
                self.frames += 1
                for message in rc.split(frame):
                    if predicate(message):
                        return message

    async def _drop(self, ws: Any) -> None:
        if self.rng.random() < 0.5:
            rc.reset(ws)
        else:
            await ws.close()

    async def stream_drop(self, conns: list[Any]) -> None:
        ws = await self._connect(conns)
        rid = self.next_id("r")
        await rc.send(ws, rc.joined(rid))
        await rc.send(
            ws,
            rc.click(
                "stream-btn", "stream-out.children", renderer=rid, request_id=self.next_id("q")
            ),
        )
        for _ in range(self.rng.randint(1, 20)):
            await self._recv(
                ws,
                lambda m: (
                    m.get("type") == "set_props" and m["payload"]["componentId"] == "stream-live"
                ),
            )
        await self._drop(ws)

    async def getprop(self, conns: list[Any]) -> None:
        ws = await self._connect(conns)
        rid, qid = self.next_id("r"), self.next_id("q")
        await rc.send(ws, rc.click("gp-btn", "gp-out.children", renderer=rid, request_id=qid))
        ask = await self._recv(ws, rc.of_type("get_props_request"))
        await rc.send(
            ws,
            {
                "type": "get_props_response",
                "rendererId": rid,
                "requestId": ask["requestId"],
                "payload": {"value": "soak"},
            },
        )
        reply = await self._recv(ws, rc.of_type("callback_response", qid))
        assert reply["payload"]["status"] == "ok", reply
        await ws.close()

    async def getprop_drop(self, conns: list[Any]) -> None:
        ws = await self._connect(conns)
        rid = self.next_id("r")
        await rc.send(
            ws, rc.click("gp-btn", "gp-out.children", renderer=rid, request_id=self.next_id("q"))
        )
        await self._recv(ws, rc.of_type("get_props_request"))
        rc.reset(ws)

    async def tabs(self, conns: list[Any]) -> None:
        ws = await self._connect(conns)
        rids = [self.next_id("r") for _ in range(self.rng.randint(2, 3))]
        for rid in rids:
            await rc.send(ws, rc.joined(rid))
        seen: set[str] = set()
        await self._recv(
            ws,
            lambda m: (
                m.get("type") == "set_props"
                and m["payload"]["componentId"] == "tick"
                and (seen.add(m["rendererId"]) or seen == set(rids))
            ),
        )
        await rc.send(ws, {"type": "renderer_left", "rendererId": rids[0]})
        await rc.send(ws, {"type": "heartbeat"})
        await self._recv(ws, lambda m: m.get("type") == "heartbeat_ack")
        await asyncio.sleep(self.rng.uniform(0, 1))
        await self._drop(ws)

    async def slow_cancel(self, conns: list[Any]) -> None:
        ws = await self._connect(conns)
        rid = self.next_id("r")
        await rc.send(ws, rc.joined(rid))
        await rc.send(
            ws,
            rc.click("slow-btn", "slow-out.children", renderer=rid, request_id=self.next_id("q")),
        )
        await self._recv(ws, lambda m: m.get("type") == "set_props")
        rc.reset(ws)

    async def bad_input(self, conns: list[Any]) -> None:
        ws = await self._connect(conns)
        for bad in (
            "not json",
            '{"type": "nope"}',
            json.dumps(rc.click("x-btn", "nowhere.children", request_id=self.next_id("q"))),
        ):
            await rc.send(ws, bad)
            await self._recv(
                ws,
                lambda m: (
                    m.get("type") in ("error", "callback_response")
                    and m.get("payload", {}).get("code") is not None
                ),
            )
        await ws.close()

    async def flood(self, conns: list[Any]) -> None:
        ws = await self._connect(conns)
        message = json.dumps({"type": "heartbeat"})
        try:
            for _ in range(2000):
                await ws.send(message)
        except ConnectionClosed:
            pass
        code = await rc.wait_closed(ws, timeout=10)
        assert code == 4008, f"flood closed with {code}"


def snapshot(server: Any, label: str, started: float) -> dict[str, Any]:
    stats = rc.stats(server)
    return {
        "label": label,
        "t": round(time.monotonic() - started, 1),
        "rss_mib": round(stats["rss"] / 2**20, 1),
        "tasks": stats["tasks"],
        "fds": stats["fds"],
        "live_sessions": stats["sessions"],
        "pending_props": stats["pending_props"],
        "runs": stats["runs"],
    }


async def settle(server: Any, timeout: float = 20.0) -> None:
    """Wait until every session has ended on the server, then collect garbage."""
    deadline = time.monotonic() + timeout
    while True:
        stats = await rc.astats(server)
        if stats["sessions"] == 0 and stats["runs"] == 0:
            break
        if time.monotonic() > deadline:
            break  # reported as a leak by the caller
        await asyncio.sleep(0.2)
    await asyncio.to_thread(rc.http_post, server, "/_rel/gc")


async def soak(
    server: Any, *, duration: float, sessions: int, warmup: float, sample: float, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    runner = Soak(server, rng)
    started = time.monotonic()
    await settle(server)
    samples = [await asyncio.to_thread(snapshot, server, "start (idle)", started)]
    deadline = time.monotonic() + duration
    users = [asyncio.create_task(runner.user(deadline)) for _ in range(sessions)]

    async def sampler() -> None:
        warm = False
        while time.monotonic() < deadline:
            elapsed = time.monotonic() - started
            if not warm and elapsed >= warmup:
                warm = True
                samples.append(await asyncio.to_thread(snapshot, server, "after warm-up", started))
            elif warm:
                samples.append(await asyncio.to_thread(snapshot, server, "churn", started))
            await asyncio.sleep(
                min(sample, max(0.1, deadline - time.monotonic()))
                if warm
                else min(1.0, max(0.1, warmup - elapsed))
            )

    sampling = asyncio.create_task(sampler())
    await asyncio.gather(*users)
    await sampling
    await settle(server)
    samples.append(await asyncio.to_thread(snapshot, server, "end (idle)", started))
    final = await rc.astats(server)
    return {
        "duration_s": duration,
        "sessions": sessions,
        "seed": seed,
        "completed": dict(runner.counts),
        "completed_total": sum(runner.counts.values()),
        "failed": dict(runner.failures),
        "failure_examples": runner.failure_examples,
        "frames_received": runner.frames,
        "close_codes": final["close_codes"],
        "server_counters": final["counters"],
        "samples": samples,
    }


def leaks(result: dict[str, Any], rss_slack_mib: float) -> list[str]:
    samples = result["samples"]
    start, end = samples[0], samples[-1]
    warm = next((s for s in samples if s["label"] == "after warm-up"), start)
    problems = []
    for key in ("live_sessions", "pending_props", "runs"):
        if end[key]:
            problems.append(f"{end[key]} {key} left at the end")
    # The stats request itself is a task at both ends; allow nothing more.
    if end["tasks"] > start["tasks"]:
        problems.append(f"live tasks {start['tasks']} -> {end['tasks']}")
    if end["fds"] > start["fds"]:
        problems.append(f"open fds {start['fds']} -> {end['fds']}")
    if end["rss_mib"] > warm["rss_mib"] + rss_slack_mib:
        problems.append(f"RSS {warm['rss_mib']} MiB after warm-up -> {end['rss_mib']} MiB")
    counters = result["server_counters"]
    for kind in ("stream", "getprop", "slow", "persistent"):
        if counters.get(f"{kind}_started", 0) != counters.get(f"{kind}_cleanup", 0):
            problems.append(
                f"{kind}: {counters.get(f'{kind}_started', 0)} started, "
                f"{counters.get(f'{kind}_cleanup', 0)} cleaned up"
            )
    return problems


def print_report(result: dict[str, Any], problems: list[str]) -> None:
    print(
        f"\nsoak: {result['duration_s']:.0f} s, {result['sessions']} concurrent users, "
        f"{result['completed_total']} sessions completed, {result['frames_received']} "
        f"frames received"
    )
    print("completed:", json.dumps(result["completed"], sort_keys=True))
    print("failed:   ", json.dumps(result["failed"], sort_keys=True))
    for example in result["failure_examples"][:5]:
        print("  e.g.", example)
    print("close codes seen by the server:", json.dumps(result["close_codes"], sort_keys=True))
    print(
        f"\n{'sample':<16}{'t (s)':>8}{'RSS MiB':>10}{'tasks':>7}{'fds':>6}{'sessions':>9}"
        f"{'get_prop':>10}{'runs':>6}"
    )
    for s in result["samples"]:
        print(
            f"{s['label']:<16}{s['t']:>8}{s['rss_mib']:>10}{s['tasks']:>7}{s['fds']:>6}"
            f"{s['live_sessions']:>9}{s['pending_props']:>10}{s['runs']:>6}"
        )
    print("\nleaks:", "none" if not problems else "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of churn")
    parser.add_argument("--sessions", type=int, default=40, help="concurrent virtual users")
    parser.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        help="seconds before the 'after warm-up' sample (RSS is compared against it)",
    )
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rss-slack",
        type=float,
        default=10.0,
        help="MiB of RSS growth after warm-up still counted as no leak",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)

    log_dir = Path(tempfile.mkdtemp(prefix="quartdash-soak-"))
    server = start_server("tests.apps.rel_app:asgi", log_dir=log_dir, env=SERVER_ENV)
    print(
        f"server: hypercorn tests.apps.rel_app:asgi on {server.url} (log: {server.log_path})",
        flush=True,
    )
    try:
        result = asyncio.run(
            soak(
                server,
                duration=args.duration,
                sessions=args.sessions,
                warmup=min(args.warmup, args.duration),
                sample=args.sample,
                seed=args.seed,
            )
        )
    finally:
        server.stop()
    problems = leaks(result, args.rss_slack)
    result["leaks"] = problems
    print_report(result, problems)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
