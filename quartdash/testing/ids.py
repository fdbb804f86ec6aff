"""Component ids and property references, as the renderer and Dash write them.

A component id is a string or a dict (pattern-matching) id; a property
reference is ``"id.prop"``, ``(id, "prop")`` or a dash Input/Output/State.
The helpers normalise them to ``(id, prop)`` pairs, with dict ids as plain
JSON values, and match pattern ids (``MATCH``, ``ALL``, ``ALLSMALLER``)
against concrete ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ComponentId", "PropRef", "Values", "prop_key", "stringify_id"]

WILDCARDS = frozenset({"MATCH", "ALL", "ALLSMALLER"})

ComponentId = str | Mapping[str, Any]
"""A component id: a string, or a dict (pattern-matching) id."""

PropRef = Any
"""A (component, property): ``"id.prop"``, ``(id, "prop")``, or a dash Input/Output/State."""

Values = Mapping[Any, Any] | Sequence[tuple[Any, Any]]
"""Property values: a mapping ``{ref: value}``, or ``[(ref, value), ...]`` pairs (needed
when a ref is ``(dict_id, prop)``, which cannot be a dict key; or use ``prop_key``)."""


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
