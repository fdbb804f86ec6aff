"""The example gallery: every example in one Quart app, each a DashBlueprint.

``python -m examples.gallery`` serves it with hypercorn on 127.0.0.1:8050
(``--host``/``--port`` or the HOST/PORT environment variables change that)
and prints the URL; in production: ``hypercorn examples.gallery:asgi``.

This is the blueprint-hosting showcase: one Quart application and a dozen
independent Dash apps mounted under their own prefixes, each with its own
layout, callbacks, SharedWorker and WebSocket route, all served by one
event loop.

The landing page at ``/`` is a quartdash app too. A persistent callback,
one per open landing tab, pushes once a second how many sessions and tabs
are connected to the gallery right now and how many ``set_props`` pushes a
second the examples serve, with a one-line live preview per example. It
counts with :func:`quartdash.hosting.session_counts`; nothing runs when no
landing tab is open.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from dash import ctx, html, set_props
from quart import Quart

from examples import main
from quartdash import DashBlueprint
from quartdash.hosting import SessionCounts, session_counts


@dataclass(frozen=True)
class Example:
    slug: str
    """URL prefix: the example is served at ``/<slug>/``."""
    module: str
    title: str
    summary: str
    """What to look at, in one sentence (the module docstring says more)."""
    preview: Callable[[ModuleType], str] | None = field(default=None, compare=False)
    """A cheap live value from the example's data source, for the landing page."""

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
            "No Input, no Output: a loop per tab pushes readings twice a second.",
            preview=lambda module: module.get_latest_data()),
    Example("realtime-prices", "realtime_prices", "Real-time prices: Patch into a Store",
            "Prices patched into a dcc.Store; each tick reads the symbol selected now."),
    Example("external-feed", "external_feed", "External WebSocket integration",
            "The callback relays an upstream WebSocket feed, asking for the selected symbol."),
    Example("interval-migration", "interval_migration", "Migrating from dcc.Interval",
            "Two apps side by side: polling with dcc.Interval, and server push.",
            preview=lambda module: f"AAPL: ${module.get_latest_price('AAPL')}"),
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
    Example("chat-stream", "chat_stream", "Streaming a chat answer with yield",
            "An async generator callback: each token a Patch that grows the answer."),
    Example("live-sessions", "live_sessions", "Live sessions: identity, presence, revoke",
            "Sign in under a name: who is here updates live; the admin page lists every "
            "session with a Disconnect button per user."),
]


@dataclass
class Mounted:
    """An example as served: its module and its Dash apps."""

    example: Example
    module: ModuleType
    apps: list[DashBlueprint]


def mount_all(server: Quart) -> list[Mounted]:
    """Mount every example under ``/<slug>/``; return them with their apps."""
    mounted = []
    for example in EXAMPLES:
        module = example.load()
        prefix = f"/{example.slug}"
        if hasattr(module, "mount"):  # an example made of several apps
            apps = list(module.mount(server, prefix))
        else:
            app = module.build(prefix)
            server.register_blueprint(app)
            apps = [app]
        mounted.append(Mounted(example, module, apps))
    return mounted


# ------------------------------------------------------------------ landing page


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def header_text(everything: SessionCounts, pushes_per_second: float | None) -> str:
    rate = "…" if pushes_per_second is None else f"{pushes_per_second:.1f}"
    return (f"Connected right now: {plural(everything.sessions, 'session')}, "
            f"{plural(everything.tabs, 'tab')} (this one included) · "
            f"{rate} pushes/s served by the examples")


def activity_text(counts: SessionCounts, pushes_per_second: float | None) -> str:
    if counts.tabs == 0:
        return "no tab open"
    rate = "" if pushes_per_second is None else f" · {pushes_per_second:.1f} pushes/s"
    return f"{plural(counts.tabs, 'tab')} open{rate}"


