#!/usr/bin/env python
"""Presence benchmark: what tracking tabs on a topic costs Redis and the server.

One redis-server and one hypercorn worker (127.0.0.1); ``--members`` real
WebSocket sessions (one tab each, from a separate client process) join, sit
for ``--idle`` seconds, are read ``--reads`` times, and leave. Every tab's
persistent callback calls ``topic.track({"i": ...})``: one presence entry
per tab. The same is run once more with tracking off (the *baseline*: the
sessions alone), so the difference is what presence costs. Optionally
(``--watch``) the server also iterates ``topic.presence_events()`` in a
background task: events are delivered to it and the topic is swept every
``TTL / 5``.

Reported (per phase, from ``INFO commandstats`` and ``INFO cpu`` of Redis,
and ``time.process_time()`` of the server process read over HTTP):

* **per join / per leave**: Redis round trips (``EVALSHA``), Redis commands
  (those run inside scripts included), Redis CPU and server CPU, with
  tracking, for the baseline, and the difference (presence's own cost);
* **idle, per second**: heartbeats (and sweeps with ``--watch``): Redis
  commands, Redis CPU and server CPU per second while ``--members`` tabs
  are present;
* **per presence() read** of ``--members`` entries: server wall time and
  CPU, Redis CPU and commands;
* everything scaled to **1000 members** where it grows with them.

    python bench/presence.py                                   # 1000 members, ~1 min
    python bench/presence.py --members 100 --idle 3 --reads 20 # a smoke run
    python bench/presence.py --watch --ttl 5

Writes the raw numbers to ``bench/results/presence-<time>.json``
(``bench/results/`` is git-ignored). bench/PRESENCE.md explains the model.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.fanout import (  # noqa: E402
    LOOPBACK,
    Redis,
    Server,
    client_main,
    http_json,
    wait_until,
)

TOPIC = "bench-presence"


# ------------------------------------------------------------------- the served app


def create_app() -> Any:
    """The app the server runs: ``hypercorn 'bench.presence:create_app()'``."""
    import asyncio

    from dash import html
    from quart import request

    from quartdash import Dash, broadcast

    track = os.environ.get("PRESENCE_TRACK", "1") == "1"
    watch = os.environ.get("PRESENCE_WATCH", "0") == "1"
    topic = broadcast.Topic(TOPIC)
    app = Dash("presence", websocket_callbacks=True)
    app.layout = html.Div(id="v")
    events = {"join": 0, "update": 0, "leave": 0}
    joined = [0]

    @app.callback(persistent=True)
    async def be_here() -> None:
        joined[0] += 1
        if track:
            await topic.track({"i": joined[0]})

    asgi = app.asgi

    if watch:

        @asgi.while_serving
        async def watcher() -> Any:
            async def count() -> None:
                async for event in topic.presence_events(maxsize=100_000):
                    events[event.kind] += 1

            task = asyncio.ensure_future(count())
            yield
            task.cancel()

    @asgi.get("/_presence/stats")
    async def stats() -> dict[str, Any]:
        return {**broadcast.stats(), "cpu": time.process_time(), "pid": os.getpid(),
                "sessions": len(app.live.sessions), "joined": joined[0], "events": events}

    @asgi.post("/_presence/read")
    async def read() -> dict[str, Any]:
        count = int(request.args.get("n", "10"))
        cpu, started = time.process_time(), time.perf_counter()
        size = 0
        for _ in range(count):
            size = len(await topic.presence())
        return {"entries": size, "wall": time.perf_counter() - started,
                "cpu": time.process_time() - cpu}

    return asgi


# ------------------------------------------------------------------------ the runner


def redis_sample(redis: Redis) -> dict[str, Any]:
    stats = redis.client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    return {"cpu": redis.cpu(), "calls": calls}


def sample(redis: Redis, server: Server) -> dict[str, Any]:
    return {"t": time.monotonic(), "redis": redis_sample(redis), "server": server.stats()}


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What happened between two samples (the sampling's own INFO calls excluded)."""
    names = set(before["redis"]["calls"]) | set(after["redis"]["calls"])
    calls = {name: after["redis"]["calls"].get(name, 0) - before["redis"]["calls"].get(name, 0)
             for name in names}
    calls["info"] = max(0, calls.get("info", 0) - 2)  # our two INFO per sample
    calls = {name: count for name, count in calls.items() if count > 0 and name != "info"}
    return {
        "seconds": after["t"] - before["t"],
        "redis_cpu": after["redis"]["cpu"] - before["redis"]["cpu"],
        "server_cpu": after["server"]["cpu"] - before["server"]["cpu"],
        "calls": calls,
        "round_trips": calls.get("evalsha", 0) + calls.get("eval", 0),
        "commands": sum(count for name, count in calls.items()
                        if name not in ("evalsha", "eval", "script|load", "script")),
    }


