"""A protocol-level test client for quartdash apps, and its pytest fixture.

:class:`DashClient` drives a hosted Dash app over its *real* routes
(``_dash-dependencies``, ``_dash-update-component``, ``_dash-ws-callback``)
the way dash-renderer and the SharedWorker do, with no browser::

    async with DashClient(app) as client:  # quartdash.Dash, or a URL
        tab = await client.open_renderer(props={"name-input.value": "Alice"})
        result = await tab.call("countdown-display.children",
                                inputs={"start-btn.n_clicks": 1})
        assert result.pushes_to("countdown-display", "children")[0].value == "Countdown: 10"
        assert result.output("countdown-display", "children") == "Done!"
        await tab.wait_for_push("live", "children", timeout=2)  # persistent callbacks

Two transports:

* **in-process** — ``DashClient(app)`` for a :class:`quartdash.Dash`,
  ``DashClient(blueprint, server=quart_app)`` for a
  :class:`quartdash.DashBlueprint`, ``DashClient(quart_app, "/prefix/")``:
  Quart's test client, no socket, fast.
* **network** — ``DashClient("http://127.0.0.1:8050/prefix/")``: a real
  WebSocket (the ``websockets`` library) and real HTTP (urllib).

A :class:`Renderer` plays one browser tab: it has a fake layout (``props``,
a dict of ``"id.prop" -> value``) that answers the server's
``get_props_request`` messages, supplies callback inputs you do not pass
explicitly and, like the real renderer, takes the values that ``set_props``
pushes and callback outputs write. Several renderers share one connection,
as tabs share the SharedWorker's socket.

Every wait is bounded. A wait that runs out raises :class:`WaitTimeout`
(both an ``AssertionError`` and a ``TimeoutError``) naming what it waited
for; a wait that cannot succeed because the server closed the connection
raises :class:`ConnectionClosed` with the close code and reason.

Installed as a pytest plugin (``pytest11`` entry point), so the
:func:`dash_client` fixture is available wherever quartdash is installed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

__all__ = [
    "CallbackResult",
    "CallbackSpec",
    "ConnectionClosed",
    "DashClient",
    "Frame",
    "GetPropsRequest",
    "HandshakeRejected",
    "HttpCallbackResult",
    "HttpResponse",
    "PendingCall",
    "Push",
    "Received",
    "Renderer",
    "WaitTimeout",
    "dash_client",
    "prop_key",
    "stringify_id",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
"""Seconds any single wait of the client gives the server, unless told otherwise."""

WILDCARDS = frozenset({"MATCH", "ALL", "ALLSMALLER"})

ComponentId = str | Mapping[str, Any]
"""A component id: a string, or a dict (pattern-matching) id."""

PropRef = Any
"""A (component, property): ``"id.prop"``, ``(id, "prop")``, or a dash Input/Output/State."""

Values = Mapping[Any, Any] | Sequence[tuple[Any, Any]]
"""Property values: a mapping ``{ref: value}``, or ``[(ref, value), ...]`` pairs (needed
when a ref is ``(dict_id, prop)``, which cannot be a dict key; or use ``prop_key``)."""

_DEFAULT: Any = object()  # "work it out" (e.g. the Origin header)


# --------------------------------------------------------------------------- errors


class WaitTimeout(AssertionError, TimeoutError):
    """A wait of the test client ran out; the message names what it waited for."""


class ConnectionClosed(AssertionError):
    """The WebSocket closed while the client waited for something on it."""

    def __init__(self, message: str, code: int | None, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class HandshakeRejected(AssertionError):
    """The WebSocket handshake got an HTTP response instead of being accepted."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(f"WebSocket handshake rejected with HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


# ------------------------------------------------------------------------------ ids


def stringify_id(component_id: ComponentId) -> str:
    """A component id as the renderer and Dash write it: dict ids as sorted compact JSON."""
    if isinstance(component_id, Mapping):
        parts = []
        for key in sorted(component_id):
            value = component_id[key]
            text = value.to_json() if hasattr(value, "to_json") else json.dumps(value)
            parts.append(f"{json.dumps(key)}:{text}")
        return "{" + ",".join(parts) + "}"
    return str(component_id)


def _normalize_id(component_id: Any) -> str | dict[str, Any]:
    """A string id as is; a dict id with dash wildcards (MATCH...) as plain JSON values."""
    if isinstance(component_id, Mapping):
        return dict(json.loads(stringify_id(component_id)))
    if isinstance(component_id, str):
        return _parse_id(component_id)
    raise TypeError(f"a component id is a str or a dict, not {type(component_id).__name__}")


def _parse_id(text: str) -> str | dict[str, Any]:
    if text.startswith("{"):
        return dict(json.loads(text))
    return text


def _split_prop_id(text: str) -> tuple[str | dict[str, Any], str]:
    # Dict ids may contain dots, properties may not: split at the last one.
    dot = text.rfind(".")
    if dot <= 0:
        raise ValueError(f"{text!r} is not a 'component_id.property' reference")
    return _parse_id(text[:dot]), text[dot + 1:]


def _ref(ref: PropRef) -> tuple[str | dict[str, Any], str]:
    """Normalise a property reference to ``(id, prop)``."""
    if isinstance(ref, str):
        return _split_prop_id(ref)
    if isinstance(ref, tuple) and len(ref) == 2 and isinstance(ref[1], str):
        return _normalize_id(ref[0]), ref[1]
    component_id = getattr(ref, "component_id", None)
    prop = getattr(ref, "component_property", None)
    if component_id is not None and isinstance(prop, str):
        return _normalize_id(component_id), prop
    raise TypeError(
        f"cannot read {ref!r} as a property reference: use 'id.prop', (id, 'prop') or a dash "
        "Input/Output/State"
    )


def prop_key(component_id: ComponentId, prop: str) -> str:
    """The ``"id.prop"`` key of a renderer's ``props`` (dict ids stringified)."""
    return f"{stringify_id(component_id)}.{prop}"


def _pairs(values: Values | None) -> list[tuple[tuple[str | dict[str, Any], str], Any]]:
    """``(normalised ref, value)`` pairs of a mapping or a sequence of pairs."""
    if values is None:
        return []
    items = values.items() if isinstance(values, Mapping) else values
    return [(_ref(key), value) for key, value in items]


