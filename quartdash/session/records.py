"""What a session keeps per tab and per running callback."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RECORD_BYTES", "Renderer", "Run"]

# What one record (a tab, a run, a pending get_prop) costs against the
# connection's retained budget besides the ids and payload it keeps: about
# the size of its objects.
RECORD_BYTES = 256


@dataclass(eq=False, slots=True)
class Renderer:
    """One tab (one dash-renderer instance) of the session."""

    id: str
    runs: set[Run] = field(default_factory=set)
    persistent: dict[str, Run] = field(default_factory=dict)
    left: bool = False
    # Re-triggering (runs.py): per retrigger group, the run that holds it and
    # the requests queued behind it (on_retrigger="queue").
    active: dict[str, Run] = field(default_factory=dict)
    queued: dict[str, deque[Run]] = field(default_factory=dict)
    events_lost: int = 0  # events to this tab that did not fit the event budget


@dataclass(eq=False, slots=True)
class Run:
    """One running callback and the requests waiting for its response."""

    renderer: Renderer
    callback_id: str
    persistent: bool
    request_ids: list[str]
    task: asyncio.Task[None] | None = None
    lingering: bool = False  # called ws.close(): may finish its cleanup
    retained: int = 0  # bytes charged to the session's retained budget
    group: str | None = None  # its retrigger group (None: on_retrigger="parallel")
    payload: dict[str, Any] | None = None  # a queued run's request, until it starts
    superseded: bool = False
    """A newer run of the same callback for the same tab replaced it: it was
    cancelled, its request answered, and what it still pushes is dropped."""
