"""The ``asyncio`` client: the same cache, refresh, event stream and disk copy as
:class:`~promptgate.Client` (it is one underneath). A cache hit returns at once; a cold fetch
runs in a worker thread (``asyncio.to_thread``), so the event loop never waits on the network
or the disk."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from ._client import Client, Prompt


class AsyncClient:
    """``await client.get(name, label=..., routing_key=...)``; see :class:`Client`."""

    def __init__(self, url: str, **options: Any) -> None:
        self._sync = Client(url, **options)

    @classmethod
    def from_bundle(cls, path: str) -> "AsyncClient":
        c = cls.__new__(cls)
        c._sync = Client.from_bundle(path)
        return c

    async def get(
        self, name: str, label: str = "production", routing_key: Optional[str] = None
    ) -> Prompt:
        hit = self._sync.cached(name, label, routing_key)
        if hit is not None:
            return hit
        return await asyncio.to_thread(self._sync.get, name, label, routing_key)

    async def get_version(self, name: str, version: str) -> Prompt:
        hit = self._sync._versions.get((name, version))
        if hit is not None:
            return hit
        return await asyncio.to_thread(self._sync.get_version, name, version)

    def cached(
        self, name: str, label: str = "production", routing_key: Optional[str] = None
    ) -> Optional[Prompt]:
        return self._sync.cached(name, label, routing_key)

    async def refresh(self) -> None:
        await asyncio.to_thread(self._sync.refresh)

    async def flush(self) -> None:
        await asyncio.to_thread(self._sync.flush)

    async def aclose(self) -> None:
        self._sync.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
