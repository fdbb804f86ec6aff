"""Hostile strings pushed with set_props over the WebSocket (tests/test_security.py).

Think of a chat or a log viewer: text that users typed ends up in other
users' components. A click on ``#push`` makes a WebSocket callback push
``javascript:`` URLs and HTML with event handlers into links, iframes, images,
markdown and plain children. Each payload, if it ever ran, would set
``window.__pwned`` (or the parent's) and open an ``alert``.

``#push-code`` (WebSocket) and ``#push-code-http`` (HTTP) try props whose
purpose is to run markup (``dangerouslySetInnerHTML``, ``srcDoc``, a component
carrying one, Markdown's raw-HTML switch): quartdash refuses each with
``UnsafePropError``. ``#push-trusted`` shows the two ways to opt in, and
``quartdash.text`` for untrusted data.
"""

from __future__ import annotations

from dash import Input, Output, Patch, dash_table, dcc, html, set_props

from quartdash import Dash, UnsafePropError, text, trusted

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

def _assign_props(props: dict[str, object]) -> Patch:
    """A Patch replacing the props of the component a Div holds as children."""
    patch = Patch()
    patch["props"] = props
    return patch


EVIL_FRAME = "<script>parent." + JS.format(tag="srcdoc") + "</script>"
CODE_PAYLOADS: list[tuple[str, dict[str, object]]] = [
    ("code-div", {"dangerouslySetInnerHTML": {
        "__html": '<img src=x onerror="{}">'.format(JS.format(tag="inner-html"))}}),
    ("code-frame", {"srcDoc": EVIL_FRAME}),
    ("code-div2", {"children": {"type": "Iframe", "namespace": "dash_html_components",
                                "props": {"srcDoc": EVIL_FRAME}}}),
    ("code-div3", {"children": html.Iframe(srcDoc=EVIL_FRAME)}),
    ("code-md", {"dangerously_allow_html": True}),
    ("code-div4", {"children": _assign_props({"dangerouslySetInnerHTML": {
        "__html": '<img src=x onerror="{}">'.format(JS.format(tag="patch-props"))}})}),
    ("code-table", {"markdown_options": {"html": True}}),
]


def push_code() -> str:
    refused = 0
    for component, props in CODE_PAYLOADS:
        try:
            set_props(component, props)
        except UnsafePropError:
            refused += 1
    return f"refused {refused} of {len(CODE_PAYLOADS)}"


app = Dash(__name__, websocket_callbacks=False, trusted_props=["preview.srcDoc"])
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
    html.Button("push code", id="push-code"),
    html.Button("push code over HTTP", id="push-code-http"),
    html.Div(id="code-done"),
    html.Div(id="code-div"),
    html.Iframe(id="code-frame"),
    html.Div(id="code-div2"),
    html.Div(id="code-div3"),
    html.Div(html.Div("a child component"), id="code-div4"),
    dash_table.DataTable(id="code-table", columns=[{"id": "c", "name": "c",
                                                    "presentation": "markdown"}],
                         data=[{"c": '<img src=x onerror="{}">'.format(
                             JS.format(tag="table-html"))}]),
    dcc.Markdown('<img src=x onerror="{}">'.format(JS.format(tag="md-raw")), id="code-md"),
    html.Button("push trusted", id="push-trusted"),
    html.Div(id="trusted-done"),
    html.Iframe(id="preview"),
    html.Iframe(id="preview2"),
    html.Div(id="as-text"),
])


@app.callback(Output("code-done", "children"), Input("push-code", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def push_code_ws(n_clicks: int) -> str:
    return "ws " + push_code()


@app.callback(Output("code-done", "children", allow_duplicate=True),
              Input("push-code-http", "n_clicks"), prevent_initial_call=True)
async def push_code_http(n_clicks: int) -> str:
    return "http " + push_code()


@app.callback(Output("trusted-done", "children"), Input("push-trusted", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def push_trusted(n_clicks: int) -> str:
    set_props("preview", {"srcDoc": "<p id='inside'>listed in trusted_props</p>"})
    set_props("preview2", {"srcDoc": trusted("<p id='inside'>trusted per call</p>")})
    set_props("as-text", {"children": text(CODE_PAYLOADS[2][1]["children"])})
    return "trusted pushed"


@app.callback(Output("done", "children"), Input("push", "n_clicks"), prevent_initial_call=True,
              websocket=True)
async def push(n_clicks: int) -> str:
    refused = 0
    for component, props in PAYLOADS.values():
        try:
            set_props(component, props)
        except UnsafePropError:
            # quartdash refuses script URLs; push them anyway, vouched for, to
            # prove the renderer's own defence holds behind ours.
            refused += 1
            set_props(component, {prop: trusted(value) for prop, value in props.items()})
    return f"pushed {len(PAYLOADS)}, {refused} refused"


asgi = app.asgi
