"""The native JSON format: lossless (labels with their default flag and source, every object
with keypoints, attributes, rpy, occluded, z; bitmaps as COCO RLE).

    {"format": "labelhub", "version": 1,
     "labels": [{"name": "cat", "color": "#e6194b", "shortcut": 1}],
     "images": [{"name": "a.jpg", "width": 640, "height": 480, "state": "accepted",
                 "labels": [{"label": "cat", "is_default": true, "source": "manual"}],
                 "objects": [{"id": "o1", "type": "bbox", "label": "cat",
                              "geometry": {"x": 10, "y": 20, "w": 30, "h": 40}, ...}]}]}

Import also accepts a bare list of images. In an image, ``labels`` may be a list of names
(the first is the default) and either key may be left out (then that part is left alone).
``state`` is the image's workflow state; exported for the record, not imported (a state is
something a person sets in the tool).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from server import strict_json
from server.formats._importing import ImportFileError, Incoming
from server.formats._source import ExportJob, ImageRecord, iter_images, label_defs

MEDIA_TYPE = "application/json"
SUFFIX = "json"


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _image_texts(batch: list[ImageRecord]) -> list[str]:
    return [_dumps({"name": img.name, "width": img.width, "height": img.height,
                    "state": img.state,
                    "labels": [{"label": s.label, "is_default": s.is_default, "source": s.source}
                               for s in img.labels],
                    "objects": img.objects}) for img in batch]


async def export(job: ExportJob) -> AsyncIterator[bytes]:
    labels = await label_defs(job.sessions, job.project_id)
    seq = f'"seq":{job.seq},' if job.seq is not None else ""  # the op-log position it reflects
    yield f'{{"format":"labelhub","version":1,{seq}"labels":{_dumps(labels)},"images":['.encode()
    sep = "\n"
    async for batch in iter_images(job.sessions, job.project_id, job.flt):
        texts = await asyncio.to_thread(_image_texts, batch)  # big bitmaps: off the event loop
        yield (sep + ",\n".join(texts)).encode()
        sep = ",\n"
    yield b"\n]}\n"


def parse(body: bytes) -> tuple[list[Incoming], list[dict[str, Any]]]:
    """Records to import, and the label definitions the file carries (name, color, shortcut)."""
    try:
        data = strict_json.loads(body)
    except strict_json.JsonInputError as exc:
        raise ImportFileError(exc.message) from None
    defs: list[dict[str, Any]] = []
    if isinstance(data, dict):
        defs = data.get("labels") or []
        if not isinstance(defs, list) or not all(isinstance(d, dict) and isinstance(d.get("name"), str) for d in defs):
            raise ImportFileError("labels: must be a list of {name, color?, shortcut?}")
        data = data.get("images")
    if not isinstance(data, list):
        raise ImportFileError("images: must be a list")
    out = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            out.append(Incoming(i, "", error=("images", "must be an object")))
            continue
        name = item.get("name", item.get("image"))
        out.append(Incoming(i, name if isinstance(name, str) else "",
                            labels=item.get("labels"), objects=item.get("objects"),
                            has_labels="labels" in item, has_objects="objects" in item))
    return out, defs
