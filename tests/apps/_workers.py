"""``?hold=S`` on a test app's stats endpoints: the worker that takes the
request blocks its event loop for S seconds (at most 1) before answering.

With ``hypercorn -w 2`` both workers accept from one listening socket and the
kernel may hand every sequential request to the same one. A second request
sent while the first worker is blocked can only be accepted by the other, so
tests/helpers/net.py's ``from_every_worker`` reaches both in two requests.
"""

from __future__ import annotations

import time

from quart import Quart, request

MAX_HOLD = 1.0


def allow_hold(asgi: Quart, *paths: str) -> None:
    @asgi.before_request
    def hold() -> None:
        if request.path in paths and "hold" in request.args:
            # Deliberately blocking: the point is that this loop accepts nothing.
            time.sleep(min(float(request.args["hold"]), MAX_HOLD))