def run(args: argparse.Namespace, redis: Redis, workdir: Path, *, track: bool
        ) -> dict[str, Any]:
    env = {"QUARTDASH_BROADCAST_URL": redis.url, "PRESENCE_TRACK": "1" if track else "0",
           "PRESENCE_WATCH": "1" if args.watch else "0",
           "QUARTDASH_PRESENCE_TTL": str(args.ttl)}
    redis.client.flushall()
    server = Server(env, workdir / f"server-{'track' if track else 'baseline'}.log",
                    "bench.presence:create_app()", "/_presence/stats", ("--backlog", "4096"))
    members = args.members
    result: dict[str, Any] = {"track": track}
    try:
        time.sleep(0.5)
        start = sample(redis, server)
        parent, child = mp.Pipe()
        client = mp.get_context("spawn").Process(
            target=client_main, args=([(LOOPBACK, server.port)], members, "p", child))
        client.start()
        try:
            assert parent.poll(120), "the client did not open its sessions"
            kind, opened = parent.recv()[:2]
            assert kind == "ready" and opened == members, (kind, opened)
            done = ((lambda s: s["presence_writes"] >= members) if track
                    else (lambda s: s["joined"] >= members))
            wait_until(lambda: done(server.stats()), 60, f"{members} joins")
            joined = sample(redis, server)
            result["join"] = delta(start, joined)

            time.sleep(args.idle)
            idle = sample(redis, server)
            result["idle"] = delta(joined, idle)

            answer = http_json(server.url(f"/_presence/read?n={args.reads}"), body={},
                               timeout=120)
            read = sample(redis, server)
            result["read"] = {**delta(idle, read), "entries": answer["entries"],
                              "wall": answer["wall"], "reads": args.reads,
                              "read_cpu": answer["cpu"]}

            parent.send("stop")
            assert parent.poll(60), "the client did not stop"
            parent.recv()
            gone = ((lambda s: s["presence_removes"] >= members and s["sessions"] == 0)
                    if track else (lambda s: s["sessions"] == 0))
            wait_until(lambda: gone(server.stats()), 60, f"{members} leaves")
            left = sample(redis, server)
            result["leave"] = delta(read, left)
            result["server_stats"] = left["server"]
            if left["server"].get("presence_failures"):
                print(f"presence failures in the server:\n{server.log.read_text()[-3000:]}",
                      file=sys.stderr)
        finally:
            client.join(timeout=10)
            if client.is_alive():
                client.kill()
    finally:
        server.stop()
    return result


def per(value: float, count: int, scale: float = 1.0) -> float:
    return value / count * scale if count else 0.0


