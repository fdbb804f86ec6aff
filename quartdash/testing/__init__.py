"""A protocol-level test client for quartdash apps, and its pytest fixture.

:class:`DashClient` drives a hosted Dash app over its *real* routes
(``_dash-dependencies``, ``_dash-update-component``, ``_dash-ws-callback``)
the way dash-renderer and the SharedWorker do, with no browser::

    async with DashClient(app) as client:  # quartdash.Dash, or a URL
        tab = await client.open_renderer(props={"name-input.value": "Alice"})
        result = await tab.call("countdown-display.children",
                                inputs={"start-btn.n_clicks": 1})
        assert result.pushes_to("countdown-display", "children")[0].value == "Countdown: 10"
        assert result.output("countdown-display", "children") == "Done!"
        await tab.wait_for_push("live", "children", timeout=2)  # persistent callbacks

Two transports:

* **in-process** — ``DashClient(app)`` for a :class:`quartdash.Dash`,
  ``DashClient(blueprint, server=quart_app)`` for a
  :class:`quartdash.DashBlueprint`, ``DashClient(quart_app, "/prefix/")``:
  Quart's test client, no socket, fast.
* **network** — ``DashClient("http://127.0.0.1:8050/prefix/")``: a real
  WebSocket (the ``websockets`` library) and real HTTP (urllib).

A :class:`TestRenderer` plays one browser tab: it has a fake layout
(``props``, a dict of ``"id.prop" -> value``) that answers the server's
``get_props_request`` messages, supplies callback inputs you do not pass
explicitly and, like the real renderer, takes the values that ``set_props``
pushes and callback outputs write. Several renderers share one connection,
as tabs share the SharedWorker's socket.

Every wait is bounded. A wait that runs out raises :class:`WaitTimeout`
(both an ``AssertionError`` and a ``TimeoutError``) naming what it waited
for; a wait that cannot succeed because the server closed the connection
raises :class:`ConnectionClosed` with the close code and reason.

Installed as a pytest plugin (``pytest11`` entry point), so the
:func:`dash_client` fixture is available wherever quartdash is installed.

The package, one concept a module:

* :mod:`~quartdash.testing.errors` — what waits raise;
* :mod:`~quartdash.testing.ids` — component ids and property references;
* :mod:`~quartdash.testing.records` — what the client records and returns;
* :mod:`~quartdash.testing.specs` — callbacks and their request payloads;
* :mod:`~quartdash.testing.transports` — in-process and network transports;
* :mod:`~quartdash.testing.renderer` — fake tabs;
* :mod:`~quartdash.testing.client` — :class:`DashClient`;
* :mod:`~quartdash.testing.plugin` — the pytest fixture.
"""

from .client import DashClient
from .errors import ConnectionClosed, HandshakeRejected, WaitTimeout
from .ids import prop_key, stringify_id
from .records import (
    CallbackResult,
    Event,
    Frame,
    GetPropsRequest,
    HttpCallbackResult,
    HttpResponse,
    Push,
    Received,
)
from .renderer import PendingCall, TestRenderer
from .specs import CallbackSpec, build_payload, resolve_callback

try:
    from .plugin import dash_client
except ImportError:  # no pytest: no fixture
    pass

__all__ = [
    "CallbackResult",
    "CallbackSpec",
    "ConnectionClosed",
    "DashClient",
    "Event",
    "Frame",
    "GetPropsRequest",
    "HandshakeRejected",
    "HttpCallbackResult",
    "HttpResponse",
    "PendingCall",
    "Push",
    "Received",
    "TestRenderer",
    "WaitTimeout",
    "build_payload",
    "dash_client",
    "prop_key",
    "resolve_callback",
    "stringify_id",
]
