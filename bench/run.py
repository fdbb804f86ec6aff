#!/usr/bin/env python
"""One command for the side-by-side benchmark (see bench/README.md).

    .venv/bin/python bench/run.py [--quick] [--scenarios a,b,c,d] [--runs 3]
    .venv/bin/python bench/run.py --scenario slow [--quick]
    .venv/bin/python bench/run.py --servers hypercorn,uvicorn,granian [...]

For every measurement it starts one server in its own process group on a free
127.0.0.1 port, waits until it answers, samples the server's process tree
(CPU time, RSS) around the load generator's measuring window, runs
bench/loadgen.py in a separate process group, then stops the server.  Every
wait is bounded; servers and load generators are always killed (process
groups) on the way out.

Scenarios:
  a     N sessions x BENCH_HZ pushes (default 10 Hz) for N in --sizes
  b     one session, get_prop round trips (echo callback, K per request)
  c     HTTP callback requests per second (POST /_dash-update-component)
  d     10,000 connected sessions whose persistent callback sleeps: RSS, idle CPU
  slow  one client reading 10 frames/s from a 1000 Hz producer (60 s)
  scale 50,000 idle sessions on one server process (--scale-sessions; quick:
        2,000), over several loopback source addresses: every persistent
        callback started once, idle CPU, RSS per session, then all closed and
        the server back to its baseline (sessions, callbacks, tasks, fds)

Contenders (bench/apps/):
  quartdash     quartdash_app:asgi       hypercorn, 1 worker
  raw           raw_quart_app:asgi       hypercorn, 1 worker (bare Quart websocket)
  dash-quart    dash_quart_app:asgi      hypercorn, 1 worker (Dash 4.4.1 backend="quart")
  dash-fastapi  dash_fastapi_app:asgi    uvicorn[standard] (Dash 4.4.1 backend="fastapi")
  dash-flask    dash_flask_app:wsgi      gunicorn, 1 worker, gthread x 8 (scenario c only)
A contender whose app module does not import is skipped, with the reason.

--servers: the server as a dimension. For each server listed besides
hypercorn, quartdash and raw run on it too, as ``quartdash@uvicorn``,
``raw@granian``... (1 worker each: ``uvicorn`` with uvicorn[standard],
``granian --interface asgi``; both use uvloop when it is installed,
hypercorn the asyncio loop). Their qd/x ratios compare with quartdash on the
same server; quartdash@server's with quartdash on hypercorn.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import queue
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import wrk
from loadgen import http_body

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
RESULTS = BENCH / "results"
PY = sys.executable

QD = "quartdash"
CONTENDERS: dict[str, dict[str, str]] = {
    QD: {"module": "quartdash_app", "attr": "asgi", "server": "hypercorn"},
    "raw": {"module": "raw_quart_app", "attr": "asgi", "server": "hypercorn"},
    "dash-quart": {"module": "dash_quart_app", "attr": "asgi", "server": "hypercorn"},
    "dash-fastapi": {"module": "dash_fastapi_app", "attr": "asgi", "server": "uvicorn"},
    "dash-flask": {"module": "dash_flask_app", "attr": "wsgi", "server": "gunicorn"},
}
WS_CONTENDERS = [QD, "raw", "dash-quart", "dash-fastapi"]
SCENARIO_CONTENDERS = {
    "a": WS_CONTENDERS,
    "b": WS_CONTENDERS,
    "c": [QD, "raw", "dash-quart", "dash-fastapi", "dash-flask"],
    "cfig": [QD, "raw", "dash-quart", "dash-fastapi", "dash-flask"],
    "d": WS_CONTENDERS,
    "slow": WS_CONTENDERS,
    "scale": [QD],  # quartdash's own sessions: its /_bench/stats counts them
}
OTHERS = ["raw", "dash-quart", "dash-fastapi", "dash-flask"]
SERVERS = ("hypercorn", "uvicorn", "granian")
# The HTTP scenarios and the callback output each one posts.
HTTP_SCENARIOS = {"c": "http-out.children", "cfig": "fig.figure"}

ON_EVERY_SERVER = [QD, "raw"]  # the contenders --servers runs on each server


def add_servers(servers: list[str]) -> None:
    """Register ``quartdash@server`` and ``raw@server`` for each server besides
    hypercorn, each right after its hypercorn row in every scenario."""
    for server in servers:
        if server not in SERVERS:
            raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")
        if server == "hypercorn":
            continue
        for base in ON_EVERY_SERVER:
            name = f"{base}@{server}"
            if name in CONTENDERS:
                continue
            CONTENDERS[name] = {**CONTENDERS[base], "server": server}
            for names in SCENARIO_CONTENDERS.values():
                if base in names and name not in names:  # lists may be shared
                    at = names.index(base) + 1
                    while at < len(names) and names[at].startswith(base + "@"):
                        at += 1
                    names.insert(at, name)


def add_baseline(spec: str) -> str:
    """Register ``quartdash-<label>``: quartdash as another checkout has it
    (``DIR`` or ``DIR:label``; e.g. a git worktree of an older commit), on
    hypercorn, in every scenario right after quartdash, so one run compares
    before and after."""
    path, _, label = spec.partition(":")
    root = Path(path).resolve()
    if not (root / "quartdash").is_dir() or not (root / "bench" / "apps").is_dir():
        raise ValueError(f"--baseline {path}: not a quartdash checkout with bench/apps")
    if not label:
        label = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True, check=False).stdout.strip()
    name = f"{QD}-{label or 'baseline'}"
    CONTENDERS[name] = {**CONTENDERS[QD], "root": str(root)}
    for names in SCENARIO_CONTENDERS.values():
        if QD in names and name not in names:
            names.insert(names.index(QD) + 1, name)
    return name


def reference(name: str) -> str:
    """The row a contender's qd/x ratios compare with: quartdash on the same server."""
    base, _, server = name.partition("@")
    if server and base != QD:
        return f"{QD}@{server}"
    return QD


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def raise_nofile(want: int = 0) -> int:
    """Raise this process's RLIMIT_NOFILE (servers and load generators inherit
    it): the soft limit to the hard one, and the hard one to ``want`` if that is
    more (root with CAP_SYS_RESOURCE only). Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and want > hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def apps_dir(name: str | None = None) -> Path:
    """Where a contender's app module lives: bench/apps of its checkout."""
    root = CONTENDERS[name].get("root") if name else None
    return Path(root) / "bench" / "apps" if root else APPS


