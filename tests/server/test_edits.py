"""server/edits.py: a batch of plain creates, applied in bulk, ends exactly as the general path
ends — the same op and inverse for the log, the same rows, the same labels, the same error."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from server.edits import EditError, ImageRef, apply_object_op, object_ids, parse_object_op
from server.geometry import Batch
from server.geometry import parse_op as parse_geometry_op
from server.geometry.plain import PlainCreates
from server.preferences import LabelingSettings


def _box(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.choice(["bbox", "bbox", "point"])
    geometry: dict[str, Any] = {"x": rng.choice([0, 5.5, 90, -1, 99.5]),
                                "y": rng.choice([0, 3, 70, 79.5])}
    if kind == "bbox":
        geometry.update(w=rng.choice([1, 10, 10.5, 10, 0]), h=rng.choice([1, 10, 2.25]))
    item: dict[str, Any] = {"id": rng.choice([f"o{i}"] * 6 + ["dup", "x" * 65]), "type": kind,
                            "geometry": geometry}
    if rng.random() < 0.3:
        item["label"] = rng.choice(["car", "", "a-very-long-label-" * 20])
    if rng.random() < 0.2:
        item["attributes"] = rng.choice([{"n": 1}, {"": 1}, {"s": "v" * 2000}])
    if rng.random() < 0.05:
        item["keypoints"] = [{"name": "k", "x": 1, "y": 1}]
    return item


def _run(op: Any, settings: LabelingSettings, count: int) -> Any:
    image = ImageRef(id=1, project_id=1, width=100, height=80, object_count=count)
    try:
        out = asyncio.run(apply_object_op(op, {}, project_id=1, image=image, user_id=1,
                                          settings=settings, origin="edit"))
    except EditError as exc:
        return ("error", exc.code, exc.message, exc.field)
    op_dict, inverse, labels, writes = out
    return op_dict, inverse, labels, writes.inserts, image.object_count


def test_plain_and_general_paths_agree_on_random_batches() -> None:
    rng = random.Random(19)
    settings_choices = [
        LabelingSettings(), LabelingSettings(fit_labels_to_image=True),
        LabelingSettings(allow_labeling_outside_image=True),
        LabelingSettings(fixed_bbox_aspect_ratio=2.0),
    ]
    fast_taken = 0
    outcomes = set()
    for _ in range(500):
        data = {"kind": "batch",
                "ops": [{"kind": "create", "object": _box(rng, i)}
                        for i in range(rng.randint(1, 6))]}
        settings = rng.choice(settings_choices)
        count = rng.choice([0, 19_998])
        try:
            parsed = parse_object_op(data)
        except EditError:
            continue  # refused while parsing: the general path's parse, as ever
        if not isinstance(parsed, PlainCreates):
            continue
        assert object_ids(parsed) == {op["object"]["id"] for op in data["ops"]}
        general = parse_geometry_op(data)
        assert isinstance(general, Batch)
        fast_result, general_result = _run(parsed, settings, count), _run(general, settings, count)
        assert fast_result == general_result, data
        fast_taken += 1
        outcomes.add(fast_result[0] if fast_result[0] == "error" else "ok")
    assert fast_taken > 100 and outcomes == {"ok", "error"}  # both kinds of ending were tried


def test_a_plain_batch_over_the_limit_gets_the_general_error() -> None:
    data = {"kind": "batch", "ops": [
        {"kind": "create", "object": {"id": f"o{i}", "type": "point", "geometry": {"x": 1, "y": 1}}}
        for i in range(3)]}
    parsed = parse_object_op(data)
    assert isinstance(parsed, PlainCreates)
    assert _run(parsed, LabelingSettings(), 19_998) == (
        "error", "invalid_op", "op.ops.2: an image holds at most 20000 objects", "op.ops.2")
    assert _run(parsed, LabelingSettings(), 19_997)[4] == 20_000