def report(args: argparse.Namespace, runs: dict[str, dict[str, Any]]) -> str:
    n = args.members
    track, base = runs["track"], runs["baseline"]
    lines = [f"presence: {n} members, TTL {args.ttl} s, idle {args.idle} s, "
             f"{args.reads} reads{', watched' if args.watch else ''}", ""]
    header = (f"{'per member':<12} {'':<9} {'EVALSHA':>8} {'commands':>9} "
              f"{'Redis CPU':>10} {'server CPU':>11}")
    lines += [header, "-" * len(header)]
    for phase in ("join", "leave"):
        for label, data in (("tracked", track[phase]), ("baseline", base[phase])):
            lines.append(f"{phase:<12} {label:<9} {per(data['round_trips'], n):>8.2f} "
                         f"{per(data['commands'], n):>9.2f} "
                         f"{per(data['redis_cpu'], n, 1e6):>8.0f}us "
                         f"{per(data['server_cpu'], n, 1e6):>9.0f}us")
        t, b = track[phase], base[phase]
        lines.append(f"{phase:<12} {'presence':<9} "
                     f"{per(t['round_trips'] - b['round_trips'], n):>8.2f} "
                     f"{per(t['commands'] - b['commands'], n):>9.2f} "
                     f"{per(t['redis_cpu'] - b['redis_cpu'], n, 1e6):>8.0f}us "
                     f"{per(t['server_cpu'] - b['server_cpu'], n, 1e6):>9.0f}us")
    lines.append("")
    idle, base_idle = track["idle"], base["idle"]
    seconds = max(idle["seconds"], 1e-9)
    base_seconds = max(base_idle["seconds"], 1e-9)
    lines.append(f"idle with {n} members, per second: "
                 f"{idle['round_trips'] / seconds:.2f} EVALSHA, "
                 f"{idle['commands'] / seconds:.1f} commands, "
                 f"Redis CPU {idle['redis_cpu'] / seconds * 1e3:.2f} ms "
                 f"(baseline {base_idle['redis_cpu'] / base_seconds * 1e3:.2f} ms), "
                 f"server CPU {idle['server_cpu'] / seconds * 1e3:.2f} ms "
                 f"(baseline {base_idle['server_cpu'] / base_seconds * 1e3:.2f} ms); "
                 f"{', '.join(f'{k} {v}' for k, v in sorted(idle['calls'].items()))}")
    read = track["read"]
    reads = read["reads"]
    scale = 1000 / max(read["entries"], 1)
    lines.append(f"presence() of {read['entries']} entries, per read: "
                 f"wall {read['wall'] / reads * 1e3:.2f} ms, "
                 f"server CPU {read['read_cpu'] / reads * 1e3:.2f} ms, "
                 f"Redis CPU {per(read['redis_cpu'], reads, 1e6):.0f} us, "
                 f"{per(read['commands'], reads):.0f} commands"
                 f"  -> per 1000 entries: server CPU "
                 f"{read['read_cpu'] / reads * 1e3 * scale:.2f} ms, "
                 f"Redis CPU {per(read['redis_cpu'], reads, 1e6) * scale:.0f} us")
    lines.append(f"per 1000 members: join+leave server CPU "
                 f"{(track['join']['server_cpu'] + track['leave']['server_cpu'] - base['join']['server_cpu'] - base['leave']['server_cpu']) / n * 1000:.3f} s, "  # noqa: E501
                 f"Redis CPU {(track['join']['redis_cpu'] + track['leave']['redis_cpu'] - base['join']['redis_cpu'] - base['leave']['redis_cpu']) / n * 1000:.3f} s")  # noqa: E501
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds with every member")
    parser.add_argument("--reads", type=int, default=50, help="presence() reads to time")
    parser.add_argument("--ttl", type=float, default=5.0, help="QUARTDASH_PRESENCE_TTL")
    parser.add_argument("--watch", action="store_true",
                        help="the server also iterates presence_events() (sweeps, events)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qd-presence-") as tmp:
        workdir = Path(tmp)
        redis = Redis(workdir)
        try:
            runs = {"baseline": run(args, redis, workdir, track=False),
                    "track": run(args, redis, workdir, track=True)}
        finally:
            redis.stop()
    text = report(args, runs)
    print(text)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"presence-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"args": vars(args), "runs": runs, "report": text,
                                "python": sys.version, "machine": platform.platform(),
                                "cpus": os.cpu_count()}, indent=2))
    print(f"\nraw numbers: {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
