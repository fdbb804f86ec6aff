"""Callbacks as ``_dash-dependencies`` describes them, and the requests for them.

:class:`CallbackSpec` is one callback of the app; :func:`resolve_callback`
finds the one a test names; :func:`build_payload` writes the request body
dash-renderer would send for it, filling what a test leaves out from a fake
layout and resolving pattern-matching ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .ids import (
    PropRef,
    Values,
    _bare,
    _covers,
    _id_matches,
    _pairs,
    _parse_id,
    _ref,
    _split_prop_id,
    _wildcards,
    prop_key,
    stringify_id,
)

__all__ = ["CallbackSpec", "build_payload", "resolve_callback"]


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

