"""Python SDK for lorag: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio)."""

from lorag.client.aio import AsyncClient
from lorag.client.base import LoragClientError
from lorag.client.sync import Client

__all__ = ["AsyncClient", "Client", "LoragClientError"]
