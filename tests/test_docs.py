"""Every ```python block of README.md and docs/*.md runs, so the docs cannot rot.

The rules (also stated in docs/index.md):

* ```python blocks are executed; ```bash, ```nginx, ```text... are not.
* A block runs as a module named ``docs_example_<n>`` in a fresh namespace, so
  ``if __name__ == "__main__": app.run()`` does not start a server.
* ``<!-- test: continues -->`` right before a block runs it in the namespace
  of the previous python block of the same file (one test for the chain).
* ``<!-- test: file PATH -->`` right before a block: the block must be the
  text of that repository file, verbatim (then it runs like any block).
* ``<!-- test: check`` ... ``-->`` right after a block: Python (``await``
  allowed) run in the block's namespace after it, typically driving a
  callback with :class:`quartdash.testing.DashClient`. ``<!-- test: check
  headers={"Cookie": "session=s1"}`` gives the automatic check below headers
  to send (an app behind a login).
* Automatically, after each block, every new ``quartdash.Dash`` and
  ``DashBlueprint`` in its namespace is served through Quart's test client:
  its page and ``_dash-layout`` answer 200 and ``_dash-dependencies`` lists
  exactly the callbacks the app registered. A ``DashBlueprint`` that is not
  registered on a Quart app of the same namespace fails the test.
"""

from __future__ import annotations

import json
import re
import textwrap
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from blinker import NamedSignal
from dash import _callback
from quart import Quart

from quartdash import Dash, DashBlueprint, signals
from quartdash.testing import DashClient

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*test:\s*(\w+)\s*(.*?)\s*(-->)?\s*$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    directive: str = ""  # "continues" or "file"
    argument: str = ""
    check: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # for the automatic check

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass
class Chain:
    blocks: list[Block] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.blocks[0].where


