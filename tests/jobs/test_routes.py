"""REST: list, read and cancel jobs, with the project's privilege checks."""

from __future__ import annotations

from starlette.applications import Starlette

from tests.conftest import Api, UserFactory, add_member, make_project
from tests.jobs.conftest import queue_job


async def test_list_and_get(app: Starlette, admin: Api, project: int) -> None:
    first = await queue_job(app, "count", project, {"to": 3}, created_by=admin.user["id"])
    second = await queue_job(app, "count", project, {"to": 4})
    elsewhere = await queue_job(app, "count", await make_project(admin, "Other"), {})
    resp = await admin.client.get(f"/api/v1/projects/{project}/jobs")
    assert resp.status_code == 200
    jobs = resp.json()["jobs"]
    assert [j["id"] for j in jobs] == [second, first]  # newest first, this project only
    job = jobs[1]
    assert (job["kind"], job["status"], job["progress"], job["params"]) == (
        "count", "queued", {"done": 0, "total": 0}, {"to": 3})
    assert job["created_by"] == admin.user["id"] and job["result"] is None
    one = await admin.client.get(f"/api/v1/projects/{project}/jobs/{first}")
    assert one.status_code == 200 and one.json() == job
    missing = await admin.client.get(f"/api/v1/projects/{project}/jobs/{elsewhere}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_filters_and_bad_queries(app: Starlette, admin: Api, project: int) -> None:
    job_id = await queue_job(app, "count", project, {})
    await admin.client.post(f"/api/v1/projects/{project}/jobs/{job_id}/cancel")
    other = await queue_job(app, "other", project, {})
    base = f"/api/v1/projects/{project}/jobs"
    queued = (await admin.client.get(base, params={"status": "queued,running"})).json()["jobs"]
    assert [j["id"] for j in queued] == [other]
    kinds = (await admin.client.get(base, params={"kind": "count"})).json()["jobs"]
    assert [j["id"] for j in kinds] == [job_id]
    bad = await admin.client.get(base, params={"status": "sleeping"})
    assert bad.status_code == 422 and "sleeping" in bad.json()["error"]["message"]
    assert (await admin.client.get(base, params={"limit": "0"})).status_code == 422
    assert (await admin.client.get(f"{base}/abc")).status_code == 404


async def test_privileges(app: Starlette, admin: Api, users: UserFactory, project: int) -> None:
    viewer, labeler, manager, outsider = [await users(n) for n in
                                          ("viewer", "labeler", "manager", "outsider")]
    await add_member(admin, project, viewer, "viewer")
    await add_member(admin, project, labeler, "labeler")
    await add_member(admin, project, manager, privileges=["view", "manage_members"])
    admins_job = await queue_job(app, "count", project, {}, created_by=admin.user["id"])
    labelers_job = await queue_job(app, "count", project, {"n": 2}, created_by=labeler.user["id"])
    base = f"/api/v1/projects/{project}/jobs"

    for path in (base, f"{base}/{admins_job}"):  # a non-member learns nothing
        resp = await outsider.client.get(path)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    assert (await outsider.client.post(f"{base}/{admins_job}/cancel")).status_code == 404
    assert (await viewer.client.get(base)).status_code == 200  # view is enough to read

    refused = await viewer.client.post(f"{base}/{admins_job}/cancel")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert (await labeler.client.post(f"{base}/{admins_job}/cancel")).status_code == 403
    job = (await admin.client.get(f"{base}/{admins_job}")).json()
    assert job["status"] == "queued" and not job["cancel_requested"]  # refused: nothing changed

    own = await labeler.client.post(f"{base}/{labelers_job}/cancel")  # its creator may
    assert own.status_code == 200 and own.json()["status"] == "cancelled"
    managed = await manager.client.post(f"{base}/{admins_job}/cancel")  # and a manager
    assert managed.status_code == 200 and managed.json()["status"] == "cancelled"
    again = await manager.client.post(f"{base}/{admins_job}/cancel")  # ended: unchanged
    assert again.status_code == 200 and again.json() == managed.json()
