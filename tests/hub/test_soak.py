"""Soak: over ten thousand random and mutated frames on one socket. The server keeps answering,
the socket stays open, memory stays bounded, and no other project's rows change.

Deterministic: one seeded ``random.Random`` builds every frame, so a failure replays exactly.
"""

from __future__ import annotations

import json
import random
import resource
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from server.db import transaction
from server.hub.connection import RateLimit
from server.models import Base, Image
from tests.conftest import make_project
from tests.hub.conftest import LiveServer, Team, upload_images

pytestmark = pytest.mark.slow

FRAMES = 10_000
PROBE_EVERY = 250  # a heartbeat each so often: the server still answers, and the client keeps pace
SEED = 20261202

TYPES = ["hello", "subscribe", "unsubscribe", "open_image", "release_image", "heartbeat",
         "next_image", "op", "undo", "redo", "cursor"]
# Each write is a commit (an fsync on SQLite): the ones that take or give back leases are rarer.
WEIGHTS = [1, 3, 3, 1, 1, 3, 1, 4, 2, 2, 3]
WEIRD: list[Any] = [None, {}, [], "", "x" * 300, -1, 0, 2**31, 2**63, 10**30, 1.5, True, "\\udc00",
                    {"kind": {}}, [[[[]]]], "NaN", {"$": 1}]
KINDS = ["create", "update", "delete", "translate", "set_attributes", "add_label", "remove_label",
         "set_default_label", "batch", "replace_geometry", {}, [], None, 7]


class Fuzzer:
    def __init__(self, rng: random.Random, images: list[int], token: dict[int, int]) -> None:
        self.rng, self.images, self.token, self.n = rng, images, token, 0

    def image(self) -> Any:
        return self.rng.choice(self.images) if self.rng.random() < 0.85 else self.rng.choice(WEIRD)

    def op(self) -> dict[str, Any]:
        r = self.rng
        oid = f"o{r.randrange(20)}"
        kind = r.choice(KINDS)
        if kind == "create":
            shape = r.choice([{"type": "bbox", "geometry": {"x": r.randrange(60), "y": r.randrange(40),
                                                             "w": r.randrange(1, 30), "h": r.randrange(1, 30)}},
                              {"type": "point", "geometry": {"x": r.uniform(-5, 70), "y": r.uniform(-5, 50)}},
                              {"type": "polygon", "geometry": {"parts": [{"exterior": [[0, 0], [9, 0], [5, 7]]}]}}])
            return {"kind": kind, "object": {"id": oid, "label": r.choice(["car", "", "x" * 250]), **shape,
                                             "attributes": {"a": r.choice(WEIRD[3:12])}}}
        if kind in ("add_label", "remove_label", "set_default_label"):
            return {"kind": kind, "label": r.choice(["cat", "dog", "", "\t", 5])}
        if kind == "batch":
            return {"kind": kind, "ops": [self.op() for _ in range(r.randrange(3))]}
        return {"kind": kind, "object_id": oid, "dx": r.uniform(-9, 9), "dy": 1,
                "attributes": {"k": r.choice(WEIRD)}, "object": {"id": oid, "label": "car"}}

    def valid(self) -> dict[str, Any]:
        r = self.rng
        self.n += 1
        kind = r.choices(TYPES, WEIGHTS)[0]
        msg: dict[str, Any] = {"type": kind, "id": f"f{self.n}"}
        image = r.choice(self.images)
        if kind == "hello":
            msg["project"] = r.choice([1, 2, 3, 2**31 - 1])
        elif kind in ("subscribe", "unsubscribe", "open_image", "release_image"):
            msg["image"] = image
        elif kind == "next_image":
            msg.update(after=image, direction=r.choice(["next", "previous"]))
        elif kind in ("op", "undo", "redo"):
            msg.update(image=image, token=self.token.get(image, r.randrange(5)))
            if kind == "op":
                msg.update(client_op_id=f"c{self.n}", op=self.op())
        elif kind == "cursor":
            msg.update(image=image, x=r.uniform(0, 64), y=r.uniform(0, 48))
        return msg

    def mutate(self, msg: dict[str, Any]) -> dict[str, Any]:
        r = self.rng
        for _ in range(r.randrange(1, 4)):
            key = r.choice([*msg.keys(), "extra"])
            roll = r.random()
            if roll < 0.3:
                msg.pop(key, None)
            elif roll < 0.8:
                msg[key] = r.choice(WEIRD)
            else:
                msg[key] = self.image()
        return msg

    def text(self) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.2:
            return json.dumps(self.valid())
        if roll < 0.75:
            return json.dumps(self.mutate(self.valid())).replace('"\\\\udc00"', '"\\udc00"')
        if roll < 0.88:  # cut short, or a character swapped
            text = json.dumps(self.valid())
            at = r.randrange(len(text))
            return text[:at] if r.random() < 0.5 else text[:at] + r.choice('{}[]",:\\x') + text[at + 1:]
        if roll < 0.93:  # deep
            depth = r.choice([60, 70, 500, 5000])
            return '{"type":"heartbeat","id":"d' + str(self.n) + '","x":' + "[" * depth + "]" * depth + "}"
        if roll < 0.97:  # not an object at all
            return json.dumps(r.choice([1, "hello", None, [1, 2], True, 1e308]))
        return "".join(chr(r.randrange(32, 0x2FF)) for _ in range(r.randrange(1, 80)))


