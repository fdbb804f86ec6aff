"""What ``set_props`` may push: props that run code are refused unless trusted.

The renderer shows text as text and already neutralises ``javascript:``
links in the props it knows (docs/security.md). What it does *not* guard are
props whose whole purpose is to run markup or code, and those reach the
page as soon as a callback pushes them, whatever component they land on:

* any prop whose name starts with ``dangerously`` (``dangerouslySetInnerHTML``,
  which every ``dash.html`` component passes to React; ``dcc.Markdown``'s
  ``dangerously_allow_html``; AG Grid's ``dangerously_allow_code``), ``srcDoc``
  (``html.Iframe``: a same-origin document), and a ``markdown_options`` that
  turns HTML on (``dash_table.DataTable``);
* URL props (``href``, ``src``, ``action``, ``formAction``, ``data``...)
  holding a ``javascript:``, ``vbscript:`` or non-image ``data:`` URL, checked
  the way a browser reads a URL (case, spaces, tabs and newlines ignored);
* the same inside a pushed value: in a component object at any depth, and
  in what a ``Patch`` writes (a prop by name, or a whole ``props`` dict);
* a component given as a plain dict (``{"type", "namespace", "props"}``): a
  value from another user would become markup where the app meant text.
  Build components with their classes; those are checked as above.

:class:`PropPolicy` checks a ``set_props`` before anything is sent and
raises :class:`UnsafePropError` in the callback that tried. An app opts in
per call with :func:`trusted` or per component property with the
``trusted_props`` option; :func:`text` turns untrusted data into a string
that can only ever render as text. Callback *outputs* are not checked: the
app declared them with ``Output``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from dash import Patch
from dash.development.base_component import Component

__all__ = ["CheckedProps", "PropPolicy", "Trusted", "UnsafePropError", "text", "trusted"]

# Compared in lower case: HTML attribute names are case-insensitive.
CODE_PROP_PREFIX: Final = "dangerously"
CODE_PROPS: Final = frozenset({"srcdoc"})
URL_PROPS: Final = frozenset({"href", "src", "action", "formaction", "data", "xlinkhref",
                              "poster", "background", "codebase", "cite"})
SCRIPT_SCHEMES: Final = ("javascript:", "vbscript:")
# data: URLs render as documents (HTML, SVG, XML can script) unless they are plain images.
SAFE_DATA_URLS: Final = tuple(f"data:image/{kind}" for kind in
                              ("png", "jpeg", "jpg", "gif", "webp", "bmp", "avif", "x-icon"))
# What a browser drops from a URL before it reads the scheme.
_URL_NOISE: Final = {ord(c): None for c in "\t\n\r"}
_URL_LEAD: Final = "".join(map(chr, range(0x21)))
_SCALARS: Final = (str, int, float, bool, type(None))


class UnsafePropError(ValueError):
    """A ``set_props`` value that would run code in the page, refused before sending."""


class Trusted:
    """A value the app vouches for: ``set_props`` passes it unchecked."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def to_plotly_json(self) -> Any:
        # Any encoder that meets one (an Output value, Dash's own) sends the value.
        return self.value

    def __repr__(self) -> str:
        return f"trusted({self.value!r})"


def trusted(value: Any) -> Trusted:
    """Mark a ``set_props`` value as the app's own markup (e.g. a sanitised ``srcDoc``)."""
    return value if isinstance(value, Trusted) else Trusted(value)


