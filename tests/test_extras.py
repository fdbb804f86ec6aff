"""A missing optional dependency fails with the install line, not a bare ModuleNotFoundError.

Each check runs in a subprocess where the dependency is made unimportable
(``sys.modules[name] = None``: Python then raises ``ModuleNotFoundError``
for it, exactly as when it is not installed), so the test environment,
which has everything, can show what a user without it sees.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, server_env

REDIS_HINT = 'pip install "quartdash[redis]"'
EXAMPLES_HINT = 'pip install "quartdash[examples]"'


def run_without(module: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (cwd: the repository) where
    ``module`` cannot be imported."""
    script = f"import sys\nsys.modules[{module!r}] = None\n" + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT, env=server_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


# ------------------------------------------------------------------------ redis


def test_redis_url_in_configure_without_redis_py() -> None:
    result = run_without("redis", """
        from quartdash import broadcast
        broadcast.configure("redis://127.0.0.1:6379/0")
        print("configured")
    """)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "configured" not in result.stdout
    line = last_line(result)
    assert line.startswith("ModuleNotFoundError: a redis:// broadcast URL"), result.stderr
    assert REDIS_HINT in line


def test_redis_url_in_the_environment_without_redis_py() -> None:
    """QUARTDASH_BROADCAST_URL is read at first use: the first publish says it."""
    result = run_without("redis", """
        import asyncio, os
        os.environ["QUARTDASH_BROADCAST_URL"] = "redis://127.0.0.1:6379/0"
        from quartdash import broadcast   # importing quartdash does not need redis-py

        async def main():
            try:
                await broadcast.Topic("prices").publish({"price": 1})
            except ImportError as error:
                print("ImportError:", error)
                print("name:", error.name)
            else:
                print("published")
        asyncio.run(main())
    """)
    assert result.returncode == 0, result.stderr
    assert "published" not in result.stdout
    assert REDIS_HINT in result.stdout
    assert "name: redis" in result.stdout


def test_memory_broadcast_needs_no_redis_py() -> None:
    result = run_without("redis", """
        import asyncio
        from quartdash import broadcast
        broadcast.configure("memory://")
        asyncio.run(broadcast.Topic("prices").publish({"price": 1}))
        print("published", broadcast.stats()["backend"])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["published", "memory"]


# --------------------------------------------------------------------- examples


@pytest.mark.parametrize(("example", "module", "package"), [
    ("external_feed", "websockets", "websockets"),
    ("game_of_life", "numpy", "numpy"),
    ("ag_grid_stream", "dash_ag_grid", "dash-ag-grid"),
    ("gallery", "numpy", "numpy"),  # the gallery imports every example
])
def test_example_without_its_dependency(example: str, module: str, package: str) -> None:
    result = run_without(module, f"import examples.{example}\nprint('imported')")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "imported" not in result.stdout
    line = last_line(result)
    assert line.startswith(f"ModuleNotFoundError: the quartdash examples need {package!r}"), \
        result.stderr
    assert EXAMPLES_HINT in line


def test_example_imports_with_its_dependencies() -> None:
    """The same subprocess without the block imports fine (the check above is
    about the missing package, not a broken example)."""
    result = run_without("not_a_dependency_of_anything", """
        import examples.external_feed, examples.game_of_life, examples.ag_grid_stream
        print("imported")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def test_require_passes_through_errors_of_other_modules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dependency that is installed but itself fails to import (a missing
    sub-dependency) is not misreported as the examples extra missing."""
    from examples import require

    (tmp_path / "broken_dep.py").write_text("import no_such_module_quartdash_test\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_dep", raising=False)
    with pytest.raises(ModuleNotFoundError) as error:
        require("broken_dep")
    assert error.value.name == "no_such_module_quartdash_test"
    assert EXAMPLES_HINT not in str(error.value)

    with pytest.raises(ModuleNotFoundError) as missing:
        require("no_such_module_quartdash_test", package="no-such-package")
    assert missing.value.name == "no_such_module_quartdash_test"
    assert "'no-such-package'" in str(missing.value)
    assert EXAMPLES_HINT in str(missing.value)