def _bare(prop: str) -> str:
    return prop.split("@", 1)[0]  # allow_duplicate outputs carry "@<hash>"


def _is_wild(value: Any) -> str | None:
    if isinstance(value, list) and len(value) == 1 and value[0] in WILDCARDS:
        return str(value[0])
    return None


def _wildcards(pattern: str | dict[str, Any]) -> dict[str, str]:
    if not isinstance(pattern, dict):
        return {}
    return {key: wild for key, value in pattern.items() if (wild := _is_wild(value))}


def _id_matches(pattern: str | dict[str, Any], concrete: str | dict[str, Any]) -> bool:
    if isinstance(pattern, str) or isinstance(concrete, str):
        return pattern == concrete
    if pattern.keys() != concrete.keys():
        return False
    return all(_is_wild(v) is not None or concrete[k] == v for k, v in pattern.items())


def _covers(spec_id: str | dict[str, Any], ref_id: str | dict[str, Any]) -> bool:
    """A pattern ref must equal the spec's pattern; a concrete id must fit it."""
    return spec_id == ref_id if _wildcards(ref_id) else _id_matches(spec_id, ref_id)


def _sortable(value: Any) -> tuple[int, Any]:
    # The renderer's order for ALLSMALLER: numbers, then booleans, then strings.
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, (int, float)):
        return (0, value)
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        return (2, str(value))


# -------------------------------------------------------------------------- records


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


@dataclass(slots=True)
class GetPropsRequest:
    """A ``get_props_request`` the server sent, and what the renderer answered."""

    request_id: str
    component_id: str
    properties: list[str]
    received_at: float
    answer: dict[str, Any] | None = None  # None: not answered


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


# ------------------------------------------------------------------- callback specs


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """One callback as ``_dash-dependencies`` describes it to the renderer."""

    id: str
    outputs: tuple[tuple[str | dict[str, Any], str], ...]
    inputs: tuple[tuple[str | dict[str, Any], str], ...]
    state: tuple[tuple[str | dict[str, Any], str], ...]
    multi: bool
    websocket: bool
    persistent: bool
    no_output: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dependency(cls, dep: Mapping[str, Any]) -> CallbackSpec:
        callback_id = str(dep["output"])
        no_output = bool(dep.get("no_output"))
        multi = callback_id.startswith("..")
        if no_output:
            outputs: list[str] = []
        elif multi:
            outputs = callback_id[2:-2].split("...")
        else:
            outputs = [callback_id]

        def deps(key: str) -> tuple[tuple[str | dict[str, Any], str], ...]:
            return tuple((_parse_id(d["id"]), d["property"]) for d in dep.get(key) or [])

        return cls(
            id=callback_id,
            outputs=tuple(_split_prop_id(o) for o in outputs),
            inputs=deps("inputs"),
            state=deps("state"),
            multi=multi,
            websocket=bool(dep.get("websocket")),
            persistent=bool(dep.get("persistent")),
            no_output=no_output,
            raw=dict(dep),
        )

    def has_output(self, ref: tuple[str | dict[str, Any], str]) -> bool:
        """True when ``ref`` is one of its outputs, or a concrete id one of them covers."""
        cid, prop = ref
        return any(_bare(p) == _bare(prop) and _covers(o, cid) for o, p in self.outputs)

    def has_input(self, ref: tuple[str | dict[str, Any], str], *, state: bool = False) -> bool:
        cid, prop = ref
        specs = self.state if state else self.inputs
        return any(p == prop and _covers(i, cid) for i, p in specs)

    def describe(self) -> str:
        ins = ", ".join(f"{stringify_id(i)}.{p}" for i, p in self.inputs)
        return f"{self.id} <- ({ins})"


