"""10. Security: allowed origins, and a server-initiated disconnect.

What to look at:

* **Origin validation.** WebSocket handshakes are accepted from the page's
  own origin and from the origins in ``websocket_allowed_origins`` (here a
  hypothetical embedding site); any other ``Origin`` is closed with 4001.
* **Server-initiated disconnect.** Type a message and click "Send". The
  callback reads it with ``get_prop`` and echoes it, as text: React renders
  it, so ``<img src=x onerror=alert(1)>`` shows up literally and runs
  nothing. A message that looks like an attack (SQL or a script tag, e.g.
  ``'; DROP TABLE users; --``) is a policy violation: the callback calls
  ``await ws.close(code=4001, reason="Policy violation")`` and the
  connection ends (the browser console logs "WebSocket disconnected: Policy
  violation"). The callback itself goes on to record the violation; nothing
  it sends after ``close()`` reaches the client. 4001 means "do not
  reconnect on your own": the next click opens a fresh connection.

Run alone: ``hypercorn examples.security:asgi`` or ``python -m examples.security``.
"""

from __future__ import annotations

import logging
import re
from collections import deque

from dash import Input, Output, ctx, dcc, html, no_update
from quart import Quart

from quartdash import DashBlueprint, text

log = logging.getLogger(__name__)

ALLOWED_ORIGINS = ["https://embedding-site.example.com"]

# Deliberately crude: the point is what the app does on a violation.
SUSPICIOUS = re.compile(r"drop\s+table|<\s*script|;\s*--|\bunion\s+select\b", re.IGNORECASE)


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint(
        "security", __name__, url_prefix=prefix,
        websocket_callbacks=True,
        websocket_allowed_origins=ALLOWED_ORIGINS,
    )
    app.title = "Security"
    # The latest violations only, each cut short: what a client sends must not
    # grow the server's memory or log without bound.
    violations: deque[str] = deque(maxlen=100)

    app.layout = html.Div([
        html.P(["WebSocket origins allowed besides this page's own: ",
                html.Code(", ".join(ALLOWED_ORIGINS))]),
        dcc.Input(id="message", placeholder="Say something...", style={"width": "24em"}),
        html.Button("Send", id="send-btn"),
        html.Div(id="reply"),
    ])

    @app.callback(
        Output("reply", "children"),
        Input("send-btn", "n_clicks"),
        prevent_initial_call=True,
    )
    async def check_message(n_clicks):
        ws = ctx.websocket
        # get_prop answers whatever the client sends: make it text, whatever it is.
        message = text(await ws.get_prop("message", "value"))
        if SUSPICIOUS.search(message):
            await ws.close(code=4001, reason="Policy violation")
            # Still running: clean up or record; the client hears nothing more.
            violations.append(message[:200])
            log.warning("policy violation: %r; connection closed", message[:80])
            return no_update
        return f"Echo: {message}"

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
