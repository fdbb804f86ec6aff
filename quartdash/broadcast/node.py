"""This worker process's id in the broadcast layer (presence, control messages).

Host name, process id and a random part (a pid is reused after a restart,
and two containers may share both), made once per process: a forked worker
gets its own. Never contains ``/`` (presence keys are ``<worker>/<...>``).
"""

from __future__ import annotations

import os
import secrets
import socket

__all__ = ["worker_id"]

_id: tuple[int, str] | None = None


def worker_id() -> str:
    """This process's id, the same for its whole life."""
    global _id
    pid = os.getpid()
    if _id is None or _id[0] != pid:
        host = socket.gethostname().replace("/", "_") or "host"
        _id = (pid, f"{host}:{pid}:{secrets.token_hex(4)}")
    return _id[1]
