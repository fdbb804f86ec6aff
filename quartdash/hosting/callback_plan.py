"""An HTTP callback worked out once, then run lean.

On every request Dash works out again what depends only on the callback
(its function, how its arguments are grouped, its outputs), builds a
context holding the request's cookies, headers and argument groupings that
few callbacks read, and encodes the answer with a Python walk over it. A
:class:`CallbackPlan` reads the callback's definition once, fills the
context's request-derived entries only when a callback reads them, and
encodes with :mod:`.encoding`. Everything else is Dash's own steps, in
Dash's order, with Dash's validators and errors: the answer is the same,
byte for byte (tests/test_callback_plan.py runs both paths side by side).

Background callbacks and callbacks this Dash version wraps differently
have no plan; the route runs them Dash's way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from dash.exceptions import ImportedInsideCallbackError, InvalidCallbackReturnValue, PreventUpdate
from quart import Request, Response

from . import dash_internals as di
from .encoding import encode
from .sanitize import CheckedProps, PropPolicy

if TYPE_CHECKING:
    import dash

    from .inline import InlinePolicy

__all__ = ["CallbackPlan", "RequestContext", "RequestMismatch"]

_GROUPINGS = ("args_grouping", "using_args_grouping", "outputs_grouping",
              "using_outputs_grouping")


class RequestContext(di.AttributeDict):
    """``dash.ctx`` of an HTTP callback, each entry worked out on first read.

    Dash fills a dozen entries per request (the request's cookies, headers,
    query and addresses, the inputs by name, the argument groupings...) that
    most callbacks never read. Here they are made when read: by attribute,
    by key, with ``get``/``in``, or by copying the whole dict — every way of
    reading sees every entry; only the work is deferred.
    """

    def __init__(self, entries: dict[str, Any], sources: _Sources) -> None:
        super().__init__(entries)
        # Plain attributes, not entries (AttributeDict stores attributes as
        # keys). No closure over self: a reference cycle would keep each
        # request's objects alive until the garbage collector runs.
        object.__setattr__(self, "_pending", set(_DEFERRED))
        object.__setattr__(self, "_sources", sources)

    def made(self, key: str) -> bool:
        """Has the deferred entry ``key`` been made (read or set)?"""
        return key not in self._pending

    def _fill(self, key: str) -> None:
        src = self._sources
        if key in _GROUPINGS:  # made together, as Dash does
            values = di.args_grouping(src.dash_app, self, src.indices, src.changed)
            for name, value in zip(_GROUPINGS, values, strict=True):
                if name in self._pending:
                    self._pending.discard(name)
                    dict.__setitem__(self, name, value)
            return
        self._pending.discard(key)
        dict.__setitem__(self, key, _MAKE[key](self, src))

    def _fill_all(self) -> None:
        while self._pending:
            self._fill(next(iter(self._pending)))

    def __missing__(self, key: str) -> Any:
        if key not in self._pending:
            raise KeyError(key)
        self._fill(key)
        return dict.__getitem__(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._pending.discard(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        if key in self._pending:
            self._pending.discard(key)
        else:
            dict.__delitem__(self, key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._pending

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._pending:
            self._fill(key)
        return dict.get(self, key, default)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self._pending:
            self._fill(key)
        return dict.pop(self, key, *default)

    def __iter__(self) -> Any:
        self._fill_all()
        return dict.__iter__(self)

    def keys(self) -> Any:
        self._fill_all()
        return dict.keys(self)

    def values(self) -> Any:
        self._fill_all()
        return dict.values(self)

    def items(self) -> Any:
        self._fill_all()
        return dict.items(self)

    def copy(self) -> dict[str, Any]:
        self._fill_all()
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        self._fill_all()
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._fill_all()
        return dict.__repr__(self)


class _Sources(NamedTuple):
    """What a :class:`RequestContext` makes its deferred entries from."""

    body: dict[str, Any]
    request: Request
    dash_app: dash.Dash
    indices: Mapping[str, Any]  # inputs_state_indices and outputs_indices
    changed: list[str]
    policy: PropPolicy


def _triggered(ctx: RequestContext, src: _Sources) -> list[dict[str, Any]]:
    values = ctx["input_values"]
    return [{"prop_id": x, "value": values.get(x)} for x in src.changed]


_MAKE: dict[str, Callable[[RequestContext, _Sources], Any]] = {
    "input_values": lambda ctx, src: _values(src.body.get("inputs", [])),
    "state_values": lambda ctx, src: _values(src.body.get("state", [])),
    "triggered_inputs": _triggered,
    "updated_props": lambda ctx, src: CheckedProps(src.policy),
    "dash_response": lambda ctx, src: src.dash_app.backend.response_adapter(),
    "cookies": lambda ctx, src: dict(src.request.cookies),
    "headers": lambda ctx, src: dict(src.request.headers),
    "args": lambda ctx, src: src.request.args,
    "path": lambda ctx, src: src.request.full_path,
    "remote": lambda ctx, src: src.request.remote_addr,
    "origin": lambda ctx, src: src.request.headers.get("origin"),
}
_DEFERRED = (*_MAKE, *_GROUPINGS)


def _values(deps: list[Any]) -> di.AttributeDict:
    """Dash's ``inputs_to_dict``: each value by ``"<id>.<property>"``."""
    values = {}
    for dep in deps:
        for item in dep if isinstance(dep, list) else (dep,):
            values[f"{di.stringify_id(item['id'])}.{item['property']}"] = item.get("value")
    return di.AttributeDict(values)