def parse(path: Path) -> list[Block]:
    """Fenced blocks of a markdown file, with the directives around them."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        match = DIRECTIVE.match(line)
        if match and match.group(1) != "check":
            pending = (match.group(1), match.group(2))
            i += 1
            continue
        fence = FENCE.match(line)
        if not fence:
            if line.strip():
                pending = None  # a directive applies to the very next block only
            i += 1
            continue
        start, i = i, i + 1
        body: list[str] = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start + 1}: unclosed code fence")
        i += 1
        block = Block(path, start + 1, fence.group(1), "\n".join(body) + "\n")
        if pending is not None:
            block.directive, block.argument = pending
            if block.directive not in ("continues", "file"):
                raise AssertionError(f"{block.where}: unknown directive {block.directive!r}")
            pending = None
        i, block.check = _read_check(lines, i, block)
        blocks.append(block)
    return blocks


def _read_check(lines: list[str], i: int, block: Block) -> tuple[int, str]:
    j = i
    while j < len(lines) and not lines[j].strip():
        j += 1
    if j >= len(lines):
        return i, ""
    match = DIRECTIVE.match(lines[j])
    if not match or match.group(1) != "check":
        return i, ""
    if block.lang != "python":
        raise AssertionError(f"{block.where}: a check follows a {block.lang!r} block")
    argument = match.group(2)
    if argument.startswith("headers="):
        block.headers = json.loads(argument.removeprefix("headers="))
    elif argument:
        raise AssertionError(f"{block.where}: unknown check argument {argument!r}")
    body: list[str] = []
    j += 1
    while j < len(lines) and lines[j].strip() != "-->":
        body.append(lines[j])
        j += 1
    if j == len(lines):
        raise AssertionError(f"{block.where}: unclosed <!-- test: check")
    return j + 1, "\n".join(body) + "\n"


def chains() -> list[Chain]:
    found: list[Chain] = []
    for path in DOC_FILES:
        current: Chain | None = None
        for block in parse(path):
            if block.lang != "python":
                if block.directive:
                    raise AssertionError(f"{block.where}: directive on a {block.lang!r} block")
                continue
            if block.directive == "continues":
                if current is None:
                    raise AssertionError(f"{block.where}: nothing to continue")
                current.blocks.append(block)
            else:
                current = Chain([block])
                found.append(current)
    return found


CHAINS = chains()


def test_docs_have_python_blocks() -> None:
    """The collection itself works: every doc page the index promises is here."""
    names = {p.name for p in DOC_FILES}
    for page in ("index.md", "getting-started.md", "hosting.md", "websocket-callbacks.md",
                 "persistent-callbacks.md", "migrating.md", "testing.md", "deployment.md",
                 "signals.md"):
        assert page in names, page
    files_with_code = {chain.blocks[0].path.name for chain in CHAINS}
    assert {"README.md", "getting-started.md", "websocket-callbacks.md"} <= files_with_code
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for page in ("security.md", "reliability.md", "scaling.md", "protocol.md"):
        assert f"({page})" in index, page


def test_local_links_resolve() -> None:
    """Relative links between the docs point at files that exist."""
    link = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
    # Pages other helpers are writing now; the index may link them before they land.
    pending = {"security.md", "reliability.md", "scaling.md"}
    for path in DOC_FILES:
        for target, _ in link.findall(path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (path.parent / target).resolve()
            if resolved.name in pending and resolved.parent == ROOT / "docs":
                continue
            assert resolved.exists(), f"{path.relative_to(ROOT)} links to missing {target}"


# -------------------------------------------------------------------- isolation


@pytest.fixture
def isolated_dash_globals() -> Iterator[None]:
    """``dash.callback`` registers into process-global lists that the *first* Dash
    app to set itself up adopts. A doc block's ``@callback`` must land in that
    block's app, not in another block's (or another test module's) app, so the
    globals are emptied for the block and restored afterwards."""
    saved = (list(_callback.GLOBAL_CALLBACK_LIST), dict(_callback.GLOBAL_CALLBACK_MAP),
             list(_callback.GLOBAL_INLINE_SCRIPTS), dict(_callback.GLOBAL_API_PATHS))
    for registry in (_callback.GLOBAL_CALLBACK_LIST, _callback.GLOBAL_CALLBACK_MAP,
                     _callback.GLOBAL_INLINE_SCRIPTS, _callback.GLOBAL_API_PATHS):
        registry.clear()
    try:
        yield
    finally:
        _callback.GLOBAL_CALLBACK_LIST[:] = saved[0]
        _callback.GLOBAL_CALLBACK_MAP.clear()
        _callback.GLOBAL_CALLBACK_MAP.update(saved[1])
        _callback.GLOBAL_INLINE_SCRIPTS[:] = saved[2]
        _callback.GLOBAL_API_PATHS.clear()
        _callback.GLOBAL_API_PATHS.update(saved[3])


MODULE_NAME = "docs_example"  # ``__name__`` in a block: docs_example_<n>, one per chain
SIGNALS = [value for value in vars(signals).values() if isinstance(value, NamedSignal)]


@pytest.fixture
def isolated_signals() -> Iterator[None]:
    """Signals are process-global too: disconnect the receivers a doc block
    defined (their ``__module__`` is the block's module name). Receivers that
    quartdash connects when a block first imports one of its modules stay."""
    try:
        yield
    finally:
        for signal in SIGNALS:
            for ref in list(signal.receivers.values()):
                # Weakly connected receivers are stored as weak references.
                receiver = ref() if isinstance(ref, weakref.ref) else ref
                if str(getattr(receiver, "__module__", "")).startswith(MODULE_NAME):
                    signal.disconnect(receiver)


# ------------------------------------------------------------------------ running


async def check_apps(namespace: dict[str, Any], seen: set[int], where: str,
                     headers: dict[str, str]) -> int:
    """Serve every new Dash app of the namespace; return how many were checked."""
    quart_apps = [v for v in namespace.values() if isinstance(v, Quart)]
    checked = 0
    for value in list(namespace.values()):
        if id(value) in seen:
            continue
        if isinstance(value, Dash):
            client, dash_app = DashClient(value, headers=headers), value
        elif isinstance(value, DashBlueprint):
            servers = [q for q in quart_apps if q.blueprints.get(value.name) is value]
            assert servers, (f"{where}: DashBlueprint {value.name!r} is not registered on a "
                             "Quart app in this block")
            client = DashClient(value, server=servers[0], headers=headers)
            dash_app = value.dash
        else:
            continue
        seen.add(id(value))
        async with client:
            page = await client.http("GET", "")
            assert page.status == 200, f"{where}: GET {client.prefix} -> {page.status}"
            assert "_dash-config" in page.text, f"{where}: {client.prefix} is no Dash page"
            layout = await client.http("GET", "_dash-layout")
            assert layout.status == 200, f"{where}: _dash-layout -> {layout.status}"
            deps = await client.get_json("_dash-dependencies")
            listed = sorted(d["output"] for d in deps)
            assert listed == sorted(dash_app.callback_map), (
                f"{where}: _dash-dependencies {listed} != registered "
                f"{sorted(dash_app.callback_map)}")
        checked += 1
    return checked


async def run_check(block: Block, namespace: dict[str, Any]) -> None:
    source = "async def __docs_check__():\n" + textwrap.indent(block.check, "    ")
    exec(compile(source, f"{block.where} (check)", "exec"), namespace)
    try:
        await namespace.pop("__docs_check__")()
    except BaseException as error:
        error.add_note(f"in the check after {block.where}")
        raise


@pytest.mark.parametrize("chain", CHAINS, ids=[chain.id for chain in CHAINS])
@pytest.mark.usefixtures("isolated_dash_globals", "isolated_signals")
async def test_doc_block(chain: Chain) -> None:
    # A name of its own per chain: Dash apps are named after it, and process-wide
    # registries keyed by app name (broadcast channels) must not mix two blocks.
    namespace: dict[str, Any] = {"__name__": f"{MODULE_NAME}_{CHAINS.index(chain)}"}
    seen: set[int] = set()
    for block in chain.blocks:
        if block.directive == "file":
            text = (ROOT / block.argument).read_text(encoding="utf-8")
            assert block.code.strip() == text.strip(), (
                f"{block.where} differs from {block.argument}: copy the file into the block")
        code = compile(block.code, block.where, "exec")
        exec(code, namespace)
        await check_apps(namespace, seen, block.where, block.headers)
        if block.check:
            await run_check(block, namespace)
