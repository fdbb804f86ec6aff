"""The example gallery: every example in one Quart app, each a DashBlueprint.

``python -m examples.gallery`` serves it with hypercorn on 127.0.0.1:8050
(``--host``/``--port`` or the HOST/PORT environment variables change that)
and prints the URL; in production: ``hypercorn examples.gallery:asgi``.

This is the blueprint-hosting showcase: one Quart application, a plain Quart
index page at ``/``, and a dozen independent Dash apps mounted under their
own prefixes, each with its own layout, callbacks, SharedWorker and
WebSocket route, all served by one event loop.
"""

from __future__ import annotations

import html
import importlib
from dataclasses import dataclass
from types import ModuleType

from quart import Quart

from examples import main


@dataclass(frozen=True)
class Example:
    slug: str
    """URL prefix: the example is served at ``/<slug>/``."""
    module: str
    title: str
    summary: str
    """What to look at, in one sentence (the module docstring says more)."""

    def load(self) -> ModuleType:
        return importlib.import_module(f"examples.{self.module}")


EXAMPLES = [
    Example("countdown", "countdown", "Streaming updates with set_props",
            "A countdown pushed once a second while the callback runs, then its return value."),
    Example("greeting", "greeting", "Reading props with get_prop",
            "The callback asks the browser for the input's current value mid-run."),
    Example("per-callback", "per_callback", "Per-callback WebSocket beside HTTP",
            "One websocket=True callback streams; the dropdown's callback stays on HTTP."),
    Example("persistent", "persistent_live", "Persistent callback: live data",
            "No Input, no Output: a loop per tab pushes readings twice a second."),
    Example("realtime-prices", "realtime_prices", "Real-time prices: Patch into a Store",
            "Prices patched into a dcc.Store; each tick reads the symbol selected now."),
    Example("external-feed", "external_feed", "External WebSocket integration",
            "The callback relays an upstream WebSocket feed, asking for the selected symbol."),
    Example("interval-migration", "interval_migration", "Migrating from dcc.Interval",
            "Two apps side by side: polling with dcc.Interval, and server push."),
    Example("game-of-life", "game_of_life", "Game of Life at 10 frames a second",
            "A numpy board streamed as a heatmap; Start/Stop through a dcc.Store."),
    Example("ag-grid", "ag_grid_stream", "Streaming into AG Grid",
            "Rows of a dash-ag-grid updated in place every half second."),
    Example("security", "security", "Security: origins and ws.close()",
            "Allowed origins, escaped echoes, and a 4001 close on a policy violation."),
    Example("disconnections", "disconnections", "Handling disconnections",
            "Close the tab: both loops run their cleanup (see its cleanup-status route)."),
    Example("progress", "progress", "Long-running task with a progress bar",
            "An html.Progress filled by set_props, with a Cancel read by get_prop."),
]


def mount_all(server: Quart) -> None:
    """Mount every example under ``/<slug>/``."""
    for example in EXAMPLES:
        module = example.load()
        prefix = f"/{example.slug}"
        if hasattr(module, "mount"):  # an example made of several apps
            module.mount(server, prefix)
        else:
            server.register_blueprint(module.build(prefix))


INDEX = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>quartdash examples</title>
  <link rel="icon" href="data:,">
  <style>
    body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto;
           padding: 0 1rem; line-height: 1.45; color: #222; }}
    li {{ margin: 0 0 .9rem; }}
    a {{ font-weight: 600; }}
    code {{ background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }}
  </style>
</head>
<body>
  <h1>quartdash examples</h1>
  <p>Every example of Dash's <em>WebSocket callbacks</em> guide, each a
  <code>DashBlueprint</code> mounted under its own prefix in this one Quart app.
  Each one also runs alone: <code>hypercorn examples.&lt;module&gt;:asgi</code>.</p>
  <ol>
{items}
  </ol>
</body>
</html>
"""


def index_page() -> str:
    items = "\n".join(
        f'    <li><a href="/{e.slug}/">{html.escape(e.title)}</a>'
        f" <small>(<code>examples/{e.module}.py</code>)</small><br>"
        f"{html.escape(e.summary)}</li>"
        for e in EXAMPLES
    )
    return INDEX.format(items=items)


asgi = Quart(__name__)
mount_all(asgi)
_INDEX = index_page()


@asgi.get("/")
async def index() -> tuple[str, int, dict[str, str]]:
    return _INDEX, 200, {"Content-Type": "text/html; charset=utf-8"}


if __name__ == "__main__":
    main(asgi, description="quartdash example gallery")
