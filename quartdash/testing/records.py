"""What the test client records: frames, messages, pushes and callback results.

Plain records of what the server sent (:class:`Frame`, :class:`Received`,
:class:`Push`, :class:`GetPropsRequest`) and the answers to callbacks, over
the WebSocket (:class:`CallbackResult`) and over HTTP
(:class:`HttpCallbackResult`, :class:`HttpResponse`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .ids import ComponentId, stringify_id

__all__ = [
    "CallbackResult",
    "Event",
    "Frame",
    "GetPropsRequest",
    "HttpCallbackResult",
    "HttpResponse",
    "Push",
    "Received",
]


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket text frame the server sent: a message or a batch (JSON array)."""

    index: int
    text: str
    messages: tuple[dict[str, Any], ...]
    received_at: float
    batch: bool


@dataclass(frozen=True, slots=True)
class Received:
    """One message the server sent, with where and when it arrived."""

    seq: int
    message: dict[str, Any]
    frame: int
    received_at: float

    @property
    def type(self) -> str:
        return str(self.message.get("type"))


@dataclass(frozen=True, slots=True)
class Push:
    """One property value a ``set_props`` message carried to a renderer."""

    renderer_id: str
    component_id: str
    prop: str
    value: Any
    received_at: float
    seq: int

    def __repr__(self) -> str:
        return f"<Push {self.component_id}.{self.prop}={self.value!r}>"


@dataclass(frozen=True, slots=True)
class Event:
    """One event (``ctx.websocket.send_event``, ``topic.send_event``) a renderer received."""

    renderer_id: str
    name: str
    data: Any
    received_at: float
    seq: int

    def __repr__(self) -> str:
        return f"<Event {self.name}={self.data!r}>"


@dataclass(slots=True)
class GetPropsRequest:
    """A ``get_props_request`` the server sent, and what the renderer answered."""

    request_id: str
    component_id: str
    properties: list[str]
    received_at: float
    answer: dict[str, Any] | None = None  # None: not answered
    path: list[Any] | None = None  # get_prop(path=...): the location asked for


@dataclass(slots=True)
class CallbackResult:
    """The ``callback_response`` to one ``callback_request``.

    ``pushes`` are the ``set_props`` values this renderer received while the
    request was in flight (from sending it up to its response, in order).
    The protocol does not tie a push to a request, so with several callbacks
    running at once on one renderer their pushes all appear here.
    """

    request_id: str
    callback_id: str
    payload: dict[str, Any]
    pushes: list[Push]
    sent_at: float
    received_at: float
    seq: int

    @property
    def status(self) -> str:
        """``ok``, ``prevent_update`` or ``error``."""
        return str(self.payload.get("status"))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def error(self) -> str | None:
        """The error message of a failed callback (None unless ``status == "error"``)."""
        return self.payload.get("message") if self.status == "error" else None

    @property
    def code(self) -> str | None:
        """The error code (``not_websocket``, ``unknown_callback``...) when the server refused."""
        return self.payload.get("code")

    @property
    def data(self) -> dict[str, Any]:
        """Dash's callback JSON (``{"multi": true, "response": ..., "sideUpdate": ...}``)."""
        if not self.ok:
            raise AssertionError(f"callback {self.callback_id!r} did not succeed: {self.payload}")
        return dict(self.payload.get("data") or {})

    @property
    def response(self) -> dict[str, dict[str, Any]]:
        return dict(self.data.get("response") or {})

    @property
    def side_update(self) -> dict[str, dict[str, Any]]:
        """Outputs the callback set with ``set_props`` that went with its response."""
        return dict(self.data.get("sideUpdate") or {})

    @property
    def duration(self) -> float:
        """Seconds from sending the request to receiving the response."""
        return self.received_at - self.sent_at

    def output(self, component_id: ComponentId, prop: str) -> Any:
        """The value the callback returned for ``component_id.prop``."""
        return _output_value(self.response, component_id, prop, f"callback {self.callback_id!r}")

    def pushes_to(self, component_id: ComponentId, prop: str) -> list[Push]:
        """The pushes to ``component_id.prop`` made while this request ran, in order."""
        return _filter_pushes(self.pushes, component_id, prop)

    def raise_for_status(self) -> CallbackResult:
        """Fail (AssertionError) unless the callback succeeded; returns self."""
        if not self.ok:
            raise AssertionError(f"callback {self.callback_id!r} -> {self.payload}")
        return self


def _output_value(response: Mapping[str, Any], component_id: ComponentId, prop: str,
                  what: str) -> Any:
    key = stringify_id(component_id)
    props = response.get(key)
    if not isinstance(props, Mapping) or prop not in props:
        raise AssertionError(f"{what} returned no value for {key}.{prop}; it returned "
                             f"{json.dumps(response, default=repr)[:500]}")
    return props[prop]


def _filter_pushes(pushes: Iterable[Push], component_id: ComponentId, prop: str) -> list[Push]:
    key = stringify_id(component_id)
    return [p for p in pushes if p.component_id == key and p.prop == prop]


@dataclass(slots=True)
class HttpResponse:
    """An HTTP response, from either transport."""

    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class HttpCallbackResult:
    """The answer of ``_dash-update-component`` to one HTTP callback."""

    callback_id: str
    http: HttpResponse

    @property
    def status_code(self) -> int:
        return self.http.status

    @property
    def prevented(self) -> bool:
        """True when the callback raised PreventUpdate (HTTP 204)."""
        return self.http.status == 204

    @property
    def data(self) -> dict[str, Any]:
        if self.http.status != 200:
            raise AssertionError(f"HTTP callback {self.callback_id!r} answered "
                                 f"{self.http.status}: {self.http.text[:500]}")
        return dict(self.http.json())

    @property
    def response(self) -> dict[str, dict[str, Any]]:
        return dict(self.data.get("response") or {})

    @property
    def side_update(self) -> dict[str, dict[str, Any]]:
        return dict(self.data.get("sideUpdate") or {})

    def output(self, component_id: ComponentId, prop: str) -> Any:
        return _output_value(self.response, component_id, prop,
                             f"HTTP callback {self.callback_id!r}")
