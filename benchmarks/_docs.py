"""Writing a benchmark's section of docs/performance.md (``--write-docs``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["NOTES_MARKER", "PERFORMANCE", "replace_section"]

PERFORMANCE = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
#: Hand-written notes after this line in a section survive a rewrite of its table.
NOTES_MARKER = "<!-- notes: kept by --write-docs -->"


def replace_section(heading: str, section: str, path: Path = PERFORMANCE) -> None:
    """Put ``section`` (starting with ``## heading``) in place of that section of ``path``
    (or at its end), keeping the old section's notes after :data:`NOTES_MARKER`."""
    text = path.read_text() if path.exists() else "# Performance\n"
    start = text.find(f"\n## {heading}\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        old = text[start:end if end != -1 else len(text)]
        notes = old.find(NOTES_MARKER)
        if notes != -1:
            section += "\n" + old[notes:].rstrip("\n") + "\n"
        text = text[:start + 1] + section + (text[end:] if end != -1 else "")
    path.write_text(text)
