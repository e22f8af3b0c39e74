"""The public face: what `beamlet` exports is what the API reference documents."""

from __future__ import annotations

import re
import types
from pathlib import Path

import beamlet

API_DOCS = Path(__file__).resolve().parents[1] / "docs" / "api"


def documented() -> set[str]:
    names: set[str] = set()
    for page in API_DOCS.glob("*.md"):
        names |= set(re.findall(r"^::: beamlet\.(\w+)\s*$", page.read_text(), re.M))
    return names


def test_every_export_is_documented_and_nothing_else() -> None:
    exported = set(beamlet.__all__)
    assert exported - documented() == set(), "exported but missing from docs/api/"
    # subpackages documented on their own pages, imported on demand (not by `import beamlet`)
    assert documented() - exported - {"distribution", "observe", "testing"} == set(), (
        "documented in docs/api/ but not exported by beamlet"
    )


def test_exports_resolve() -> None:
    for name in beamlet.__all__:
        assert hasattr(beamlet, name), name


def test_exported_classes_and_functions_live_in_beamlet() -> None:
    wrong = {
        name: obj.__module__
        for name in beamlet.__all__
        if isinstance(obj := getattr(beamlet, name), type | types.FunctionType)
        and obj.__module__ != "beamlet"
    }
    assert wrong == {}


def test_version_is_the_package_metadata() -> None:
    from importlib.metadata import version

    assert beamlet.__version__ == version("beamlet")
