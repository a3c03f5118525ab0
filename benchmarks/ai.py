"""Image features: ``python -m benchmarks.ai`` (also run by ``make bench``).

Two tables. *Speed*: converting and loading EfficientNet-Lite0, embedding throughput on
640 x 480 JPEGs including decode (1 thread and the configured threads, batched and one image
per call), HOG throughput, and a worker's resident memory; the baseline (decode alone, a bare
worker's memory) is measured in the same run. *Accuracy*: few-shot top-1 accuracy with 1 / 5 /
20 / 100 labeled images per class on data that ships in packages (scikit-learn ``load_digits``,
scikit-image ``lfw_subset``), for each feature and classifier, mean over 5 seeds: the numbers to
choose a suggestion method by (rows in benchmarks/_ai_accuracy.py). Box detection has its own
module, benchmarks/ai_detection.py.

Each row is one function returning its cells; add a row by writing a function and listing it
in ``SPEED_ROWS`` or ``ACCURACY_ROWS``. The data comes from scikit-image and scikit-learn (the
``dev`` extra). Set ``LABELHUB_AI_THREADS`` to compare another thread count.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from benchmarks._ai_accuracy import ACCURACY_ROWS, SEEDS, SHOTS
from benchmarks._ai_models import model_rows
from benchmarks._ai_search import IMAGES, search_rows
from server.ai.features import decode_image
from server.ai.hog import hog_batch
from server.ai.model import Network
from server.settings import Settings

JPEGS = 64  # distinct 640 x 480 JPEGs per throughput run
REPEATS = 5  # throughput runs, taken in turns with the other variants; the median is shown


@dataclass
class Context:
    """What the rows share: one converted model, the test JPEGs, the thread count."""

    cache_dir: Path
    threads: int
    jpegs: list[bytes] = field(default_factory=list)
    decode_ms: float = 0.0  # the baseline, measured once by row_decode
    rates: dict[str, tuple[float, float]] = field(default_factory=dict)  # see _interleaved
    networks: dict[int, Network] = field(default_factory=dict)

    def network(self, threads: int) -> Network:
        if threads not in self.networks:
            self.networks[threads] = Network.load(self.cache_dir, threads=threads, nice=0)
        return self.networks[threads]


def _jpegs(n: int) -> list[bytes]:
    from skimage import data

    sources = [
        data.chelsea(),
        data.coffee(),
        data.astronaut(),
        data.rocket(),
        data.immunohistochemistry(),
    ]
    out = []
    for i in range(n):
        image = sources[i % len(sources)]
        if (i // len(sources)) % 2:
            image = image[:, ::-1]
        h, w = image.shape[:2]
        crop = image[(i % 7) * h // 40 :, (i % 5) * w // 30 :]  # every JPEG different
        bgr = cv2.cvtColor(cv2.resize(np.ascontiguousarray(crop), (640, 480)), cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(buf.tobytes())
    return out


def _median_rate(run: Callable[[], object], n: int) -> float:
    return _median_rate_cpu(run, n)[0]


def _median_rate_cpu(run: Callable[[], object], n: int) -> tuple[float, float]:
    """(images/s wall clock, CPU ms per image over all threads): medians of REPEATS runs.

    On a busy machine the wall-clock rate drops while the CPU time stays near what a quiet
    machine needs, so both are shown.
    """
    times, cpu = [], []
    for _ in range(REPEATS):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return n / statistics.median(times), statistics.median(cpu) * 1000 / n


# --- speed rows: each returns (what, figure, baseline, goal) -------------------------------------


def row_conversion(ctx: Context) -> tuple[str, str, str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        Network.load(Path(tmp), nice=0)
        took = time.perf_counter() - t0
    return (
        "convert the weights to ONNX (once per data dir), incl. first load",
        f"{took:.2f} s",
        "",
        "",
    )


def row_session_load(ctx: Context) -> tuple[str, str, str, str]:
    ctx.network(1)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        Network.load(ctx.cache_dir, nice=0)
        times.append(time.perf_counter() - t0)
    return (
        "load the cached network (onnxruntime session)",
        f"{statistics.median(times) * 1000:.0f} ms",
        "",
        "",
    )


def _interleaved(ctx: Context) -> dict[str, tuple[float, float]]:
    """Decode alone and the Lite0 variants, timed in turns (A, B, C, A, B, C, ...).

    On a shared machine the load changes from second to second; taking turns spreads it over
    all variants instead of favouring whichever ran in a quiet moment.
    """
    if ctx.rates:
        return ctx.rates
    variants: dict[str, Callable[[], object]] = {
        "decode": lambda: [decode_image(j) for j in ctx.jpegs],
    }
    for threads, batch in ((1, False), (1, True), (ctx.threads, True)):
        net = ctx.network(threads)

        def run(net: Network = net, batch: bool = batch) -> None:
            if batch:
                for i in range(0, len(ctx.jpegs), 16):
                    net.features([decode_image(j) for j in ctx.jpegs[i : i + 16]])
            else:
                for j in ctx.jpegs:
                    net.features([decode_image(j)])

        variants[f"lite0/{threads}/{batch}"] = run
    single = ctx.network(1)

    def half(start: int) -> None:
        for i in range(start, len(ctx.jpegs), 32):
            single.features([decode_image(j) for j in ctx.jpegs[i : i + 16]])

    def two_callers() -> None:
        # What a worker with two CPU threads does: two batches at once on one 1-thread session.
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(half, (0, 16)))

    variants["lite0/2x1"] = two_callers
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(REPEATS):
        for key, run_variant in variants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            run_variant()
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    n = len(ctx.jpegs)
    ctx.rates = {
        k: (n / statistics.median(wall[k]), statistics.median(cpu[k]) * 1000 / n) for k in variants
    }
    return ctx.rates


def row_decode(ctx: Context) -> tuple[str, str, str, str]:
    rate, _ = _interleaved(ctx)["decode"]
    ctx.decode_ms = 1000 / rate
    return (
        "baseline: decode only (cv2.imdecode, 640x480 JPEG)",
        f"{rate:.0f} images/s ({ctx.decode_ms:.1f} ms/image)",
        "",
        "",
    )


def _lite0_row(ctx: Context, threads: int, batch: bool) -> tuple[str, str, str, str]:
    rate, cpu_ms = _interleaved(ctx)[f"lite0/{threads}/{batch}"]
    how = "batches of 16" if batch else "one image per call"
    goal = ">= 60 images/s on 2 cores" if batch and threads > 1 else ""
    return (
        f"Lite0 feature incl. decode, {threads} thread{'s' if threads > 1 else ''}, {how}",
        f"{rate:.0f} images/s ({1000 / rate:.1f} ms/image; CPU {cpu_ms:.1f} ms/image)",
        f"decode alone: {ctx.decode_ms:.1f} ms/image",
        goal,
    )


def row_lite0_1_single(ctx: Context) -> tuple[str, str, str, str]:
    return _lite0_row(ctx, 1, batch=False)


def row_lite0_1_batch(ctx: Context) -> tuple[str, str, str, str]:
    return _lite0_row(ctx, 1, batch=True)


def row_lite0_n_batch(ctx: Context) -> tuple[str, str, str, str]:
    return _lite0_row(ctx, ctx.threads, batch=True)


def row_lite0_two_callers(ctx: Context) -> tuple[str, str, str, str]:
    rate, cpu_ms = _interleaved(ctx)["lite0/2x1"]
    return (
        "Lite0 feature incl. decode, 1 thread, two batches of 16 at once (two caller threads)",
        f"{rate:.0f} images/s ({1000 / rate:.1f} ms/image; CPU {cpu_ms:.1f} ms/image)",
        f"decode alone: {ctx.decode_ms:.1f} ms/image",
        ">= 60 images/s on 2 cores",
    )


def row_hog(ctx: Context) -> tuple[str, str, str, str]:
    rate = _median_rate(lambda: hog_batch([decode_image(j) for j in ctx.jpegs]), len(ctx.jpegs))
    return (
        "HOG feature incl. decode, 1 thread",
        f"{rate:.0f} images/s ({1000 / rate:.1f} ms/image)",
        "",
        "",
    )


_RSS = """
import sys, numpy as np
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
import server.ai.features as f
bare = rss()
if sys.argv[2] == 'load':
    e = f.Extractor(sys.argv[1])
    e.compute([np.zeros((480, 640, 3), np.uint8)] * 16)
