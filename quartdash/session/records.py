"""What a session keeps per tab and per running callback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

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
