"""Packaging: a wheel install serves the browser files; the extras hold what they promise."""

from __future__ import annotations

import configparser
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


def _extras() -> dict[str, set[str]]:
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg", encoding="utf-8")
    section = parser["options.extras_require"]
    return {name: {line.strip() for line in section[name].splitlines() if line.strip()}
            for name in section}


def test_test_extra_covers_the_examples_and_redis_extras() -> None:
    """scripts/demo.sh skips installing when the test extra is installed: the
    test extra must therefore hold every requirement of the examples extra
    (and of redis, which the Redis tests use, and of servers: the suite runs
    on all three servers), pinned the same way."""
    extras = _extras()
    assert extras["examples"] == {"websockets>=12", "numpy>=1.26", "dash-ag-grid>=31"}
    missing = (extras["examples"] | extras["redis"] | extras["servers"]) - extras["test"]
    assert not missing, f"add to the test extra in setup.cfg: {sorted(missing)}"


def test_examples_import_with_only_the_examples_extra() -> None:
    """Every third-party module examples/ imports is quartdash's own
    dependency or comes from the examples extra (no test-only package)."""
    import ast

    allowed = {"dash", "quart", "quartdash", "hypercorn", "blinker", "orjson", "examples",
               "websockets", "numpy", "dash_ag_grid"}
    stdlib = set(sys.stdlib_module_names)
    used: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "examples").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "require" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                names = [node.args[0].value]  # examples.require("numpy")
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "__future__":
                    used.setdefault(top, set()).add(path.name)
    assert {"dash", "quartdash", "websockets", "numpy", "dash_ag_grid"} <= used.keys(), \
        f"the scan missed imports: {sorted(used)}"
    unexpected = {top: sorted(files) for top, files in used.items() if top not in allowed}
    assert not unexpected, f"examples import packages outside the examples extra: {unexpected}"


def test_every_package_is_listed_and_nothing_is_a_symlink() -> None:
    """setup.cfg lists packages by hand (the browser files map from static/):
    a package folder missing from the list would be left out of the wheel."""
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg", encoding="utf-8")
    listed = {line.strip() for line in parser["options"]["packages"].splitlines()
              if line.strip()}
    root = REPO_ROOT / "quartdash"
    on_disk = {"quartdash", "quartdash.static"} | {
        "quartdash." + ".".join(init.parent.relative_to(root).parts)
        for init in root.rglob("__init__.py") if init.parent != root}
    assert listed == on_disk, (sorted(listed - on_disk), sorted(on_disk - listed))
    links = [str(p) for folder in ("quartdash", "static")
             for p in (REPO_ROOT / folder).rglob("*") if p.is_symlink()]
    assert links == []
