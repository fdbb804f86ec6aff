"""A Dash pages app under ``/app/`` whose second page has ``redirect_from``.

Dash pages are process-wide (one page registry), so one app per process:
``COMPAT_PAGES_FRONT_DOOR=blueprint`` (default) serves it as a
``DashBlueprint(url_prefix="/app")``, ``dropin`` as a
``quartdash.Dash(url_base_pathname="/app/")`` on this Quart app. Served by
hypercorn in tests/test_dash_compat_browser.py.
"""

from __future__ import annotations

import os

import dash
from dash import dcc, html
from quart import Quart

from quartdash import Dash, DashBlueprint

FRONT_DOOR = os.environ.get("COMPAT_PAGES_FRONT_DOOR", "blueprint")

asgi = Quart(__name__)

app: Dash | DashBlueprint
if FRONT_DOOR == "blueprint":
    app = DashBlueprint("site", __name__, url_prefix="/app", use_pages=True, pages_folder="")
elif FRONT_DOOR == "dropin":
    app = Dash(__name__, server=asgi, url_base_pathname="/app/", use_pages=True,
               pages_folder="")
else:
    raise ValueError(f"COMPAT_PAGES_FRONT_DOOR={FRONT_DOOR!r}: 'blueprint' or 'dropin'")

dash.register_page("home", path="/", layout=html.Div([
    html.H1("Home", id="page-title"),
    dcc.Link("Page two", href=app.get_relative_path("/page-2"), id="to-two"),
]))
dash.register_page("two", path="/page-2", redirect_from=["/v2", "/old/two"],
                   layout=html.H1("Page two", id="page-title"))

app.layout = html.Div([html.Div(FRONT_DOOR, id="front-door"), dash.page_container])

if isinstance(app, DashBlueprint):
    asgi.register_blueprint(app)
