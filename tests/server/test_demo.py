from __future__ import annotations

import numpy as np
from sqlalchemy import func, select
from starlette.applications import Starlette

from server.demo import COUNT, HEIGHT, WIDTH, render, seed_demo, seed_with_settings
from server.models import Image, LabelDef, Project
from server.settings import Settings
from tests.conftest import Api, make_project


def test_render_is_deterministic_and_not_flat() -> None:
    a, b = render(2), render(2)
    assert a.shape == (HEIGHT, WIDTH, 3) and np.array_equal(a, b)
    assert not np.array_equal(render(1), a)
    assert a.std() > 10  # something on it, not a blank canvas


async def test_seed_demo_once(app: Starlette, admin: Api, settings: Settings) -> None:
    pid = await seed_demo(app, settings, admin.user["id"])
    assert pid is not None
    listed = (await admin.client.get(f"/api/v1/projects/{pid}/images?sort=name")).json()
    assert listed["total"] == COUNT
    first = listed["images"][0]
    assert (first["width"], first["height"]) == (WIDTH, HEIGHT)
    labeled = [i for i in listed["images"] if i["labels"]]
    assert len(labeled) >= 2
    assert all(sum(lab["is_default"] for lab in i["labels"]) == 1 for i in labeled)
    thumb = await admin.client.get(first["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    async with app.state.sessions() as session:
        defs = (await session.execute(select(LabelDef.name, LabelDef.shortcut)
                                      .where(LabelDef.project_id == pid)
                                      .order_by(LabelDef.shortcut))).all()
        assert [tuple(d) for d in defs] == [("circle", 1), ("square", 2), ("star", 3), ("ring", 4)]
    # Idempotent: a second run (through a session factory, as the CLI does) changes nothing.
    assert await seed_demo(app) is None
    assert await seed_demo(app.state.sessions, settings, admin.user["id"]) is None
    assert await seed_with_settings(settings) is None
    async with app.state.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Project))).scalar_one() == 1
        assert (await session.execute(select(func.count()).select_from(Image))).scalar_one() == COUNT


async def test_seed_demo_defaults_to_the_app_settings_and_first_admin(app: Starlette,
                                                                      admin: Api) -> None:
    pid = await seed_demo(app)
    assert pid is not None
    project = (await admin.client.get(f"/api/v1/projects/{pid}")).json()
    assert project["name"] == "Demo project"
    members = (await admin.client.get(f"/api/v1/projects/{pid}/members")).json()["members"]
    assert [(m["user_id"], m["role"]) for m in members] == [(admin.user["id"], "owner")]


async def test_seed_demo_skips_when_a_project_exists(app: Starlette, admin: Api,
                                                     settings: Settings) -> None:
    await make_project(admin, "Real work")
    assert await seed_demo(app, settings, admin.user["id"]) is None
    assert not settings.image_dir.exists() or not any(settings.image_dir.rglob("*.jpg"))