class LiveCounts:
    """The landing page's numbers, sampled by one landing tab's callback:
    counts of every example and of the whole gallery, and push rates since
    the previous sample (per tab: no state shared between tabs)."""

    def __init__(self, mounted: list[Mounted], home: DashBlueprint) -> None:
        self.mounted = mounted
        self.everything = [home, *(app for m in mounted for app in m.apps)]
        self._previous: tuple[float, dict[str, int]] | None = None

    def sample(self) -> dict[str, str]:
        """``{component id: text}`` for the header and each example's line."""
        now = time.monotonic()
        per_example = {m.example.slug: session_counts(*m.apps) for m in self.mounted}
        pushed = {slug: counts.props_pushed for slug, counts in per_example.items()}
        previous, self._previous = self._previous, (now, pushed)

        def rate(slug: str | None) -> float | None:
            if previous is None:
                return None
            then, before = previous
            seconds = max(now - then, 1e-3)
            if slug is None:
                return (sum(pushed.values()) - sum(before.values())) / seconds
            return (pushed[slug] - before.get(slug, 0)) / seconds

        texts = {"live-header": header_text(session_counts(*self.everything), rate(None))}
        for m in self.mounted:
            slug = m.example.slug
            line = activity_text(per_example[slug], rate(slug))
            if m.example.preview is not None:
                line = f"{m.example.preview(m.module)} · {line}"
            texts[f"live-{slug}"] = line
        return texts


STYLE = """
    body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto;
           padding: 0 1rem; line-height: 1.45; color: #222; }
    li { margin: 0 0 .9rem; }
    a { font-weight: 600; }
    code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
    #live-header { background: #eef6ee; border: 1px solid #cfe3cf; border-radius: 6px;
                   padding: .5rem .75rem; font-variant-numeric: tabular-nums; }
    .live { color: #2e7d32; font-size: .9em; font-variant-numeric: tabular-nums; }
"""

INDEX_STRING = """<!doctype html>
<html lang="en">
<head>
  {%metas%}
  <title>{%title%}</title>
  <link rel="icon" href="data:,">
  {%css%}
  <style>""" + STYLE + """</style>
</head>
<body>
  {%app_entry%}
  <footer>{%config%}{%scripts%}{%renderer%}</footer>
</body>
</html>
"""


def build_home(mounted: list[Mounted]) -> DashBlueprint:
    """The landing page at ``/``: links to every example, kept live."""
    home = DashBlueprint("gallery", __name__, url_prefix="/")
    home.title = "quartdash examples"
    home.index_string = INDEX_STRING
    home.layout = html.Div([
        html.H1("quartdash examples"),
        html.Div("Connecting…", id="live-header"),
        html.P([
            "Every example of Dash's ", html.Em("WebSocket callbacks"), " guide, each a ",
            html.Code("DashBlueprint"), " mounted under its own prefix in this one Quart "
            "app. Each one also runs alone: ", html.Code("hypercorn examples.<module>:asgi"),
            ". This page is one too: a persistent callback pushes the figures above and "
            "the green lines once a second, only while the page is open.",
        ]),
        html.Ol([
            html.Li([
                html.A(m.example.title, href=f"/{m.example.slug}/"), " ",
                html.Small(["(", html.Code(f"examples/{m.example.module}.py"), ")"]),
                html.Br(), m.example.summary,
                html.Div("…", id=f"live-{m.example.slug}", className="live"),
            ])
            for m in mounted
        ]),
    ])

    @home.callback(persistent=True)
    async def live_figures():
        ws = ctx.websocket
        counts = LiveCounts(mounted, home)  # this tab's own samples
        shown: dict[str, str] = {}
        while not ws.is_shutdown:
            for component_id, text in counts.sample().items():
                if shown.get(component_id) != text:  # push only what changed
                    set_props(component_id, {"children": text})
                    shown[component_id] = text
            await asyncio.sleep(1)

    return home


asgi = Quart(__name__)
MOUNTED = mount_all(asgi)
HOME = build_home(MOUNTED)
asgi.register_blueprint(HOME)


if __name__ == "__main__":
    main(asgi, description="quartdash example gallery")
