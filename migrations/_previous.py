"""An earlier migration's module, for the SQL definitions it holds.

A migration that replaces a PostgreSQL function carries the new definition, and its downgrade
(or a later migration that retypes one) runs the earlier one again: read from that migration's
own file, so each definition is written once, in the migration that made it. The files' names
start with a digit, so they are loaded by path, not imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ["previous"]

_VERSIONS = Path(__file__).with_name("versions")


def previous(name: str) -> ModuleType:
    """The migration ``versions/<name>`` (a file name such as ``0018_object_sources_on_edits.py``),
    loaded afresh."""
    spec = importlib.util.spec_from_file_location(f"_lh_{name[:4]}", _VERSIONS / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
