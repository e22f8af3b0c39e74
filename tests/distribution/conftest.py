"""The distribution tests' fixtures (`epmd_port`, `node`) and helpers, from `dist_nodes`."""

from __future__ import annotations

import pytest
from dist_nodes import *  # noqa: F403  # the helpers, for code that loads this file
from dist_nodes import epmd_port, node

__all__ = ["epmd_port", "node"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dist(**options): start_distribution options for the `node` fixture"
    )
