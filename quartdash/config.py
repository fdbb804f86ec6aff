"""WebSocket settings of one hosted Dash app, with their documented defaults.

Every limit here is listed in docs/reliability.md; change both together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

# Keyword arguments dash.Dash itself accepts; they are passed through to it.
DASH_WEBSOCKET_KWARGS = (
    "websocket_callbacks",
    "websocket_allowed_origins",
    "websocket_inactivity_timeout",
    "websocket_heartbeat_interval",
    "websocket_batch_delay",
    "websocket_max_workers",
)


# Options without the websocket_ prefix: they concern HTTP routes too.
_UNPREFIXED = ("allowed_hosts", "trusted_props", "inline_threshold")
_UNPREFIXED_LISTS = ("allowed_hosts", "trusted_props")


@dataclass(slots=True)
class WebSocketConfig:
    """The ``websocket_*`` options of one app: each field is ``websocket_<field>``
    (``enabled`` is ``websocket_callbacks``)."""

    enabled: bool = False
    """``websocket_callbacks``: every callback uses the WebSocket."""
    allowed_origins: list[str] = field(default_factory=list)
    """Origins allowed besides the page's own; ``*`` wildcards allowed."""
    allow_missing_origin: bool = False
    """Accept a handshake without an ``Origin`` header (non-browser clients)."""
    inactivity_timeout: int = 300_000
    """ms without a non-heartbeat message either way before closing (0: never)."""
    heartbeat_interval: int = 30_000
    """ms between the worker's heartbeats."""
    max_workers: int = min(32, (os.cpu_count() or 1) + 4)
    """Threads for synchronous callbacks (HTTP and WebSocket), shared by the app."""
    max_message_size: int = 1_048_576
    """Largest inbound frame in bytes; larger closes with 1008."""
    max_batch: int = 100
    """Most messages in one inbound frame."""
    max_bytes_per_second: int = 8 * 1024 * 1024
    """Inbound bytes per second, weighted by nesting (:func:`quartdash.wire.protocol.parsed_size`)
    with a burst of twice this or four frames; more is throttled (the server reads
    slower), not closed."""
    max_messages_per_second: int = 200
    """Unsolicited inbound messages per second per connection (burst: twice this); more
    closes 4008. Answers to the server's own get_prop requests do not count."""
    max_concurrent_callbacks: int = 64
    """Callbacks running at once on one connection (persistent ones included)."""
    max_sync_callbacks: int = 0
    """Plain ``def`` callbacks of one connection in the thread pool at once, so one
    connection cannot take every thread (0: a third of ``max_workers``, at least 1)."""
    max_renderers: int = 64
    """Tabs one connection may carry."""
    max_pending: int = 10_000
    """Outbound frames waiting for a slow client after coalescing; more closes 4009."""
    max_pending_bytes: int = 16 * 1024 * 1024
    """Bytes of outbound frames waiting for a slow client; more closes 4009."""
    max_pending_event_bytes: int = 4 * 1024 * 1024
    """Bytes of ``send_event`` events waiting for a slow (or detached) client; an event
    that does not fit is not sent and the tab is told how many it lost (no close)."""
    max_retained_bytes: int = 4 * 1024 * 1024
    """Bytes kept of what the client sent (running callbacks' requests, tab and request
    ids, pending get_prop bookkeeping); more closes 4010."""
    send_timeout: float = 60.0
    """Seconds a send may block while the client sends nothing either; then close 4009."""
    shutdown_grace: float = 5.0
    """Seconds callbacks get to run their cleanup after cancellation."""
    resume_timeout: float = 30.0
    """Seconds a session whose socket dropped waits for its client to resume it
    (its callbacks keep running, its pushes wait); 0: end it at once."""
    allowed_hosts: list[str] = field(default_factory=list)
    """``allowed_hosts``: host names the app answers to (``Host`` header, port ignored;
    ``*`` wildcards); empty: any. The remedy for DNS rebinding (docs/security.md)."""
    trusted_props: list[str] = field(default_factory=list)
    """``trusted_props``: ``"component_id.prop"`` entries set_props may fill with markup."""
    inline_threshold: float = 0.001
    """``inline_threshold``: seconds. A plain ``def`` HTTP callback whose last 16 runs in
    the thread pool each took less than this (in CPU time, and in wall time allowing
    for the other runs that competed for the GIL) gets a trial run on the event loop;
    under this there too, it stays (a thread hop costs more than such a callback); two
    runs in a row there over ten times this send it back to the pool for good, with a
    warning. 0: always the pool (docs/deployment.md, quartdash/hosting/inline.py)."""

    @staticmethod
    def keyword(field_name: str) -> str:
        """The keyword argument of ``Dash``/``DashBlueprint`` that sets a field."""
        if field_name == "enabled":
            return "websocket_callbacks"
        return field_name if field_name in _UNPREFIXED else f"websocket_{field_name}"

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> WebSocketConfig:
        """Build from ``websocket_*`` keyword arguments, removing quartdash-only ones."""
        config = cls()
        names = {f.name for f in fields(cls)}
        for key in _UNPREFIXED:  # quartdash options that are not WebSocket-only
            value = kwargs.pop(key, None)
            if value is not None and key in _UNPREFIXED_LISTS:
                value = [value] if isinstance(value, str) else list(value)
            if value is not None:
                setattr(config, key, value)
        for key in list(kwargs):
            if not key.startswith("websocket_"):
                continue
            name = key.removeprefix("websocket_")
            if name == "callbacks":
                name = "enabled"
            if name == "batch_delay":
                continue  # Dash's sender timer; quartdash batches what is ready, no delay
            if name not in names or name in _UNPREFIXED:
                raise TypeError(f"unknown option {key!r}")
            value = kwargs[key] if key in DASH_WEBSOCKET_KWARGS else kwargs.pop(key)
            if value is not None:
                setattr(config, name, value)
        config.allowed_origins = list(config.allowed_origins or [])
        config.validate()
        return config

    def validate(self) -> None:
        positive = ("max_workers", "max_message_size", "max_batch", "max_messages_per_second",
                    "max_concurrent_callbacks", "max_renderers", "max_pending",
                    "max_pending_bytes", "max_pending_event_bytes", "max_retained_bytes",
                    "send_timeout", "max_bytes_per_second",
                    "heartbeat_interval")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"websocket_{name} must be positive, got {getattr(self, name)!r}")
        if self.inactivity_timeout < 0:
            raise ValueError("websocket_inactivity_timeout must be >= 0 (0 disables it)")
        if self.resume_timeout < 0:
            raise ValueError("websocket_resume_timeout must be >= 0 (0 disables resume)")
        if self.max_sync_callbacks < 0:
            raise ValueError("websocket_max_sync_callbacks must be >= 0 (0: automatic)")
        if not isinstance(self.inline_threshold, int | float) or not (
                0 <= self.inline_threshold <= 0.1):
            raise ValueError("inline_threshold must be seconds between 0 (never inline) "
                             f"and 0.1, got {self.inline_threshold!r}")

    @property
    def sync_callback_slots(self) -> int:
        """``max_sync_callbacks``, with 0 resolved."""
        return self.max_sync_callbacks or max(1, self.max_workers // 3)
