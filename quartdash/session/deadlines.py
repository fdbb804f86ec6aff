"""Far-off deadlines that move often and are rarely reached, on shared timers.

A session's inactivity deadline (5 minutes by default) moves with every
message and almost never arrives. One loop timer per session for it costs
~220 bytes under asyncio and ~590 under uvloop (tracemalloc), a heap entry
each, on every idle session. Here a deadline is rounded up to a slot of
``resolution`` seconds, and every owner due in one slot shares one loop
timer: a server with 50,000 sessions holds a few hundred timers, not 50,000.

When a slot fires, each of its owners is called; its deadline may have moved
meanwhile, so it checks, and acts or takes a later slot. A deadline is kept
at most ``resolution`` seconds late, never early.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from typing import Protocol

__all__ = ["Deadlines", "Due", "deadlines"]

log = logging.getLogger("quartdash.session")


class Due(Protocol):
    """What waits for a deadline: called once its slot is reached."""

    def deadline_due(self) -> None: ...


class Deadlines:
    """The slots of one event loop: due time -> owners, one loop timer per slot.

    Holds no reference to its loop (its timers do, while there are any), so
    a loop that ended with no slot left can be collected.
    """

    __slots__ = ("_slots", "_timers")

    def __init__(self) -> None:
        self._slots: dict[float, set[Due]] = {}
        self._timers: dict[float, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        """Owners waiting, in all slots."""
        return sum(len(owners) for owners in self._slots.values())

    @property
    def timers(self) -> int:
        """Loop timers in use (one per slot)."""
        return len(self._timers)

    def add(self, owner: Due, when: float, resolution: float) -> float:
        """Call ``owner.deadline_due()`` at loop time ``when``, or up to
        ``resolution`` seconds later. Returns the slot, for :meth:`remove`."""
        slot = math.ceil(when / resolution) * resolution
        owners = self._slots.get(slot)
        if owners is None:
            owners = self._slots[slot] = set()
            loop = asyncio.get_running_loop()
            self._timers[slot] = loop.call_at(slot, self._fire, slot)
        owners.add(owner)
        return slot

    def remove(self, owner: Due, slot: float) -> None:
        """``owner`` no longer waits in ``slot`` (a slot left empty frees its timer)."""
        owners = self._slots.get(slot)
        if owners is None:
            return
        owners.discard(owner)
        if not owners:
            del self._slots[slot]
            timer = self._timers.pop(slot, None)
            if timer is not None:
                timer.cancel()

    def _fire(self, slot: float) -> None:
        self._timers.pop(slot, None)
        for owner in self._slots.pop(slot, ()):
            try:
                owner.deadline_due()
            except Exception:
                log.exception("a deadline of %r failed", owner)


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary())


def deadlines(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The shared deadlines of ``loop``."""
    found = _per_loop.get(loop)
    if found is None:
        found = _per_loop[loop] = Deadlines()
    return found
