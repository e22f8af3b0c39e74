"""The distribution tests' peers and fixtures (tests/distribution/conftest.py), loaded
under another module name so that tests/observe can use them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "distribution" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_observe_dist_conftest", _PATH)
assert _spec is not None and _spec.loader is not None
dist = importlib.util.module_from_spec(_spec)
sys.modules["_observe_dist_conftest"] = dist
_spec.loader.exec_module(dist)
