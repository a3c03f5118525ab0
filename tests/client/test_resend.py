"""No silent loss in the SDK: an op queued while the socket was down, whose lease lapsed and went
to someone else meanwhile, fails loudly (LockLostError) after the reconnect instead of vanishing,
and is not applied on top of the other labeler's work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from client import LabelhubClient, LockLostError
from server.protocol import LockEvent
from server.settings import Settings
from tests.client.conftest import Team
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data", lock_ttl_seconds=1.0)


def box(oid: str, x: float) -> dict[str, object]:
    return {"kind": "create", "object": {"id": oid, "type": "bbox", "label": "car",
                                         "geometry": {"x": x, "y": 2, "w": 10, "h": 8}}}


async def lock_state(hub: LabelhubClient, image: int, state: str) -> None:
    while True:
        event = await hub.next_event(LockEvent, within=30)
        if isinstance(event, LockEvent) and event.image == image and event.state == state:
            return


@pytest.mark.parametrize("bo_keeps_it", [True, False])
async def test_an_op_queued_across_a_lapsed_lease_fails_loudly(team: Team, bo_keeps_it: bool) -> None:
    (a_token, _), (b_token, _) = await team.member("ana"), await team.member("bo")
    ana = await team.hub(a_token, heartbeat_interval=3600.0)  # her lease lapses: no heartbeats
    bo = await team.hub(b_token)
    image = team.images[2]
    await bo.subscribe(image)
    await ana.open_image(image)
    ws = ana._conn.ws if ana._conn else None
    assert ws is not None
    ws.transport.pause_reading()  # ana hears nothing: her network is gone
    await lock_state(bo, image, "expired")
    await bo.open_image(image)
    await bo.op(image, box("bo1", 30))
    if not bo_keeps_it:
        await bo.release_image(image)  # the image is free again, but it changed under ana
    sending = asyncio.create_task(ana.op(image, box("ana1", 2)))
    ws.transport.abort()  # the dead socket is noticed; ana reconnects and resumes
    with pytest.raises(LockLostError):
        await sending
    assert ana.reconnects == 1 and ana.lock(image) is None
    item = await team.admin.image(image)
    assert item["object_count"] == 1  # bo's box only: ana's was neither applied nor lost quietly