def _plain_outputs(insert_output: Any) -> list[tuple[str, str]] | None:
    """``(id, property)`` of each output when none is a pattern, else None."""
    outputs = insert_output if isinstance(insert_output, list | tuple) else [insert_output]
    plain = []
    for output in outputs:
        if not isinstance(output.component_id, str):
            return None
        plain.append((output.component_id, output.component_property))
    return plain


class RequestMismatch(Exception):
    """The request does not fit its callback (answered 400, as a bad request)."""


class CallbackPlan:
    """One callback's definition, read once; :meth:`run` answers a request."""

    __slots__ = (
        "_counts",
        "_flat_args",
        "_indices",
        "_plain_outputs",
        "definition",
        "entry",
        "is_async",
        "wrapper",
    )

    def __init__(self, definition: di.CallbackDefinition, wrapper: Callable[..., Any],
                 entry: Mapping[str, Any]) -> None:
        self.definition = definition
        self.wrapper = wrapper  # the callback_map entry's; a new one means a new plan
        self.entry = entry
        self.is_async = inspect.iscoroutinefunction(definition.func)
        self._plain_outputs = (_plain_outputs(definition.insert_output)
                               if definition.has_output else None)
        indices = definition.inputs_state_indices
        # Positional arguments in order: no grouping to work out per request.
        self._flat_args = (indices == 0 or (isinstance(indices, list)
                                            and indices == list(range(len(indices)))))
        self._counts = (len(entry.get("inputs", [])), len(entry.get("state", [])))
        self._indices = {"inputs_state_indices": indices,
                         "outputs_indices": definition.outputs_indices}

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> CallbackPlan | None:
        """The plan for a ``callback_map`` entry; None: run it Dash's way."""
        definition = di.callback_definition(entry)
        if definition is None or definition.background is not None:
            return None
        func = definition.func
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            return None  # a streaming callback
        return cls(definition, entry["callback"], entry)

    def check(self, body: Mapping[str, Any]) -> None:
        """Raise :class:`RequestMismatch` unless the request fits the callback
        (``dash_internals.request_problem``, with what is known worked out)."""
        if (len(body.get("inputs", [])), len(body.get("state", []))) != self._counts:
            raise RequestMismatch
        if self.definition.no_output:
            return
        if self._plain_outputs is None or not self._outputs_match(body.get("outputs")):
            if di.request_problem(self.definition.callback_id, self.entry, body):
                raise RequestMismatch

    def _outputs_match(self, outputs: Any) -> bool:
        # For plain ids the comparison Dash's validate_output_spec makes (an
        # Output built per item) is two string equalities.
        plain = self._plain_outputs
        assert plain is not None
        if not self.definition.multi:
            outputs = [outputs]
        if not isinstance(outputs, list) or len(outputs) != len(plain):
            return False
        for spec, (want_id, want_prop) in zip(outputs, plain, strict=True):
            # (parse_body checked the shape: dicts with a string property)
            if not isinstance(spec, dict) or spec["id"] != want_id or (
                    spec["property"].partition("@")[0] != want_prop):
                return False
        return True

    def _arguments(self, body: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        args = [[item.get("value") for item in dep] if isinstance(dep, list) else dep.get("value")
                for key in ("inputs", "state") for dep in body.get(key, [])]
        if self._flat_args:
            return args, {}
        return di.validate_and_group_input_args(args, self.definition.inputs_state_indices)

    async def run(self, dash_app: dash.Dash, body: dict[str, Any], request: Request,
                  policy: PropPolicy, inline: InlinePolicy) -> Response:
        """Run the callback for ``body`` (already :meth:`check`-ed); Dash's answer.

        Raises what Dash's path raises: ``PreventUpdate``, the callback's own
        exception when no ``on_error`` handles it, Dash's validation errors.
        """
        d = self.definition
        outputs_list = [] if d.no_output else body.get("outputs", [])
        ctx = RequestContext({
            "inputs_list": body.get("inputs", []),
            "states_list": body.get("state", []),
            "outputs_list": outputs_list,
            "background_callback_manager": d.manager or di.background_manager(dash_app),
            "ignore_register_page": False,
        }, _Sources(body, request, dash_app, self._indices, body.get("changedPropIds", []),
                    policy))
        custom_data = di.AttributeDict({})
        dict.__setitem__(ctx, "custom_data", custom_data)
        for hook in di.custom_data_hooks(dash_app):
            custom_data[hook.data["namespace"]] = hook(ctx)
        di.set_callback_context(ctx)
        if d.has_output and self._plain_outputs is None:
            di.validate_output_spec(d.insert_output, outputs_list)  # patterns: Dash's check
        func_args, func_kwargs = self._arguments(body)
        packages = di.component_packages()

        error_handler = d.on_error or di.app_error_handler(dash_app)
        try:
            if self.is_async:
                value = await di.invoke_marked_async(d.func, func_args, func_kwargs)
            elif inline.runs_inline(d.callback_id):
                value = inline.run_inline(
                    d.callback_id, lambda: di.invoke_marked(d.func, func_args, func_kwargs))
            else:
                value = await inline.run(
                    d.callback_id, lambda: di.invoke_marked(d.func, func_args, func_kwargs))
        except PreventUpdate:
            raise
        except Exception as err:
            if error_handler is None:
                raise
            value = error_handler(err)
            if value is None and outputs_list:
                value = di.no_update()

        outputs = self._outputs(value, outputs_list)
        answer: dict[str, Any] = {"multi": True}
        side_update = dict(ctx["updated_props"]) if ctx.made("updated_props") else None
        if side_update:
            answer["sideUpdate"] = side_update
        elif not d.has_output:
            raise PreventUpdate  # as Dash: nothing to send
        if len(di.component_packages()) != len(packages):
            answer["dist"] = self._dist(dash_app, packages)
        answer["response"] = outputs
        try:
            data = encode(answer)
        except TypeError:
            di.fail_callback_output(value, d.output)
            raise
        if ctx.made("dash_response"):  # the callback set cookies or headers
            return cast(Response, ctx["dash_response"].set_response(data=data))
        return Response(data, content_type="application/json")

    def _outputs(self, value: Any, outputs_list: Any) -> dict[str, dict[str, Any]]:
        """Dash's ``_prepare_response``: each output's new value by id and property."""
        d = self.definition
        by_id: dict[str, dict[str, Any]] = {}
        if not d.has_output:
            if value is not None:
                raise InvalidCallbackReturnValue(
                    f"No-output callback received return value: {value}")
            return by_id
        if not d.multi and self._plain_outputs is not None:
            # One plain output (the common case): Dash's steps reduce to this.
            if not di.is_no_update(value):
                by_id[outputs_list["id"]] = {outputs_list["property"].partition("@")[0]: value}
            return by_id
        if not d.multi:
            value, specs = [value], [outputs_list]
            flat = value
        else:
            specs = outputs_list
            if isinstance(value, list | tuple):
                value = list(value)
            flat = [value] if di.is_no_update(value) else di.flatten_grouping(value, d.output)
        if not di.is_no_update(value):
            di.validate_multi_return(specs, flat, d.callback_id)
        for val, spec in zip(flat, specs, strict=False):
            if di.is_no_update(val):
                continue
            pairs = zip(val, spec, strict=False) if isinstance(spec, list) else [(val, spec)]
            for item, item_spec in pairs:
                if not di.is_no_update(item):
                    props = by_id.setdefault(di.stringify_id(item_spec["id"]), {})
                    props[di.clean_property_name(item_spec["property"])] = item
        return by_id

    def _dist(self, dash_app: dash.Dash, packages: frozenset[str]) -> Any:
        added = list(di.component_packages().difference(packages))
        if not self.definition.allow_dynamic_callbacks:
            raise ImportedInsideCallbackError(
                f"Component librar{'y' if len(added) == 1 else 'ies'} was imported during "
                "callback.\nYou can set `_allow_dynamic_callbacks` to allow for development "
                "purpose only.")
        return dash_app.get_dist(added)
