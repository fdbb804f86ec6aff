"""quartdash.hosting.sanitize: which set_props values are refused, and the ways to opt in."""

from __future__ import annotations

from typing import Any

import numpy
import pytest
from dash import Patch, dash_table, dcc, html

from quartdash import PropPolicy, UnsafePropError, text, trusted
from quartdash.hosting.sanitize import script_url

POLICY = PropPolicy(["preview.srcDoc"])


def _patch(write: Any) -> Patch:
    patch = Patch()
    write(patch)
    return patch


class _Encodes:
    def __init__(self, value: Any) -> None:
        self.value = value

    def to_plotly_json(self) -> Any:
        return self.value

REFUSED: dict[str, tuple[str, Any]] = {
    "dangerouslySetInnerHTML": ("dangerouslySetInnerHTML", {"__html": "<img onerror=x>"}),
    "srcDoc": ("srcDoc", "<script>x()</script>"),
    "srcdoc in any case": ("SRCDOC", "<script>x()</script>"),
    "Markdown's raw HTML switch": ("dangerously_allow_html", True),
    "javascript: href": ("href", "javascript:alert(1)"),
    "spaced, cased javascript:": ("href", "  \x01JaVaScRiPt:alert(1)"),
    "javascript: broken by a tab": ("src", "java\tscript:alert(1)"),
    "vbscript:": ("action", "vbscript:msgbox(1)"),
    "data:text/html": ("formAction", "data:text/html,<script>x()</script>"),
    "component dict with srcDoc": ("children", {
        "type": "Iframe", "namespace": "dash_html_components",
        "props": {"srcDoc": "<script>x()</script>"}}),
    "component dict deep in a list": ("children", ["a", [{"type": "Div", "namespace": "x",
        "props": {"children": {"type": "A", "namespace": "dash_html_components",
                               "props": {"href": "javascript:x()"}}}}]]),
    "component object": ("children", html.Div(html.Iframe(srcDoc="<script>x()</script>"))),
    "Markdown object rendering HTML": ("children", dcc.Markdown("<b>x</b>",
                                                                dangerously_allow_html=True)),
    "AG Grid's code switch": ("dangerously_allow_code", True),
    "DataTable's raw HTML markdown": ("markdown_options", {"html": True}),
    "DataTable with raw HTML, as a value": ("children", dash_table.DataTable(
        markdown_options={"html": True}, data=[{"c": "<img onerror=x>"}])),
    "an SVG data URL": ("src", "data:image/svg+xml,<svg onload=alert(1)>"),
    "an XHTML data URL": ("data", "data:application/xhtml+xml,<x/>"),
    "a plain component dict": ("children", {"type": "Div", "namespace": "dash_html_components",
                                            "props": {"children": "harmless looking"}}),
    "a Patch assigning props": ("children", _patch(lambda p: p.__setitem__(
        "props", {"dangerouslySetInnerHTML": {"__html": "<img onerror=x>"}}))),
    "a Patch merging props": ("children", _patch(lambda p: p["props"].update(
        {"srcDoc": "<script>x()</script>"}))),
    "a Patch writing a script URL": ("children", _patch(lambda p: p["props"].__setitem__(
        "href", "javascript:x()"))),
    "a Patch appending a component dict": ("children", _patch(lambda p: p.append(
        {"type": "Iframe", "namespace": "dash_html_components", "props": {}}))),
    "an object array holding a component dict": ("children", numpy.array(
        [{"type": "Iframe", "namespace": "x", "props": {}}], dtype=object)),
    "an object that encodes itself": ("children", _Encodes({"props": {}, "type": "A",
                                                            "namespace": "x"})),
}


@pytest.mark.parametrize("prop, value", REFUSED.values(), ids=REFUSED.keys())
def test_code_running_values_are_refused(prop: str, value: Any) -> None:
    with pytest.raises(UnsafePropError, match="trusted"):
        POLICY.check("out", prop, value)


ALLOWED: dict[str, tuple[str, Any]] = {
    "HTML as text": ("children", "<script>alert(1)</script>"),
    "a plain link": ("href", "https://example.com/javascript:ok"),
    "a PNG data URL": ("src", "data:image/png;base64,AAAA"),
    "a Patch appending a component": ("children", _patch(lambda p: p.append(html.B("x")))),
    "a Patch writing a safe link": ("children", _patch(lambda p: p["props"].__setitem__(
        "href", "/next"))),
    "rows of data": ("data", [{"type": "a", "namespace": "b", "value": 1}] * 3),
    "a relative link": ("href", "/page"),
    "an image data URL": ("src", "data:image/png;base64,AAAA"),
    "a figure": ("figure", {"data": [{"x": [1, 2], "y": [3, 4]}], "layout": {}}),
    "a safe component": ("children", html.A("x", href="https://example.com")),
    "words in a string": ("children", "set dangerouslySetInnerHTML and srcDoc"),
    "numbers": ("value", [1, 2.5, None, True]),
}


@pytest.mark.parametrize("prop, value", ALLOWED.values(), ids=ALLOWED.keys())
def test_ordinary_values_pass_unchanged(prop: str, value: Any) -> None:
    assert POLICY.check("out", prop, value) is value


def test_trusted_per_call_is_unwrapped() -> None:
    assert POLICY.check("out", "srcDoc", trusted("<p>ok</p>")) == "<p>ok</p>"
    # Inside a value too: a trusted component prop, or a trusted component dict.
    value = html.Div(html.Iframe(srcDoc=trusted("<p>ok</p>")))
    assert POLICY.check("out", "children", value) is value
    raw = [trusted({"type": "Iframe", "namespace": "dash_html_components", "props": {}})]
    assert POLICY.check("out", "children", raw) is raw


def test_trusted_per_component_property() -> None:
    assert POLICY.check("preview", "srcDoc", "<p>ok</p>") == "<p>ok</p>"
    with pytest.raises(UnsafePropError):
        POLICY.check("preview", "dangerouslySetInnerHTML", {"__html": "x"})


def test_a_patch_that_writes_a_code_prop_is_refused() -> None:
    patch = Patch()
    patch["props"]["dangerouslySetInnerHTML"] = {"__html": "<img onerror=x>"}
    with pytest.raises(UnsafePropError):
        POLICY.check("out", "children", patch)
    ok = Patch()
    ok.append("line")
    assert POLICY.check("out", "children", ok) is ok


def test_text_makes_anything_a_string() -> None:
    component = {"type": "Iframe", "namespace": "dash_html_components",
                 "props": {"srcDoc": "<script>x()</script>"}}
    rendered = text(component)
    assert isinstance(rendered, str) and "srcDoc" in rendered
    assert POLICY.check("out", "children", rendered) == rendered
    assert text(None) == "" and text("plain") == "plain" and text(3) == "3"


def test_trusted_values_encode_as_their_value() -> None:
    from quartdash.wire.protocol import dumps

    assert dumps({"v": trusted("<p>")}) == b'{"v":"<p>"}'


@pytest.mark.parametrize("url, runs", [
    ("javascript:x", True), ("JAVASCRIPT:x", True), ("\n javascript:x", True),
    ("jav\r\nascript:x", True), ("https://x", False), ("javascript", False), (None, False),
])
def test_script_url_reads_urls_like_a_browser(url: Any, runs: bool) -> None:
    assert script_url(url) is runs
