"""Fixtures for the ETS tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from erlang_ets import ErlangEts


@pytest.fixture(scope="module")
def erlang_ets() -> Iterator[ErlangEts]:
    port = ErlangEts()
    try:
        yield port
    finally:
        port.close()
