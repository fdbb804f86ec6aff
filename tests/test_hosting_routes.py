"""Routes and HTTP callbacks of two DashBlueprints in one Quart app (Quart's test client)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest
from dash import Input, Output, html
from quart import Quart

from quartdash import Dash, DashBlueprint
from tests.apps.hosting_two import a as app_a
from tests.apps.hosting_two import asgi


def body(output: str, inputs: list[dict[str, Any]], state: list[dict[str, Any]] | None = None,
         outputs: Any = None, changed: list[str] | None = None) -> dict[str, Any]:
    """A callback request as dash-renderer posts it."""
    if outputs is None:
        outputs = [
            {"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]}
            for o in output.strip(".").split("...")
        ]
        outputs = outputs[0] if len(outputs) == 1 else outputs
    return {
        "output": output,
        "outputs": outputs,
        "inputs": inputs,
        "state": state or [],
        "changedPropIds": changed if changed is not None else [
            f"{i['id']}.{i['property']}" for i in inputs if isinstance(i, dict)
        ],
    }


async def post(client: Any, prefix: str, payload: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post(f"{prefix}/_dash-update-component", json=payload)
    data = await response.get_data()
    return response.status_code, (json.loads(data) if data else None)


@pytest.fixture
def client() -> Any:
    return asgi.test_client()


async def test_each_app_serves_its_own_pages(client: Any) -> None:
    for prefix, title in (("/a", "App A"), ("/b", "App B")):
        page = await client.get(f"{prefix}/")
        html_text = (await page.get_data()).decode()
        assert page.status_code == 200
        assert f"<title>{title}</title>" in html_text
        # Every asset URL the page names lives under its own prefix.
        for src in re.findall(r'src="([^"]+)"', html_text):
            assert src.startswith((f"{prefix}/_dash-component-suites/",
                                   f"{prefix}/_quartdash/page.js")), src
        layout = await (await client.get(f"{prefix}/_dash-layout")).get_json()
        assert f"App {prefix[1:].upper()}" in json.dumps(layout)
    plain = await client.get("/plain")
    assert (await plain.get_data()) == b"plain quart route"


async def test_dependencies_do_not_cross(client: Any) -> None:
    deps_a = await (await client.get("/a/_dash-dependencies")).get_json()
    deps_b = await (await client.get("/b/_dash-dependencies")).get_json()
    assert len(deps_b) == 1 and deps_b[0]["output"] == "out.children"
    assert len(deps_a) > 5
    assert not any(d["output"] == "slow-out.children" for d in deps_b)


async def test_catchall_favicon_reload_hash(client: Any) -> None:
    assert (await client.get("/a/deep/page/path")).status_code == 200
    favicon = await client.get("/b/_favicon.ico")
    assert favicon.status_code == 200 and favicon.content_type == "image/x-icon"
    assert "reloadHash" in await (await client.get("/a/_reload-hash")).get_json()
    assert (await client.get("/a")).status_code in (301, 308)  # to /a/


async def test_component_suites_are_fingerprinted_and_cached(client: Any) -> None:
    page = (await (await client.get("/a/")).get_data()).decode()
    src = re.findall(r'src="(/a/_dash-component-suites/dash/[^"]+\.js)"', page)[0]
    response = await client.get(src)
    assert response.status_code == 200
    assert "max-age=31536000" in response.headers["Cache-Control"]
    assert len(await response.get_data()) > 1000
    missing = await client.get("/a/_dash-component-suites/dash/not-registered.v1_0_0m1.js")
    assert missing.status_code == 404


async def test_http_callback_state_set_props_triggered_id(client: Any) -> None:
    status, data = await post(client, "/a", body(
        "out.children",
        [{"id": "btn", "property": "n_clicks", "value": 2}],
        [{"id": "name", "property": "value", "value": "Ann"}],
    ))
    assert status == 200
    assert data["response"]["out"]["children"] == "clicked 2 times, hello Ann (trigger: btn)"
    assert data["sideUpdate"] == {"side": {"children": "side effect 2"}}


async def test_same_ids_other_app_other_callback(client: Any) -> None:
    status, data = await post(client, "/b", body(
        "out.children", [{"id": "btn", "property": "n_clicks", "value": 5}]))
    assert status == 200
    assert data["response"]["out"]["children"] == "b clicked 5"


async def test_multi_output_and_no_update(client: Any) -> None:
    out = "..multi-1.children...multi-2.children.."
    outputs = [{"id": "multi-1", "property": "children"}, {"id": "multi-2", "property": "children"}]
    _, odd = await post(client, "/a", body(out, [{"id": "btn", "property": "n_clicks", "value": 1}],
                                           outputs=outputs))
    assert odd["response"] == {"multi-1": {"children": "odd 1"},
                               "multi-2": {"children": "second output 1"}}
    _, even = await post(client, "/a", body(out, [{"id": "btn", "property": "n_clicks", "value": 2}],
                                            outputs=outputs))
    assert even["response"] == {"multi-1": {"children": "even 2"}}  # no_update left out


async def test_patch_and_pattern_matching(client: Any) -> None:
    _, data = await post(client, "/a", body("items.children",
                                            [{"id": "add", "property": "n_clicks", "value": 1}]))
    patch = data["response"]["items"]["children"]
    assert patch["__dash_patch_update"] == "__dash_patch_update"
    assert patch["operations"][0]["operation"] == "Append"

    match_id = {"type": "item-out", "index": 7}
    output = '{"index":["MATCH"],"type":"item-out"}.children'
    _, data = await post(client, "/a", body(
        output,
        [{"id": {"type": "item-in", "index": 7}, "property": "value", "value": "seven"}],
        outputs={"id": match_id, "property": "children"},
        changed=['{"index":7,"type":"item-in"}.value'],
    ))
    assert data["response"] == {'{"index":7,"type":"item-out"}': {"children": "echo: seven"}}

    all_inputs = [[
        {"id": {"type": "item-in", "index": i}, "property": "value", "value": f"v{i}"}
        for i in range(3)
    ]]
    _, data = await post(client, "/a", body("store.data", all_inputs,
                                            changed=['{"index":2,"type":"item-in"}.value']))
    assert data["response"]["store"]["data"]["operations"][0]["params"] == {"value": 3}


async def test_prevent_update_is_204(client: Any) -> None:
    status, data = await post(client, "/a", body(
        "store-view.children", [{"id": "store", "property": "data", "value": None}]))
    assert status == 204 and data is None


async def test_errors_hidden_without_debug(client: Any) -> None:
    response = await client.post("/a/_dash-update-component", json=body(
        "boom-out.children", [{"id": "boom-btn", "property": "n_clicks", "value": 1}]))
    text = (await response.get_data()).decode()
    assert response.status_code == 500
    assert "SECRET" not in text and "/etc/passwd" not in text and "Traceback" not in text


async def test_errors_shown_in_debug() -> None:
    app = Quart(__name__)
    bp = DashBlueprint("dbg", __name__, url_prefix="/dbg")
    bp.layout = html.Div([html.Button(id="b"), html.Div(id="o")])

    @bp.callback(Output("o", "children"), Input("b", "n_clicks"), prevent_initial_call=True)
    def fails(n: int) -> str:
        raise RuntimeError("visible in debug")

    bp.enable_dev_tools(debug=True, dev_tools_hot_reload=False)
    app.register_blueprint(bp)
    response = await app.test_client().post("/dbg/_dash-update-component", json=body(
        "o.children", [{"id": "b", "property": "n_clicks", "value": 1}]))
    assert response.status_code == 500
    assert "visible in debug" in (await response.get_data()).decode()


async def test_blocking_def_callback_does_not_stall_the_loop(client: Any) -> None:
    slow = asyncio.create_task(post(client, "/a", body(
        "slow-out.children", [{"id": "slow-btn", "property": "n_clicks", "value": 1}])))
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    _, fast = await post(client, "/a", body(
        "async-out.children", [{"id": "async-btn", "property": "n_clicks", "value": 1}]))
    fast_took = time.perf_counter() - started
    assert fast["response"]["async-out"]["children"] == "async 1"
    assert fast_took < 0.5, f"an async callback waited {fast_took:.2f}s behind a blocking one"
    status, data = await slow
    assert status == 200 and data["response"]["slow-out"]["children"] == "slow done"


async def test_unknown_callback_is_a_clear_400(client: Any) -> None:
    response = await client.post("/a/_dash-update-component", json=body(
        "nope.children", [{"id": "x", "property": "y", "value": 1}]))
    assert response.status_code == 400
    assert "unknown callback" in (await response.get_data()).decode()


def test_blueprint_refuses_another_prefix() -> None:
    bp = DashBlueprint("moved", __name__, url_prefix="/here")
    bp.layout = html.Div()
    with pytest.raises(ValueError, match="url_prefix='/here'"):
        Quart(__name__).register_blueprint(bp, url_prefix="/there")


def test_dropin_dash_owns_a_quart_app() -> None:
    app = Dash(__name__, title="drop-in")
    assert isinstance(app.asgi, Quart) and app.server is app.asgi
    with pytest.raises(TypeError, match="backend"):
        Dash(__name__, backend="flask")
    with pytest.raises(TypeError, match="unknown option"):
        Dash(__name__, websocket_bogus=1)


async def test_dropin_mounts_on_an_existing_quart_app() -> None:
    quart_app = Quart(__name__)

    @quart_app.route("/health")
    async def health() -> str:
        return "ok"

    app = Dash(__name__, server=quart_app, url_base_pathname="/dash/")
    app.layout = html.Div("mounted", id="m")
    client = quart_app.test_client()
    assert (await (await client.get("/health")).get_data()) == b"ok"
    assert (await client.get("/dash/")).status_code == 200
    assert "mounted" in json.dumps(await (await client.get("/dash/_dash-layout")).get_json())


def test_app_a_attributes_reach_the_dash_app() -> None:
    assert app_a.title == "App A"
    assert app_a.dash.title == "App A"
    assert app_a.get_relative_path("/x") == "/a/x"
