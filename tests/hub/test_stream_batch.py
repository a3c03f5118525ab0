"""A big batch of plain creates written while it is checked (server/hub/_stream_batch.py): the
same rows, log row and answers as the ordinary path, and nothing written when any chunk fails."""

from __future__ import annotations

from typing import Any

import pytest

from server.hub import _stream_batch
from tests.conftest import Api
from tests.hub._fast_op import Labeler, _before_commit, _nothing, _sql, _state
from tests.hub.conftest import upload_images

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgres"],
                                                            indirect=True)]

N = 2500  # three chunks, the last one short
assert _stream_batch.STREAM_MIN <= N and _stream_batch.CHUNK * 2 < N < _stream_batch.CHUNK * 3


def _batch(changed: dict[int, dict[str, Any]] | None = None, n: int = N) -> dict[str, Any]:
    """``n`` boxes (ids o0000...); ``changed``: new values of objects by index."""
    objects: list[dict[str, Any]] = [{"id": f"o{i:04d}", "type": "bbox", "label": f"l{i % 3}",
                "geometry": {"x": float(i % 50), "y": float(i % 7), "w": 5.5, "h": 4.0}}
               for i in range(n)]
    objects[7]["attributes"] = {"note": "ß \"q\"", "n": 2}
    objects[n - 1]["occluded"], objects[n - 1]["z"] = True, 3
    for index, values in (changed or {}).items():
        objects[index].update(values)
    return {"kind": "batch", "ops": [{"kind": "create", "object": o} for o in objects]}


class Streamed:
    """How many ops took the streamed path to the end (an ack)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        write = _stream_batch.write

        async def counted(*args: Any, **kwargs: Any) -> Any:
            done = await write(*args, **kwargs)
            self.count += done is not None
            return done

        monkeypatch.setattr(_stream_batch, "write", counted)


async def _rows(lab: Labeler, image: int) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await _sql(
        lab.app, "SELECT id, type, label, geometry::text, keypoints::text, attributes::text, "
        "rpy::text, occluded, z, version, source, created_by, updated_by FROM objects "
        "WHERE image_id = $1 ORDER BY id", image)]


async def _logged(lab: Labeler, image: int) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await _sql(
        lab.app, "SELECT kind, op::text, inverse::text, user_id, origin FROM op_log "
        "WHERE image_id = $1 AND kind <> 'lock' ORDER BY seq", image)]


async def _other_image(lab: Labeler, admin: Api) -> tuple[int, int]:
    image = next(i for i in await upload_images(admin, lab.project, 2) if i != lab.image)
    ack = await lab.send({"type": "open_image", "image": image})
    assert ack["type"] == "ack", ack
    return image, int(ack["lock"]["token"])


async def _op_on(lab: Labeler, image: int, token: int, op: dict[str, Any],
                 client_op_id: str) -> dict[str, Any]:
    return await lab.send({"type": "op", "image": image, "token": token,
                           "client_op_id": client_op_id, "op": op})


async def test_a_streamed_batch_writes_what_the_ordinary_path_writes(
        labeler: Labeler, admin: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    streamed = Streamed(monkeypatch)
    other, other_token = await _other_image(labeler, admin)
    with monkeypatch.context() as m:
        m.setattr(_stream_batch, "streamable", lambda op: False)
        ordinary = await _op_on(labeler, other, other_token, _batch(), "ordinary")
    assert ordinary["type"] == "ack" and streamed.count == 0, ordinary
    first = await labeler.op(_batch(), "streamed")
    assert first["type"] == "ack" and streamed.count == 1 and first["seq"] == ordinary["seq"] + 1
    rows = await _rows(labeler, labeler.image)
    assert len(rows) == N and rows == await _rows(labeler, other)
    assert await _logged(labeler, labeler.image) == await _logged(labeler, other)
    counts = await _sql(labeler.app, "SELECT id, object_count, labeled_by FROM images "
                                     "WHERE id = ANY($1::int[]) ORDER BY id",
                        [labeler.image, other])
    assert [tuple(r)[1:] for r in counts] == [(N, labeler.conn.user_id)] * 2
    # What it left held (the last objects) lets the next edit of one of them skip the read.
    calls = _before_commit(monkeypatch, _nothing)
    last = f"o{N - 1:04d}"
    moved = await labeler.op({"kind": "move_box", "object_id": last, "x": 2, "y": 3, "w": 5,
                              "h": 5}, "move")
    assert moved["type"] == "ack" and calls.reads == 0 and calls.outcomes == ["ok"], moved
    again = await labeler.op(_batch(), "streamed")  # a resend: its original ack, nothing new
    assert again == {**first, "id": again["id"], "duplicate": True}
    assert len(await _rows(labeler, labeler.image)) == N


@pytest.mark.parametrize("where", [5, N - 400])
async def test_a_bad_object_in_any_chunk_writes_nothing_and_gets_the_ordinary_error(
        labeler: Labeler, admin: Api, monkeypatch: pytest.MonkeyPatch, where: int) -> None:
    """An object no path accepts (a negative width), first or last chunk: the error the ordinary
    path gives (naming the object), and the database as it was."""
    streamed = Streamed(monkeypatch)
    before = await _state(labeler)
    bad = _batch({where: {"geometry": {"x": 1.0, "y": 1.0, "w": -2.0, "h": 3.0}}})
    error = await labeler.op(bad, "bad")
    assert error["type"] == "error" and streamed.count == 0, error
    assert await _state(labeler) == before
    with monkeypatch.context() as m:
        m.setattr(_stream_batch, "streamable", lambda op: False)
        ordinary = await labeler.op(bad, "bad-ordinary")
    assert {**error, "id": None} == {**ordinary, "id": None}
    assert str(where) in error["message"] or str(where) in str(error.get("field")), error


async def test_a_taken_id_in_a_later_chunk_rolls_back_the_chunks_before_it(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first chunk is already inserted when the second meets an existing id (the primary
    key): all of it rolls back and the ordinary path names the id."""
    assert _stream_batch.CHUNK <= 1500 < 2 * _stream_batch.CHUNK
    streamed = Streamed(monkeypatch)
    taken = {"kind": "create", "object": {"id": "o1500", "type": "point", "label": "",
                                          "geometry": {"x": 1.0, "y": 1.0}}}
    assert (await labeler.op(taken, "taken"))["type"] == "ack"
    before = await _state(labeler)
    error = await labeler.op(_batch(), "clash")
    assert error["type"] == "error" and "o1500" in error["message"], error
    assert streamed.count == 0 and await _state(labeler) == before


async def test_a_batch_the_policy_would_change_takes_the_ordinary_path(
        labeler: Labeler, monkeypatch: pytest.MonkeyPatch) -> None:
    """A box partly outside the image in the last chunk: the ordinary path decides (it clips or
    refuses as the project's settings say); the streamed chunks before it are rolled back."""
    streamed = Streamed(monkeypatch)
    outside = _batch({N - 2: {"geometry": {"x": -3.0, "y": 1.0, "w": 8.0, "h": 3.0}}})
    answer = await labeler.op(outside, "outside")
    assert streamed.count == 0
    rows = await _rows(labeler, labeler.image)
    if answer["type"] == "ack":
        assert len(rows) == N
    else:
        assert rows == [] and answer["type"] == "error"
