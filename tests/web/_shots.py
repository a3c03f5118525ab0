"""Screenshots for the docs, saved only when ``LABELHUB_SCREENSHOTS`` names a directory
(``LABELHUB_SCREENSHOTS=docs/screenshots make test``): a plain test run never changes the checkout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SHOTS = os.environ.get("LABELHUB_SCREENSHOTS")


def shot(page: Any, name: str, full_page: bool = False) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=full_page)
