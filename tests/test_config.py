"""quartdash.config: keyword arguments in, validated settings out."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from quartdash import WebSocketConfig


def test_websocket_keywords_are_taken_and_dash_ones_left_for_dash() -> None:
    kwargs: dict[str, Any] = {"websocket_callbacks": True, "websocket_max_batch": 5,
                              "websocket_allowed_origins": ["https://a.example"],
                              "allowed_hosts": "app.example", "title": "t"}
    config = WebSocketConfig.pop_from(kwargs)
    assert config.enabled and config.max_batch == 5
    assert config.allowed_origins == ["https://a.example"]
    assert config.allowed_hosts == ["app.example"]  # one name is a list of one
    # Dash's own websocket_* options stay for dash.Dash; quartdash's are removed.
    assert kwargs == {"websocket_callbacks": True,
                      "websocket_allowed_origins": ["https://a.example"], "title": "t"}


def test_an_unknown_option_is_an_error() -> None:
    with pytest.raises(TypeError, match="websocket_max_bach"):
        WebSocketConfig.pop_from({"websocket_max_bach": 5})


@pytest.mark.parametrize("name", ["websocket_max_batch", "websocket_max_pending_bytes",
                                  "websocket_max_retained_bytes", "websocket_send_timeout"])
def test_limits_must_be_positive(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        WebSocketConfig.pop_from({name: 0})


def test_every_field_has_a_keyword() -> None:
    names = {WebSocketConfig.keyword(f.name) for f in fields(WebSocketConfig)}
    assert {"websocket_callbacks", "allowed_hosts", "trusted_props",
            "websocket_max_message_size"} <= names
    assert all(n.startswith("websocket_") or n in ("allowed_hosts", "trusted_props",
                                                  "inline_threshold")
               for n in names)


@pytest.mark.parametrize("value", [-1, 0.5, "fast"])
def test_inline_threshold_is_checked(value: object) -> None:
    with pytest.raises(ValueError, match="inline_threshold"):
        WebSocketConfig.pop_from({"inline_threshold": value})


def test_inline_threshold_keyword() -> None:
    assert WebSocketConfig.pop_from({"inline_threshold": 0}).inline_threshold == 0
    assert WebSocketConfig().inline_threshold == 0.001
