"""Runnable quartdash examples: one per section of Dash's *WebSocket callbacks* guide.

Every example module builds its Dash app as a :class:`quartdash.DashBlueprint`
with ``build(prefix="/")`` and registers its callbacks on that blueprint
(``@app.callback``), so one process can host many of them side by side. Each
module also has:

* ``asgi``: a Quart app with the example at ``/``: ``hypercorn examples.countdown:asgi``;
* a ``__main__``: ``python -m examples.countdown [--host H] [--port P]``.

``python -m examples.gallery`` serves all of them in one Quart app, each
under its own prefix, with an index page linking them (see README.md here).

Third-party packages beyond quartdash's own come from its ``examples`` extra
(``pip install "quartdash[examples]"``); the examples import them with
:func:`require`, which says so when one is missing.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import socket
from collections.abc import Sequence
from types import ModuleType

from quart import Quart

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050

INSTALL_HINT = ('pip install "quartdash[examples]" (in a checkout: pip install -e ".[examples]", '
                "or run bash scripts/demo.sh, which does)")


def require(module: str, package: str | None = None) -> ModuleType:
    """Import ``module``, a dependency of the examples only (the ``examples``
    extra); if it is not installed, fail with a ``ModuleNotFoundError`` that
    says how to install it. ``package``: its name on PyPI when that differs.

    Only a missing ``module`` itself is translated: an error raised while
    importing it (a broken install) comes through unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or module.split(".")[0] != error.name.split(".")[0]:
            raise
        raise ModuleNotFoundError(
            f"the quartdash examples need {package or module!r}, which is not installed: "
            f"{INSTALL_HINT}",
            name=error.name,
        ) from error


def bind_problem(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be served (e.g. the port is in use), or None.

    A bind tried and released at once, the way hypercorn binds
    (``SO_REUSEADDR``), so the URL printed next is one that will answer.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as error:
        return error
    return None


def main(asgi: Quart, argv: Sequence[str] | None = None, description: str | None = None) -> None:
    """Serve ``asgi`` with hypercorn: ``--host``/``--port`` flags, else HOST/PORT, else
    127.0.0.1:8050. ``--debug`` shows tracebacks in the browser and logs requests."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default=os.environ.get("HOST", DEFAULT_HOST),
                        help="interface to bind (env HOST; default %(default)s)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)),
                        help="port to bind (env PORT; default %(default)s)")
    parser.add_argument("--debug", action="store_true", help="debug mode")
    args = parser.parse_args(argv)
    problem = bind_problem(args.host, args.port)
    if problem is not None:  # e.g. another Dash app on Dash's default port, 8050
        hint = ""
        if problem.errno in (errno.EADDRINUSE, errno.EACCES):
            hint = f"\n  pick another port: --port {args.port + 1} (or PORT={args.port + 1})"
        parser.exit(2, f"error: cannot serve on {args.host}:{args.port}: "
                       f"{problem.strerror or problem}{hint}\n")

    from quartdash.hosting.serving import run

    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    title = (description or "quartdash example").strip().splitlines()[0]
    print(f"{title}\n  open http://{shown}:{args.port}/ in a browser", flush=True)
    run(asgi, host=args.host, port=args.port, debug=args.debug)
