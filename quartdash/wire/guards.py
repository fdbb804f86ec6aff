"""Who may talk to an app: the ``Origin`` of a WebSocket handshake and the
``Host`` of every request. Pure functions over header values.

Refusals name the rule, never the value that broke it: what a client sent
is not reflected back (docs/security.md).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["host_problem", "origin_problem"]


def origin_problem(origin: str | None, host_header: str | None,
                   allowed_origins: Sequence[str], allow_missing: bool) -> str | None:
    """Why this handshake's ``Origin`` is refused, or None when it is allowed.

    Allowed: the page's own origin (the ``Origin`` host equals the ``Host``
    header), any entry of ``allowed_origins`` (exact, or a pattern with ``*``
    such as ``https://*.example.com``), and no ``Origin`` at all only with
    ``allow_missing`` (browsers always send one; other clients can).
    """
    if not origin:
        return None if allow_missing else "Origin header required"
    origin = origin.lower().rstrip("/")
    for allowed in allowed_origins:
        allowed = allowed.lower().rstrip("/")
        if origin == allowed or ("*" in allowed and fnmatch.fnmatchcase(origin, allowed)):
            return None
    if host_header and urlsplit(origin).netloc == host_header.lower():
        return None
    return "Origin not allowed"


def host_problem(host_header: str | None, allowed_hosts: Sequence[str]) -> str | None:
    """Why a request's ``Host`` is refused, or None (always None with no allow-list).

    The defence against DNS rebinding: a page on ``evil.example`` whose name
    the attacker re-points at your server talks to it as ``Host:
    evil.example`` and passes the same-origin check, but not this one.
    Entries are host names, the port ignored; ``*`` matches within a name
    (``*.example.com``); ``"*"`` alone admits every host.
    """
    if not allowed_hosts:
        return None
    name = _host_name(host_header or "")
    if not name:
        return "Host header required"
    for allowed in allowed_hosts:
        allowed = allowed.lower().rstrip(".")
        if name == allowed or ("*" in allowed and fnmatch.fnmatchcase(name, allowed)):
            return None
    return "Host not allowed"


def _host_name(host: str) -> str:
    """``example.com:8050`` -> ``example.com``; ``[::1]:8050`` -> ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else ""
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")
