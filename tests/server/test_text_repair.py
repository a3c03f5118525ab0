"""``labelhub db repair-text`` (server/text_repair.py): text stored before the Unicode checks
(lone surrogates, control characters in names) is found and fixed, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette

from server._oplog import PendingOp, append_ops
from server.db import is_sqlite, transaction
from server.models import Image, LabelDef, LabelObjectRow, OpLogEntry, Project
from server.text_repair import clean_json, clean_name, repair_text
from tests.conftest import Api, make_project
from tests.server.test_cli import _run

LONE = "\udc00"


def test_cleaning_rules() -> None:
    assert clean_name(" Demo\x07\tone\n") == "Demo one"
    assert clean_name("a\u2028b") == "a b" and clean_name("\x00\x01") == "unnamed"
    assert clean_name("Ünïcode ok 🐈") == "Ünïcode ok 🐈"  # a valid pair is no surrogate
    assert clean_json({"k" + LONE: ["x\x00y", {"n": 1, "t": "a\nb" + LONE}]}) == \
        {"k\ufffd": ["xy", {"n": 1, "t": "a\nb\ufffd"}]}  # line breaks are fine in values


async def _seed(app: Starlette, project_id: int, bad_json: bool) -> int:
    """Rows as an older server let them in (written behind today's edge); the image's id."""
    async with transaction(app.state.sessions) as session:
        project = await session.get(Project, project_id)
        assert project is not None
        project.name = "Demo\x07 one"
        image = Image(project_id=project_id, name="a.png", sha256="0" * 64, mime="image/png",
                      size_bytes=1, width=4, height=4, object_count=1)
        session.add_all([image, LabelDef(project_id=project_id, name="cat"),
                         LabelDef(project_id=project_id, name="cat\n")])
        await session.flush()
        note = f"bad {LONE} text" if bad_json else "fine"
        session.add(LabelObjectRow(image_id=image.id, id="o1", project_id=project_id,
                                   type="bbox", label="cat\n", attributes={"note": note},
                                   geometry={"x": 0, "y": 0, "w": 2, "h": 2}))
        await append_ops(session, project_id, None, [PendingOp(
            image.id, "update", {"kind": "update", "object_id": "o1",
                                 "attributes": {"note": note}}, None)], "rest")
        return image.id


async def test_repair_text_finds_and_fixes_old_rows(database_url: str, app: Starlette,
                                                    admin: Api, tmp_path: Path) -> None:
    sqlite = is_sqlite(database_url)
    project_id = await make_project(admin)
    if not sqlite:
        # PostgreSQL refuses a lone surrogate (and NUL) in jsonb: nothing to repair there.
        with pytest.raises(DBAPIError):
            async with transaction(app.state.sessions) as session:
                (await session.get(Project, project_id)).settings = {"x": LONE}  # type: ignore[union-attr]
    image_id = await _seed(app, project_id, bad_json=sqlite)
    if sqlite:  # F9: the audit log cannot be read while such a row is in it (a 500 served)
        with pytest.raises(UnicodeEncodeError):
            await admin.client.get(f"/api/v1/projects/{project_id}/ops")

    dry = await repair_text(app.state.sessions, dry_run=True, json_columns=sqlite)
    assert dry.renamed_labels == [(project_id, "cat\n", "cat (2)")]
    assert dry.fixed["projects.name"] == 1
    async with app.state.sessions() as session:  # a dry run changes nothing
        assert (await session.get(Project, project_id)).name == "Demo\x07 one"  # type: ignore[union-attr]

    done = await asyncio.to_thread(_run, tmp_path, "db", "repair-text",
                                   LABELHUB_DATABASE_URL=database_url)
    assert done.returncode == 0, done.stderr
    assert "renamed label 'cat\\n' to 'cat (2)'" in done.stdout
    assert "fixed 1 row(s) in projects.name" in done.stdout

    async with app.state.sessions() as session:
        assert (await session.get(Project, project_id)).name == "Demo one"  # type: ignore[union-attr]
        names = set((await session.execute(select(LabelDef.name).where(
            LabelDef.project_id == project_id))).scalars())
        assert names == {"cat", "cat (2)"}
        obj = await session.get(LabelObjectRow, (image_id, "o1"))
        assert obj is not None and obj.label == "cat (2)"
        assert obj.attributes == {"note": "bad \ufffd text" if sqlite else "fine"}
        last = (await session.execute(select(OpLogEntry).where(
            OpLogEntry.project_id == project_id).order_by(OpLogEntry.seq.desc()))).scalars().first()
        assert last is not None and (last.kind, last.origin) == ("rename_label", "repair")
        assert last.op == {"kind": "rename_label", "from": "cat\n", "to": "cat (2)"}
    ops = await admin.client.get(f"/api/v1/projects/{project_id}/ops")
    assert ops.status_code == 200
    assert any(o["op"].get("attributes") == obj.attributes for o in ops.json()["ops"])
    again = await repair_text(app.state.sessions, json_columns=sqlite)
    assert again.lines() == ["no bad text found"]
