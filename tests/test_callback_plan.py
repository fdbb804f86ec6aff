"""HTTP callbacks: the lean path (hosting/callback_plan.py) answers exactly as Dash's.

Every case is posted twice to the same app through Quart's test client, once
with plans on and once with ``live.use_plans = False`` (Dash's own
``_prepare_callback`` / ``add_context`` / ``to_json``), and the status,
the body (byte for byte) and the headers a callback may set must agree.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dash
import numpy as np
import plotly.graph_objects as go
import pytest
from dash import ALL, MATCH, Input, Output, Patch, State, ctx, dcc, html, no_update, set_props
from dash.exceptions import PreventUpdate

from quartdash import Dash
from quartdash.hosting import dash_internals
from quartdash.hosting.callback_plan import CallbackPlan, RequestContext
from quartdash.hosting.inline import MAX_EVIDENCE, PROMOTE_AFTER, SLOW_FACTOR, InlinePolicy

app = Dash(__name__, inline_threshold=0.05)
app.layout = html.Div([html.Div(id=name) for name in ("a", "b", "c", "d", "e")])


@app.callback(Output("a", "children"), Input("btn", "n_clicks"))
def single(n: int) -> str:
    return f"clicked {n}"


@app.callback(Output("b", "children"), Output("c", "children"),
              Input("btn", "n_clicks"), State("inp", "value"))
async def two_async(n: int, value: str) -> tuple[Any, Any]:
    return n, {"value": value}


@app.callback(output={"x": Output("d", "children"), "y": Output("e", "children")},
              inputs={"n": Input("g", "n_clicks"), "s": State("g", "title")})
def grouped(n: int, s: str) -> dict[str, Any]:
    return {"x": n, "y": s}


@app.callback(Output("ctx-out", "children"), Input("ctx-btn", "n_clicks"),
              State("ctx-in", "value"))
def reads_ctx(n: int, value: str) -> Any:
    return {
        "triggered_id": ctx.triggered_id,
        "triggered": ctx.triggered,
        "inputs": ctx.inputs,
        "states": ctx.states,
        "outputs_list": ctx.outputs_list,
        "args_grouping": ctx.args_grouping,
        "using_args_grouping": ctx.using_args_grouping,
        "cookies": ctx.cookies,
        "headers": sorted(k.lower() for k in ctx.headers),
        "path": ctx.path,
        "origin": ctx.origin,
        "remote": ctx.remote,
    }


@app.callback(Output("resp-out", "children"), Input("resp-btn", "n_clicks"))
def sets_cookie(n: int) -> str:
    ctx.response.set_cookie("seen", str(n))
    ctx.response.set_header("X-Callback", "yes")
    return "ok"


@app.callback(Output({"type": "cell", "index": ALL}, "children"),
              Input({"type": "cell-in", "index": ALL}, "value"))
def pattern_all(values: list[Any]) -> list[Any]:
    return [f"<{v}>" for v in values]


@app.callback(Output({"type": "m", "index": MATCH}, "children"),
              Input({"type": "m-in", "index": MATCH}, "value"))
async def pattern_match(value: Any) -> Any:
    return [value, ctx.triggered_id]


@app.callback(Output("pu-out", "children"), Input("pu-btn", "n_clicks"))
def prevents(n: int) -> str:
    if n == 1:
        raise PreventUpdate
    if n == 2:
        return no_update
    return "x"


@app.callback(Output("nu1", "children"), Output("nu2", "children"), Input("nu-btn", "n_clicks"))
def partial_no_update(n: int) -> tuple[Any, Any]:
    return (no_update, n) if n % 2 else no_update


@app.callback(Input("sp-btn", "n_clicks"))
def no_output(n: int) -> None:
    set_props("sp-out", {"children": f"set {n}"})
    if n == 3:
        return "a value"  # type: ignore[return-value]  # Dash: InvalidCallbackReturnValue
    return None


@app.callback(Input("sp0-btn", "n_clicks"))
async def no_output_nothing(n: int) -> None:
    return None


@app.callback(Output("spo", "children"), Input("spo-btn", "n_clicks"))
async def output_and_set_props(n: int) -> str:
    set_props("other", {"title": "t", "children": html.B("bold")})
    return "main"


@app.callback(Output("err", "children"), Input("err-btn", "n_clicks"))
def fails(n: int) -> str:
    raise ValueError("callback failed")


@app.callback(Output("oe", "children"), Input("oe-btn", "n_clicks"),
              on_error=lambda err: f"handled {type(err).__name__}")
def fails_handled(n: int) -> str:
    raise KeyError("nope")


@app.callback(Output("oe2", "children"), Output("oe3", "children"), Input("oe2-btn", "n_clicks"),
              on_error=lambda err: None)
async def fails_to_no_update(n: int) -> tuple[str, str]:
    raise RuntimeError("x")


@app.callback(Output("wc1", "children"), Output("wc2", "children"), Input("wc-btn", "n_clicks"))
def wrong_count(n: int) -> list[int]:
    return [1, 2, 3]


@app.callback(Output("bad", "children"), Input("bad-btn", "n_clicks"))
def unencodable(n: int) -> Any:
    return {"obj": object()}


@app.callback(Output("fig", "figure"), Input("fig-btn", "n_clicks"))
def figure(n: int) -> go.Figure:
    xs = np.arange(50)
    return go.Figure(go.Scatter(x=xs, y=np.sin(xs / 5.0), name="</script><b>"))


@app.callback(Output("np", "children"), Input("np-btn", "n_clicks"))
def numpy_values(n: int) -> Any:
    return {"f32": np.arange(3, dtype=np.float32) / 3, "i": np.int64(7),
            "nan": float("nan"), "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
            "day": datetime.date(2026, 1, 2), "comp": html.P("p")}


@app.callback(Output("patch", "children"), Input("patch-btn", "n_clicks"))
def patches(n: int) -> Patch:
    patch = Patch()
    patch.append(n)
    return patch


@app.callback(Output("dup", "children", allow_duplicate=True), Input("dup-btn", "n_clicks"),
              prevent_initial_call=True)
def duplicate(n: int) -> str:
    return "dup"


@app.callback(Output("dd", "options"), Input("dd-btn", "n_clicks"))
def component_options(n: int) -> Any:
    return [{"label": dcc.Markdown("**x**"), "value": "x"}]


def request_for(output: str, inputs: list[Any], state: list[Any] | None = None,
                outputs: Any = None, changed: list[str] | None = None) -> dict[str, Any]:
    """The body dash-renderer posts."""
    if outputs is None:
        parts = [o.rsplit(".", 1) for o in output.strip(".").split("...")]
        outputs = [{"id": i, "property": p} for i, p in parts]
        outputs = outputs[0] if not output.startswith("..") else outputs
    if changed is None:
        changed = [f"{i['id']}.{i['property']}" for i in inputs if isinstance(i, dict)
                   and isinstance(i["id"], str)]
    return {"output": output, "outputs": outputs, "inputs": inputs, "state": state or [],
            "changedPropIds": changed}


def callback_id(function_name: str) -> str:
    """The id Dash gave a callback (no-output ones get a hash)."""
    return next(key for key, entry in app.callback_map.items()
                if entry["callback"].__name__ == function_name)


def click(id_: str, n: int = 1) -> dict[str, Any]:
    return {"id": id_, "property": "n_clicks", "value": n}


def cell(i: int, value: Any, kind: str = "cell-in") -> dict[str, Any]:
    return {"id": {"type": kind, "index": i}, "property": "value", "value": value}


CASES: dict[str, dict[str, Any]] = {
    "single": request_for("a.children", [click("btn", 3)]),
    "single-none": request_for("a.children", [{"id": "btn", "property": "n_clicks"}]),
    "two-async": request_for("..b.children...c.children..", [click("btn")],
                             [{"id": "inp", "property": "value", "value": "v<"}]),
    "grouped": request_for("..d.children...e.children..", [click("g", 4)],
                           [{"id": "g", "property": "title", "value": "T"}]),
    "ctx": request_for("ctx-out.children", [click("ctx-btn", 2)],
                       [{"id": "ctx-in", "property": "value", "value": "s"}]),
    "cookie": request_for("resp-out.children", [click("resp-btn", 5)]),
    "pattern-all": request_for(
        '{"index":["ALL"],"type":"cell"}.children', [[cell(1, "a"), cell(2, "b")]],
        outputs=[[{"id": {"type": "cell", "index": 1}, "property": "children"},
                  {"id": {"type": "cell", "index": 2}, "property": "children"}]]),
    "pattern-all-wrong-count": request_for(
        '{"index":["ALL"],"type":"cell"}.children', [[cell(1, "a"), cell(2, "b")]],
        outputs=[[{"id": {"type": "cell", "index": 1}, "property": "children"}]]),
    "pattern-match": request_for(
        '{"index":["MATCH"],"type":"m"}.children', [cell(3, "q", "m-in")],
        outputs={"id": {"type": "m", "index": 3}, "property": "children"},
        changed=['{"index":3,"type":"m-in"}.value']),
    "prevent": request_for("pu-out.children", [click("pu-btn", 1)]),
    "no-update": request_for("pu-out.children", [click("pu-btn", 2)]),
    "partial-no-update": request_for("..nu1.children...nu2.children..", [click("nu-btn", 1)]),
    "whole-no-update": request_for("..nu1.children...nu2.children..", [click("nu-btn", 2)]),
    "no-output-set-props": request_for(callback_id("no_output"), [click("sp-btn", 1)], outputs=[]),
    "no-output-returns": request_for(callback_id("no_output"), [click("sp-btn", 3)], outputs=[]),
    "no-output-nothing": request_for(callback_id("no_output_nothing"), [click("sp0-btn", 1)],
                                     outputs=[]),
    "output-and-set-props": request_for("spo.children", [click("spo-btn")]),
    "raises": request_for("err.children", [click("err-btn")]),
    "on-error": request_for("oe.children", [click("oe-btn")]),
    "on-error-none": request_for("..oe2.children...oe3.children..", [click("oe2-btn")]),
    "wrong-count": request_for("..wc1.children...wc2.children..", [click("wc-btn")]),
    "unencodable": request_for("bad.children", [click("bad-btn")]),
    "figure": request_for("fig.figure", [click("fig-btn")]),
    "numpy": request_for("np.children", [click("np-btn")]),
    "patch": request_for("patch.children", [click("patch-btn", 9)]),
    "allow-duplicate": request_for(callback_id("duplicate"), [click("dup-btn")]),
    "component-options": request_for("dd.options", [click("dd-btn")]),
    # Requests that do not fit their callback.
    "too-many-inputs": request_for("a.children", [click("btn"), click("btn")]),
    "wrong-output": request_for("a.children", [click("btn")],
                                outputs={"id": "zz", "property": "children"}),
    "wrong-output-property": request_for("a.children", [click("btn")],
                                         outputs={"id": "a", "property": "title"}),
    "outputs-missing": request_for("..b.children...c.children..", [click("btn")],
                                   [{"id": "inp", "property": "value"}],
                                   outputs=[{"id": "b", "property": "children"}]),
    "pattern-output-not-a-pattern": request_for(
        '{"index":["MATCH"],"type":"m"}.children', [cell(3, "q", "m-in")],
        outputs={"id": "m", "property": "children"}),
}

HEADERS = ("content-type", "set-cookie", "x-callback", "content-length")


async def answer(client: Any, payload: dict[str, Any]) -> tuple[int, bytes, dict[str, Any]]:
    response = await client.post("/_dash-update-component", json=payload,
                                 headers={"Origin": "http://localhost", "Cookie": "k=v"})
    body = await response.get_data()
    return response.status_code, body, {h: response.headers.get_all(h) for h in HEADERS}


@pytest.fixture
def client() -> Any:
    app.live.use_plans = True
    yield app.asgi.test_client()
    app.live.use_plans = True


@pytest.mark.parametrize("case", sorted(CASES))
async def test_plan_answers_as_dash_does(client: Any, case: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="quartdash")  # the failing cases log errors
    payload = CASES[case]
    app.live.use_plans = False
    dash_way = await answer(client, json.loads(json.dumps(payload)))
    app.live.use_plans = True
    plan_way = await answer(client, json.loads(json.dumps(payload)))
    assert plan_way == dash_way
    entry = app.callback_map[payload["output"]]
    assert app.live.plan_for(payload["output"], entry) is not None, "ran Dash's way"


async def test_the_cases_cover_answers_errors_and_refusals(client: Any,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="quartdash")
    statuses = {case: (await answer(client, payload))[0] for case, payload in CASES.items()}
    assert statuses["single"] == 200 and statuses["prevent"] == 204
    assert statuses["raises"] == 500 and statuses["wrong-count"] == 500
    assert statuses["too-many-inputs"] == 400 and statuses["wrong-output"] == 400
    assert statuses["pattern-output-not-a-pattern"] == 400


async def test_sync_callbacks_answer_the_same_on_the_loop(client: Any) -> None:
    # Enough runs to earn the event loop, then the same answer from there.
    payload = CASES["ctx"]
    first = await answer(client, payload)
    for _ in range(PROMOTE_AFTER):
        assert await answer(client, payload) == first
    assert app.live.inline.runs_inline("ctx-out.children")
    assert await answer(client, payload) == first


async def test_cookies_and_headers_are_read_only_when_asked(client: Any) -> None:
    seen: list[RequestContext] = []

    @app.callback(Output("lazy", "children"), Input("lazy-btn", "n_clicks"))
    def peek(n: int) -> str:
        seen.append(dash_internals.current_callback_context())
        return "x"

    status, body, _ = await answer(client, request_for("lazy.children", [click("lazy-btn")]))
    assert status == 200, body
    context = seen[0]
    assert isinstance(context, RequestContext)
    assert not context.made("cookies") and not context.made("args_grouping")
    assert "cookies" in context and len(context) == len(dict(context))
    assert context.made("cookies") and context["cookies"] == {"k": "v"}


def test_background_and_streaming_callbacks_have_no_plan() -> None:
    other = dash.Dash(__name__)

    @other.callback(Output("s", "children"), Input("s-btn", "n_clicks"))
    def gen(n: int) -> Any:
        yield n

    assert CallbackPlan.of(other.callback_map["s.children"]) is None
    assert CallbackPlan.of({"callback": lambda: None}) is None  # not Dash's wrapper


async def test_a_fast_callback_earns_the_loop_and_a_slow_one_loses_it(
        caplog: pytest.LogCaptureFixture) -> None:
    loop_thread = threading.get_ident()
    policy = InlinePolicy(0.01, ThreadPoolExecutor(1))
    threads = [await policy.run("cb", threading.get_ident) for _ in range(PROMOTE_AFTER)]
    assert loop_thread not in threads, "a new callback starts in the pool"
    assert policy.runs_inline("cb")
    assert await policy.run("cb", threading.get_ident) == loop_thread

    with caplog.at_level(logging.WARNING, logger="quartdash"):
        await policy.run("cb", lambda: time.sleep(0.01 * SLOW_FACTOR * 1.5))
        assert policy.runs_inline("cb")  # once may be the garbage collector
        await policy.run("cb", threading.get_ident)
        await policy.run("cb", lambda: time.sleep(0.01 * SLOW_FACTOR * 1.5))
        assert policy.runs_inline("cb")  # not twice in a row
        await policy.run("cb", lambda: time.sleep(0.01 * SLOW_FACTOR * 1.5))
    assert not policy.runs_inline("cb")
    assert "held the event loop" in caplog.text
    for _ in range(PROMOTE_AFTER * 2):  # demoted for good
        assert await policy.run("cb", threading.get_ident) != loop_thread

    # One slow run in the pool starts the count again; 0 never inlines.
    policy = InlinePolicy(0.01, ThreadPoolExecutor(1))
    for _ in range(PROMOTE_AFTER - 1):
        await policy.run("cb", lambda: None)
    await policy.run("cb", lambda: time.sleep(0.02))
    await policy.run("cb", lambda: None)
    assert not policy.runs_inline("cb")
    never = InlinePolicy(0, ThreadPoolExecutor(1))
    for _ in range(PROMOTE_AFTER * 2):
        await never.run("cb", lambda: None)
    assert not never.runs_inline("cb")
    await asyncio.sleep(0)


def compute(seconds: float, pieces: int = 10) -> int:
    """``seconds`` of this thread's CPU in pure Python, letting go of the GIL
    between ``pieces`` (as numpy does around its loops): other threads get in."""
    n = 0
    for _ in range(pieces):
        end = time.thread_time() + seconds / pieces
        while time.thread_time() < end:
            n += 1
        time.sleep(0)
    return n


async def rounds_until_inline(policy: InlinePolicy, call: Any, *, concurrent: int,
                              rounds: int) -> int | None:
    """Runs of ``call`` ``concurrent`` at a time; the round after which it ran inline."""
    for n in range(1, rounds + 1):
        await asyncio.gather(*(policy.run("cb", call) for _ in range(concurrent)))
        if policy.runs_inline("cb"):
            return n
    return None


async def test_a_compute_only_callback_earns_the_loop_under_load() -> None:
    """Eight at a time in the pool, a 2 ms callback takes ~20 ms of wall time
    waiting for the GIL: that is not held against it (its CPU time is what
    counts), and its trial on the loop, alone, takes 2 ms."""
    policy = InlinePolicy(0.01, ThreadPoolExecutor(8))
    waits = []

    def figure() -> int:
        start = time.perf_counter()
        done = compute(0.002)
        waits.append(time.perf_counter() - start)
        return done

    promoted = await rounds_until_inline(policy, figure, concurrent=8, rounds=20)
    assert promoted is not None, sorted(waits)[-5:]
    assert max(waits) >= 0.01  # its wall time alone would not have promoted it
    await policy.run("cb", figure)  # the trial, on the loop
    assert policy.runs_inline("cb")


async def test_a_callback_that_waits_on_io_loses_its_trial_and_waits_longer() -> None:
    """Under the same load a callback sleeping 20 ms (a query) looks cheap in
    CPU; its trial on the loop shows the wait: back to the pool, and the
    next trial needs twice the fast runs."""
    policy = InlinePolicy(0.01, ThreadPoolExecutor(8))
    io = lambda: time.sleep(0.02)  # noqa: E731
    assert await rounds_until_inline(policy, io, concurrent=8, rounds=4) is not None
    loop_thread = threading.get_ident()
    assert await policy.run("cb", lambda: (io(), threading.get_ident())[1]) == loop_thread
    assert not policy.runs_inline("cb")  # the trial held the loop 20 ms: lost
    record = policy._records["cb"]
    assert record.needed == 2 * PROMOTE_AFTER and not record.demoted
    for _ in range(8):
        record.needed = min(record.needed * 2, MAX_EVIDENCE)
    assert record.needed == MAX_EVIDENCE
    # Alone in the pool, its 20 ms wall time is no fast run at all.
    for _ in range(PROMOTE_AFTER):
        await policy.run("cb", io)
    assert policy._records["cb"].fast_runs == 0


async def test_runs_on_the_loop_slowed_by_pool_threads_do_not_send_it_back() -> None:
    """Once on the loop, a 1 ms callback's runs may take far longer in wall
    time while pool threads (other callbacks, or its own runs from before
    the promotion) take the GIL from the loop: judged by CPU time then, it
    stays on the loop."""
    policy = InlinePolicy(0.005, ThreadPoolExecutor(8))
    assert await rounds_until_inline(policy, lambda: compute(0.001), concurrent=8,
                                     rounds=20) is not None
    await policy.run("cb", lambda: compute(0.001))  # the trial, alone
    assert policy.runs_inline("cb")

    walls = []

    def timed_inline() -> None:
        start = time.perf_counter()
        compute(0.001)
        walls.append(time.perf_counter() - start)

    others = [asyncio.ensure_future(policy.run("other", lambda: compute(0.02)))
              for _ in range(8)]
    await asyncio.sleep(0.005)  # the pool threads are computing
    for _ in range(5):
        await policy.run("cb", timed_inline)
    await asyncio.gather(*others)
    assert max(walls) > 0.005 * SLOW_FACTOR, walls  # the wall time alone would demote it
    assert policy.runs_inline("cb") and not policy._records["cb"].demoted
