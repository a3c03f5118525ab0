"""The event loop the benchmarks' own processes run on: uvloop when installed, as ``labelhub
serve`` runs on it (uvicorn's ``loop="auto"``), so servers and in-process phases are compared on
the same loop."""

from __future__ import annotations

import asyncio
from typing import Any


def runner() -> Any:
    """``uvloop.run``, else ``asyncio.run``."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
