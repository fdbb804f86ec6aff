"""`pip install .` (not editable) gives a working quartdash, browser files included."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from tests.helpers import REPO_ROOT

CHECK = """
import asyncio, quartdash
from dash import html
from quartdash import Dash
assert quartdash.__file__.startswith(TARGET), quartdash.__file__
app = Dash("pkgcheck", websocket_callbacks=True)
app.layout = html.Div("installed")
async def main():
    client = app.asgi.test_client()
    for path in ("/_quartdash/ws-worker.js", "/_quartdash/page.js"):
        response = await client.get(path)
        body = await response.get_data()
        assert response.status_code == 200 and len(body) > 1000, (path, response.status_code)
    assert (await client.get("/")).status_code == 200
asyncio.run(main())
print("ok")
"""


def test_wheel_install_serves_static_files(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
         str(REPO_ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = wheels.glob("quartdash-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("quartdash/static/quartdash-ws-worker.js",
                     "quartdash/static/quartdash-page.js", "quartdash/py.typed"):
        assert expected in names, f"{expected} missing from {wheel.name}"

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    # The installed copy first; dependencies from this environment. -S: no
    # site, so the editable install's .pth hook cannot hand back the source
    # tree; the cwd is elsewhere for the same reason.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(target), sysconfig.get_paths()["purelib"]])}
    result = subprocess.run(
        [sys.executable, "-S", "-c", f"TARGET = {str(target)!r}\n" + CHECK],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr
