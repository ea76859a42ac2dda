"""Fixtures of the SDK and CLI tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.helpers import live_server


def real_clock() -> int:
    return int(time.time())


@pytest.fixture(scope="module")
async def cli_server(database_url: str) -> AsyncIterator[str]:
    """A server on the real clock, for code that signs with the system clock (CLI, examples)."""
    async with live_server(database_url, real_clock) as base:  # type: ignore[arg-type]
        yield base
