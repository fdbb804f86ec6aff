"""The HTTP load driver for scenarios c and cfig: Debian's ``wrk``.

wrk is a C program with an event loop per thread: one thread keeps 16
keep-alive connections busy using a fraction of a core, so the server, not
the driver, is what a measurement measures (bench/loadgen.py's Python HTTP
client saturated near 7,000 requests/s). ``ensure()`` installs it (``apt-get
install wrk``) when it is missing and we are root, and says what to run
otherwise.

``run()`` returns the same shape bench/run.py's ``run_loadgen`` does
(``baseline``, ``s0``/``s1`` samples of the server around the window,
``result`` with ``http_per_s``, latency percentiles and the driver's CPU),
so ``metrics("c", ...)`` reads either.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ensure", "run"]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ensure() -> str:
    """The path of ``wrk``, installed from Debian first when missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: run `sudo apt-get install -y wrk` "
                         "(or bash bench/setup.sh), or pass --http-driver loadgen")
    print("bench: installing wrk (Debian package), the HTTP load driver", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, timeout=600)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get installed wrk but it is not on PATH")
    return found


def _script(body: bytes, origin: str) -> Path:
    lua = (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Origin"] = "{origin}"\n'
        f"wrk.body = [==[{body.decode()}]==]\n"
    )
    fd, name = tempfile.mkstemp(prefix="quartdash-bench-", suffix=".lua")
    with os.fdopen(fd, "w") as f:
        f.write(lua)
    return Path(name)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse(output: str) -> dict[str, Any]:
    """Requests, errors and latency percentiles from ``wrk --latency`` output."""
    requests = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if requests is None:
        raise RuntimeError(f"wrk printed no request count:\n{output}")
    out: dict[str, Any] = {"requests": int(requests.group(1))}
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", output, re.M))
    for pct in ("50", "90", "99"):
        if pct in percentiles:
            out[f"http_p{pct}_ms"] = _ms(percentiles[pct])
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    out["http_bad"] = (int(bad.group(1)) if bad else 0) + (
        sum(int(x) for x in errors.groups()) if errors else 0)
    return out


def run(url: str, body: bytes, conns: int, warmup: float, duration: float,
        sample: Callable[[int], dict[str, float]], server_pid: int,
        stats: Callable[[], dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Warm up for ``warmup`` s, then measure ``duration`` s with ``conns``
    keep-alive connections from one wrk thread; sample the server around the
    measuring run."""
    wrk = ensure()
    script = _script(body, url)
    target = url + "/_dash-update-component"
    out: dict[str, Any] = {"baseline": sample(server_pid), "rss_series": []}
    try:
        if warmup > 0:
            subprocess.run([wrk, "-t1", f"-c{conns}", f"-d{max(1, round(warmup))}s", "-s",
                            str(script), target], capture_output=True, timeout=timeout, check=True)
        out["s0"] = sample(server_pid)
        out["stats0"] = stats()
        start = time.time()
        reaped_before = _children_cpu()
        proc = subprocess.Popen(
            [wrk, "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency", "-s",
             str(script), target],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        out["s1"] = sample(server_pid)
        out["stats1"] = stats()
        elapsed = time.time() - start
        # wrk's own CPU: this process's children times grow by it once reaped.
        cpu = _children_cpu() - reaped_before
        result = parse(output)
        result.update(
            duration=elapsed,
            http_per_s=result["requests"] / elapsed,
            loadgen_cpu_s=cpu,
            loadgen_cpu_pct=100.0 * cpu / elapsed,
            procs=1,
            driver="wrk",
        )
        out["result"] = result
    except subprocess.SubprocessError as error:
        out["error"] = f"wrk: {error!r}"
    finally:
        script.unlink(missing_ok=True)
    return out


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system
