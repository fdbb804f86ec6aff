"""quartdash.session.deadlines: many far-off deadlines on a few shared loop timers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from quartdash.session.deadlines import Deadlines


@dataclass(eq=False)
class Owner:
    calls: list[float] = field(default_factory=list)

    def deadline_due(self) -> None:
        self.calls.append(asyncio.get_running_loop().time())


async def test_owners_due_in_one_slot_share_one_timer() -> None:
    table = Deadlines()
    now = asyncio.get_running_loop().time()
    owners = [Owner() for _ in range(100)]
    slots = {table.add(owner, now + 0.05 + i * 0.0001, 0.1) for i, owner in enumerate(owners)}
    assert len(table) == 100 and table.timers == len(slots) <= 2
    await asyncio.sleep(0.35)
    assert all(len(o.calls) == 1 for o in owners)
    assert len(table) == 0 and table.timers == 0


async def test_never_early_at_most_one_resolution_late() -> None:
    table = Deadlines()
    loop = asyncio.get_running_loop()
    owner = Owner()
    when = loop.time() + 0.12
    table.add(owner, when, 0.05)
    await asyncio.sleep(0.3)
    assert len(owner.calls) == 1
    assert when - 0.002 <= owner.calls[0] <= when + 0.05 + 0.05  # resolution + loop slack


async def test_removed_owners_are_not_called_and_free_their_timer() -> None:
    table = Deadlines()
    now = asyncio.get_running_loop().time()
    kept, gone = Owner(), Owner()
    slot = table.add(gone, now + 0.05, 0.05)
    table.remove(gone, slot)
    assert table.timers == 0
    table.add(kept, now + 0.05, 0.05)
    table.remove(gone, slot)  # twice, or never added: a no-op
    await asyncio.sleep(0.2)
    assert kept.calls and not gone.calls


async def test_one_failing_owner_does_not_stop_the_others() -> None:
    class Bad:
        def deadline_due(self) -> None:
            raise RuntimeError("boom")

    table = Deadlines()
    now = asyncio.get_running_loop().time()
    good = Owner()
    table.add(Bad(), now + 0.01, 0.05)
    table.add(good, now + 0.01, 0.05)
    await asyncio.sleep(0.15)
    assert good.calls