def server_env(extra: dict[str, str], name: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # A --baseline contender imports its own checkout's quartdash, ahead of ours.
    root = CONTENDERS[name].get("root") if name else None
    env["PYTHONPATH"] = os.pathsep.join(
        [str(apps_dir(name)), str(root or ROOT)]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def server_cmd(name: str, port: int, backlog: int = 4096, conns: int = 0) -> list[str]:
    """The command line of a contender's server. ``backlog``: the listen
    backlog (the kernel caps it at net.core.somaxconn); ``conns``: connections
    it must hold at once (granian: its ``--backpressure``, by default
    backlog/workers, bounds open WebSocket connections too)."""
    c = CONTENDERS[name]
    target = f"{c['module']}:{c['attr']}"
    bl = str(backlog)
    if c["server"] == "hypercorn":
        return [PY, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                "--backlog", bl, "--graceful-timeout", "1", target]  # fmt: skip
    if c["server"] == "uvicorn":
        return [PY, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                "--backlog", bl, "--log-level", "warning", "--no-access-log",
                "--timeout-graceful-shutdown", "1", target]  # fmt: skip
    if c["server"] == "granian":
        return [PY, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--backlog", bl,
                *(["--backpressure", str(conns)] if conns > backlog else []),
                "--log-level", "warning", target]  # fmt: skip
    if c["server"] == "gunicorn":
        return [PY, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                "--worker-class", "gthread", "--threads", "8", "--backlog", "4096",
                "--no-control-socket", "--graceful-timeout", "1", target]  # fmt: skip
    raise ValueError(c["server"])


_import_cache: dict[str, str | None] = {}


def import_problem(name: str) -> str | None:
    """None if the contender's app module imports, else why not."""
    if name in _import_cache:
        return _import_cache[name]
    mod = CONTENDERS[name]["module"]
    server = CONTENDERS[name]["server"]
    try:
        p = subprocess.run(
            [PY, "-c", f"import {mod}, {server}"],
            cwd=apps_dir(name),
            env=server_env({"BENCH_HZ": "0"}, name),
            capture_output=True,
            text=True,
            timeout=120,
        )
        err = None
        if p.returncode != 0:
            lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
            err = lines[-1] if lines else f"exit {p.returncode}"
    except subprocess.TimeoutExpired:
        err = "import timed out"
    _import_cache[name] = err
    return err


def kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stray children of a dead leader
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def sample(pid: int) -> dict[str, float]:
    cpu = rss = 0.0
    n = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            cpu += t.user + t.system
            rss += p.memory_info().rss
            n += 1
    st = psutil.cpu_times()
    # busy CPU of the whole machine (guest time is already inside user; steal is not ours)
    busy = st.user + st.nice + st.system + getattr(st, "irq", 0.0) + getattr(st, "softirq", 0.0)
    return {
        "cpu_s": cpu,
        "rss_mb": rss / 2**20,
        "procs": n,
        "time": time.time(),
        "sys_busy_s": busy,
    }


def wait_quiet(max_wait: float, below_pct: float) -> float:
    """Wait (at most ``max_wait`` s) until the machine's other load is below
    ``below_pct`` % of all CPUs; return the last reading.  Benchmarks on a
    shared 2-core machine are only as good as its quiet moments."""
    deadline = time.monotonic() + max_wait
    busy = psutil.cpu_percent(interval=1.0)
    while busy > below_pct and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0)
    return busy


def quietest(once: Callable[[], dict[str, Any]], args: argparse.Namespace,
             label: Callable[[], str]) -> dict[str, Any]:
    """One measurement (``once()``, which sets ``other_cpu_pct``), after waiting
    for a quiet machine (``args.quiet_wait``, ``args.quiet_below``); redone at
    most ``args.retries`` times while other processes used more than
    ``args.max_other`` % of a core in its window. Returns the quietest try."""
    best: dict[str, Any] | None = None
    for attempt in range(1 + max(0, args.retries)):
        busy = wait_quiet(args.quiet_wait, args.quiet_below)
        log(f"{label()} (machine busy {busy:.0f}%)" + (f" retry {attempt}" if attempt else ""))
        try:
            m = once()
        except Exception as e:
            m = {"error": repr(e)}
        m["busy_before_pct"] = busy
        m["attempt"] = attempt
        other = m.setdefault("other_cpu_pct", None)
        if best is None or (other is not None and other < (best.get("other_cpu_pct") or 1e9)):
            best = m
        if other is None or args.max_other is None or other <= args.max_other:
            break
        log(f"    other processes used {other:.0f}% of a core in the window: noisy")
    assert best is not None
    return best


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class Server:
    def __init__(self, name: str, env: dict[str, str], logdir: Path, tag: str,
                 backlog: int = 4096, conns: int = 0) -> None:
        self.name = name
        self.backlog = backlog
        self.conns = conns
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logfile = logdir / f"{tag}-{name}.log"
        self.env = server_env(env, name)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self._log = open(self.logfile, "w")
        self.proc = subprocess.Popen(
            server_cmd(self.name, self.port, self.backlog, self.conns),
            cwd=apps_dir(self.name),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited at start, see {self.logfile}")
                with contextlib.suppress(OSError, ValueError):
                    get_json(self.url + "/_bench/stats", timeout=2)
                    time.sleep(0.5)  # let it settle
                    return self
                time.sleep(0.2)
            raise RuntimeError(f"{self.name} not ready in 60 s, see {self.logfile}")
        except BaseException:
            self.__exit__()  # __exit__ does not run when __enter__ raises
            raise

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            kill_group(self.proc)
        self._log.close()

    def stats(self) -> dict[str, Any]:
        try:
            return get_json(self.url + "/_bench/stats")
        except Exception as e:
            return {"error": repr(e)}


def run_loadgen(
    server: Server, lg_args: list[str], timeout: float, rss_every: float = 0.0,
    stats_before_window: bool = False,
) -> dict[str, Any]:
    """Run loadgen against ``server``; sample the server at the window's edges.
    ``stats_before_window``: read ``/_bench/stats`` before the window, not at
    its start (with many sessions the read itself costs CPU)."""
    cmd = [PY, str(BENCH / "loadgen.py"), "--url", server.url, *lg_args]
    with open(server.logfile.with_suffix(".loadgen.log"), "w") as errlog:
        lg = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=errlog,
            text=True,
            start_new_session=True,
        )
    lines: queue.Queue = queue.Queue()

    def reader() -> None:
        assert lg.stdout is not None
        for line in lg.stdout:
            lines.put(line)
        lines.put(None)

    reader_thread = threading.Thread(target=reader, daemon=True)
    reader_thread.start()
    pid = server.proc.pid  # type: ignore[union-attr]
    out: dict[str, Any] = {"baseline": sample(pid), "rss_series": []}
    deadline = time.monotonic() + timeout
    next_rss = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if rss_every and time.monotonic() >= next_rss:
                s = sample(pid)
                out["rss_series"].append((s["time"], s["rss_mb"]))
                next_rss += rss_every
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "connected":
                out["connected"] = ev
            elif ev.get("event") == "window":
                t0, t1 = ev["t0"], ev["t1"]
                if stats_before_window:
                    out["stats0"] = server.stats()
                _sleep_until(t0, deadline, rss_every, pid, out)
                out["s0"] = sample(pid)
                if not stats_before_window:
                    out["stats0"] = server.stats()
                _sleep_until(t1, deadline, rss_every, pid, out)
                out["s1"] = sample(pid)
                out["stats1"] = server.stats()
                next_rss = time.monotonic() + rss_every
            elif ev.get("event") == "closed":
                out["closed"] = ev
            elif ev.get("event") == "result":
                out["result"] = ev
                break
        else:
            out["error"] = "load generator timed out"
    finally:
        kill_group(lg, grace=10)
        reader_thread.join(timeout=5)
        if lg.stdout is not None and not reader_thread.is_alive():
            lg.stdout.close()
    if "result" not in out and "error" not in out:
        out["error"] = f"load generator exited {lg.returncode} without a result"
    return out


def _sleep_until(t: float, deadline: float, rss_every: float, pid: int, out: dict) -> None:
    while time.time() < t and time.monotonic() < deadline:
        time.sleep(min(0.05, max(0.0, t - time.time())))
        if rss_every and out["rss_series"] and time.time() - out["rss_series"][-1][0] >= rss_every:
            s = sample(pid)
            out["rss_series"].append((s["time"], s["rss_mb"]))


# --------------------------------------------------------------------------
# scale: N idle sessions on one server process, then all closed

SCALE_IDLE_CPU_PCT = 5.0  # the target: idle server CPU, % of one core
SCALE_TASK_SLACK = 5  # tasks / fds the server may hold after the close beyond its baseline


def scale_once(name: str, n: int, sc: dict[str, Any], logdir: Path, tag: str) -> dict[str, Any]:
    """Start ``name``'s server, open ``n`` idle sessions from ``sc["sources"]``
    loopback addresses, sample the server over an idle window, close every
    session and wait (``sc["settle"]`` s at most) until the server is back to
    its pre-load sessions, persistent callbacks, tasks and fds."""
    env = {
        "BENCH_HZ": "0",  # the persistent callback only sleeps...
        "BENCH_IDLE_SLEEP": str(sc["idle_sleep"]),  # ...waking every this many s
        "BENCH_INACTIVITY_TIMEOUT": str(sc["inactivity_ms"]),
    }
    with Server(name, env, logdir, tag, backlog=sc["backlog"], conns=n + 1000) as srv:
        pid = srv.proc.pid  # type: ignore[union-attr]
        time.sleep(1.0)
        before = {**sample(pid), "fds": fds(pid), "stats": srv.stats()}
        lg = ["--scenario", "push", "--sessions", str(n), "--procs", str(sc["procs"]),
              "--sources", str(sc["sources"]), "--source-base", sc["source_base"],
              "--per-source", str(sc["per_source"]), "--ramp", str(sc["ramp"]),
              "--ramp-timeout", str(sc["ramp_timeout"]), "--heartbeat", str(sc["heartbeat"]),
              "--warmup", str(sc["warmup"]), "--duration", str(sc["duration"]),
              "--linger", "3", "--report-close", "--client", "raw"]  # fmt: skip
        timeout = sc["ramp_timeout"] + sc["warmup"] + sc["duration"] + 300
        m = run_loadgen(srv, lg, timeout, stats_before_window=True)
        m["before"] = before
        # the loadgen has closed every session when run_loadgen returns
        t_closed = (m.get("closed") or {}).get("t1") or time.time()
        deadline = time.monotonic() + sc["settle"]
        base_tasks = before["stats"].get("tasks", 0)
        polls = []
        st: dict[str, Any] = {}
        done = False
        while True:
            st = srv.stats()
            polls.append((round(time.time() - t_closed, 2), st.get("sessions"), st.get("active"),
                          st.get("tasks")))
            done = (st.get("sessions") == 0 and st.get("active") == 0
                    and (st.get("tasks") or 0) <= base_tasks + SCALE_TASK_SLACK)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        m["drained_s"] = time.time() - t_closed if done else None
        time.sleep(2.0)  # let the last closes' garbage go
        m["after"] = {**sample(pid), "fds": fds(pid), "stats": srv.stats(), "polls": polls[-20:]}
    return m


def fds(pid: int) -> int | None:
    """Open file descriptors of the server's process tree."""
    total = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.num_fds()
    return total or None


def scale_metrics(m: dict[str, Any], n: int) -> dict[str, Any]:
    """What the scale run shows, and the checks: connected, started once each,
    idle CPU, back to baseline."""
    r = m.get("result") or {}
    out: dict[str, Any] = {"wanted": n}
    if m.get("error"):
        out["error"] = m["error"]
    if "s0" not in m or "s1" not in m or "before" not in m:
        out.setdefault("error", "no window")
        return out
    before, after = m["before"], m.get("after") or {}
    st0, st1 = m.get("stats0") or {}, m.get("stats1") or {}
    b_st, a_st = before.get("stats") or {}, after.get("stats") or {}
    dur = r.get("duration") or (m["s1"]["time"] - m["s0"]["time"])
    cpu = m["s1"]["cpu_s"] - m["s0"]["cpu_s"]
    connected = r.get("sessions", 0)
    started = (st1.get("started") or 0) - (b_st.get("started") or 0)
    runs = st1.get("runs_per_session") or {}
    rss_per = ((m["s1"]["rss_mb"] - before["rss_mb"]) * 1024 / connected) if connected else None
    closed = m.get("closed") or {}
    out.update(
        sessions=connected,
        failed=r.get("failed", 0),
        ramp_s=r.get("ramp_s"),
        lost_while_idle=r.get("closed", 0),
        close_samples=r.get("close_samples"),
        server_sessions=st1.get("sessions"),
        persistent_started=started,
        persistent_running=st1.get("active"),
        sessions_with_one_run=runs.get("1", 0),
        runs_per_session=runs,
        idle_cpu_pct=100.0 * cpu / dur,
        window_s=dur,
        heartbeats_per_s=None,
        rss_base_mb=before["rss_mb"],
        rss_mb=m["s1"]["rss_mb"],
        rss_kb_per_session=rss_per,
        tasks_base=b_st.get("tasks"),
        tasks=st0.get("tasks"),
        fds_base=before.get("fds"),
        closed_by_client=closed.get("closed"),
        close_s=(closed.get("t1") or 0) - (closed.get("t0") or 0) if closed.get("t0") else None,
        drained_s=m.get("drained_s"),
        after_sessions=a_st.get("sessions"),
        after_running=a_st.get("active"),
        after_tasks=a_st.get("tasks"),
        after_fds=after.get("fds"),
        after_rss_mb=after.get("rss_mb"),
        lg_cpu_pct=r.get("loadgen_cpu_pct"),
        other_cpu_pct=other_cpu_pct(m),
        attempt=m.get("attempt"),
    )
    out["heartbeats_per_s"] = (r.get("heartbeats") or 0) / dur if dur else None
    tasks_ok = (out["after_tasks"] is not None and out["tasks_base"] is not None
                and out["after_tasks"] <= out["tasks_base"] + SCALE_TASK_SLACK)
    fds_ok = (out["after_fds"] is not None and out["fds_base"] is not None
              and out["after_fds"] <= out["fds_base"] + SCALE_TASK_SLACK)
    out["checks"] = {
        "all connected": connected == n and not out["failed"],
        "none lost while idle": not out["lost_while_idle"],
        "server holds every session": st1.get("sessions") == n,
        "every persistent callback started exactly once": started == n
        and runs.get("1", 0) == n and st1.get("active") == n,
        f"idle CPU <= {SCALE_IDLE_CPU_PCT:g}% of a core": out["idle_cpu_pct"]
        <= SCALE_IDLE_CPU_PCT,
        "after close: 0 sessions, 0 callbacks": a_st.get("sessions") == 0
        and a_st.get("active") == 0,
        f"after close: tasks, fds <= baseline + {SCALE_TASK_SLACK}": tasks_ok and fds_ok,
    }
    out["ok"] = all(out["checks"].values())
    return out


def render_scale(res: dict[str, dict[str, Any]], n: int, sc: dict[str, Any]) -> str:
    head = ["contender", "connected", "ramp s", "started", "running", "1 run/sess", "idle cpu%",
            "hb/s", "RSS MB", "KB/sess", "tasks", "| closed", "drain s", "sessions", "running",
            "tasks (base)", "fds (base)", "RSS MB", "ok"]  # fmt: skip
    rows: list[list[Any]] = []
    notes: list[str] = []
    for name, v in res.items():
        if "skipped" in v:
            rows.append([name, "skipped"])
            notes.append(f"  {name}: skipped: {v['skipped']}")
            continue
        if "checks" not in v:
            rows.append([name, "failed"])
            notes.append(f"  {name}: failed: {v.get('error')}")
            continue
        rows.append([
            name, fmt(v["sessions"]), fmt(v["ramp_s"], 1), fmt(v["persistent_started"]),
            fmt(v["persistent_running"]), fmt(v["sessions_with_one_run"]),
            fmt(v["idle_cpu_pct"], 2), fmt(v["heartbeats_per_s"], 0), fmt(v["rss_mb"], 0),
            fmt(v["rss_kb_per_session"], 1), fmt(v["tasks"]), "| " + fmt(v["closed_by_client"]),
            fmt(v["drained_s"], 1), fmt(v["after_sessions"]), fmt(v["after_running"]),
            f"{fmt(v['after_tasks'])} ({fmt(v['tasks_base'])})",
            f"{fmt(v['after_fds'])} ({fmt(v['fds_base'])})", fmt(v["after_rss_mb"], 0),
            fmt(v["ok"]),
        ])  # fmt: skip
        failed = [c for c, ok in v["checks"].items() if not ok]
        if failed:
            notes.append(f"  {name}: FAILED: {'; '.join(failed)}")
    title = (f"(scale) {n:,} idle sessions on one server process, {sc['sources']} source "
             f"addresses from {sc['source_base']}, heartbeat every {sc['heartbeat']:g} s, "
             f"callbacks waking every {sc['idle_sleep']:g} s; idle window {sc['duration']:g} s "
             "(left of |: connected; right: after every session closed)")
    return layout(title, head, rows) + ("\n" + "\n".join(notes) if notes else "")


# --------------------------------------------------------------------------
# metrics per scenario


def other_cpu_pct(m: dict[str, Any]) -> float | None:
    """CPU used by everything but the server and the load generator during the
    window, in % of one core (the benchmark shares its machine)."""
    r = m.get("result") or {}
    if "s0" not in m or "s1" not in m:
        return None
    dur = r.get("duration") or (m["s1"]["time"] - m["s0"]["time"])
    cpu = m["s1"]["cpu_s"] - m["s0"]["cpu_s"]
    busy = m["s1"]["sys_busy_s"] - m["s0"]["sys_busy_s"]
    return 100.0 * (busy - cpu - (r.get("loadgen_cpu_s") or 0.0)) / dur


def metrics(scn: str, m: dict[str, Any], hz: float, sessions: int) -> dict[str, Any]:
    r = m.get("result") or {}
    if "s0" not in m or "s1" not in m:
        return {"error": m.get("error", "no window"), "result": r}
    dur = r.get("duration") or (m["s1"]["time"] - m["s0"]["time"])
    cpu = m["s1"]["cpu_s"] - m["s0"]["cpu_s"]
    base = m["baseline"]["rss_mb"]
    n = r.get("sessions", 0)
    out: dict[str, Any] = {
        "sessions": n,
        "failed": r.get("failed", 0),
        "closed": r.get("closed", 0),
        "errors": r.get("errors", 0),
        "server_cpu_pct": 100.0 * cpu / dur,
        "server_rss_mb": m["s1"]["rss_mb"],
        "server_rss_base_mb": base,
        "rss_kb_per_session": (m["s1"]["rss_mb"] - base) * 1024 / n if n else None,
        "lg_cpu_pct": r.get("loadgen_cpu_pct"),
        "lg_cpu_pct_max_proc": r.get("loadgen_cpu_pct_max_proc"),
        "lg_lag_p99_ms": r.get("loadgen_lag_p99_ms"),
        "lg_procs": r.get("procs"),
        "other_cpu_pct": other_cpu_pct(m),
        "attempt": m.get("attempt"),
        "busy_before_pct": m.get("busy_before_pct"),
    }
    s0, s1 = m.get("stats0", {}), m.get("stats1", {})
    if "produced" in s0 and "produced" in s1:
        out["produced_per_s"] = (s1["produced"] - s0["produced"]) / dur
        out["server_active"] = s1.get("active")
    if scn == "a":
        delivered = r.get("delivered_per_s", 0.0)
        demanded = n * hz
        out.update(
            demanded_per_s=demanded,
            delivered_per_s=delivered,
            delivered_pct=100.0 * delivered / demanded if demanded else None,
            p50_ms=r.get("lat_p50_ms"),
            p99_ms=r.get("lat_p99_ms"),
            skipped=r.get("skipped"),
            cpu_ms_per_1k=cpu * 1e6 / (delivered * dur) if delivered else None,
        )
    elif scn == "b":
        rate = r.get("getprops_per_s", 0.0)
        out.update(
            per_s=rate,
            p50_ms=r.get("getprop_p50_ms"),
            p99_ms=r.get("getprop_p99_ms"),
            callback_p50_ms=r.get("callback_p50_ms"),
            cpu_ms_per_1k=cpu * 1e6 / (rate * dur) if rate else None,
        )
    elif scn in HTTP_SCENARIOS:
        rate = r.get("http_per_s", 0.0)
        out.update(
            per_s=rate,
            http_bad=r.get("http_bad"),
            p50_ms=r.get("http_p50_ms"),
            p99_ms=r.get("http_p99_ms"),
            cpu_ms_per_1k=cpu * 1e6 / (rate * dur) if rate else None,
        )
    elif scn == "d":
        out.update(idle_cpu_pct=100.0 * cpu / dur, wanted=sessions)
    return out


def growth(series: list[tuple[float, float]]) -> float | None:
    if len(series) < 3:
        return None
    t0 = series[0][0]
    steady = [(t, v) for t, v in series if t - t0 >= 4.5]
    if len(steady) < 2 or steady[-1][0] <= steady[0][0]:
        return None
    return (steady[-1][1] - steady[0][1]) * 60 / (steady[-1][0] - steady[0][0])


def slow_metrics(m: dict[str, Any], duration: float) -> dict[str, Any]:
    r = m.get("result") or {}
    slow = r.get("slow") or {}
    series = m.get("rss_series", [])
    st = r.get("server_stats") or {}
    rss = [v for _, v in series]
    out: dict[str, Any] = {"error": m.get("error")} if m.get("error") else {}
    final = (slow.get("final_value") or {}).get("seq")
    out.update(
        rss_series=[(round(t - series[0][0], 1), round(v, 2)) for t, v in series] if series else [],
        rss_start_mb=rss[0] if rss else None,
        rss_max_mb=max(rss) if rss else None,
        rss_end_mb=rss[-1] if rss else None,
        # steady-state growth: from the first sample >= 5 s in (start-up allocations
        # of the first seconds are not growth) to the last one
        rss_growth_mb_per_min=growth(series),
        produced=st.get("produced"),
        producer_last_seq=st.get("last_seq"),
        client_last_seq=final,
        last_matches=final is not None and final == st.get("last_seq"),
        frames_read_slow=slow.get("frames_read_slow"),
        age_p50_s=slow.get("age_p50_s"),
        age_max_s=slow.get("age_max_s"),
        slow_phase_last_seq=(slow.get("slow_last") or {}).get("seq"),
        drain_s=slow.get("drain_s"),
        client_closed=slow.get("closed"),
        close_info=slow.get("close_info"),
        lg_cpu_pct=r.get("loadgen_cpu_pct"),
    )
    return out


# --------------------------------------------------------------------------
# table


def fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}"
    return str(v)


def ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b


def median(vals: list[Any]) -> Any:
    xs = [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]
    return statistics.median(xs) if xs else None


COLUMNS = {
    "a": [
        ("demanded/s", "demanded_per_s", 0),
        ("produced/s", "produced_per_s", 0),
        ("delivered/s", "delivered_per_s", 0),
        ("deliv%", "delivered_pct", 1),
        ("p50 ms", "p50_ms", 1),
        ("p99 ms", "p99_ms", 1),
        ("srv ms/1k", "cpu_ms_per_1k", 1),
        ("srv cpu%", "server_cpu_pct", 0),
        ("KB/sess", "rss_kb_per_session", 1),
        ("lg cpu%", "lg_cpu_pct", 0),
        ("other%", "other_cpu_pct", 0),
    ],
    "b": [
        ("rt/s", "per_s", 0),
        ("p50 ms", "p50_ms", 2),
        ("p99 ms", "p99_ms", 2),
        ("srv ms/1k", "cpu_ms_per_1k", 1),
        ("srv cpu%", "server_cpu_pct", 0),
        ("lg cpu%", "lg_cpu_pct", 0),
        ("other%", "other_cpu_pct", 0),
    ],
    "c": [
        ("req/s", "per_s", 0),
        ("p50 ms", "p50_ms", 2),
        ("p99 ms", "p99_ms", 2),
        ("srv ms/1k", "cpu_ms_per_1k", 1),
        ("srv cpu%", "server_cpu_pct", 0),
        ("lg cpu%", "lg_cpu_pct", 0),
        ("other%", "other_cpu_pct", 0),
    ],
    "d": [
        ("connected", "sessions", 0),
        ("cb running", "server_active", 0),
        ("RSS MB", "server_rss_mb", 0),
        ("KB/sess", "rss_kb_per_session", 1),
        ("idle cpu%", "idle_cpu_pct", 1),
        ("lg cpu%", "lg_cpu_pct", 0),
        ("other%", "other_cpu_pct", 0),
    ],
}
COLUMNS["cfig"] = COLUMNS["c"]
# ratio columns (quartdash / this row): which metrics
RATIOS = {
    "a": [
        ("deliv", "delivered_per_s"),
        ("p50", "p50_ms"),
        ("ms/1k", "cpu_ms_per_1k"),
        ("KB/sess", "rss_kb_per_session"),
    ],
    "b": [("rt/s", "per_s"), ("p50", "p50_ms"), ("ms/1k", "cpu_ms_per_1k")],
    "c": [("req/s", "per_s"), ("p50", "p50_ms"), ("ms/1k", "cpu_ms_per_1k")],
    "d": [("KB/sess", "rss_kb_per_session"), ("idle cpu", "idle_cpu_pct")],
}
RATIOS["cfig"] = RATIOS["c"]
TITLES = {
    "a": "(a) N sessions x {hz:g} Hz pushes from a persistent callback",
    "b": "(b) one session, get_prop round trips ({k} per callback request)",
    "c": "(c) HTTP callback requests/s (POST /_dash-update-component, {conns} keep-alive conns)",
    "cfig": "(cfig) HTTP callback returning a 1,000-point figure, requests/s ({conns} conns)",
    "d": "(d) {n} connected sessions, persistent callback sleeping",
}


