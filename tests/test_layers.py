"""The layers, held to their rules: who may import whom (docs/architecture.md).

Read from the source with ``ast`` (imports under ``if TYPE_CHECKING:`` count
too): the wire format and the session core know no Quart, no Dash and no
glue; the glue knows no front door; nothing imports in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "quartdash"

# layer -> what it may import from quartdash, and from outside besides the
# standard library: JSON encoders (orjson; plotly's for rare values, as Dash
# itself encodes them), blinker for signals.
LAYERS: dict[str, dict[str, set[str]]] = {
    "wire": {"quartdash": {"quartdash.wire"}, "outside": {"orjson", "plotly"}},
    "session": {"quartdash": {"quartdash.session", "quartdash.wire", "quartdash.types",
                              "quartdash.config", "quartdash.signals"}, "outside": set()},
    "types": {"quartdash": {"quartdash.config", "quartdash.wire"}, "outside": set()},
    "config": {"quartdash": set(), "outside": set()},
    "signals": {"quartdash": set(), "outside": {"blinker"}},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # "from . import signals" imports the module quartdash.signals.
            submodules = {f"{module}.{alias.name}" for alias in node.names
                          if _is_module(f"{module}.{alias.name}")}
            found.update(submodules or {module})
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def sources(layer: str) -> list[Path]:
    folder = PACKAGE / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{layer}.py"]


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_the_core_knows_no_quart_no_dash_and_no_glue(layer: str) -> None:
    allowed_inside = LAYERS[layer]["quartdash"]
    stdlib = set(__import__("sys").stdlib_module_names)
    for path in sources(layer):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top == "quartdash":
                assert any(name == a or name.startswith(a + ".") for a in allowed_inside), \
                    f"{path.relative_to(PACKAGE.parent)} imports {name}"
            elif top != "__future__":
                assert top in stdlib or top in LAYERS[layer]["outside"], \
                    f"{path.relative_to(PACKAGE.parent)} imports {name}"


def test_the_glue_knows_no_front_door() -> None:
    front_doors = ("quartdash.app", "quartdash.blueprint", "quartdash.broadcast",
                   "quartdash.testing")
    for path in sources("hosting"):
        for name in imports_of(path):
            assert not name.startswith(front_doors), \
                f"{path.relative_to(PACKAGE.parent)} imports {name}"


def test_no_module_imports_in_a_circle() -> None:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {i for i in imports_of(path) if i in modules and i != name}
             for name, path in modules.items()}
    # A package's __init__ re-exporting its children is not a cycle of concepts.
    for name in graph:
        if modules[name].name == "__init__.py":
            graph[name] = set()
    seen: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)
