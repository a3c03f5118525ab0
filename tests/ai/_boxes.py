"""Helpers for the detector tests: projects with boxes people drew (through the native import,
as a team moving in would), and a detection model version written straight into the database."""

from __future__ import annotations

from starlette.applications import Starlette

from benchmarks._ai_scenes import LABELS, scenes
from server import _label_store as label_store
from server.db import transaction
from server.models import AiModel, AiModelVersion, Prediction, utcnow
from tests.ai._digits import cancel_queued, png, upload
from tests.ai.test_detection import detector
from tests.conftest import Api, make_project
from tests.server._rows import make_images


async def import_boxes(api: Api, pid: int, boxes: dict[str, list[tuple[str, float, float, float, float]]]
                       ) -> None:
    """Boxes ``(label, x, y, w, h)`` per image name, source ``import`` (people's boxes)."""
    names = sorted({b[0] for bs in boxes.values() for b in bs})
    resp = await api.client.post(f"/api/v1/projects/{pid}/import", params={"format": "json"}, json={
        "format": "labelhub", "version": 1, "labels": [{"name": n} for n in names],
        "images": [{"name": name, "objects": [
            {"id": f"h{k}", "type": "bbox", "label": n, "geometry": {"x": x, "y": y, "w": w, "h": h}}
            for k, (n, x, y, w, h) in enumerate(bs)]} for name, bs in boxes.items()]})
    assert resp.status_code == 200, resp.text


async def scenes_project(api: Api, n: int, boxed: int, seed: int = 5
                         ) -> tuple[int, list[int], list[list[tuple[str, float, float, float, float]]]]:
    """``n`` synthetic 320-px scenes uploaded, the first ``boxed`` of them boxed by people."""
    pid = await make_project(api, "Shapes")
    data = scenes(n, seed)
    items = await upload(api, pid, [(f"s{i:02d}.png", png(img[:, :, ::-1]))
                                    for i, (img, _) in enumerate(data)])
    await cancel_queued(api, pid)
    await import_boxes(api, pid, {f"s{i:02d}.png": b for i, (_, b) in enumerate(data[:boxed])})
    return pid, [int(i["id"]) for i in items], [b for _, b in data]


async def seeded_detector(app: Starlette, pid: int, labels: tuple[str, ...] = ("cat", "dog"),
                          threshold: float = 0.4, name: str = "boxes") -> tuple[int, AiModelVersion]:
    """A trained detection model with one version (random weights, ``threshold``)."""
    d = detector(labels).with_threshold(threshold)
    async with transaction(app.state.sessions) as session:
        ids = await label_store.ensure_label_defs(session, pid, labels)
        model = AiModel(project_id=pid, name=name, task="detection", kind="trained",
                        multi_label=False, mapping={}, created_at=utcnow())
        session.add(model)
        await session.flush()
        row = AiModelVersion(model_id=model.id, version=1,
                             labels=[{"id": ids[n], "name": n} for n in labels],
                             head=d.describe(), weights=d.weights(), metrics={"map50": 0.5},
                             images=4, created_at=utcnow())
        session.add(row)
        return model.id, row


async def seeded_prediction(app: Starlette, pid: int, model_id: int, image: int,
                            objects: list[tuple[str, float, float, float, float, float]]) -> int:
    """A pending prediction of ``objects`` ``(label, score, x, y, w, h)`` for an image."""
    async with transaction(app.state.sessions) as session:
        p = Prediction(project_id=pid, image_id=image, model_id=model_id, version=1, labels=[],
                       objects=[{"type": "bbox", "label": n, "score": s,
                                 "geometry": {"x": x, "y": y, "w": w, "h": h}}
                                for n, s, x, y, w, h in objects],
                       status="pending", created_at=utcnow(), updated_at=utcnow())
        session.add(p)
        await session.flush()
        return p.id


async def plain_images(app: Starlette, pid: int, n: int) -> list[int]:
    """Images without files (enough for adding boxes), 100 x 80."""
    return await make_images(app, pid, [f"p{i}.png" for i in range(n)], 100, 80)


__all__ = ["LABELS", "import_boxes", "plain_images", "scenes_project", "seeded_detector",
           "seeded_prediction"]


