"""The geometry core stays pure: no asyncio, web or database code."""

from __future__ import annotations

import json
import subprocess
import sys

import server.geometry as geometry

FORBIDDEN = ("asyncio", "starlette", "sqlalchemy", "uvicorn", "websockets", "aiosqlite", "asyncpg")


def test_geometry_imports_no_async_web_or_database_code() -> None:
    code = "import json, sys\nimport server.geometry\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == []
    assert not any(m.startswith("server.") and not m.startswith("server.geometry") for m in loaded)


# Pure modules outside server.geometry: no async, web or database code either.
PURE_MODULES = (
    "server.ai.errors",
    "server.ai.hog",
    "server.ai.preprocess",
    "server.ai.weights",
    "server.ai.network",
    "server.ai.vectors",
    "server.ai.ranking",
    "server.ai.features",
    "server.ai.heads",
    "server.ai.training",
    "server.ai.mapping",
    "server.ai.export",
    "server.ai.detection",
    "server.strict_json",
    "server.storage.rules",
)


def test_pure_modules_import_no_async_web_or_database_code() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(PURE_MODULES)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if m.split(".")[0] in FORBIDDEN] == []
    assert not any(m.startswith("server.") and not m.startswith(("server.ai", "server.storage"))
                   and m != "server.strict_json" for m in loaded)
    assert [m for m in loaded if m.startswith("server.storage")] == [
        "server.storage", "server.storage.base", "server.storage.rules"]


def test_public_names_exist() -> None:
    for name in (
        "parse_object", "parse_op", "validate", "apply", "invert", "edit", "rasterize",
        "vectorize", "rle_encode", "rle_decode", "rle_area", "rle_bbox", "rle_iou",
        "smart_select", "GeometryError", "Policy", "LabelObject", "Op", "EditResult",
        "object_to_dict",
    ):  # fmt: skip
        assert name in geometry.__all__
        assert getattr(geometry, name) is not None


# Rule modules outside the geometry core that must stay pure (state in, decisions out).
PURE_RULE_MODULES = ("server.throttle", "server.jobs.status", "server.workflow")


def test_rule_modules_import_no_async_web_or_database_code() -> None:
    for module in PURE_RULE_MODULES:
        code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))\n"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        loaded = json.loads(out.stdout)
        assert [m for m in loaded if m.split(".")[0] in FORBIDDEN] == [], module
