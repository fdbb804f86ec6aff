"""``get_prop`` questions a session asked its tabs, and their answers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from .records import Renderer

__all__ = ["PropReads"]


class PropReads:
    """Pending ``get_props_request``s: one future per question, keyed by request id.

    An answer resolves its future once; an answer nobody asked for (another
    tab's, a forged or replayed one) is refused without disturbing the
    question its own tab is still going to answer.
    """

    __slots__ = ("_ids", "_loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ids = itertools.count(1)
        self.pending: dict[str, tuple[asyncio.Future[Any], Renderer]] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def ask(self, renderer: Renderer) -> tuple[str, asyncio.Future[Any]]:
        """A new question of ``renderer``: its request id and the future of its answer."""
        request_id = f"p{next(self._ids)}"
        future: asyncio.Future[Any] = self._loop.create_future()
        self.pending[request_id] = (future, renderer)
        return request_id, future

    def forget(self, request_id: str) -> None:
        self.pending.pop(request_id, None)

    def solicited(self, request_id: str | None, renderer_id: str) -> bool:
        """An answer we asked ``renderer_id`` for and have not had yet."""
        pending = self.pending.get(request_id or "")
        return (pending is not None and not pending[0].done()
                and pending[1].id == renderer_id)

    def resolve(self, renderer: Renderer, request_id: str | None, payload: Any,
                path_resolved: bool = False) -> bool:
        """Answer a question; False when ``renderer`` was not asked ``request_id``.

        The future gets ``(payload, path_resolved)``: whether the answer is
        already read at the question's path (quartdash's page helper) or is
        the whole property (a renderer that ignores ``path``).
        """
        pending = self.pending.get(request_id or "")
        if pending is None or pending[1] is not renderer or pending[0].done():
            return False
        del self.pending[request_id or ""]
        pending[0].set_result((payload, path_resolved))
        return True

    def fail(self, error: Callable[[], BaseException], renderer: Renderer | None = None) -> None:
        """Fail the questions of one tab (or all) with ``error()``."""
        for request_id, (future, owner) in list(self.pending.items()):
            if renderer is None or owner is renderer:
                del self.pending[request_id]
                if not future.done():
                    future.set_exception(error())
