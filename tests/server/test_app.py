"""Start-up: two processes starting on one empty database both come up, with one admin."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from server.app import create_app, ensure_admin
from server.db import make_engine, make_sessionmaker
from server.models import User
from tests.conftest import ADMIN_EMAIL, make_settings


async def test_concurrent_first_starts_create_one_admin(database_url: str, tmp_path: Path) -> None:
    apps = [create_app(make_settings(database_url, tmp_path / f"data{i}")) for i in range(4)]
    engines = [make_engine(database_url) for _ in apps]
    for application, engine in zip(apps, engines, strict=True):
        application.state.sessions = make_sessionmaker(engine)
    try:
        await asyncio.gather(*(ensure_admin(a) for a in apps))  # none raises
        async with apps[0].state.sessions() as session:
            emails = (await session.execute(select(User.email))).scalars().all()
            admins = (await session.execute(select(func.count()).select_from(User)
                                            .where(User.is_admin))).scalar_one()
        assert emails == [ADMIN_EMAIL] and admins == 1
    finally:
        for engine in engines:
            await engine.dispose()
