"""A callback's answer as JSON: what Dash sends, made with one orjson pass.

Dash encodes every answer with plotly's ``to_json_plotly``: one ``orjson``
attempt, and when the answer holds a component or a figure (nearly always),
a walk of the whole value in Python to clean it before a second attempt.
Here the second attempt hands orjson a ``default`` that turns components
and figures into their JSON form as orjson meets them: no walk. Anything
else orjson cannot encode goes to Dash's encoder, so the result never
differs in what it can encode or how errors are reported.

The text is HTML-safe exactly as plotly makes it (``<``, ``>``, ``/``,
U+2028 and U+2029 escaped). One known difference, harmless to the
renderer: numpy ``datetime64`` values inside an answer that also holds a
component are written by orjson (``2026-01-01T00:00:00``) where plotly's
walk writes numpy's string (``2026-01-01T00:00:00.000000``); plotly itself
writes orjson's form when the answer holds nothing to clean.
"""

from __future__ import annotations

from typing import Any

import orjson

from . import dash_internals

__all__ = ["encode"]

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
# plotly's _swap_orjson: keeps the JSON inert inside an HTML page.
_UNSAFE = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"/", b"\\u002f"),
           ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


class _Unencodable(TypeError):
    pass


def _plotly_json(obj: Any) -> Any:
    to_plotly_json = getattr(obj, "to_plotly_json", None)
    if to_plotly_json is None:
        raise _Unencodable
    return to_plotly_json()


def encode(value: Any) -> bytes:
    """``value`` as Dash's ``to_json`` writes it, as UTF-8 bytes.

    Raises ``TypeError`` for what Dash cannot encode either.
    """
    try:
        data = orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        try:
            data = orjson.dumps(value, option=_OPTIONS, default=_plotly_json)
        except TypeError:
            # Something only plotly's walk knows (pandas, PIL, decimals...).
            return str(dash_internals.to_json(value)).encode()
    for unsafe, safe in _UNSAFE:
        if unsafe in data:
            data = data.replace(unsafe, safe)
    return data
