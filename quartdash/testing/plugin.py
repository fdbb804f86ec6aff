"""The pytest plugin: the :func:`dash_client` fixture.

Registered through the ``pytest11`` entry point (setup.cfg), so the fixture
is available wherever quartdash is installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .client import DashClient

__all__ = ["ClientFactory", "dash_client"]

ClientFactory = Callable[..., Awaitable[DashClient]]

try:
    import pytest
except ImportError:  # used outside pytest: no fixtures
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    try:
        import pytest_asyncio
    except ImportError:
        pytest_asyncio = None  # type: ignore[assignment]

    if pytest_asyncio is not None:

        @pytest_asyncio.fixture
        async def dash_client() -> AsyncIterator[ClientFactory]:
            """Factory: ``client = await dash_client(app_or_url, prefix=None, **options)``.

            Returns a :class:`DashClient` (arguments as its constructor); every
            client is disconnected at teardown.
            """
            clients: list[DashClient] = []

            async def make(target: Any, prefix: str | None = None,
                           **options: Any) -> DashClient:
                client = DashClient(target, prefix, **options)
                clients.append(client)
                return client

            yield make
            for client in clients:
                await client.aclose()

    else:

        @pytest.fixture
        def dash_client() -> ClientFactory:
            """Needs pytest-asyncio (``pip install pytest-asyncio``)."""
            pytest.fail("the dash_client fixture needs pytest-asyncio: pip install pytest-asyncio")
