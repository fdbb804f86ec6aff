"""Fake browser tabs: :class:`TestRenderer`, and :class:`PendingCall` for its requests.

A renderer plays one dash-renderer instance on a client's WebSocket: its
fake layout answers ``get_props_request`` messages and fills callback
inputs; it records what the server pushed to it. It reaches the server only
through :class:`ClientPort`, which :class:`~quartdash.testing.DashClient`
implements (this module does not import the client).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from ..wire.protocol import resolve_prop_path
from .errors import DEFAULT_TIMEOUT
from .ids import ComponentId, PropRef, Values, _bare, _pairs, _ref, prop_key, stringify_id
from .records import (
    CallbackResult,
    Event,
    GetPropsRequest,
    HttpCallbackResult,
    Push,
    Received,
    _filter_pushes,
)
from .specs import CallbackSpec, build_payload

__all__ = ["ClientPort", "PendingCall", "TestRenderer"]

T = TypeVar("T")


class ClientPort(Protocol):
    """What a renderer needs from the client whose connection it shares."""

    generation: int
    """Counts the client's connections; a request is due on the one it was sent on."""

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one message on the WebSocket."""
        ...

    async def callback(self, output: Any = None, *,
                       inputs: Values | None = None) -> CallbackSpec:
        """The one callback ``output`` (and/or ``inputs``) names."""
        ...

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
        """POST a callback to ``_dash-update-component``."""
        ...

    async def wait_for(self, predicate: Callable[[], T | bool | None], what: str,
                       timeout: float, *, fail_on_close: bool = True,
                       generation: int | None = None) -> T:
        """Wait until ``predicate()`` returns something true, and return it."""
        ...


class PendingCall:
    """A ``callback_request`` that was sent; await :meth:`result` for its response."""

    def __init__(self, renderer: TestRenderer, request_id: str, spec: CallbackSpec,
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


class TestRenderer:
    """One fake browser tab (a dash-renderer instance) on a :class:`DashClient` connection.

    ``props`` is its layout, ``"id.prop" -> value`` (dict ids stringified,
    see :func:`prop_key`): it answers ``get_prop`` (an unknown component or
    property answers ``{}``, like the real renderer), fills inputs a call
    does not give, and takes pushed and returned values (``Patch`` values
    are recorded as pushes but not applied). Change it at any time.

    The server's own record of a tab is :class:`quartdash.session.Renderer`.
    """

    __test__ = False  # a test double, not a test class: pytest must not collect it

    def __init__(self, client: ClientPort, renderer_id: str,
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
        self.resolve_paths = False
        """How a ``get_prop(path=...)`` is answered: False as dash-renderer 4.4
        does (it ignores the path and sends the whole property; the server
        reads the path), True as quartdash's page helper does (only the item
        at the path, marked ``pathResolved``)."""
        self.events: list[Event] = []
        """Events (``send_event``) this tab received, in order."""
        self.events_lost = 0
        """The running total of events the server dropped for this tab (``events_lost``)."""
        self.apply_updates = True
        """False: pushes and outputs do not change ``props``."""
        self.left = False
        self._pending: dict[str, PendingCall] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<TestRenderer {self.id!r} pushes={len(self.pushes)} left={self.left}>"

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

    def events_named(self, name: str) -> list[Event]:
        """Every event ``name`` this tab received, in order."""
        return [e for e in self.events if e.name == name]

    async def wait_for_event(self, name: str, *, count: int = 1,
                             timeout: float = 5.0) -> list[Event]:
        """Wait until this tab has received ``count`` events ``name``; return them all."""
        return await self.client.wait_for(
            lambda: self.events_named(name) if len(self.events_named(name)) >= count else None,
            f"{count} event(s) {name!r} to renderer {self.id}", timeout)

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
        elif kind == "event" and isinstance(payload, dict):
            self.events.append(Event(self.id, str(payload.get("name")), payload.get("data"),
                                     received.received_at, received.seq))
        elif kind == "events_lost" and isinstance(payload, dict):
            self.events_lost = int(payload.get("count") or 0)
        elif kind == "error":
            self.errors.append(message)

    async def _answer(self, request_id: str, payload: dict[str, Any],
                      received: Received) -> None:
        component_id = str(payload.get("componentId"))
        properties = [str(p) for p in payload.get("properties") or []]
        path = payload.get("path")
        request = GetPropsRequest(request_id, component_id, properties, received.received_at,
                                  path=path if isinstance(path, list) else None)
        self.get_props_requests.append(request)
        if not self.answer_get_props or self.left:
            return
        # The renderer answers only the properties its layout has (JSON drops undefined).
        answer = {p: self.props[f"{component_id}.{p}"] for p in properties
                  if f"{component_id}.{p}" in self.props}
        reply: dict[str, Any] = {"type": "get_props_response", "rendererId": self.id,
                                 "requestId": request_id}
        if self.resolve_paths and request.path is not None:
            answer = {p: resolve_prop_path(value, request.path) for p, value in answer.items()}
            reply["pathResolved"] = True
        request.answer = answer
        await self.client.send({**reply, "payload": answer})
