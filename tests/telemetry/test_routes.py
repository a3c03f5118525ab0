"""GET /metrics counts what the hub does and samples what it holds; GET /readyz says whether the
database and the image store answer; every HTTP answer carries a request id."""

from __future__ import annotations

import shutil
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from server.settings import Settings
from tests.conftest import UserFactory, add_member
from tests.hub.conftest import LiveServer, Team, serve

BOX = {"kind": "create", "object": {"id": "b1", "type": "bbox", "label": "",
                                     "geometry": {"x": 1, "y": 2, "w": 10, "h": 8}}}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(server: LiveServer, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        return await http.get("/metrics", headers=headers)


async def test_metrics_count_ops_and_sample_sockets_locks_and_jobs(
        server: LiveServer, team: Team, users: UserFactory) -> None:
    before = samples((await scrape(server)).text)
    bob = await users("bob")
    await add_member(team.owner, team.project_id, bob, role="labeler")
    alice, watcher = await server.connect(team.owner), await server.connect(bob)
    for ws in (alice, watcher):
        await ws.request("hello", project=team.project_id)
    opened = await alice.request("open_image", image=team.images[0])
    ack = await alice.request("op", image=team.images[0], token=opened["lock"]["token"],
                              client_op_id="m1", op=BOX)
    assert ack["type"] == "ack"
    resp = await scrape(server)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    after = samples(resp.text)

    def delta(name: str) -> float:
        return after[(name, ())] - before.get((name, ()), 0.0)

    assert delta("labelhub_ops_total") == 1
    assert delta("labelhub_op_commit_seconds_count") == 1
    assert after[("labelhub_ws_connections", ())] == 2
    assert after[("labelhub_image_locks", ())] == 1
    jobs = (await team.owner.client.get(f"/api/v1/projects/{team.project_id}/jobs")).json()["jobs"]
    queued = sum(1 for j in jobs if j["status"] == "queued")
    assert after[("labelhub_jobs", (("status", "queued"),))] == queued
    assert ("labelhub_slow_clients_dropped_total", ()) in after
    assert ("labelhub_fanout_queue_frames_max", ()) in after
    await alice.close()
    await watcher.close()


async def test_metrics_token_and_readyz(settings: Settings) -> None:
    guarded = settings.model_copy(update={"metrics_token": "s3cret"})
    async with serve(guarded) as server:
        refused = await scrape(server)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert (await scrape(server, authorization="Bearer wrong")).status_code == 401
        assert (await scrape(server, authorization="Bearer s3cret")).status_code == 200
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"ready": True, "checks": {"database": "ok", "storage": "ok"}}
            # The store cannot be written (here: a file where its directory should be): not
            # ready, and says why.
            shutil.rmtree(settings.image_dir, ignore_errors=True)
            settings.image_dir.write_bytes(b"not a directory")
            gone = await http.get("/readyz")
            assert gone.status_code == 503
            body: dict[str, Any] = gone.json()
            assert body["ready"] is False and body["checks"]["database"] == "ok"
            assert body["checks"]["storage"].startswith("unreachable")
            assert (await http.get("/healthz")).status_code == 200  # up, just not ready


async def test_every_answer_has_a_request_id(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
        made = (await http.get("/healthz")).headers["x-request-id"]
        assert len(made) == 32 and int(made, 16) >= 0
        assert (await http.get("/healthz", headers={"x-request-id": "lb-42.a"})).headers[
            "x-request-id"] == "lb-42.a"
        odd = (await http.get("/api/v1/me", headers={"x-request-id": "x" * 100})).headers
        assert odd["x-request-id"] != "x" * 100 and len(odd["x-request-id"]) == 32