print(bare, rss())
"""


def _rss(ctx: Context, mode: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _RSS, str(ctx.cache_dir), mode],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    bare, after = map(float, out.stdout.split())
    return bare, after


def row_memory(ctx: Context) -> tuple[str, str, str, str]:
    ctx.network(1)  # the cache exists: the worker only loads
    bare, after = _rss(ctx, "load")
    return (
        "worker resident memory after loading + one batch of 16 (VmRSS)",
        f"{after:.0f} MB",
        f"bare worker (numpy, cv2, server.ai.features imported): {bare:.0f} MB",
        "",
    )


SPEED_ROWS = [
    row_conversion, row_session_load, row_decode, row_lite0_1_single, row_lite0_1_batch,
    row_lite0_n_batch, row_lite0_two_callers, row_hog, row_memory,
]  # fmt: skip




def search_table(_ctx: Context) -> None:
    """Suggestions and similarity in a project of 100,000 embedded images (benchmarks/_ai_search.py)."""
    print(f"\nSuggestions and similarity at scale ({IMAGES:,} images, synthetic 1280-d vectors, "
          "1,000 labeled; load average before: "
          + ", ".join(f"{x:.1f}" for x in os.getloadavg()) + ")\n")
    for line in search_rows():
        print(line, flush=True)


def models_table(_ctx: Context) -> None:
    """Training and predicting through the routes and a worker (benchmarks/_ai_models.py)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nModels and predictions (SQLite, a worker in process; load average before: {load})\n")
    print("| what | figure | baseline (same run) | goal |")
    print("|---|---:|---|---|")
    for row in model_rows():
        print("| " + " | ".join(row) + " |", flush=True)


