"""Hostile strings pushed with set_props over the WebSocket (tests/test_security.py).

Think of a chat or a log viewer: text that users typed ends up in other
users' components. A click on ``#push`` makes a WebSocket callback push
``javascript:`` URLs and HTML with event handlers into links, iframes, images,
markdown and plain children. Each payload, if it ever ran, would set
``window.__pwned`` (or the parent's) and open an ``alert``.
"""

from __future__ import annotations

from dash import Input, Output, dcc, html, set_props

from quartdash import Dash

JS = "window.__pwned=(window.__pwned||[]).concat('{tag}');alert('{tag}')"
PAYLOADS: dict[str, tuple[str, dict[str, object]]] = {
    "link": ("a-link", {"href": "javascript:" + JS.format(tag="a-href")}),
    "link-spaced": ("a-link2", {"href": " JaVaScRiPt:" + JS.format(tag="a-href-spaced")}),
    "dcc-link": ("dcc-link", {"href": "javascript:" + JS.format(tag="dcc-link")}),
    "iframe": ("frame", {"src": "javascript:parent." + JS.format(tag="iframe-src")}),
    "image": ("img", {"src": "javascript:" + JS.format(tag="img-src")}),
    "children-html": ("div", {"children": f'<img src=x onerror="{JS.format(tag="div")}">'}),
    "markdown-html": ("md", {"children": '<img src=x onerror="{}">\n\n[click](javascript:{})'
                             .format(JS.format(tag="md-html"), JS.format(tag="md-link"))}),
    "script-child": ("div2", {"children": "<script>" + JS.format(tag="script") + "</script>"}),
    "form-action": ("form-btn", {"formAction": "javascript:" + JS.format(tag="form-action")}),
}

app = Dash(__name__, websocket_callbacks=True)
app.layout = html.Div([
    html.Button("push", id="push"),
    html.Div(id="done"),
    html.A("link", id="a-link", href="#"),
    html.A("link 2", id="a-link2", href="#"),
    dcc.Link("dcc link", id="dcc-link", href="/"),
    html.Iframe(id="frame", src="about:blank"),
    html.Img(id="img", alt="img"),
    html.Div(id="div"),
    html.Div(id="div2"),
    dcc.Markdown(id="md"),
    html.Form(html.Button("submit", id="form-btn", type="submit"), id="form"),
])


@app.callback(Output("done", "children"), Input("push", "n_clicks"), prevent_initial_call=True)
async def push(n_clicks: int) -> str:
    for component, props in PAYLOADS.values():
        set_props(component, props)
    return f"pushed {len(PAYLOADS)}"


asgi = app.asgi
