"""Broadcast: one feed, every viewer, every worker.

A WebSocket callback serves one tab. A topic reaches all of them::

    from quartdash import broadcast

    prices = broadcast.Topic("prices")

    # anywhere: a callback, a Quart route, a background task
    await prices.publish({"symbol": "ACME", "price": 12.5})

    # in a persistent (or any WebSocket) callback: one iteration per tab,
    # ends by itself when the tab or its connection goes away
    @callback(persistent=True)
    async def follow_prices():
        async for tick in prices.subscribe():
            set_props("price", {"children": tick["price"]})

    # shared state: one set_props for every tab, encoded once
    await prices.set_props("status", {"children": "market open"})     # tabs of the topic
    await broadcast.set_props("banner", {"children": "v2 at 5pm"}, app=app)  # tabs of the app

    # events for the page's JavaScript (window.quartdash.on("tick", handler))
    await prices.send_event("tick", {"symbol": "ACME", "price": 12.5})   # tabs of the topic
    await broadcast.send_event("maintenance", {"at": "17:00"}, app=app)   # tabs of the app

Backend: ``QUARTDASH_BROADCAST_URL`` — ``memory://`` (the default: one
process, nothing to set up) or ``redis://host:6379/0`` (every worker and
machine sharing that Redis; needs redis-py: ``pip install "quartdash[redis]"``).
``configure(url)`` does the same in code.
Guarantees, limits and sizing: docs/scaling.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .exclusive import run_exclusive
from .hub import Broadcast, Subscription, Topic

_default = Broadcast()


def default_hub() -> Broadcast:
    """The process's hub, used by :class:`Topic` and the functions below."""
    return _default


def configure(url: str | None = None, *, prefix: str | None = None) -> None:
    """Pick the backend before first use: ``memory://`` or ``redis://...``
    (``None``: ``$QUARTDASH_BROADCAST_URL``, else in-process)."""
    _default.configure(url, prefix=prefix)


def topic(name: str) -> Topic:
    """``Topic(name)`` on the default hub."""
    return Topic(name)


async def set_props(component_id: str | dict[str, Any], props: Mapping[str, Any], *,
                    app: Any = None, retain: bool = True) -> None:
    """``set_props`` on every tab of ``app``, in every worker, encoded once.

    ``app`` is a ``quartdash.Dash`` or ``DashBlueprint`` (default: the current
    Dash app, ``dash.get_app()``). With ``retain=True`` a tab that opens later
    starts from this value too (see :meth:`Topic.set_props`).
    """
    live = _live_of(app)
    hub = _default
    await hub.publish_props(hub.app_channel_name(live), component_id, props, retain=retain)


async def send_event(name: str, data: Any = None, *, app: Any = None) -> None:
    """An event for the JavaScript of every tab of ``app``, in every worker,
    encoded once (see :meth:`Topic.send_event`). ``app`` as for :func:`set_props`."""
    live = _live_of(app)
    hub = _default
    await hub.publish_event(hub.app_channel_name(live), name, data)


def stats() -> dict[str, Any]:
    """Counters of the default hub: deliveries, drops, reconnects, open subscriptions."""
    return _default.stats()


async def close() -> None:
    """End every subscription and close the backend (e.g. in ``after_serving``)."""
    await _default.close()


def _install_relay() -> None:
    from ..hosting.live import set_remote_sessions
    from .relay import relay_for

    set_remote_sessions(relay_for)


_install_relay()


def _live_of(app: Any) -> Any:
    if app is None:
        import dash

        app = dash.get_app()
    live = getattr(app, "quartdash_live", None)
    if live is None:
        raise TypeError(f"broadcast.set_props(app=...) needs a quartdash app, not {app!r}")
    return live


__all__ = [
    "Broadcast",
    "Subscription",
    "Topic",
    "close",
    "configure",
    "default_hub",
    "run_exclusive",
    "send_event",
    "set_props",
    "stats",
    "topic",
]
