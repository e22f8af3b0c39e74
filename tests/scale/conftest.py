"""The scale tests' fixtures (`epmd_port`, `node`), from `scale_nodes`."""

from __future__ import annotations

from scale_nodes import epmd_port, node

__all__ = ["epmd_port", "node"]
