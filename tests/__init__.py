"""quartdash's test suite (a package so that ``tests.apps.x:asgi`` imports)."""