async def rows_of(app: Starlette, project_id: int) -> dict[str, list[str]]:
    """Every row that belongs to a project: by project_id, or by one of its images."""
    out: dict[str, list[str]] = {}
    async with transaction(app.state.sessions) as session:
        images = list((await session.execute(select(Image.id).where(Image.project_id == project_id))).scalars())
        for table in Base.metadata.sorted_tables:
            if table.name == "projects":
                where = table.c.id == project_id
            elif "project_id" in table.c:
                where = table.c.project_id == project_id
            elif "image_id" in table.c:
                where = table.c.image_id.in_(images)
            else:
                continue
            rows = (await session.execute(select(table).where(where))).all()
            out[table.name] = sorted(repr(tuple(row)) for row in rows)
    return out


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def test_ten_thousand_fuzzed_frames(server: LiveServer, team: Team) -> None:
    other = await make_project(team.owner, "Untouched")
    other_images = await upload_images(team.owner, other, 2)
    keeper = await server.connect(team.owner)  # an object in the other project, made the real way
    await keeper.request("hello", project=other)
    lock = (await keeper.request("open_image", image=other_images[0]))["lock"]["token"]
    made = await keeper.request("op", image=other_images[0], token=lock, client_op_id="k",
                                op={"kind": "create", "object": {"id": "keep", "type": "bbox", "label": "car",
                                                                 "geometry": {"x": 1, "y": 1, "w": 5, "h": 5}}})
    assert made["type"] == "ack"
    assert (await keeper.request("release_image", image=other_images[0]))["type"] == "ack"
    await keeper.close()  # nothing of this project may change from here on (no lease to expire)
    before = await rows_of(server.app, other)

    c = await server.connect(team.owner)
    assert (await c.request("hello", project=team.project_id))["type"] == "ack"
    for conn in server.app.state.hub.rooms[team.project_id].connections:
        conn.limiter = RateLimit(rate=1e9, burst=1e9)  # fuzz the parser and handlers, not the limiter
    tokens: dict[int, int] = {}
    for image in team.images[:2]:
        tokens[image] = (await c.request("open_image", image=image))["lock"]["token"]
    fuzz = Fuzzer(random.Random(SEED), [*team.images, *other_images], tokens)
    baseline = 0.0
    for i in range(1, FRAMES + 1):
        await c.send_raw(fuzz.text())
        if i % PROBE_EVERY == 0:
            assert (await c.request("heartbeat", id=f"probe{i}"))["type"] == "ack"
            while not c.events.empty():  # errors of unreadable frames, events: seen, dropped
                c.events.get_nowait()
            if i == 2_000:
                baseline = rss_mib()  # after warm-up: caches, pools and the first snapshots
    grown = rss_mib() - baseline
    assert grown < 150, f"RSS grew {grown:.0f} MiB over {FRAMES - 2000} frames"

    assert c.close_code is None and (await c.request("heartbeat", id="last"))["type"] == "ack"
    fresh = await server.connect(team.owner)
    assert (await fresh.request("hello", project=team.project_id))["type"] == "ack"
    assert await rows_of(server.app, other) == before
    for client in (c, fresh):
        await client.close()


def test_the_fuzzer_is_deterministic() -> None:
    a = Fuzzer(random.Random(SEED), [1, 2], {1: 3})
    b = Fuzzer(random.Random(SEED), [1, 2], {1: 3})
    assert [a.text() for _ in range(200)] == [b.text() for _ in range(200)]
