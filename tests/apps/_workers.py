"""``?hold=S`` on a test app's stats endpoints: the worker that takes the
request blocks its event loop for S seconds (at most 2) before answering.

With ``hypercorn -w 2`` both workers accept from one listening socket and the
kernel may hand every sequential request to the same one. A second request
sent while the first worker is blocked can only be accepted by the other, so
tests/helpers/net.py's ``from_every_worker`` reaches both in two requests.

``?hold=S&pid=P`` blocks only worker P for S seconds; any other worker that
takes it blocks briefly (``PASS_ON``), so that the next such request can
only land on P (tests/helpers/net.py's ``worker_held``).
"""

from __future__ import annotations

import os
import time

from quart import Quart, request

MAX_HOLD = 2.0
PASS_ON = 0.2


def allow_hold(asgi: Quart, *paths: str) -> None:
    @asgi.before_request
    async def hold() -> None:  # async: Quart runs a sync hook in a thread
        if request.path in paths and "hold" in request.args:
            seconds = min(float(request.args["hold"]), MAX_HOLD)
            if request.args.get("pid", str(os.getpid())) != str(os.getpid()):
                seconds = min(seconds, PASS_ON)
            # Deliberately blocking: the point is that this loop accepts nothing.
            time.sleep(seconds)  # noqa: ASYNC251