def summarize(scn: str, runs: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Medians over runs per contender; ratios quartdash/other per run, then median."""
    names = sorted({n for r in runs for n in r}, key=lambda n: list(CONTENDERS).index(n))
    med: dict[str, dict[str, Any]] = {}
    for n in names:
        rows = [r[n] for r in runs if n in r and "error" not in r[n]]
        keys = {k for row in rows for k in row}
        med[n] = {k: median([row.get(k) for row in rows]) for k in keys}
        med[n]["runs_ok"] = len(rows)
        errs = [r[n]["error"] for r in runs if n in r and "error" in r[n]]
        if errs:
            med[n]["errors_seen"] = errs[:3]
    rat: dict[str, dict[str, Any]] = {}
    for n in names:
        ref = reference(n)
        if n == ref:
            continue
        rat[n] = {}
        for _, key in RATIOS[scn]:
            per_run = [
                ratio(r[ref].get(key), r[n].get(key))
                for r in runs
                if ref in r and n in r and "error" not in r[ref] and "error" not in r[n]
            ]
            rat[n][key] = median(per_run)
    return {"median": med, "ratios": rat}


def render(scn: str, label: str, summary: dict[str, Any]) -> str:
    cols = COLUMNS[scn]
    rcols = RATIOS[scn]
    head = ["contender", *[c[0] for c in cols], *[f"qd/x {c[0]}" for c in rcols]]
    rows = []
    for n, vals in summary["median"].items():
        if "runs_ok" in vals and not vals["runs_ok"]:
            rows.append([n, "failed: " + "; ".join(map(str, vals.get("errors_seen", [])))[:80]])
            continue
        row = [n] + [fmt(vals.get(k), nd) for _, k, nd in cols]
        if n == reference(n):
            row += ["1.00"] * len(rcols)
        else:
            row += [fmt(summary["ratios"].get(n, {}).get(k), 2) for _, k in rcols]
        rows.append(row)
    return layout(label, head, rows)


def layout(label: str, head: list[str], rows: list[list[Any]]) -> str:
    """A text table: ``label``, then the header and rows in aligned columns
    (the first left-aligned, the others right-aligned; a row may be shorter)."""
    widths = [max(len(str(r[i])) for r in [head, *rows] if i < len(r)) for i in range(len(head))]
    lines = [label]
    lines.append(
        "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(head, widths, strict=True))
        )
    )
    for r in rows:
        lines.append(
            "  ".join(
                str(c).rjust(widths[i]) if i else str(c).ljust(widths[i]) for i, c in enumerate(r)
            )
        )
    return "\n".join(lines)


def render_slow(res: dict[str, dict[str, Any]], duration: float) -> str:
    head = ["contender", "produced", "read@10/s", "age p50 s", "age max s", "RSS start",
            "RSS max", "RSS end", "MB/min", "last==producer", "drain s"]  # fmt: skip
    rows = []
    for n, v in res.items():
        if "skipped" in v:
            rows.append([n, "skipped: " + v["skipped"][:90]])
            continue
        rows.append(
            [
                n,
                fmt(v.get("produced"), 0),
                fmt(v.get("frames_read_slow"), 0),
                fmt(v.get("age_p50_s"), 2),
                fmt(v.get("age_max_s"), 2),
                fmt(v.get("rss_start_mb"), 1),
                fmt(v.get("rss_max_mb"), 1),
                fmt(v.get("rss_end_mb"), 1),
                fmt(v.get("rss_growth_mb_per_min"), 2),
                f"{fmt(v.get('last_matches'))} "
                f"({v.get('client_last_seq')}/{v.get('producer_last_seq')})",
                fmt(v.get("drain_s"), 1),
            ]
        )
    return layout(f"(slow) 1000 Hz producer, client reading 10 frames/s for {duration:g} s",
                  head, rows)


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="quartdash side-by-side benchmark")
    ap.add_argument("--quick", action="store_true", help="short windows, small N, 1 run")
    ap.add_argument("--scenarios", default="a,b,c,d", help="comma list of a,b,c,d,slow,scale")
    ap.add_argument("--scenario", help="alias of --scenarios (e.g. --scenario slow)")
    ap.add_argument("--runs", type=int, default=None, help="runs per measurement (default 3)")
    ap.add_argument("--sizes", default=None, help="N for (a), default 100,1000,3000")
    ap.add_argument("--contenders", default=None, help="comma list (default: all that import)")
    ap.add_argument("--baseline", action="append", default=[],
                    help="DIR[:label]: also run quartdash from that checkout (before/after)")
    ap.add_argument("--servers", default="hypercorn",
                    help="comma list of hypercorn,uvicorn,granian: quartdash and raw on each")
    ap.add_argument("--hz", type=float, default=10.0, help="pushes per session per second (a)")
    ap.add_argument("--procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--idle-sessions", type=int, default=None, help="N for (d), default 10000")
    ap.add_argument("--getprop-k", type=int, default=100)
    ap.add_argument("--http-conns", type=int, default=16)
    ap.add_argument("--http-driver", choices=["wrk", "loadgen"], default="wrk",
                    help="HTTP load driver for c and cfig (wrk: installed if missing, as root)")
    ap.add_argument("--slow-duration", type=float, default=None, help="default 60 (quick 15)")
    ap.add_argument("--scale-sessions", type=int, default=None,
                    help="sessions for scale (default 50000, quick 2000)")
    ap.add_argument("--scale-sources", type=int, default=None,
                    help="loopback source addresses for scale (default: one per "
                    "--scale-per-source sessions, at least 2)")
    ap.add_argument("--scale-source-base", default="127.0.0.2")
    ap.add_argument("--scale-per-source", type=int, default=25_000,
                    help="most sessions per source address (ephemeral ports: "
                    "net.ipv4.ip_local_port_range)")
    ap.add_argument("--scale-ramp", type=int, default=500, help="connections opened at a time")
    ap.add_argument("--scale-idle-sleep", type=float, default=300.0,
                    help="s between an idle persistent callback's wake-ups (BENCH_IDLE_SLEEP)")
    ap.add_argument("--scale-heartbeat", type=float, default=30.0,
                    help="s between a session's heartbeats (quartdash's worker: 30)")
    ap.add_argument("--scale-settle", type=float, default=120.0,
                    help="max s for the server to get back to its baseline after the close")
    ap.add_argument("--client", choices=["raw", "websockets"], default="raw")
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="max s to wait for a quiet machine before each measurement (default 30, quick 0)",
    )
    ap.add_argument(
        "--max-other",
        type=float,
        default=None,
        help="redo a measurement whose window saw other processes use more than "
        "this %% of one core (default 25; quick: never)",
    )
    ap.add_argument("--retries", type=int, default=2, help="redos per measurement (--max-other)")
    ap.add_argument(
        "--quiet-below",
        type=float,
        default=15.0,
        help="'quiet' = other load below this %% of all CPUs",
    )
    args = ap.parse_args(argv)

    scenarios = [s.strip() for s in (args.scenario or args.scenarios).split(",") if s.strip()]
    for s in scenarios:
        if s not in SCENARIO_CONTENDERS:
            ap.error(f"unknown scenario {s!r}")
    q = args.quick
    runs = args.runs or (1 if q else 3)
    sizes = [int(x) for x in (args.sizes or ("100,1000" if q else "100,1000,3000")).split(",")]
    warmup = args.warmup if args.warmup is not None else (2.0 if q else 3.0)
    duration = args.duration if args.duration is not None else (4.0 if q else 10.0)
    idle_n = args.idle_sessions or (2000 if q else 10000)
    scale_n = args.scale_sessions or (2000 if q else 50000)
    slow_dur = args.slow_duration or (15.0 if q else 60.0)
    try:
        add_servers([x.strip() for x in args.servers.split(",") if x.strip()])
        for spec in args.baseline:
            add_baseline(spec)
    except ValueError as error:
        ap.error(str(error))
    wanted = args.contenders.split(",") if args.contenders else list(CONTENDERS)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if q else 30.0
    if args.max_other is None and not q:
        args.max_other = 25.0

    # scale: the server holds every session's socket (one worker process)
    nofile = raise_nofile(scale_n + 2000 if "scale" in scenarios else 0)
    out_path, logdir = result_paths(args.out)

    skipped: dict[str, str] = {}
    for n in wanted:
        why = import_problem(n)
        if why:
            skipped[n] = why
            log(f"skipping {n}: its app does not import: {why}")
    report: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "nofile": nofile,
            "versions": versions(),
        },
        "settings": {
            "runs": runs,
            "sizes": sizes,
            "warmup": warmup,
            "duration": duration,
            "hz": args.hz,
            "procs": args.procs,
            "idle_sessions": idle_n,
            "getprop_k": args.getprop_k,
            "http_conns": args.http_conns,
            "slow_duration": slow_dur,
            "scale_sessions": scale_n,
            "client": args.client,
            "quick": q,
            "quiet_wait": args.quiet_wait,
            "quiet_below": args.quiet_below,
            "max_other": args.max_other,
            "retries": args.retries,
            "servers": args.servers,
        },
        "skipped": skipped,
        "scenarios": {},
    }
    tables: list[str] = []
    common_lg = ["--procs", str(args.procs), "--client", args.client]
    t_start = time.monotonic()

    def contenders_for(scn: str) -> list[str]:
        return [n for n in SCENARIO_CONTENDERS[scn] if n in wanted and n not in skipped]

    def measure(scn: str, name: str, env: dict[str, str], lg: list[str], tag: str, timeout: float):
        def once() -> dict[str, Any]:
            with Server(name, env, logdir, tag) as srv:
                if scn in HTTP_SCENARIOS and args.http_driver == "wrk":
                    m = wrk.run(srv.url, http_body(HTTP_SCENARIOS[scn]), args.http_conns,
                                warmup, duration, sample, srv.proc.pid,  # type: ignore[union-attr]
                                srv.stats, timeout)
                else:
                    m = run_loadgen(srv, lg, timeout)
            m["other_cpu_pct"] = other_cpu_pct(m)
            return m

        return quietest(once, args, lambda: f"[{time.monotonic() - t_start:6.0f}s] {tag}: {name} ")

    try:
        for scn in scenarios:
            names = contenders_for(scn)
            if scn == "a":
                per_n = {}
                for n_sess in sizes:
                    runs_res = []
                    for run in range(runs):
                        row = {}
                        for name in names:
                            m = measure(
                                scn, name, {"BENCH_HZ": str(args.hz)},
                                [*common_lg, "--scenario", "push", "--sessions", str(n_sess),
                                 "--warmup", str(warmup), "--duration", str(duration)],
                                f"a-N{n_sess}-r{run}", timeout=warmup + duration + 400,
                            )  # fmt: skip
                            row[name] = metrics("a", m, args.hz, n_sess)
                            row[name]["raw"] = strip(m)
                        runs_res.append(row)
                    summ = summarize("a", runs_res)
                    per_n[str(n_sess)] = {"runs": runs_res, **summ}
                    tables.append(
                        render("a", TITLES["a"].format(hz=args.hz) + f", N = {n_sess}", summ)
                    )
                    print(tables[-1] + "\n", flush=True)
                report["scenarios"]["a"] = per_n
            elif scn in ("b", "c", "cfig", "d"):
                runs_res = []
                for run in range(runs):
                    row = {}
                    for name in names:
                        if scn == "b":
                            env = {"BENCH_HZ": "0"}
                            lg = [*common_lg, "--scenario", "getprop", "--getprop-k",
                                  str(args.getprop_k)]  # fmt: skip
                            n_sess = 1
                        elif scn in HTTP_SCENARIOS:
                            env = {"BENCH_HZ": "0"}
                            lg = [*common_lg, "--scenario", "http", "--http-conns",
                                  str(args.http_conns), "--http-output",
                                  HTTP_SCENARIOS[scn]]  # fmt: skip
                            n_sess = 0
                        else:
                            env = {"BENCH_HZ": "0"}
                            lg = [*common_lg, "--scenario", "push", "--sessions", str(idle_n)]
                            n_sess = idle_n
                        lg += ["--warmup", str(warmup), "--duration", str(duration)]
                        m = measure(
                            scn, name, env, lg, f"{scn}-r{run}", timeout=warmup + duration + 600
                        )
                        row[name] = metrics(scn, m, 0.0, n_sess)
                        row[name]["raw"] = strip(m)
                    runs_res.append(row)
                summ = summarize(scn, runs_res)
                report["scenarios"][scn] = {"runs": runs_res, **summ}
                title = TITLES[scn].format(k=args.getprop_k, conns=args.http_conns, n=idle_n)
                tables.append(render(scn, title, summ))
                print(tables[-1] + "\n", flush=True)
            elif scn == "slow":
                res: dict[str, dict[str, Any]] = {}
                for name in SCENARIO_CONTENDERS["slow"]:
                    if name not in wanted:
                        continue
                    if name in skipped:
                        res[name] = {"skipped": skipped[name]}
                        continue
                    log(f"[{time.monotonic() - t_start:6.0f}s] slow: {name}")
                    env = {"BENCH_HZ": "1000", "BENCH_STOP_AFTER": str(slow_dur)}
                    lg = ["--scenario", "slow", "--warmup", "0", "--duration", str(slow_dur)]
                    try:
                        with Server(name, env, logdir, "slow") as srv:
                            m = run_loadgen(srv, lg, slow_dur + 120, rss_every=5.0)
                    except Exception as e:
                        m = {"error": repr(e)}
                    res[name] = slow_metrics(m, slow_dur)
                    res[name]["raw"] = strip(m)
                report["scenarios"]["slow"] = res
                tables.append(render_slow(res, slow_dur))
                print(tables[-1] + "\n", flush=True)
            elif scn == "scale":
                sc = scale_settings(args, scale_n, nofile)
                report["settings"]["scale"] = sc
                res = {}
                for name in SCENARIO_CONTENDERS["scale"]:
                    if name not in wanted:
                        continue
                    if name in skipped:
                        res[name] = {"skipped": skipped[name]}
                        continue
                    if sc.get("error"):
                        res[name] = {"skipped": sc["error"]}
                        continue

                    def once(name: str = name, sc: dict[str, Any] = sc) -> dict[str, Any]:
                        m = scale_once(name, scale_n, sc, logdir, "scale")
                        m["other_cpu_pct"] = other_cpu_pct(m)
                        return m

                    m = quietest(once, args, lambda name=name:
                                 f"[{time.monotonic() - t_start:6.0f}s] scale: {name} ")
                    res[name] = scale_metrics(m, scale_n)
                    res[name]["raw"] = strip(m)
                report["scenarios"]["scale"] = res
                tables.append(render_scale(res, scale_n, sc))
                print(tables[-1] + "\n", flush=True)
    finally:
        save(report, tables, out_path, logdir, t_start)
    print_tables(
        f"quartdash bench {report['date']}  runs={runs}  lg procs={args.procs}  "
        f"window={duration:g}s after {warmup:g}s warm-up  "
        "(medians over runs; qd/x = quartdash / this row, taken per run)",
        skipped, tables,
    )
    return 0


def scale_settings(args: argparse.Namespace, n: int, nofile: int) -> dict[str, Any]:
    """The scale run's settings; ``error`` when this machine cannot hold ``n``
    sessions (RLIMIT_NOFILE)."""
    per = max(1, args.scale_per_source)
    sources = args.scale_sources or max(2, -(-n // per))
    per = -(-n // sources)  # spread evenly
    procs = max(args.procs, 2, -(-n // max(1000, nofile - 500)))
    sc: dict[str, Any] = {
        "sessions": n, "sources": sources, "source_base": args.scale_source_base,
        "per_source": per, "procs": procs, "ramp": args.scale_ramp,
        "ramp_timeout": max(300.0, n / 50.0), "heartbeat": args.scale_heartbeat,
        "idle_sleep": args.scale_idle_sleep,
        # the server's inactivity timeout (ms; quartdash's default 300,000 would
        # close idle sessions during a long ramp): one hour, still armed
        "inactivity_ms": 3_600_000,
        "warmup": args.warmup if args.warmup is not None else (5.0 if args.quick else 30.0),
        "duration": args.duration if args.duration is not None
        else (10.0 if args.quick else 30.0),
        "settle": args.scale_settle, "backlog": 65535, "nofile": nofile,
        "somaxconn": _read_int("/proc/sys/net/core/somaxconn"),
        "ip_local_port_range": _read_text("/proc/sys/net/ipv4/ip_local_port_range"),
    }  # fmt: skip
    if nofile < n + 1000:
        sc["error"] = (f"RLIMIT_NOFILE is {nofile} (hard limit), the server needs {n + 1000} "
                       "for its sockets: raise the hard limit (ulimit -Hn, limits.conf, or run "
                       "as root with CAP_SYS_RESOURCE) or use --scale-sessions")
    return sc


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read_text(path)
    return int(text) if text and text.isdigit() else None


def result_paths(out: str | None, prefix: str = "") -> tuple[Path, Path]:
    """Where results go: ``out``, or bench/results/<prefix><date>.json (with the
    time added when that exists); and a new folder for the logs."""
    now = dt.datetime.now()
    RESULTS.mkdir(parents=True, exist_ok=True)
    logdir = RESULTS / "logs" / f"{prefix}{now:%Y-%m-%dT%H%M%S}"
    logdir.mkdir(parents=True, exist_ok=True)
    path = Path(out) if out else RESULTS / f"{prefix}{now:%Y-%m-%d}.json"
    if path.exists() and not out:
        path = RESULTS / f"{prefix}{now:%Y-%m-%d-%H%M%S}.json"
    return path, logdir


def save(report: dict[str, Any], tables: list[str], path: Path, logdir: Path,
         t_start: float) -> None:
    """Write the results JSON (with the tables and the time it all took)."""
    report["elapsed_s"] = time.monotonic() - t_start
    report["tables"] = tables
    path.write_text(json.dumps(report, indent=1, default=str))
    log(f"results: {path}  (server logs: {logdir})")


def print_tables(header: str, skipped: dict[str, str], tables: list[str]) -> None:
    print("=" * 100)
    print(header)
    for n, why in skipped.items():
        print(f"skipped {n}: {why}")
    print()
    print("\n\n".join(tables))


def strip(m: dict[str, Any]) -> dict[str, Any]:
    """The raw measurement, without the bulky per-sample arrays."""
    out = {k: v for k, v in m.items() if k != "result"}
    r = m.get("result")
    if r:
        out["result"] = {k: v for k, v in r.items() if k not in ("event",)}
    return out


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ["dash", "quart", "hypercorn", "fastapi", "uvicorn", "granian", "gunicorn", "flask",
                "websockets", "orjson", "uvloop", "quartdash"]:  # fmt: skip
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "-"
    return out


if __name__ == "__main__":
    sys.exit(main())