def speed_table(ctx: Context) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Speed ({JPEGS} distinct 640x480 JPEGs, median of {REPEATS} runs; configured "
          f"threads: {ctx.threads}; load average before: {load})\n")  # fmt: skip
    print("| what | figure | baseline (same run) | goal |")
    print("|---|---:|---|---|")
    for speed_row in SPEED_ROWS:
        print("| " + " | ".join(speed_row(ctx)) + " |", flush=True)


def accuracy_table(ctx: Context) -> None:
    print(f"\nFew-shot top-1 accuracy, mean over {SEEDS} seeds, n labeled images per class "
          "(the rest is the test set)\n")  # fmt: skip
    print("| data | feature | classifier | " + " | ".join(f"n = {s}" for s in SHOTS) + " |")
    print("|---|---|---|" + "---:|" * len(SHOTS))
    for accuracy_row in ACCURACY_ROWS:
        print("| " + " | ".join(accuracy_row(ctx)) + " |", flush=True)


def main(parts: tuple[str, ...] = ("speed", "accuracy", "search", "models")) -> None:
    """Every table; ``python -m benchmarks.ai speed`` (or ``accuracy``, ``search``, ``models``)
    prints one."""
    settings = Settings()
    threads = settings.ai_threads if settings.ai_threads > 1 else (os.cpu_count() or 2)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(Path(tmp), threads, _jpegs(JPEGS))
        if "speed" in parts:
            speed_table(ctx)
        if "accuracy" in parts:
            accuracy_table(ctx)
        if "search" in parts:
            search_table(ctx)
        if "models" in parts:
            models_table(ctx)


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("speed", "accuracy", "search", "models"))