def build_payload(
    spec: CallbackSpec,
    *,
    inputs: Values | None = None,
    state: Values | None = None,
    outputs: Sequence[PropRef] | None = None,
    triggered: Sequence[PropRef] | None = None,
    props: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The request body dash-renderer sends for ``spec``.

    ``inputs`` / ``state`` give values (and, for pattern-matching
    callbacks, the concrete ids); anything not given comes from ``props``
    (a renderer's fake layout), or is left out as the renderer leaves out
    an undefined property. ``changedPropIds`` is ``triggered`` or else the
    keys of ``inputs``. ``outputs`` names the concrete components an ALL
    output covers (default: those ``props`` knows); MATCH is resolved from
    the concrete ids given.
    """
    layout = dict(props or {})
    explicit_inputs = _pairs(inputs)
    explicit_state = _pairs(state)
    concrete_outputs = [_ref(o) for o in outputs or ()]
    for ref, _ in explicit_inputs:
        if not spec.has_input(ref):
            raise ValueError(f"{stringify_id(ref[0])}.{ref[1]} is not an input of "
                             f"{spec.describe()}")
    for ref, _ in explicit_state:
        if not spec.has_input(ref, state=True):
            raise ValueError(f"{stringify_id(ref[0])}.{ref[1]} is not a State of "
                             f"{spec.describe()}")
    given: dict[str, Any] = {prop_key(cid, p): v for (cid, p), v in explicit_inputs}
    given.update({prop_key(cid, p): v for (cid, p), v in explicit_state})
    # Every concrete component this call knows of, in order: given first, then the layout.
    known: list[tuple[str | dict[str, Any], str]] = [r for r, _ in explicit_inputs]
    known += [r for r, _ in explicit_state]
    known += concrete_outputs
    known += [_split_prop_id(k) for k in layout]

    match = _match_values(spec, [*concrete_outputs, *(r for r, _ in explicit_inputs),
                                 *(r for r, _ in explicit_state)])

    def value_of(cid: str | dict[str, Any], prop: str) -> tuple[bool, Any]:
        key = prop_key(cid, prop)
        if key in given:
            return True, given[key]
        if key in layout:
            return True, layout[key]
        return False, None

    def concrete(pattern: str | dict[str, Any], prop: str, *,
                 any_prop: bool) -> dict[str, Any] | list[dict[str, Any]] | str | None:
        wild = _wildcards(pattern)
        if not wild:
            return pattern
        assert isinstance(pattern, dict)
        missing = [k for k, w in wild.items() if w == "MATCH" and k not in match]
        if missing:
            raise ValueError(
                f"cannot tell which component MATCH stands for in {stringify_id(pattern)}.{prop} "
                f"of {spec.describe()}: pass a concrete id for one of its MATCH inputs or outputs"
            )
        substituted = {k: (match[k] if wild.get(k) == "MATCH" else v) for k, v in pattern.items()}
        if not any(w in ("ALL", "ALLSMALLER") for w in wild.values()):
            return substituted
        found: list[dict[str, Any]] = []
        for cid, p in known:
            if not isinstance(cid, dict) or _wildcards(cid) or cid in found:
                continue
            if not (any_prop or _bare(p) == _bare(prop)) or not _id_matches(substituted, cid):
                continue
            smaller = all(_sortable(cid[k]) < _sortable(match[k])
                          for k, w in wild.items() if w == "ALLSMALLER" and k in match)
            if smaller:
                found.append(cid)
        return found

    def item(cid: str | dict[str, Any], prop: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": cid, "property": prop}
        has, value = value_of(cid, prop)
        if has:
            entry["value"] = value
        return entry

    def fill(specs: Sequence[tuple[str | dict[str, Any], str]]) -> list[Any]:
        filled: list[Any] = []
        for pattern, prop in specs:
            target = concrete(pattern, prop, any_prop=False)
            if isinstance(target, list):
                filled.append([item(cid, prop) for cid in target])
            else:
                assert target is not None
                filled.append(item(target, prop))
        return filled

    output_items: list[Any] = []
    for pattern, prop in spec.outputs:
        target = concrete(pattern, prop, any_prop=True)
        if isinstance(target, list):
            output_items.append([{"id": cid, "property": prop} for cid in target])
        else:
            output_items.append({"id": target, "property": prop})

    if triggered is None:
        changed = [prop_key(cid, p) for (cid, p), _ in explicit_inputs]
    else:
        changed = [prop_key(*_ref(t)) for t in triggered]
    payload: dict[str, Any] = {
        "output": spec.id,
        "inputs": fill(spec.inputs),
        "changedPropIds": changed,
        "parsedChangedPropsIds": [_split_prop_id(c)[0] if c.startswith("{") else c
                                  for c in changed],
    }
    if output_items:
        payload["outputs"] = output_items if spec.multi else output_items[0]
    if spec.state:
        payload["state"] = fill(spec.state)
    return payload


def _match_values(spec: CallbackSpec,
                  refs: Sequence[tuple[str | dict[str, Any], str]]) -> dict[str, Any]:
    """The values MATCH stands for, from the first concrete id that fills a MATCH pattern."""
    patterns = [*spec.outputs, *spec.inputs, *spec.state]
    for cid, prop in refs:
        if not isinstance(cid, dict) or _wildcards(cid):
            continue
        for pattern, pprop in patterns:
            wild = _wildcards(pattern)
            if "MATCH" in wild.values() and _bare(pprop) == _bare(prop) \
                    and _id_matches(pattern, cid):
                return {k: cid[k] for k, w in wild.items() if w == "MATCH"}
    return {}


def resolve_callback(
    callbacks: Sequence[CallbackSpec],
    target: Any = None,
    *,
    inputs: Values | None = None,
) -> CallbackSpec:
    """Find the one callback ``target`` names.

    ``target``: a :class:`CallbackSpec`; its id (``"out.children"``,
    ``"..a.children...b.children.."``, the hash of a no-output callback); an
    output reference (``"out.children"``, ``("out", "children")``, a dash
    ``Output``, or a concrete dict id filling a MATCH/ALL output); a list of
    those for a multi-output callback; or None. ``inputs`` (their keys)
    narrow the choice further, and alone pick a callback by its inputs.
    """
    if isinstance(target, CallbackSpec):
        return target
    if isinstance(target, str):
        for spec in callbacks:
            if spec.id == target:
                return spec
    candidates = list(callbacks)
    what: list[str] = []
    if target is not None:
        many = isinstance(target, (list, tuple)) and not (
            isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], str)
            and not isinstance(target[0], (list, tuple)))
        refs = [_ref(t) for t in target] if many else [_ref(target)]
        candidates = [s for s in candidates if all(s.has_output(r) for r in refs)]
        what.append("output " + ", ".join(f"{stringify_id(c)}.{p}" for c, p in refs))
    if inputs:
        in_refs = [ref for ref, _ in _pairs(inputs)]
        candidates = [s for s in candidates if all(s.has_input(r) for r in in_refs)]
        what.append("inputs " + ", ".join(f"{stringify_id(c)}.{p}" for c, p in in_refs))
    if not what:
        raise ValueError("name the callback: an output, its id, or its inputs")
    if len(candidates) == 1:
        return candidates[0]
    known = "\n  ".join(s.describe() for s in callbacks)
    if not candidates:
        raise LookupError(f"no callback with {' and '.join(what)}; the app has:\n  {known}")
    found = "\n  ".join(s.describe() for s in candidates)
    raise LookupError(f"{len(candidates)} callbacks have {' and '.join(what)}; say which "
                      f"(pass its id, or inputs=):\n  {found}")


# ------------------------------------------------------------------------ transports


class _Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class _Socket(Protocol):
    async def send(self, text: str) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self, code: int, reason: str, timeout: float) -> None: ...


class _Transport(Protocol):
    default_origin: str

    async def open_websocket(self, path: str, headers: Mapping[str, str],
                             timeout: float) -> _Socket: ...
    async def http(self, method: str, path: str, body: bytes | None,
                   headers: Mapping[str, str], timeout: float) -> HttpResponse: ...


class _InProcessTransport:
    """Quart's test client: the app runs on this event loop, no socket."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.test_client = app.test_client()
        self.test_client.websocket_connection_class = _recording_connection_class()
        host = app.config.get("SERVER_NAME") or "localhost"
        self.default_origin = f"http://{host}"

    async def open_websocket(self, path: str, headers: Mapping[str, str],
                             timeout: float) -> _Socket:
        # ASGI 2.3, as hypercorn declares for WebSockets: Quart sends close
        # reasons only from 2.3 on (its test client defaults to 2.1).
        connection = self.test_client.websocket(
            path, headers=dict(headers), scope_base={"asgi": {"spec_version": "2.3"}})
        await connection.__aenter__()
        socket = _InProcessSocket(connection)
        await socket.wait_accepted(timeout)
        return socket

    async def http(self, method: str, path: str, body: bytes | None,
                   headers: Mapping[str, str], timeout: float) -> HttpResponse:
        async with asyncio.timeout(timeout):
            response = await self.test_client.open(path, method=method, data=body,
                                                   headers=dict(headers))
            data = await response.get_data()
        return HttpResponse(response.status_code,
                            {k.lower(): v for k, v in response.headers.items()}, data)


_connection_class: type | None = None


def _recording_connection_class() -> type:
    """Quart's test websocket connection, also keeping the close reason and the accept."""
    global _connection_class
    if _connection_class is not None:
        return _connection_class
    from quart.testing.connections import TestWebsocketConnection

    class RecordingWebsocketConnection(TestWebsocketConnection):
        def __init__(self, app: Any, scope: Any) -> None:
            super().__init__(app, scope)
            self.close_reason = ""
            self.settled = asyncio.Event()  # accepted, closed or answered with HTTP

        async def _asgi_send(self, message: Any) -> None:
            kind = message["type"]
            if kind == "websocket.close":
                self.close_reason = message.get("reason") or ""
            if kind in ("websocket.accept", "websocket.close") or (
                    kind == "websocket.http.response.body" and not message.get("more_body")):
                self.settled.set()
            await super()._asgi_send(message)

    _connection_class = RecordingWebsocketConnection
    return _connection_class


class _InProcessSocket:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def wait_accepted(self, timeout: float) -> None:
        from quart.testing.connections import WebsocketResponseError

        try:
            async with asyncio.timeout(timeout):
                await self.connection.settled.wait()
        except TimeoutError:
            await self._abandon(timeout)
            raise WaitTimeout(f"the WebSocket handshake got no answer within {timeout} s") \
                from None
        if not self.connection.accepted:
            try:
                await self.connection.receive()
            except WebsocketResponseError as error:
                response = error.response
                body = await response.get_data(as_text=True)
                raise HandshakeRejected(response.status_code, body) from None

    async def send(self, text: str) -> None:
        await self.connection.send(text)

    async def recv(self) -> str | bytes:
        from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

        try:
            return await self.connection.receive()
        except WebsocketDisconnectError as error:
            code = error.args[0] if error.args else None
            raise _Closed(code, self.connection.close_reason) from None
        except WebsocketResponseError as error:
            raise _Closed(None, f"HTTP {error.response.status_code}") from None

    async def close(self, code: int, reason: str, timeout: float) -> None:
        await self._abandon(timeout)

    async def _abandon(self, timeout: float) -> None:
        # websocket.disconnect ends the handler (its callbacks are cancelled);
        # waiting for the app task bounds the session's shutdown.
        try:
            async with asyncio.timeout(timeout):
                await self.connection.__aexit__(None, None, None)
        except TimeoutError:
            raise WaitTimeout(f"the app's WebSocket handler did not end within {timeout} s "
                              "of the disconnect") from None


class _NetworkTransport:
    """A real server: the ``websockets`` client and urllib, both on 127.0.0.1 & co."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"expected an http(s):// URL, got {base_url!r}")
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.default_origin = f"{parts.scheme}://{parts.netloc}"
        # Loopback test servers: never go through a proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    async def open_websocket(self, path: str, headers: Mapping[str, str],
                             timeout: float) -> _Socket:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        headers = dict(headers)
        origin = headers.pop("Origin", None)
        scheme = "wss" if self.scheme == "https" else "ws"
        try:
            ws = await connect(f"{scheme}://{self.netloc}{path}", origin=origin,  # type: ignore[arg-type]
                               additional_headers=headers, open_timeout=timeout, proxy=None,
                               max_size=None, ping_interval=None, compression=None)
        except InvalidStatus as error:
            response = error.response
            raise HandshakeRejected(response.status_code,
                                    response.body.decode("utf-8", "replace")) from None
        except TimeoutError:
            raise WaitTimeout(f"the WebSocket handshake to {path} took more than {timeout} s") \
                from None
        return _NetworkSocket(ws)

    async def http(self, method: str, path: str, body: bytes | None,
                   headers: Mapping[str, str], timeout: float) -> HttpResponse:
        url = f"{self.scheme}://{self.netloc}{path}"
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))

        def fetch() -> HttpResponse:
            try:
                with self.opener.open(request, timeout=timeout) as response:
                    return HttpResponse(response.status,
                                        {k.lower(): v for k, v in response.headers.items()},
                                        response.read())
            except urllib.error.HTTPError as error:
                with error:
                    return HttpResponse(error.code,
                                        {k.lower(): v for k, v in error.headers.items()},
                                        error.read())

        try:
            async with asyncio.timeout(timeout + 1):
                return await asyncio.to_thread(fetch)
        except TimeoutError:
            raise WaitTimeout(f"{method} {url} got no answer within {timeout} s") from None


class _NetworkSocket:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        from websockets.exceptions import ConnectionClosed as WsClosed

        try:
            await self.ws.send(text)
        except WsClosed as closed:
            raise _Closed(*_close_info(closed)) from None

    async def recv(self) -> str | bytes:
        from websockets.exceptions import ConnectionClosed as WsClosed

        try:
            return await self.ws.recv()
        except WsClosed as closed:
            raise _Closed(*_close_info(closed)) from None

    async def close(self, code: int, reason: str, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.ws.close(code, reason)
        except TimeoutError:
            raise WaitTimeout(f"the server did not answer our close frame within {timeout} s") \
                from None


def _close_info(closed: Any) -> tuple[int | None, str]:
    frame = closed.rcvd
    if frame is None:
        return 1006, "no close frame received"
    return int(frame.code), str(frame.reason)


# ------------------------------------------------------------------------- renderers


class PendingCall:
    """A ``callback_request`` that was sent; await :meth:`result` for its response."""

    def __init__(self, renderer: Renderer, request_id: str, spec: CallbackSpec,
                 payload: dict[str, Any], sent_at: float, first_push: int,
                 generation: int) -> None:
        self.renderer = renderer
        self.request_id = request_id
        self.spec = spec
        self.payload = payload
        self.sent_at = sent_at
        self._first_push = first_push
        self._generation = generation
        self._result: CallbackResult | None = None

    @property
    def callback_id(self) -> str:
        return self.spec.id

    def done(self) -> bool:
        return self._result is not None

    def _resolve(self, payload: dict[str, Any], received: Received) -> None:
        pushes = self.renderer.pushes[self._first_push:]
        self._result = CallbackResult(self.request_id, self.spec.id, payload, list(pushes),
                                      self.sent_at, received.received_at, received.seq)

    async def result(self, timeout: float = DEFAULT_TIMEOUT) -> CallbackResult:
        """The response; raises WaitTimeout, or ConnectionClosed if the socket closed first."""
        client = self.renderer.client
        return await client.wait_for(
            lambda: self._result,
            f"the callback_response to {self.request_id} ({self.spec.id})",
            timeout,
            generation=self._generation,
        )


class Renderer:
    """One fake browser tab (a dash-renderer instance) on a :class:`DashClient` connection.

    ``props`` is its layout, ``"id.prop" -> value`` (dict ids stringified,
    see :func:`prop_key`): it answers ``get_prop`` (an unknown component or
    property answers ``{}``, like the real renderer), fills inputs a call
    does not give, and takes pushed and returned values (``Patch`` values
    are recorded as pushes but not applied). Change it at any time.
    """

    def __init__(self, client: DashClient, renderer_id: str,
                 props: Mapping[Any, Any] | None = None) -> None:
        self.client = client
        self.id = renderer_id
        self.props: dict[str, Any] = {}
        for key, value in (props or {}).items():
            self.set_prop(*_ref(key), value)
        self.pushes: list[Push] = []
        self.errors: list[dict[str, Any]] = []
        self.get_props_requests: list[GetPropsRequest] = []
        self.answer_get_props = True
        """False: record ``get_props_request`` messages but never answer them."""
        self.apply_updates = True
        """False: pushes and outputs do not change ``props``."""
        self.left = False
        self._pending: dict[str, PendingCall] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<Renderer {self.id!r} pushes={len(self.pushes)} left={self.left}>"

    # -- the fake layout ----------------------------------------------------------

    def set_prop(self, component_id: ComponentId, prop: str, value: Any) -> None:
        """Set a property of the fake layout (what ``get_prop`` will answer)."""
        self.props[prop_key(component_id, prop)] = value

    def prop(self, component_id: ComponentId, prop: str, default: Any = None) -> Any:
        return self.props.get(prop_key(component_id, prop), default)

    def _apply(self, component_id: str, props: Mapping[str, Any]) -> None:
        if not self.apply_updates:
            return
        for name, value in props.items():
            if isinstance(value, Mapping) and "__dash_patch_update" in value:
                continue
            self.props[f"{component_id}.{_bare(name)}"] = value

    # -- lifecycle ------------------------------------------------------------------

    async def join(self) -> None:
        """Send ``renderer_joined`` (what quartdash's worker sends when a tab registers)."""
        self.left = False
        await self.client.send({"type": "renderer_joined", "rendererId": self.id})

    async def leave(self) -> None:
        """Send ``renderer_left``: the tab closed. The server cancels its callbacks."""
        self.left = True
        await self.client.send({"type": "renderer_left", "rendererId": self.id})

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send a raw message as this renderer (``rendererId`` filled in)."""
        await self.client.send({**message, "rendererId": self.id})

    # -- callbacks ------------------------------------------------------------------

    async def start(
        self,
        output: Any = None,
        *,
        inputs: Values | None = None,
        state: Values | None = None,
        outputs: Sequence[PropRef] | None = None,
        triggered: Sequence[PropRef] | None = None,
        request_id: str | None = None,
    ) -> PendingCall:
        """Send a ``callback_request`` and return at once (see :meth:`call`)."""
        spec = await self.client.callback(output, inputs=inputs)
        payload = build_payload(spec, inputs=inputs, state=state, outputs=outputs,
                                triggered=triggered, props=self.props)
        for (cid, prop), value in [*_pairs(inputs), *_pairs(state)]:
            self.set_prop(cid, prop, value)  # the browser holds what it sends
        return await self.send_payload(spec, payload, request_id=request_id)

    async def send_payload(self, spec: CallbackSpec | str, payload: dict[str, Any], *,
                           request_id: str | None = None) -> PendingCall:
        """Send a ``callback_request`` with a payload built by hand."""
        if isinstance(spec, str):
            spec = await self.client.callback(spec)
        request_id = request_id or f"{self.id}-{next(self._ids)}"
        pending = PendingCall(self, request_id, spec, payload, time.monotonic(),
                              len(self.pushes), self.client.generation)
        self._pending[request_id] = pending
        await self.send({"type": "callback_request", "requestId": request_id,
                         "payload": payload})
        return pending

    async def call(
        self,
        output: Any = None,
        *,
        inputs: Values | None = None,
        state: Values | None = None,
        outputs: Sequence[PropRef] | None = None,
        triggered: Sequence[PropRef] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> CallbackResult:
        """Run a callback over the WebSocket and wait for its ``callback_response``.

        ``output`` names the callback (see :func:`resolve_callback`; None:
        pick it by ``inputs``). ``inputs``/``state`` map ``"id.prop"`` (or a
        dash ``Input``/``State``) to values, or are ``[(ref, value), ...]``
        pairs, where a ref may be ``(dict_id, "prop")``; ``changedPropIds``
        are the ``inputs`` refs unless ``triggered`` says otherwise. See
        :func:`build_payload`.
        """
        pending = await self.start(output, inputs=inputs, state=state, outputs=outputs,
                                   triggered=triggered)
        return await pending.result(timeout)

    async def call_http(
        self,
        output: Any = None,
        *,
        inputs: Values | None = None,
        state: Values | None = None,
        outputs: Sequence[PropRef] | None = None,
        triggered: Sequence[PropRef] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> HttpCallbackResult:
        """Run a callback over HTTP, with this tab's layout filling missing inputs."""
        result = await self.client.call_http(output, inputs=inputs, state=state,
                                             outputs=outputs, triggered=triggered,
                                             props=self.props, timeout=timeout)
        if result.http.status == 200:
            for cid, values in result.response.items():
                self._apply(cid, values)
        return result

    # -- what arrived ---------------------------------------------------------------

    def pushes_to(self, component_id: ComponentId, prop: str) -> list[Push]:
        """Every push to ``component_id.prop`` this tab received, in order."""
        return _filter_pushes(self.pushes, component_id, prop)

    async def wait_for_push(
        self,
        component_id: ComponentId,
        prop: str,
        *,
        count: int = 1,
        where: Callable[[Any], bool] | None = None,
        since: int = 0,
        timeout: float = 5.0,
    ) -> list[Push]:
        """Wait until this tab has received ``count`` pushes to ``component_id.prop``
        (whose value passes ``where``, if given) and return all such pushes.

        ``since`` skips the first pushes of :attr:`pushes` (pass
        ``len(tab.pushes)`` to wait for new ones only).
        """

        def found() -> list[Push] | None:
            hits = [p for p in _filter_pushes(self.pushes[since:], component_id, prop)
                    if where is None or where(p.value)]
            return hits if len(hits) >= count else None

        what = f"{count} push(es) to {stringify_id(component_id)}.{prop} on renderer {self.id}"
        return await self.client.wait_for(found, what, timeout)

    async def wait_for_get_props(self, count: int = 1, *,
                                 timeout: float = 5.0) -> list[GetPropsRequest]:
        """Wait until the server has sent this tab ``count`` ``get_props_request`` messages."""
        return await self.client.wait_for(
            lambda: self.get_props_requests if len(self.get_props_requests) >= count else None,
            f"{count} get_props_request(s) to renderer {self.id}", timeout)

    async def wait_for_error(self, code: str | None = None, *,
                             timeout: float = 5.0) -> dict[str, Any]:
        """Wait for an ``error`` message to this tab (with ``payload.code == code``)."""

        def found() -> dict[str, Any] | None:
            for error in self.errors:
                if code is None or error.get("payload", {}).get("code") == code:
                    return error
            return None

        return await self.client.wait_for(found, f"an error {code or ''} to renderer {self.id}",
                                          timeout)

    # -- from the reader --------------------------------------------------------------

    async def _on_message(self, message: dict[str, Any], received: Received) -> None:
        kind = message.get("type")
        payload = message.get("payload")
        if kind == "set_props" and isinstance(payload, dict):
            component_id = str(payload.get("componentId"))
            props = payload.get("props") or {}
            for name, value in props.items():
                self.pushes.append(Push(self.id, component_id, name, value,
                                        received.received_at, received.seq))
            self._apply(component_id, props)
        elif kind == "callback_response":
            pending = self._pending.pop(str(message.get("requestId")), None)
            if pending is not None and isinstance(payload, dict):
                pending._resolve(payload, received)
                if pending._result is not None and pending._result.ok:
                    data = pending._result.data
                    for part in ("response", "sideUpdate"):
                        for cid, values in (data.get(part) or {}).items():
                            self._apply(cid, values)
        elif kind == "get_props_request" and isinstance(payload, dict):
            await self._answer(str(message.get("requestId")), payload, received)
        elif kind == "error":
            self.errors.append(message)

    async def _answer(self, request_id: str, payload: dict[str, Any],
                      received: Received) -> None:
        component_id = str(payload.get("componentId"))
        properties = [str(p) for p in payload.get("properties") or []]
        request = GetPropsRequest(request_id, component_id, properties, received.received_at)
        self.get_props_requests.append(request)
        if not self.answer_get_props or self.left:
            return
        # The renderer answers only the properties its layout has (JSON drops undefined).
        answer = {p: self.props[f"{component_id}.{p}"] for p in properties
                  if f"{component_id}.{p}" in self.props}
        request.answer = answer
        await self.client.send({"type": "get_props_response", "rendererId": self.id,
                                "requestId": request_id, "payload": answer})


# ---------------------------------------------------------------------------- client


class DashClient:
    """A protocol-level client for one hosted Dash app (see the module docstring).

    ``target`` is a :class:`quartdash.Dash`, a :class:`quartdash.DashBlueprint`
    (with ``server=`` the Quart app it is registered on), a Quart app (with
    ``prefix``, default ``"/"``), or an ``http://host:port/prefix/`` URL.

    ``origin`` is sent with the WebSocket handshake: by default the server's
    own (so the origin check passes); None sends none. ``headers`` go with
    the handshake and every HTTP request. ``timeout`` bounds connecting and
    every HTTP request.
    """

    def __init__(self, target: Any, prefix: str | None = None, *, server: Any = None,
                 origin: str | None = _DEFAULT, headers: Mapping[str, str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.transport, self.prefix = _transport_for(target, prefix, server)
        self.origin = self.transport.default_origin if origin is _DEFAULT else origin
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.frames: list[Frame] = []
        self.messages: list[Received] = []
        self.errors: list[dict[str, Any]] = []
        """``error`` messages with no (or an unknown) renderer id."""
        self.renderers: dict[str, Renderer] = {}
        self.generation = 0
        """Counts connections: 1 after the first connect, 2 after a reconnect..."""
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._socket: _Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = True
        self._changed = asyncio.Event()
        self._seq = itertools.count()
        self._callbacks: list[CallbackSpec] | None = None
        self._heartbeat_acks = 0
        self.reader_error: Exception | None = None
        """What broke the reader task (a frame it could not handle), if anything."""

    async def __aenter__(self) -> DashClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "open" if self.connected else f"closed {self.close_code}"
        return f"<DashClient {self.prefix!r} {state} renderers={len(self.renderers)}>"

    # -- paths and HTTP ---------------------------------------------------------------

    def path(self, name: str) -> str:
        """``name`` under the app's prefix (an absolute ``/path`` is kept as is)."""
        return name if name.startswith("/") else self.prefix + name

    async def http(self, method: str, path: str, *, json_body: Any = None,
                   headers: Mapping[str, str] | None = None,
                   timeout: float | None = None) -> HttpResponse:
        """An HTTP request to the server (``path`` relative to the app prefix unless absolute)."""
        all_headers = {**self.headers, **(headers or {})}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        return await self.transport.http(method, self.path(path), body, all_headers,
                                         self.timeout if timeout is None else timeout)

    async def get_json(self, path: str, *, timeout: float | None = None) -> Any:
        """GET ``path`` and decode its JSON; fails unless the status is 200."""
        response = await self.http("GET", path, timeout=timeout)
        if response.status != 200:
            raise AssertionError(f"GET {self.path(path)} -> {response.status}: "
                                 f"{response.text[:300]}")
        return response.json()

    async def dependencies(self, *, refresh: bool = False) -> list[CallbackSpec]:
        """The app's callbacks, from ``_dash-dependencies`` (fetched once)."""
        if self._callbacks is None or refresh:
            deps = await self.get_json("_dash-dependencies")
            self._callbacks = [CallbackSpec.from_dependency(d) for d in deps]
        return self._callbacks

    async def callback(self, output: Any = None, *,
                       inputs: Values | None = None
                       ) -> CallbackSpec:
        """The one callback ``output`` (and/or ``inputs``) names; see :func:`resolve_callback`."""
        return resolve_callback(await self.dependencies(), output, inputs=inputs)

    async def persistent_callbacks(self) -> list[CallbackSpec]:
        return [spec for spec in await self.dependencies() if spec.persistent]

    async def call_http(
        self,
        output: Any = None,
        *,
        inputs: Values | None = None,
        state: Values | None = None,
        outputs: Sequence[PropRef] | None = None,
        triggered: Sequence[PropRef] | None = None,
        props: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> HttpCallbackResult:
        """POST a callback to ``_dash-update-component``, as the renderer does."""
        spec = await self.callback(output, inputs=inputs)
        payload = build_payload(spec, inputs=inputs, state=state, outputs=outputs,
                                triggered=triggered, props=props)
        response = await self.http("POST", "_dash-update-component", json_body=payload,
                                   timeout=timeout)
        return HttpCallbackResult(spec.id, response)

    # -- the WebSocket ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._socket is not None and not self._closed

    @property
    def closed(self) -> bool:
        """True once the current connection closed (or before the first connect)."""
        return self._closed

    async def connect(self, *, timeout: float | None = None) -> None:
        """Open the WebSocket (``_dash-ws-callback``). A server that accepts and then
        closes (a rejected origin, a hook saying no) shows in :meth:`wait_closed`."""
        if self.connected:
            return
        if self._socket is not None:  # closed by the server: let the old one go first
            await self.disconnect(timeout=timeout)
        headers = dict(self.headers)
        if self.origin is not None:
            headers["Origin"] = self.origin
        socket = await self.transport.open_websocket(
            self.path("_dash-ws-callback"), headers, self.timeout if timeout is None else timeout)
        self.generation += 1
        self._socket = socket
        self._closed = False
        self.close_code = self.close_reason = None
        self._reader = asyncio.create_task(self._read(socket, self.generation),
                                           name=f"quartdash-test-reader-{self.generation}")

    async def disconnect(self, code: int = 1000, reason: str = "",
                         *, timeout: float | None = None) -> None:
        """Close the WebSocket from the client side (a browser going away)."""
        socket, reader = self._socket, self._reader
        if socket is None:
            return
        self._socket = None
        limit = self.timeout if timeout is None else timeout
        try:
            # Also after a server-side close: in-process, this waits for the app's
            # handler (and its callbacks' cleanup) to end.
            await socket.close(code, reason, limit)
        finally:
            if reader is not None and not reader.done():
                reader.cancel()
                await asyncio.wait([reader], timeout=limit)
            if not self._closed:
                self._closed = True
                self.close_code, self.close_reason = code, reason
            self._notify()

    async def reconnect(self, *, timeout: float | None = None) -> None:
        """Drop the connection and open a new one; every renderer that has not left
        sends ``renderer_joined`` again, as quartdash's worker does on reopening."""
        await self.disconnect(timeout=timeout)
        await self.connect(timeout=timeout)
        for renderer in self.renderers.values():
            if not renderer.left:
                await renderer.join()

    async def aclose(self) -> None:
        """Disconnect (if connected). Idempotent."""
        await self.disconnect()

    async def open_renderer(self, renderer_id: str | None = None,
                            props: Mapping[Any, Any] | None = None, *,
                            join: bool = True) -> Renderer:
        """A new fake tab on this connection (connecting first if never connected;
        on a connection the server closed, joining raises ConnectionClosed).

        ``join=True`` announces it with ``renderer_joined`` like quartdash's
        worker; ``join=False`` behaves like Dash's own worker, whose first
        message from a tab is its first ``callback_request``.
        """
        if self._socket is None:
            await self.connect()
        renderer_id = renderer_id or f"r-{uuid.uuid4().hex[:12]}"
        if renderer_id in self.renderers:
            raise ValueError(f"renderer {renderer_id!r} is already open on this client")
        renderer = self.renderers[renderer_id] = Renderer(self, renderer_id, props)
        if join:
            await renderer.join()
        return renderer

    async def send(self, message: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        """Send one message, or a list of messages as one batch frame."""
        if not isinstance(message, Mapping):
            message = list(message)
        await self.send_text(json.dumps(message))

    async def send_text(self, text: str) -> None:
        """Send a raw text frame."""
        if self._socket is None or self._closed:
            raise ConnectionClosed(
                f"cannot send: the connection is closed ({self.close_code} "
                f"{self.close_reason!r})", self.close_code, self.close_reason or "")
        try:
            await self._socket.send(text)
        except _Closed as closed:
            self._mark_closed(closed.code, closed.reason)
            raise ConnectionClosed(f"cannot send: the server closed the connection "
                                   f"({closed.code} {closed.reason!r})",
                                   closed.code, closed.reason) from None

    async def heartbeat(self, *, timeout: float = 5.0) -> None:
        """Send ``heartbeat`` and wait for its ``heartbeat_ack``."""
        want = self._heartbeat_acks + 1
        await self.send({"type": "heartbeat"})
        await self.wait_for(lambda: self._heartbeat_acks >= want, "a heartbeat_ack", timeout)

    async def wait_closed(self, *, timeout: float = 5.0) -> tuple[int | None, str]:
        """Wait until the server closes the connection; return ``(code, reason)``."""
        await self.wait_for(lambda: self._closed or None, "the server to close the connection",
                            timeout, fail_on_close=False)
        return self.close_code, self.close_reason or ""

    async def wait_for_error(self, code: str | None = None, *,
                             timeout: float = 5.0) -> dict[str, Any]:
        """Wait for an ``error`` message that names no renderer of this client."""

        def found() -> dict[str, Any] | None:
            for error in self.errors:
                if code is None or error.get("payload", {}).get("code") == code:
                    return error
            return None

        return await self.wait_for(found, f"a connection-level error {code or ''}", timeout)

    def of_type(self, kind: str) -> list[Received]:
        """Every received message of one ``type``, in order."""
        return [r for r in self.messages if r.type == kind]

    # -- waiting ----------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], T | bool | None], what: str,
                       timeout: float, *, fail_on_close: bool = True,
                       generation: int | None = None) -> T:
        """Wait until ``predicate()`` returns something true, and return it.

        Re-checked whenever a message arrives or the connection closes. Raises
        :class:`WaitTimeout` after ``timeout`` seconds, and with
        ``fail_on_close`` :class:`ConnectionClosed` as soon as the connection
        (or the one ``generation`` names) is closed with the wait unmet.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            result = predicate()
            if result:
                return result  # type: ignore[return-value]
            if self.reader_error is not None:
                raise AssertionError(f"the client's reader failed while waiting for {what}: "
                                     f"{self.reader_error!r}") from self.reader_error
            if fail_on_close and generation is not None and generation != self.generation:
                raise ConnectionClosed(f"the connection that {what} was due on is gone "
                                       "(this client reconnected since)", None, "")
            if fail_on_close and self._closed:
                raise ConnectionClosed(
                    f"the connection closed ({self.close_code} {self.close_reason!r}) while "
                    f"waiting for {what}", self.close_code, self.close_reason or "")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(f"timed out after {timeout} s waiting for {what}; "
                                  f"{self._recent()}")
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                continue  # re-check once more, then fail above

    def _recent(self, count: int = 5) -> str:
        if not self.messages:
            return "nothing was received"
        shown = [json.dumps(r.message, default=repr)[:160] for r in self.messages[-count:]]
        return f"{len(self.messages)} messages received, the last: " + "; ".join(shown)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- the reader -----------------------------------------------------------------------------

    async def _read(self, socket: _Socket, generation: int) -> None:
        try:
            while True:
                data = await socket.recv()
                await self._on_frame(data.decode() if isinstance(data, bytes) else data)
                self._notify()
        except _Closed as closed:
            if generation == self.generation:
                self._mark_closed(closed.code, closed.reason)
        except Exception as error:
            # Surface it in every wait instead of letting waits time out blindly.
            self.reader_error = error
            self._notify()
            raise

    def _mark_closed(self, code: int | None, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self.close_code, self.close_reason = code, reason
        self._notify()

    async def _on_frame(self, text: str) -> None:
        now = time.monotonic()
        decoded = json.loads(text)
        batch = isinstance(decoded, list)
        messages = tuple(decoded) if batch else (decoded,)
        frame = Frame(len(self.frames), text, messages, now, batch)
        self.frames.append(frame)
        for message in messages:
            received = Received(next(self._seq), message, frame.index, now)
            self.messages.append(received)
            kind = message.get("type")
            if kind == "heartbeat_ack":
                self._heartbeat_acks += 1
                continue
            renderer = self.renderers.get(str(message.get("rendererId") or ""))
            if renderer is not None:
                await renderer._on_message(message, received)
            elif kind == "error":
                self.errors.append(message)


def _transport_for(target: Any, prefix: str | None,
                   server: Any) -> tuple[_InProcessTransport | _NetworkTransport, str]:
    def slashed(path: str) -> str:
        return "/" + path.strip("/") + "/" if path.strip("/") else "/"

    if isinstance(target, str):
        if prefix is not None:
            raise TypeError("with a URL, put the prefix in the URL")
        parts = urllib.parse.urlsplit(target)
        return _NetworkTransport(target), slashed(parts.path)

    from quart import Quart

    from .blueprint import DashBlueprint

    if isinstance(target, DashBlueprint):
        if not isinstance(server, Quart):
            raise TypeError("DashClient(blueprint) needs server=<the Quart app it is "
                            "registered on>")
        routes = target.dash.config.routes_pathname_prefix
        mount = (target.url_prefix or "").rstrip("/")
        return _InProcessTransport(server), prefix or slashed(mount + routes)
    if isinstance(target, Quart):
        return _InProcessTransport(target), slashed(prefix or "/")
    quart_app = getattr(target, "server", None)
    config = getattr(target, "config", None)
    if isinstance(quart_app, Quart) and config is not None:
        return _InProcessTransport(quart_app), prefix or config.routes_pathname_prefix
    raise TypeError(f"DashClient cannot drive {target!r}: pass a quartdash.Dash, a "
                    "DashBlueprint (with server=), a Quart app or an http:// URL")


# ----------------------------------------------------------------------- pytest plugin

ClientFactory = Callable[..., Awaitable[DashClient]]

try:
    import pytest
except ImportError:  # used outside pytest: no fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    try:
        import pytest_asyncio
    except ImportError:
        pytest_asyncio = None  # type: ignore[assignment]

    if pytest_asyncio is not None:

        @pytest_asyncio.fixture
        async def dash_client() -> AsyncIterator[ClientFactory]:
            """Factory: ``client = await dash_client(app_or_url, prefix=None, **options)``.

            Returns a :class:`DashClient` (arguments as its constructor); every
            client is disconnected at teardown.
            """
            clients: list[DashClient] = []

            async def make(target: Any, prefix: str | None = None,
                           **options: Any) -> DashClient:
                client = DashClient(target, prefix, **options)
                clients.append(client)
                return client

            yield make
            for client in clients:
                await client.aclose()

    else:

        @pytest.fixture
        def dash_client() -> ClientFactory:
            """Needs pytest-asyncio (``pip install pytest-asyncio``)."""
            pytest.fail("the dash_client fixture needs pytest-asyncio: pip install pytest-asyncio")
