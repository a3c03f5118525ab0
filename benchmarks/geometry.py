"""Geometry core at scale: ``python -m benchmarks.geometry`` (also run by ``make bench``).

Prints a markdown table; every baseline is measured in the same run on the same input:
pycocotools for RLE (the reference implementation, on an already Fortran-ordered array, its
best case), OpenCV ``fillPoly`` / ``findContours`` for rasterize / vectorize (OpenCV's own fill
and tracing: not exact under our pixel-center rule, but the speed to match, goal <= 3x), and
the old brush (``tests/geometry/brush_reference.py``: every pixel of every segment's box) for
the brush, which must set the very same pixels. Times are medians; on a loaded machine they are
noisy, so the rasterize / vectorize / brush pairs also show the best of the runs (``min``),
where scheduling noise is smallest, and the ratio of CPU times.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from server.geometry import (
    LabelObject,
    Policy,
    edit,
    parse_object,
    parse_op,
    rasterize,
    rle_decode,
    rle_encode,
    smart_select,
    vectorize,
)

H, W = 3000, 4000


def samples(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall times in milliseconds (after one warm-up call)."""
    fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def timed(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Median wall time in milliseconds (after one warm-up call)."""
    return statistics.median(samples(fn, repeat))


def paired(ours: Callable[[], Any], base: Callable[[], Any], repeat: int = 9) -> tuple[float, float, str]:
    """Medians of ours and the baseline, run interleaved (so both meet the same load), and the
    ratios of their best runs and of their median CPU times (the process's, every thread: what
    other processes' load disturbs least)."""
    a: list[float] = []
    b: list[float] = []
    cpu_a: list[float] = []
    cpu_b: list[float] = []
    for _ in range(repeat):
        for fn, wall, cpu in ((ours, a, cpu_a), (base, b, cpu_b)):
            fn()  # warm-up, as in samples()
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
    cpu_ratio = statistics.median(cpu_a) / statistics.median(cpu_b)
    return statistics.median(a), statistics.median(b), f"best {min(a) / min(b):.2f}x, CPU {cpu_ratio:.2f}x"


def blob_mask(seed: int = 0) -> np.ndarray:
    """A 12 MP mask of 200 overlapping discs with holes: a realistic large label."""
    rng = np.random.default_rng(seed)
    m = np.zeros((H, W), dtype=np.uint8)
    for _ in range(200):
        center = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        cv2.circle(m, center, int(rng.integers(5, 300)), 1, -1)
    for _ in range(60):
        center = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        cv2.circle(m, center, int(rng.integers(3, 40)), 0, -1)
    return m.view(bool)


def star_polygon(n: int, cx: float, cy: float, r: float, wobble: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = r + wobble * np.sin(t * 37)
    return np.c_[cx + radius * np.cos(t), cy + radius * np.sin(t)]


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, OpenCV {cv2.__version__}, NumPy {np.__version__}"


def rows() -> list[tuple[str, float, str, float | None, str]]:
    """(case, ours ms, baseline name, baseline ms, goal) per benchmark."""
    from pycocotools import mask as coco

    out: list[tuple[str, float, str, float | None, str]] = []
    mask = blob_mask()
    fortran = np.asfortranarray(mask.view(np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools vs numpy 2
        ref = coco.encode(fortran)
        assert rle_encode(mask)["counts"] == ref["counts"].decode()
        out.append(
            (
                "RLE encode 4000x3000",
                timed(lambda: rle_encode(mask)),
                "pycocotools.encode",
                timed(lambda: coco.encode(fortran)),
                "<= 2x",
            )
        )
        ours = rle_encode(mask)
        out.append(
            (
                "RLE decode 4000x3000",
                timed(lambda: rle_decode(ours)),
                "pycocotools.decode",
                timed(lambda: coco.decode(ref)),
                "<= 2x",
            )
        )

    ring = star_polygon(5000, W / 2, H / 2, 1300, 250)
    poly = parse_object(
        {"id": "p", "type": "polygon", "geometry": {"parts": [{"exterior": ring.tolist()}]}}
    )
    pts = np.round((ring - 0.5) * 16).astype(np.int32)

    def fill() -> None:
        canvas = np.zeros((H, W), np.uint8)
        cv2.fillPoly(canvas, [pts], 1, cv2.LINE_8, 4)

    r_ours, r_base, best = paired(lambda: rasterize(poly, H, W), fill)
    out.append(("rasterize 5,000-vertex polygon at 4000x3000", r_ours, "cv2.fillPoly", r_base, f"<= 3x ({best})"))

    u8 = mask.view(np.uint8)
    v_ours, v_base, best = paired(
        lambda: vectorize(mask), lambda: cv2.findContours(u8, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE), 9
    )
    out.append(("vectorize 12 MP mask (exact outline)", v_ours, "cv2.findContours", v_base, f"<= 3x ({best})"))
    out.append(
        (
            "vectorize 12 MP mask (simplified, 1 px)",
            timed(lambda: vectorize(mask, 1.0), 3),
            "",
            None,
            "",
        )
    )

    from benchmarks._hub_heavy import RADIUS, SIDE, heaviest_stroke
    from server.geometry._bitmap_ops import brush
    from tests.geometry.brush_reference import brush as brush_reference

    stroke = np.array(heaviest_stroke("b")["points"], dtype=np.float64)
    blank = np.zeros((SIDE, SIDE), dtype=bool)
    assert np.array_equal(brush(blank, stroke, RADIUS, True),
                          brush_reference(blank, stroke, RADIUS, True))
    b_ours, b_base, best = paired(
        lambda: brush(blank, stroke, RADIUS, True),
        lambda: brush_reference(blank, stroke, RADIUS, True),
        3,
    )
    out.append(
        (
            f"brush, heaviest legal stroke ({len(stroke)} points, r {RADIUS:g}) on 100 MP",
            b_ours,
            "every pixel of every box (the old brush)",
            b_base,
            f"same pixels ({best})",
        )
    )

    big = star_polygon(10_000, 1000, 1000, 800, 30)
    obj = parse_object(
        {"id": "p", "type": "polygon", "geometry": {"parts": [{"exterior": big.tolist()}]}}
    )
    policy = Policy(image_width=2000, image_height=2000)
    rng = np.random.default_rng(1)
    moves = [
        parse_op(
            {
                "kind": "move_vertex",
                "object_id": "p",
                "index": int(i),
                "x": float(big[i, 0] + dx),
                "y": float(big[i, 1] + dy),
            }
        )
        for i, dx, dy in zip(
            rng.integers(0, 10_000, 10_000),
            rng.uniform(-0.3, 0.3, 10_000),
            rng.uniform(-0.3, 0.3, 10_000),
            strict=True,
        )
    ]

    def run_moves() -> None:
        objects: dict[str, LabelObject] = {"p": obj}
        for op in moves:
            res = edit(objects, op, policy)
            objects["p"] = res.changes["p"]  # type: ignore[assignment]

    t = time.perf_counter()
    run_moves()
    per_move = (time.perf_counter() - t) * 1000 / len(moves)
    out.append(
        (
            "vertex move on a 10,000-vertex polygon (edit + inverse), per move",
            per_move,
            "",
            None,
            "< 1 ms",
        )
    )

    rng2 = np.random.default_rng(2)
    blur = cv2.GaussianBlur((rng2.random((1200, 1200, 3)) * 80 + 40).astype(np.uint8), (5, 5), 0)
    img = np.asarray(blur, dtype=np.uint8)
    cv2.ellipse(img, (600, 600), (330, 260), 20, 0, 360, (30, 190, 220), -1)
    out.append(
        (
            "smart select, 1000x1000 rect (1 MP)",
            timed(
                lambda: smart_select(img, (100, 100, 1000, 1000), [[[600, 600]]], [[[150, 150]]]), 3
            ),
            "",
            None,
            "<= 300 ms",
        )
    )
    return out


def main() -> None:
    print(f"Machine: {machine()}\n")
    print("| case | ours (ms) | baseline | baseline (ms) | ratio | goal |")
    print("|---|---:|---|---:|---:|---|")
    for case, ours, base_name, base, goal in rows():
        ratio = f"{ours / base:.2f}x" if base else ""
        base_ms = f"{base:.1f}" if base is not None else ""
        print(f"| {case} | {ours:.3f} | {base_name} | {base_ms} | {ratio} | {goal} |", flush=True)


if __name__ == "__main__":
    main()
