"""REST helpers against a real server."""

from __future__ import annotations

import pytest

from client import AuthenticationError, NotFoundError, RestClient
from tests.client.conftest import Team, png


async def test_upload_and_list_images(team: Team) -> None:
    kept = await team.admin.upload_images(team.project, [("extra.png", png(99))], labels=["cat"])
    assert [i["name"] for i in kept] == ["extra.png"]
    page = await team.admin.list_images(team.project, label="cat")
    assert [i["id"] for i in page["images"]] == [kept[0]["id"]]
    every = await team.admin.all_images(team.project)
    assert len(every) == len(team.images) + 1


async def test_errors_are_typed(team: Team) -> None:
    with pytest.raises(NotFoundError) as caught:
        await team.admin.image(10**6)
    assert caught.value.status == 404 and caught.value.code
    rest = RestClient(team.live.url)
    try:
        with pytest.raises(AuthenticationError):
            await rest.login("nobody@example.com", "wrong-password")
    finally:
        await rest.aclose()
