"""quartdash.wire.guards: which Origin and Host may talk, as pure functions."""

from __future__ import annotations

import pytest

from quartdash.wire.guards import host_problem, origin_problem


@pytest.mark.parametrize("origin, host, allowed, ok", [
    ("http://127.0.0.1:8050", "127.0.0.1:8050", [], True),
    ("http://evil.example", "127.0.0.1:8050", [], False),
    ("https://a.partner.example", "x", ["https://*.partner.example"], True),
    ("https://partner.example", "x", ["https://*.partner.example"], False),
    ("https://a.partner.example.evil.example", "x", ["https://*.partner.example"], False),
    ("HTTPS://Embed.Example/", "x", ["https://embed.example"], True),
])
def test_origin(origin: str, host: str, allowed: list[str], ok: bool) -> None:
    assert (origin_problem(origin, host, allowed, False) is None) is ok


def test_a_missing_origin_only_when_allowed() -> None:
    assert origin_problem(None, "h", [], False) == "Origin header required"
    assert origin_problem(None, "h", [], True) is None


def test_refusals_do_not_quote_the_header() -> None:
    assert origin_problem("http://<script>", "h", [], False) == "Origin not allowed"
    assert host_problem("<script>", ["a.example"]) == "Host not allowed"


@pytest.mark.parametrize("host, ok", [
    ("app.example", True), ("app.example:8050", True), ("APP.EXAMPLE.", True),
    ("x.internal.example", True), ("internal.example", False), ("evil.example", False),
    ("app.example.evil.example", False), ("[::1]:8050", True), ("", False),
])
def test_host(host: str, ok: bool) -> None:
    allowed = ["app.example", "*.internal.example", "[::1]"]
    assert (host_problem(host, allowed) is None) is ok


def test_no_allow_list_allows_every_host() -> None:
    assert host_problem("anything.example", []) is None
