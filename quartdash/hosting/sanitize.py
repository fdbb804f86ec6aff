"""What ``set_props`` may push: props that run code are refused unless trusted.

The renderer shows text as text and already neutralises ``javascript:``
links in the props it knows (docs/security.md). What it does *not* guard are
props whose whole purpose is to run markup, and those reach the page as
soon as a callback pushes them, whatever component they land on:

* ``dangerouslySetInnerHTML`` (every ``dash.html`` component passes it to
  React), ``srcDoc`` (``html.Iframe``: a same-origin document), and
  ``dangerously_allow_html`` (``dcc.Markdown`` then renders raw HTML);
* URL props (``href``, ``src``, ``action``, ``formAction``, ``data``...)
  holding a ``javascript:``, ``vbscript:`` or ``data:text/html`` URL, checked
  the way a browser reads a URL (case, spaces, tabs and newlines ignored);
* the same, inside a component pushed as a value (``children`` that is a
  component dict or a ``dash`` component): a value from another user can
  become markup where the app meant text.

:class:`PropPolicy` checks a ``set_props`` before anything is sent and
raises :class:`UnsafePropError` in the callback that tried. An app opts in
per call with :func:`trusted` or per component property with the
``trusted_props`` option; :func:`text` turns untrusted data into a string
that can only ever render as text. Callback *outputs* are not checked: the
app declared them with ``Output``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from dash import Patch
from dash.development.base_component import Component

__all__ = ["PropPolicy", "Trusted", "UnsafePropError", "text", "trusted"]

# Compared in lower case: HTML attribute names are case-insensitive.
CODE_PROPS: Final = frozenset({"dangerouslysetinnerhtml", "srcdoc", "dangerously_allow_html"})
URL_PROPS: Final = frozenset({"href", "src", "action", "formaction", "data", "xlinkhref",
                              "poster", "background", "codebase", "cite"})
SCRIPT_SCHEMES: Final = ("javascript:", "vbscript:", "data:text/html")
# What a browser drops from a URL before it reads the scheme.
_URL_NOISE: Final = {ord(c): None for c in "\t\n\r"}
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
    """True for a string a browser would run as script when used as a URL."""
    if not isinstance(value, str):
        return False
    # Leading C0 controls and spaces are stripped, tabs/newlines anywhere.
    url = value.translate(_URL_NOISE).lstrip("".join(map(chr, range(0x21)))).lower()
    return url.startswith(SCRIPT_SCHEMES)


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
    name = prop.lower()
    if name in CODE_PROPS:
        return f"{prop!r} renders markup"
    if name in URL_PROPS and script_url(value):
        return f"{prop!r} holds a script URL"
    return None


def _value_problem(value: Any) -> str | None:
    """Look for components (dicts or objects) inside ``value`` whose props run code."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, Trusted):
            continue  # vouched for, wherever it sits
        if isinstance(item, Component):
            item = item.to_plotly_json()
        elif isinstance(item, Patch):
            item = item.to_plotly_json()
            for operation in item.get("operations", ()):
                for key in operation.get("location", ()):
                    if isinstance(key, str) and key.lower() in CODE_PROPS:
                        return f"a Patch writes {key!r}"
        if isinstance(item, dict):
            props = item.get("props")
            if isinstance(props, dict) and "type" in item and "namespace" in item:
                for prop, inner in props.items():
                    if isinstance(inner, Trusted):
                        continue
                    problem = _prop_problem(prop, inner)
                    if problem is not None:
                        return f"a {item.get('type')} component inside it: {problem}"
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return None
