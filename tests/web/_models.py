"""What the models page shows, read back (views/models.js): a compare box's quality row."""

from __future__ import annotations

import re


def compared(text: str, measure: str) -> tuple[int, int, int]:
    """The two versions' quality (percent) and the change (points) from a compare box's text:
    its quality row reads ``<measure> <older>% <newer>% <change> points``, tab-separated."""
    found = re.search(rf"^{re.escape(measure)}\t(\d+)%\t(\d+)%\t([+-]\d+) points$", text, re.M)
    assert found, text
    return int(found[1]), int(found[2]), int(found[3])
