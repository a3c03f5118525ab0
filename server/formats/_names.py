"""Matching the image references of foreign files to the project's images.

Other tools name images their own way: Label Studio by an upload URL (``/data/upload/3/
1a2b3c4d-001.jpg``) or a storage URL (``s3://bucket/cat/001.jpg``), YOLO label files by the
image's path without its extension, CVAT and VOC by a file name that may or may not carry the
folders. A reference is tried as a whole, then with leading folders dropped one at a time
(``bucket/cat/001.jpg``, ``cat/001.jpg``, ``001.jpg``): the first form that names exactly one
image of the project wins, so ``cat/001.jpg`` and ``dog/001.jpg`` stay apart whenever the file
says which is which, and a reference that fits two images is refused rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["NameIndex", "candidates"]

# Label Studio prefixes uploaded files with 8 hex digits and a dash.
_LS_UPLOAD = re.compile(r"^[0-9a-f]{8}-(.+)$")


def _path(ref: str) -> str:
    """The path part of a URL or file reference, decoded, with ``/`` separators."""
    ref = ref.strip().replace("\\", "/")
    if "://" in ref or ref.startswith(("/data/", "data:")):
        parts = urlsplit(ref)
        query = parse_qs(parts.query)
        # Label Studio's local-files storage: /data/local-files/?d=cat/001.jpg
        ref = query["d"][0] if "d" in query else (parts.netloc + parts.path if parts.scheme in
                                                  ("s3", "gs", "azure-blob") else parts.path)
    return unquote(ref).strip("/")


def candidates(ref: str) -> list[str]:
    """The names ``ref`` may stand for, the most specific first."""
    parts = [p for p in _path(ref).split("/") if p and p != "."]
    out = ["/".join(parts[i:]) for i in range(len(parts))]
    if parts and (m := _LS_UPLOAD.match(parts[-1])):
        out.append(m.group(1))
    return out


def _stem(name: str) -> str:
    folder, _, base = name.rpartition("/")
    base = base.rsplit(".", 1)[0] if "." in base[1:] else base
    return f"{folder}/{base}" if folder else base


@dataclass
class NameIndex:
    """The project's images by name and by name without extension (and both with the leading
    folders dropped), each mapping to the image names it may mean; sizes by name."""

    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_name: dict[str, set[str]] = field(default_factory=dict)
    by_stem: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, images: list[tuple[str, int, int]]) -> NameIndex:
        index = cls()
        for name, w, h in images:
            index.sizes[name] = (w, h)
            for cand in candidates(name) or [name]:
                index.by_name.setdefault(cand, set()).add(name)
                index.by_stem.setdefault(_stem(cand), set()).add(name)
        return index

    def find(self, ref: str, *, stem: bool = False) -> str | None:
        """The one image ``ref`` names (``stem``: ``ref`` has no extension), else None."""
        table = self.by_stem if stem else self.by_name
        for cand in candidates(ref):
            found = table.get(cand)
            if found is None:
                continue
            # An image named exactly so wins over images whose trailing part it is.
            exact = [n for n in found if (_stem(n) if stem else n) == cand]
            if len(exact) == 1 or len(found) == 1:
                return exact[0] if exact else next(iter(found))
            return None
        return None

    def resolve(self, ref: str, *, stem: bool = False) -> tuple[str, tuple[int, int] | None]:
        """The image name to import under (``ref`` itself when nothing matches, so the import
        refuses the row by that name) and its (width, height) if known."""
        name = self.find(ref, stem=stem)
        return (name, self.sizes[name]) if name is not None else (ref, None)
