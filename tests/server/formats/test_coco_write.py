"""The COCO writer: its direct text is what encoding the general path's dicts gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

from server.formats import _coco_write as cw
from server.formats._source import ImageRecord
from server.geometry.rle import rle_encode
from tests.server.formats._seed import H, W


@pytest.mark.parametrize("geometry", [
    {"x": 2.3, "y": 3.7, "w": 20.5, "h": 10.2}, {"x": -4, "y": 40, "w": 10, "h": 30},
    {"x": 10.6, "y": 10.6, "w": 0.2, "h": 0.2}, {"x": 0, "y": 0, "w": 64, "h": 48}, {"x": 1e-07, "y": 5, "w": 3.0, "h": 1},
    {"x": 1e-05, "y": 3e-10, "w": 2e16, "h": 0.0001},  # where repr writes an exponent and orjson not
    {"x": -0.0, "y": 2**70, "w": 1.5, "h": 10**17},  # an integer orjson cannot write
])
def test_box_text_is_what_the_general_path_writes(geometry: dict[str, float]) -> None:
    obj = {"id": 'b"1\\ü', "type": "bbox", "label": "cat", "geometry": geometry, "keypoints": [],
           "attributes": {"color": "red"}, "occluded": True}
    general = cw.annotation(obj, W, H)
    assert general is not None
    general.update(id=7, image_id=3, category_id=2, labelhub={"id": obj["id"], "type": "bbox"},
                   attributes=obj["attributes"], occluded=True)
    assert cw.box_text(obj, W, H, 7, 3, 2) == cw._dumps(general)
    plain = obj | {"attributes": {}, "occluded": False}
    assert json.loads(cw.box_text(plain, W, H, 1, 1, 1))["attributes"] == {}


def test_a_label_that_appears_during_an_export_gets_the_next_category() -> None:
    box = {"id": "b", "type": "bbox", "label": "new", "geometry": {"x": 1, "y": 1, "w": 4, "h": 4},
           "keypoints": [], "attributes": {}, "occluded": False}
    point = box | {"id": "p", "type": "point", "label": "dot", "geometry": {"x": 1, "y": 1}}
    cats = {"cat": 1}
    anns, images, last = cw.convert([ImageRecord(5, "a.png", W, H, [], [box, point])], cats, {}, 10)
    assert cats == {"cat": 1, "new": 2} and last == 11  # points are not instances: no category
    assert json.loads(anns[0])["category_id"] == 2 and json.loads(images[0])["id"] == 5


def _previous_convert(batch: list[ImageRecord], cats: dict[str, int], kp_names: dict[str, list[str]],
                      crowd_rle: bool) -> list[str]:
    """The annotations as the writer gave them before polygons were traced in batches: one
    ``annotation()`` dict per object, encoded by ``_dumps``."""
    out, ann_id = [], 0
    for im in batch:
        for obj in im.objects:
            ann = cw.annotation(obj, im.width, im.height, crowd_rle)
            if ann is None:
                continue
            ann_id += 1
            ann.update(id=ann_id, image_id=im.id, category_id=cats[obj["label"]],
                       labelhub={"id": obj["id"], "type": obj["type"]},
                       attributes=obj["attributes"], occluded=obj["occluded"])
            if kp_names.get(obj["label"]):
                by_name = {k["name"]: k for k in obj["keypoints"]}
                flat: list[float] = []
                for n in kp_names[obj["label"]]:
                    k = by_name.get(n)
                    flat += [k["x"], k["y"], 2 if k["visible"] else 1] if k else [0, 0, 0]
                ann["keypoints"], ann["num_keypoints"] = flat, len(by_name)
            out.append(cw._dumps(ann))
    return out


@pytest.mark.parametrize("crowd_rle", [False, True])
def test_the_batch_writer_gives_the_previous_bytes(crowd_rle: bool) -> None:
    rng = np.random.default_rng(5)

    def obj(i: int, kind: str, geometry: dict[str, object], label: str = "dog", **extra: object) -> dict[str, object]:
        return {"id": f"o{i}", "type": kind, "label": label, "geometry": geometry, "keypoints": [],
                "attributes": {"n": i} if i % 3 else {}, "occluded": i % 2 == 0} | extra

    def star(cx: float, cy: float, r: float) -> list[list[float]]:
        t = np.sort(rng.uniform(0, 2 * np.pi, 9))
        rr = r * rng.uniform(0.3, 1, 9)
        return np.round(np.c_[cx + rr * np.cos(t), cy + rr * np.sin(t)], 2).tolist()

    mask = np.zeros((H, W), dtype=bool)
    mask[3:9, 4:20] = True
    mask[5:7, 8:12] = False
    images = []
    for n in range(4):
        objects = [
            obj(1, "polygon", {"parts": [{"exterior": star(20 + n, 20, 15)}]}),
            obj(2, "polygon", {"parts": [{"exterior": [[2, 2], [30, 2], [30, 30], [2, 30]],
                                          "holes": [[[8, 8], [14.5, 8], [14.5, 14.5]]]}]}),  # a hole
            obj(3, "polygon", {"parts": [{"exterior": star(12, 12, 10)}, {"exterior": star(45, 30, 12)},
                                         {"exterior": [[30, 30], [34, 30], [34, 34], [30, 34]]},
                                         {"exterior": [[34, 34], [38, 34], [38, 38], [34, 38]]}]}),  # corner-touching parts
            obj(4, "polygon", {"parts": [{"exterior": [[50, 5], [90, 5], [70, 60]]}]}),  # clipped at the edge
            obj(5, "polygon", {"parts": [{"exterior": [[10.1, 10.1], [10.3, 10.1], [10.3, 30]]}]}),  # no pixel
            obj(6, "bitmap", {"rle": rle_encode(mask)}, label="blob"),
            obj(7, "bbox", {"x": 1.5, "y": 2.25, "w": 10, "h": 7.5}),
            obj(8, "polygon", {"parts": [{"exterior": star(30, 24, 14)}]}, label="cat",
                keypoints=[{"name": "eye", "x": 30.0, "y": 20.0, "visible": True}]),
            obj(9, "point", {"x": 3, "y": 4}),
        ]
        images.append(ImageRecord(10 + n, f"{n}.png", W, H, [], objects))
    cats, kp_names = {"blob": 1, "cat": 2, "dog": 3}, {"cat": ["eye"]}
    ours, _images, last = cw.convert(images, dict(cats), kp_names, 0, crowd_rle)
    assert ours == _previous_convert(images, cats, kp_names, crowd_rle)
    assert last == len(ours) == 4 * 7  # the empty polygon and the point are left out
    kinds = [json.loads(a)["segmentation"] for a in ours]
    assert sum(isinstance(s, dict) for s in kinds) >= 8 and max(len(s) for s in kinds if isinstance(s, list)) >= 3


@pytest.mark.parametrize("seed", range(8))
def test_window_rle_is_the_rle_of_the_whole_image(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    mh, mw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
    x0, y0 = int(rng.integers(0, w - mw + 1)), int(rng.integers(0, h - mh + 1))
    for window in (rng.random((mh, mw)) < 0.5, np.ones((mh, mw), dtype=bool), np.zeros((mh, mw), dtype=bool)):
        full = np.zeros((h, w), dtype=bool)
        full[y0 : y0 + mh, x0 : x0 + mw] = window
        assert cw.window_rle(window, (x0, y0), w, h) == rle_encode(full)
    full_height = rng.random((h, mw)) < 0.6  # runs that go on from one column into the next
    full_height[-1, :], full_height[0, 1:] = True, True
    whole = np.zeros((h, w), dtype=bool)
    whole[:, x0 : x0 + mw] = full_height
    assert cw.window_rle(full_height, (x0, 0), w, h) == rle_encode(whole)


def test_boxes_pixels_is_box_pixels() -> None:
    rng = np.random.default_rng(3)
    boxes = [({"x": float(x), "y": float(y), "w": float(bw), "h": float(bh)}, 64, 48)
             for x, y, bw, bh in np.round(rng.uniform(-20, 80, (400, 4)), 1)]
    boxes += [({"x": 3, "y": 4, "w": 10, "h": 2}, 64, 48), ({"x": 10.5, "y": 0.5, "w": 0, "h": 5}, 64, 48),
              ({"x": -1e7, "y": 1e-7, "w": 2e7, "h": 47.5}, 64, 48)]
    assert cw.boxes_pixels(boxes) == [cw.box_pixels(g, iw, ih) for g, iw, ih in boxes]
    assert cw.boxes_pixels([]) == []


def test_number_texts_are_what_json_writes() -> None:
    rng = np.random.default_rng(11)
    values: list[object] = (rng.uniform(-1e4, 1e4, 3000).tolist() + np.round(rng.uniform(0, 700, 3000), 2).tolist()
                            + (rng.uniform(1, 10, 3000) * 10.0 ** rng.integers(-12, 20, 3000)).tolist()
                            + [0, 7, -3, 0.0, -0.0, 1e-4, 9.999e-5, 1e16, 9999999999999998.0, 5e-324])
    assert cw.number_texts(values) == [json.dumps(v) for v in values]
    assert cw.number_texts([1.5, 2**64]) == ["1.5", str(2**64)] and cw.number_texts([]) == []
