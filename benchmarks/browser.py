"""The labeling tool with many objects in Chromium: ``python -m benchmarks.browser [--rounds N]
[--write-docs]`` (also run by ``make bench``).

A live server (uvicorn in a thread, SQLite in a temporary directory) and Debian's
``/usr/bin/chromium`` driven by Playwright with software rendering (``--disable-gpu``, as CI runs
it; no browser is downloaded). One 2000x1500 image holding 1,000 or 10,000 boxes (imported as
native JSON). Per case and round:

* **drawn after navigation**: from the start of a fresh page load of the tool's URL until the
  first frame that drew every box (when ``data-drawn`` on ``#tool-canvas`` first says so, seen by
  a MutationObserver; ``performance.now()`` counts from navigation start); median of 3 loads;
* **frame interval while zooming / panning**: wheel events dispatched on the canvas once per
  animation frame (40 zoom-in steps, 40 zoom-out, 40 pans), the time between frames, p50 / p95,
  and the time the tool's canvas code took per frame (``data-draw-ms``);
* **Chromium CPU per frame**: the CPU time (user + system, every Chromium process: renderer,
  compositor, raster and GPU/viz threads) over those frames divided by their count. On a shared,
  loaded machine the frame interval is the scheduler's; the CPU a frame costs is not, or much less;
* **redraw at rest**: the longest canvas draw in the 0.6 s after the last step, when the tool
  redraws its cached layer sharp at the final zoom (a frame while the view is still).

Once more at 10,000 with the label names on (the same page: its "drawn" is the 10,000 row's).
With ``LABELHUB_BENCH_BASELINE`` (default ``/work/main``) holding another checkout, its browser
app (``client/web``) is measured too, in the same run, against the same server: "before".

The 1,000-box case is the baseline of the same run; goals: drawn <= 500 ms and frame p95 <= 20 ms
at 10,000. A 60 Hz display caps frames at ~16.7 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

import server.app
from benchmarks._docs import replace_section
from benchmarks.geometry import machine
from server.cli import _alembic_upgrade
from server.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
IMG_W, IMG_H = 2000, 1500
EMAIL, PASSWORD = "bench@example.com", "bench-password-1"

FRAMES = r"""
async () => {
  const canvas = document.querySelector("#tool-canvas");
  const r = canvas.getBoundingClientRect();
  const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
  const steps = [];
  for (let i = 0; i < 40; i++) steps.push({ deltaY: -60, shiftKey: false });
  for (let i = 0; i < 40; i++) steps.push({ deltaY: 60, shiftKey: false });
  for (let i = 0; i < 40; i++) steps.push({ deltaY: i < 20 ? -40 : 40, shiftKey: true });
  const times = [], draws = [];
  await new Promise((done) => {
    let i = 0;
    const tick = (t) => {
      times.push(t);
      draws.push(Number(canvas.dataset.drawMs));
      if (i === steps.length) { done(); return; }
      const s = steps[i++];
      canvas.dispatchEvent(new WheelEvent("wheel", { deltaY: s.deltaY, shiftKey: s.shiftKey, clientX: cx + (i % 7) * 9, clientY: cy, bubbles: true, cancelable: true }));
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  // One more frame so the last wheel step is drawn too.
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  return [times.slice(1).map((t, k) => t - times[k]), draws.slice(1)];
}
"""

# When each count of drawn objects was first reported (any version of the app: older ones
# restamp data-drawn-at on every frame).
DRAWN_AT = r"""
window.__drawnAt = {};
new MutationObserver((records) => {
  for (const m of records) {
    const v = m.target.dataset && m.target.dataset.drawn;
    if (v && !(v in window.__drawnAt)) window.__drawnAt[v] = performance.now();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-drawn"] });
"""

# Frames for 0.6 s after the last step: the longest canvas draw is the redraw at rest.
REST = r"""
async () => {
  const canvas = document.querySelector("#tool-canvas");
  const start = performance.now();
  let longest = 0;
  await new Promise((done) => {
    const tick = (t) => {
      longest = Math.max(longest, Number(canvas.dataset.drawMs));
      if (t - start > 600) done(); else requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  return longest;
}
"""


def boxes(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        w, h = rng.uniform(8, 60), rng.uniform(8, 60)
        x, y = rng.uniform(0, IMG_W - w), rng.uniform(0, IMG_H - h)
        out.append({"id": f"b{i}", "type": "bbox", "label": f"class_{i % 8}",
                    "geometry": {"x": round(x, 2), "y": round(y, 2), "w": round(w, 2), "h": round(h, 2)}})
    return out


def png(width: int, height: int, seed: int) -> bytes:
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur((rng.random((height, width, 3)) * 255).astype(np.uint8), (9, 9), 0)
    ok, data = cv2.imencode(".png", img)
    assert ok
    return bytes(data)


class Server:
    """uvicorn serving the app in a thread on a free port (as tests/web/conftest.py does);
    ``web``: the browser app's directory to serve (another checkout's, for a baseline)."""

    def __init__(self, settings: Settings, web: Path | None = None) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        own = server.app.WEB_DIR
        server.app.WEB_DIR = web or own  # read by create_app
        try:
            app = server.app.create_app(settings)
        finally:
            server.app.WEB_DIR = own
        config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="websockets-sansio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        ready = threading.Event()
        while not self.server.started and self.thread.is_alive():
            ready.wait(0.05)
        assert self.server.started, "the server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def setup(url: str, counts: list[int]) -> tuple[int, dict[int, int]]:
    """A project with one image per case; returns the project id and image id per count."""
    api = httpx.Client(base_url=url, timeout=300)
    token = api.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()["token"]
    api.headers["Authorization"] = f"Bearer {token}"
    pid = api.post("/api/v1/projects", json={"name": "Browser bench"}).json()["id"]
    for i in range(8):
        api.post(f"/api/v1/projects/{pid}/labels", json={"name": f"class_{i}"})
    images: dict[int, int] = {}
    for n in counts:
        data = png(IMG_W, IMG_H, n)  # distinct bytes: the same file twice would be a duplicate
        resp = api.post(f"/api/v1/projects/{pid}/images", files={"files": (f"boxes_{n}.png", data)})
        assert resp.status_code == 201, resp.text
        images[n] = resp.json()["results"][0]["image"]["id"]
        resp = api.post(f"/api/v1/projects/{pid}/import", params={"format": "json"},
                        json={"images": [{"name": f"boxes_{n}.png", "objects": boxes(n, n)}]})
        assert resp.status_code == 200, resp.text
    api.close()
    return pid, images


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def chromium_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's Chromium descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()
        stats[int(entry)] = (int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / tick)
    ours, total = {os.getpid()}, 0.0
    for _ in range(8):  # a few generations: driver -> browser -> zygote -> renderer
        ours |= {pid for pid, (ppid, _, _) in stats.items() if ppid in ours}
    for pid in ours:
        if pid in stats and "chrom" in stats[pid][1]:
            total += stats[pid][2]
    return total


def frames(page: Any) -> tuple[float, float, float, float, float, float]:
    """(frame interval p50, p95, draw p50, p95, Chromium CPU ms per frame, redraw at rest ms)."""
    cpu = chromium_cpu()
    intervals, draws = page.evaluate(FRAMES)
    cpu_ms = (chromium_cpu() - cpu) * 1000 / len(intervals)
    rest = float(page.evaluate(REST))
    return pct(intervals, 0.5), pct(intervals, 0.95), pct(draws, 0.5), pct(draws, 0.95), cpu_ms, rest


def measure(page: Any, url: str, n: int) -> tuple[float, ...]:
    """(median ms until all n boxes are drawn, then the figures of `frames`)."""
    loads = []
    for _ in range(3):
        page.goto("about:blank")
        page.goto(url)
        page.wait_for_function(f"document.querySelector('#tool-canvas')?.dataset.drawn === '{n}'", timeout=60_000)
        loads.append(float(page.evaluate(f"window.__drawnAt['{n}']")))
    page.wait_for_timeout(500)  # the page settles (the panel, the suggestions) before the frames
    return (statistics.median(loads), *frames(page))


def run(url: str, pid: int, images: dict[int, int], counts: list[int]) -> list[tuple[Any, ...]]:
    """One round on the app at `url`: the rows of the table."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        # wait_for_function evaluates strings, which the app's CSP forbids (as in tests/web).
        context = browser.new_context(viewport={"width": 1400, "height": 860}, bypass_csp=True)
        context.add_init_script(DRAWN_AT)
        page = context.new_page()
        page.goto(url + "/#/login")
        page.fill("#login-email", EMAIL)
        page.fill("#login-password", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_selector(".project-list")
        rows: list[tuple[Any, ...]] = [(f"{n:,}", *measure(page, f"{url}/#/p/{pid}/label/{images[n]}", n)) for n in counts]
        # The same frames with label names on (key C; written only when <= 500 boxes are in view).
        page.focus("#tool-canvas")
        page.keyboard.press("c")
        page.wait_for_function("document.querySelector('#show-names')?.checked")
        rows.append((f"{counts[-1]:,}, label names on", rows[-1][1], *frames(page)))
        browser.close()
    return rows


def table(rounds: dict[str, list[list[tuple[Any, ...]]]]) -> str:
    """Medians over the rounds, per app and case."""
    out = ["| app | boxes | drawn after navigation | frame interval p50 / p95 | canvas draw p50 / p95 "
           "| Chromium CPU per frame | redraw at rest |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for app, runs in rounds.items():
        for i, row in enumerate(runs[0]):
            med = [statistics.median(r[i][k] for r in runs) for k in range(1, 8)]
            out.append(f"| {app} | {row[0]} | {med[0]:,.0f} ms | {med[1]:.1f} / {med[2]:.1f} ms | {med[3]:.1f} / {med[4]:.1f} ms "
                       f"| {med[5]:.1f} ms | {med[6]:.1f} ms |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.browser")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per app (medians are shown)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    args = parser.parse_args(argv or [])
    if not os.path.exists(CHROMIUM):
        print(f"{CHROMIUM} is missing (apt-get install -y chromium): skipped")
        return
    baseline = Path(os.environ.get("LABELHUB_BENCH_BASELINE", "/work/main")) / "client" / "web"
    apps: dict[str, Path | None] = {"now": None}
    if (baseline / "index.html").is_file() and baseline.resolve() != server.app.WEB_DIR.resolve():
        apps["before"] = baseline
    counts = [1_000, 10_000]
    load = os.getloadavg()[0]
    rounds: dict[str, list[list[tuple[Any, ...]]]] = {app: [] for app in apps}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", data_dir=Path(tmp) / "data",
                            secret_key="bench-secret", admin_email=EMAIL, admin_password=PASSWORD,
                            password_time_cost=1, password_memory_kib=1024)
        _alembic_upgrade(settings)
        with Server(settings) as first:
            pid, images = setup(first.url, counts)
        for _ in range(args.rounds):  # the apps take turns, so that both see the same load
            for app, web in apps.items():
                with Server(settings, web) as srv:
                    rounds[app].append(run(srv.url, pid, images, counts))
    loads = f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after"
    text = table(rounds)
    print(f"Machine: {machine()}; {loads}; medians of {args.rounds} rounds\n")
    print(text, flush=True)
    if args.write_docs:
        replace_section("The tool at 10,000 objects", SECTION.format(machine=machine(), loads=loads, rounds=args.rounds, table=text))


SECTION = """## The tool at 10,000 objects

`python -m benchmarks.browser --write-docs` (also part of `make bench`): a live server (SQLite), Debian's Chromium through
Playwright with software rendering (`--disable-gpu`, as CI), a 1400x860 window, one 2000x1500 image
with 1,000 or 10,000 boxes. "Drawn" is from navigation start to the first frame that drew every box
(median of 3 loads); frame intervals while 40 zoom-in, 40 zoom-out and 40 pan wheel steps are
dispatched once per animation frame; "canvas draw" is the tool's own drawing time per frame;
"Chromium CPU per frame" is the CPU time of every Chromium process over those frames per frame;
"redraw at rest" is the longest draw after the last step (the layer redrawn sharp). "before" is
the browser app of the checkout in `LABELHUB_BENCH_BASELINE` (main), served in the same run.
Goals at 10,000: drawn <= 500 ms, frame p95 <= 20 ms.

{machine}; {loads}; medians of {rounds} rounds.

{table}
"""


if __name__ == "__main__":
    main(sys.argv[1:])
