"""What travels on a topic, and its bytes on the wire between processes (sans I/O).

Three kinds of envelope:

* :class:`TopicMessage` — a ``topic.publish(value)``. The value is encoded to JSON
  once, by the publisher; every process decodes it once for all of its
  subscribers.
* :class:`PropsUpdate` — a ``topic.set_props(...)``. Each property's
  ``set_props`` payload (``{"componentId", "props"}``) is encoded once, by the
  publisher; receivers splice it into each renderer's frame without parsing it.
* :class:`EventMessage` — a ``topic.send_event(name, data)``: the ``event``
  payload (``{"name", "data"}``) encoded once, spliced like a ``set_props``.

Wire format (the bytes published on a Redis channel)::

    b"M" + <JSON value>
    b"E" + <event payload JSON>
    b"P" + <JSON header> + (b"\\n" + <payload JSON>) per property
    header = {"c": component_id, "r": retain, "p": [[prop, is_patch], ...]}

Compact JSON never contains a raw newline (it is escaped inside strings), so
newline is a safe separator and payloads are never re-parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from dash import Patch

from ..wire import protocol

MESSAGE_TAG = b"M"
PROPS_TAG = b"P"
EVENT_TAG = b"E"


class EnvelopeError(ValueError):
    """Bytes on a channel that are not a quartdash broadcast envelope."""


@dataclass(frozen=True, slots=True)
class TopicMessage:
    """One published value: ``data`` is its JSON; :meth:`value` decodes it."""

    data: bytes

    @classmethod
    def of(cls, value: Any) -> TopicMessage:
        return cls(protocol.dumps(value))

    def value(self) -> Any:
        return orjson.loads(self.data)


@dataclass(frozen=True, slots=True)
class PropItem:
    prop: str
    payload: bytes  # protocol.set_props_payload(component_id, {prop: value})
    is_patch: bool


@dataclass(frozen=True, slots=True)
class PropsUpdate:
    """One ``set_props`` for every session of a topic, encoded once per property."""

    component_id: str
    items: tuple[PropItem, ...]
    retain: bool

    @classmethod
    def of(cls, component_id: str, props: Mapping[str, Any], *, retain: bool) -> PropsUpdate:
        if not props:
            raise ValueError("set_props needs at least one property")
        # One payload per property, so a broadcast value coalesces with (and
        # is replaced by) a per-session set_props of the same property.
        items = tuple(
            PropItem(str(prop), protocol.set_props_payload(component_id, {prop: value}),
                     isinstance(value, Patch))
            for prop, value in props.items()
        )
        return cls(component_id, items, retain)


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One event for the page's JavaScript of every tab of a topic (or app)."""

    payload: bytes  # protocol.event_payload(name, data)

    @classmethod
    def of(cls, name: str, data: Any) -> EventMessage:
        return cls(protocol.event_payload(name, data))


Envelope = TopicMessage | PropsUpdate | EventMessage


def encode(envelope: Envelope) -> bytes:
    if isinstance(envelope, TopicMessage):
        return MESSAGE_TAG + envelope.data
    if isinstance(envelope, EventMessage):
        return EVENT_TAG + envelope.payload
    header = protocol.dumps({
        "c": envelope.component_id,
        "r": envelope.retain,
        "p": [[item.prop, item.is_patch] for item in envelope.items],
    })
    parts = [PROPS_TAG + header]
    for item in envelope.items:
        if b"\n" in item.payload:  # cannot happen with compact JSON; never corrupt the frame
            raise EnvelopeError("a set_props payload contains a raw newline")
        parts.append(item.payload)
    return b"\n".join(parts)


def decode(data: bytes) -> Envelope:
    tag, body = data[:1], data[1:]
    if tag == MESSAGE_TAG:
        return TopicMessage(body)
    if tag == EVENT_TAG:
        return EventMessage(body)
    if tag != PROPS_TAG:
        raise EnvelopeError(f"unknown envelope tag {tag!r}")
    header_json, *payloads = body.split(b"\n")
    try:
        header = orjson.loads(header_json)
        component_id, retain, props = header["c"], header["r"], header["p"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as error:
        raise EnvelopeError(f"bad set_props header: {error}") from None
    if not isinstance(component_id, str) or not isinstance(props, list) or \
            len(props) != len(payloads):
        raise EnvelopeError("set_props header does not match its payloads")
    items = tuple(
        PropItem(str(prop), payload, bool(is_patch))
        for (prop, is_patch), payload in zip(props, payloads, strict=True)
    )
    return PropsUpdate(component_id, items, bool(retain))
