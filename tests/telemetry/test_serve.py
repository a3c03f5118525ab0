"""A real ``labelhub serve`` with its job worker: /metrics adds up both processes' metrics
(prometheus-client's multi-process mode), and JSON log lines carry the request id."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from server.settings import Settings
from tests._db import ROOT
from tests.jobs.conftest import ended, queue_job, wait_job
from tests.jobs.test_process import _free_port

STARTUP_SECONDS = 60


def _json_lines(proc: subprocess.Popen[str]) -> queue.Queue[dict[str, Any] | None]:
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        try:
            for raw in proc.stderr:
                if raw.startswith("{"):
                    lines.put(json.loads(raw))
        except (ValueError, OSError):
            pass
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _start(settings: Settings, port: int, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LABELHUB_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"LABELHUB_DATABASE_URL": settings.resolved_database_url,
                "LABELHUB_DATA_DIR": str(settings.data_dir), "LABELHUB_PORT": str(port),
                "LABELHUB_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)})
    return subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--log-level", "info"],
                            env=env, cwd=cwd, stderr=subprocess.PIPE, text=True)


def _until(lines: queue.Queue[dict[str, Any] | None], test: Any) -> dict[str, Any]:
    while True:
        line = lines.get(timeout=STARTUP_SECONDS)
        assert line is not None, "labelhub serve exited"
        if test(line):
            return line


async def test_metrics_of_serve_and_its_worker_and_json_logs(
        app: Starlette, settings: Settings, project: int, tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(settings, port, tmp_path)
    try:
        lines = _json_lines(proc)
        _until(lines, lambda line: "Uvicorn running on" in line["message"])
        job_id = await queue_job(app, "count", project, {"to": 2, "step_seconds": 0})
        assert (await wait_job(app, job_id, ended)).status == "done"  # run by serve's worker
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            resp = await http.get("/metrics", headers={"x-request-id": "scrape-1"})
        assert resp.headers["x-request-id"] == "scrape-1"
        found = {(s.name, tuple(sorted(s.labels.items()))): s.value
                 for family in text_string_to_metric_families(resp.text) for s in family.samples}
        # Observed in the worker process, served by the server process.
        assert found[("labelhub_job_seconds_count", (("kind", "count"), ("status", "done")))] == 1
        assert ("labelhub_ws_connections", ()) in found
        access = _until(lines, lambda line: line["logger"] == "uvicorn.access"
                        and "/metrics" in line["message"])
        assert access["request_id"] == "scrape-1" and access["level"] == "info"
        assert (settings.data_dir / "metrics" / str(proc.pid)).is_dir()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
