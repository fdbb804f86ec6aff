"""The browser side quartdash ships, installed as the package ``quartdash.static``.

* ``quartdash-ws-worker.js`` — the SharedWorker: one WebSocket per browser
  (per app), shared by every tab;
* ``quartdash-page.js`` — the page helper: tells the worker when a tab goes away.

Served by :mod:`quartdash.hosting.backend`; read with
``importlib.resources.files("quartdash.static")``.
"""
