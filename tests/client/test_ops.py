"""The SDK's ops in flight (client/_ops.py): pacing under the server's rate limit, transparent
resend of a ``rate_limited`` op with the same ``client_op_id``, and a clear non-retryable error
for an op too big to send. The server's limiter is driven by hand (its clock), not by time."""

from __future__ import annotations

import asyncio
import json

import pytest

from client import RequestError, TooLargeError
from client._ops import PACE_BURST, PACE_RATE, Pacer, encode
from server.hub.connection import RateLimit
from server.protocol import MAX_OP_BYTES, RATE_BURST, RATE_LIMIT
from tests.client.conftest import Team


class Clock:
    """A clock that moves only when told, and tells when it has been read ``n`` times."""

    def __init__(self) -> None:
        self.now, self.reads, self._waiters = 1000.0, 0, []  # type: ignore[var-annotated]

    def __call__(self) -> float:
        self.reads += 1
        for n, event in self._waiters:
            if self.reads >= n:
                event.set()
        return self.now

    async def read(self, n: int) -> None:
        event = asyncio.Event()
        self._waiters.append((self.reads + n, event))
        await event.wait()


def box(oid: str, x: float) -> dict[str, object]:
    return {"kind": "create", "object": {"id": oid, "type": "bbox", "label": "car",
                                         "geometry": {"x": x, "y": 2, "w": 10, "h": 8}}}


def test_the_pacer_stays_under_the_servers_limit() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    assert PACE_RATE < RATE_LIMIT and PACE_BURST < RATE_BURST
    waits = [pacer.reserve() for _ in range(int(PACE_BURST) + 3)]
    assert set(waits[:int(PACE_BURST)]) == {0.0}  # the burst goes at once
    assert waits[-3:] == pytest.approx([1 / PACE_RATE, 2 / PACE_RATE, 3 / PACE_RATE])
    clock.now += 10.0  # a quiet while refills the bucket, never past the burst
    assert pacer.reserve() == 0.0 and pacer.tokens == pytest.approx(PACE_BURST - 1)


async def test_a_rate_limited_op_is_resent_with_its_id_and_applied_once(team: Team) -> None:
    token, user_id = await team.member("ana")
    hub = await team.hub(token)
    image = team.images[1]
    await hub.open_image(image)
    [server_side] = team.live.server_side(team.project, user_id)
    clock = Clock()
    server_side.limiter = RateLimit(RATE_LIMIT, RATE_BURST, clock=clock)
    server_side.limiter.tokens = 0.0  # the bucket is empty and, while the clock stands, stays so
    sending = asyncio.create_task(hub.op(image, box("a1", 2), client_op_id="ana-op-1"))
    await clock.read(3)  # refused three times (each time resent)
    assert not sending.done() and hub.rate_limited >= 2
    clock.now += 1.0  # a second later the bucket holds RATE_LIMIT tokens again
    applied = await sending
    assert applied.client_op_id == "ana-op-1" and not applied.duplicate
    objects = await team.admin.image_objects(team.project, image)
    assert [o["id"] for o in objects["objects"]] == ["a1"] and objects["seq"] >= applied.seq


async def test_an_op_too_big_to_send_fails_at_once_and_is_not_retried(team: Team) -> None:
    token, _ = await team.member("bo")
    hub = await team.hub(token)
    image = team.images[2]
    await hub.open_image(image)
    huge = box("big", 2)
    huge["object"]["attributes"] = {"note": "x" * MAX_OP_BYTES}  # type: ignore[index]
    with pytest.raises(TooLargeError) as refused:
        await hub.op(image, huge)
    assert refused.value.code == "too_large" and "split" in refused.value.message
    assert hub.rate_limited == 0 and not hub._ops  # nothing left waiting to be resent
    assert (await hub.op(image, box("small", 2))).seq > 0  # the session goes on
    assert (await team.admin.image(image))["object_count"] == 1


def test_an_op_is_encoded_as_the_standard_library_would_mean_it() -> None:
    ops: list[object] = [
        {"kind": "batch", "ops": [box(f"b{i}", i + 0.5) for i in range(100)]},
        box("é ü 漢", 1),  # text, not escapes: the same string either way
        {"nan": float("nan"), "inf": float("inf")},  # orjson would write null: the tokens stay
        {"big": 2**70, "lone": "\udc00", "none": None},  # orjson refuses or could differ
        {1: "a non-string key"},
    ]
    for op in ops:
        text = encode(op)
        assert text == json.dumps(op) or json.loads(text) == op, op
    assert "NaN" in encode({"x": float("nan")}) and "Infinity" in encode({"x": float("inf")})
    assert encode({"big": 2**70}) == '{"big": 1180591620717411303424}'


async def test_a_nan_in_an_op_is_refused_by_the_server_as_before(team: Team) -> None:
    token, _ = await team.member("nan")
    hub = await team.hub(token)
    image = team.images[3]
    await hub.open_image(image)
    with pytest.raises(RequestError) as refused:
        await hub.op(image, box("n", float("nan")))
    assert refused.value.code == "bad_json"
    assert (await team.admin.image(image))["object_count"] == 0