def text(value: Any) -> str:
    """Untrusted data as a string: pushed as ``children`` it can only render as text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    import orjson

    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return str(value)


def script_url(value: Any) -> bool:
    """True for a string a browser would run as script (or as a document) as a URL."""
    if not isinstance(value, str):
        return False
    # Leading C0 controls and spaces are stripped, tabs/newlines anywhere.
    url = value.translate(_URL_NOISE).lstrip(_URL_LEAD).lower()
    if url.startswith("data:"):
        return not url.startswith(SAFE_DATA_URLS)
    return url.startswith(SCRIPT_SCHEMES)


def code_prop(name: str) -> bool:
    """A prop whose purpose is to run markup or code."""
    lowered = name.lower()
    return lowered.startswith(CODE_PROP_PREFIX) or lowered in CODE_PROPS


class PropPolicy:
    """The check every ``set_props`` of one app goes through.

    ``trusted_props`` lists ``"component_id.prop"`` entries the app allows to
    carry markup (pattern-matching ids as ``dash._utils.stringify_id`` writes them).
    """

    __slots__ = ("_trusted",)

    def __init__(self, trusted_props: Iterable[str] = ()) -> None:
        self._trusted = frozenset(trusted_props)

    def check(self, component_id: str, prop: str, value: Any) -> Any:
        """The value to send; :class:`UnsafePropError` when it would run code."""
        if isinstance(value, Trusted):
            return value.value
        if f"{component_id}.{prop}" in self._trusted:
            return value
        problem = _prop_problem(prop, value) or _value_problem(value)
        if problem is not None:
            raise UnsafePropError(
                f"set_props({component_id!r}, {{{prop!r}: ...}}) refused: {problem}. "
                "Wrap the value in quartdash.trusted(...) or list "
                f"{component_id + '.' + prop!r} in trusted_props if it is the app's own "
                "markup; use quartdash.text(...) for untrusted text (docs/security.md)"
            )
        return value

    def check_all(self, component_id: str, props: dict[str, Any]) -> dict[str, Any]:
        """:meth:`check` for every prop of one ``set_props`` call."""
        return {prop: self.check(component_id, prop, value) for prop, value in props.items()}


def _prop_problem(prop: Any, value: Any) -> str | None:
    if not isinstance(prop, str):
        return None
    if isinstance(value, Trusted):
        return None
    if code_prop(prop):
        return f"{prop!r} renders markup or runs code"
    name = prop.lower()
    if name in URL_PROPS and script_url(value):
        return f"{prop!r} holds a script URL"
    if name == "markdown_options" and isinstance(value, dict) and value.get("html"):
        return "markdown_options turns raw HTML on"
    return None


def _props_problem(props: Any, where: str) -> str | None:
    if not isinstance(props, dict):
        return None
    for prop, inner in props.items():
        problem = _prop_problem(prop, inner)
        if problem is not None:
            return f"{where}: {problem}"
    return None


def _patch_problem(operation: Any) -> tuple[str | None, Any]:
    """What one Patch operation writes: a problem, and the value to look into."""
    if not isinstance(operation, dict):
        return None, None
    location = operation.get("location") or []
    params = operation.get("params") or {}
    value = params.get("value") if isinstance(params, dict) else None
    for key in location:
        if isinstance(key, str) and code_prop(key):
            return f"a Patch writes {key!r}", None
    last = location[-1] if location else None
    if isinstance(last, str):
        if last == "props":  # a whole props dict assigned or merged into a component
            problem = _props_problem(value, "a Patch writes component props")
            if problem is not None:
                return problem, None
        else:
            problem = _prop_problem(last, value)
            if problem is not None:
                return f"a Patch writes {problem}", None
    return None, value


def _value_problem(value: Any) -> str | None:
    """Look for code-running props inside ``value``, the way the encoder will
    see it (components, patches, anything with ``to_plotly_json`` or ``tolist``)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _SCALARS) or isinstance(item, Trusted):
            continue
        if isinstance(item, Component):
            encoded = item.to_plotly_json()
            props = encoded.get("props") or {}
            problem = _props_problem(props, f"a {encoded.get('type')} component inside it")
            if problem is not None:
                return problem
            stack.extend(props.values())
        elif isinstance(item, Patch):
            for operation in item.to_plotly_json().get("operations", ()):
                problem, written = _patch_problem(operation)
                if problem is not None:
                    return problem
                stack.append(written)
        elif isinstance(item, dict):
            if "type" in item and "namespace" in item and "props" in item:
                return ("a component given as a plain dict (build it with its component "
                        "class, or wrap it in quartdash.trusted())")
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, "to_plotly_json"):
            stack.append(item.to_plotly_json())
        elif hasattr(item, "tolist"):  # numpy arrays (object arrays may hold anything)
            stack.append(item.tolist())
    return None


class CheckedProps(dict[str, Any]):
    """``ctx.updated_props`` for an HTTP callback: each ``set_props`` is checked
    by the app's :class:`PropPolicy` as it is made
    (so a refused value raises in the callback) and again when Dash reads them
    for the response (a value changed in between is checked as it is sent)."""

    __slots__ = ("_policy", "_raw")

    def __init__(self, policy: PropPolicy) -> None:
        super().__init__()
        self._policy = policy
        self._raw: dict[str, dict[str, Any]] = {}  # as set_props was given them

    def __setitem__(self, component_id: str, props: dict[str, Any]) -> None:
        # Dash merges with the props set earlier (read back with .get): keep
        # the values as first given (a trusted() wrapper included) for those.
        stored = dict.get(self, component_id) or {}
        raw = dict(self._raw.get(component_id, {}))
        raw.update({prop: value for prop, value in props.items()
                    if not (prop in stored and stored[prop] is value)})
        self._raw[component_id] = raw
        super().__setitem__(component_id, self._policy.check_all(component_id, raw))

    def __getitem__(self, component_id: str) -> dict[str, Any]:
        return self._policy.check_all(component_id, self._raw[component_id])

    def __iter__(self) -> Iterator[str]:
        # Overridden so that dict(self) reads each value through __getitem__.
        return iter(list(dict.keys(self)))
