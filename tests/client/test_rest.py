"""REST helpers against a real server."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest

from client import (
    AuthenticationError,
    InvalidRequestError,
    LabelhubClient,
    NotFoundError,
    NotReadyError,
    RestClient,
)
from tests.client.conftest import Team, png
from tests.jobs.conftest import ended, running_worker, wait_job


async def test_upload_and_list_images(team: Team) -> None:
    kept = await team.admin.upload_images(team.project, [("extra.png", png(99))], labels=["cat"])
    assert [i["name"] for i in kept] == ["extra.png"]
    page = await team.admin.list_images(team.project, label="cat")
    assert [i["id"] for i in page["images"]] == [kept[0]["id"]]
    every = await team.admin.all_images(team.project)
    assert len(every) == len(team.images) + 1


async def test_an_upload_goes_as_one_body(team: Team) -> None:
    """The multipart form leaves in one piece, not a write per part (the server pays per piece
    it receives), and reads back as the files and labels sent."""
    bodies: list[list[bytes]] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/images"):
            bodies.append(list(request.stream))  # type: ignore[arg-type]  # a ByteStream

    http = httpx.AsyncClient(base_url=team.live.url, event_hooks={"request": [record]})
    rest = RestClient(team.live.url, token=team.admin.token, http=http)
    try:
        files = [(f"one-{n}.png", png(7) + bytes(n + 1)) for n in range(50)]  # 50 contents
        kept = await rest.upload_images(team.project, files, labels=["dog", "one body"])
    finally:
        await http.aclose()
    assert len(bodies) == 1 and len(bodies[0]) == 1
    assert [i["name"] for i in kept] == [name for name, _ in files]
    assert all([lab["name"] for lab in i["labels"]] == ["dog", "one body"] for i in kept)
    file = await team.admin.http.get(f"/api/v1/images/{kept[-1]['id']}/file")
    assert file.status_code == 200 and file.content == files[-1][1]


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


async def test_similarity_and_suggestions(team: Team) -> None:
    rest, pid, images = team.admin, team.project, team.images
    with pytest.raises(NotReadyError) as caught:
        await rest.similar(pid, images[0])
    assert caught.value.status == 409 and caught.value.job is not None
    assert caught.value.job["kind"] == "embed"
    queued = await rest.request_embeddings(pid)
    assert queued["job"]["id"] == caught.value.job["id"] and queued["missing"] == len(images)
    async with running_worker(team.live.app, kinds=["embed"]):
        state = await wait_job(team.live.app, queued["job"]["id"], ended, within=120)
    assert state.status == "done"
    await rest.request("POST", f"/api/v1/projects/{pid}/labels/apply", json={
        "op": {"kind": "add_label", "label": "bright"}, "image_ids": images[-2:]})
    await rest.request("POST", f"/api/v1/projects/{pid}/labels/apply", json={
        "op": {"kind": "add_label", "label": "dark"}, "image_ids": images[:2]})
    similar = await rest.similar(pid, images[0], limit=3, labeled="false")
    assert len(similar) == 2 and {i["image"] for i in similar} == set(images[2:4])
    assert [i["image"] for i in await rest.similar_to_label(pid, "dark", limit=2)] == images[2:4]
    suggested = await rest.suggestions(pid, filter={"labeled": False})
    assert suggested["labeled_examples"] == 4
    assert {i["image"] for i in suggested["items"]} == set(images[2:4])
    first = suggested["items"][0]
    accepted = await rest.accept_suggestions(pid, {first["image"]: [first["labels"][0]["label"]]})
    assert [a["image"] for a in accepted["applied"]] == [first["image"]]
    assert [i["id"] for i in await rest.all_images(pid, auto_labeled=True)] == [first["image"]]


async def test_models_and_predictions(team: Team) -> None:
    rest, pid, images = team.admin, team.project, team.images
    await rest.request("POST", f"/api/v1/projects/{pid}/labels/apply", json={
        "op": {"kind": "add_label", "label": "dark"}, "image_ids": images[:2]})
    with pytest.raises(InvalidRequestError) as caught:
        await rest.train_model(pid, "shade", features=["hog@1"])
    assert caught.value.code == "not_enough_examples" and "at least two labels" in str(caught.value)
    await rest.request("POST", f"/api/v1/projects/{pid}/labels/apply", json={
        "op": {"kind": "add_label", "label": "bright"}, "image_ids": images[-2:]})
    started = await rest.train_model(pid, "shade", features=["hog@1"])
    assert started["model"]["name"] == "shade" and started["job"]["kind"] == "train"
    async with running_worker(team.live.app, kinds=["train", "predict"]):
        trained = await wait_job(team.live.app, started["job"]["id"], ended, within=120)
        assert trained.status == "done", trained
        assert [m["name"] for m in await rest.models(pid)] == ["imagenet", "shade"]
        model = await rest.model(pid, "shade")
        assert model["versions"][0]["labels"] == ["bright", "dark"]
        queued = await rest.predict(pid, "shade", images[2:4])
        assert queued["version"] == 1 and queued["images"] == 2
        predicted = await wait_job(team.live.app, queued["job"]["id"], ended, within=120)
    assert predicted.status == "done"
    listed = await rest.predictions(pid, model="shade")
    assert sorted(i["image"] for i in listed["items"]) == images[2:4] and listed["next"] is None
    first, second = listed["items"]
    added = await rest.add_predictions(pid, {first["image"]: [first["labels"][0]["label"]]},
                                       model="shade")
    assert [a["image"] for a in added["applied"]] == [first["image"]]
    confirmed = await rest.confirm_auto_labels(pid, [first["image"]])
    assert confirmed["confirmed"] == [{**a, "objects": []} for a in added["applied"]]
    assert confirmed["skipped"] == []
    assert await rest.dismiss_predictions(pid, [second["image"]]) == 1
    assert (await rest.predictions(pid))["items"] == []
    assert (await rest.download_model(pid, "shade"))[:2] == b"PK"
    mapped = await rest.set_model_mapping(pid, {"Egyptian cat": "cat"})
    assert mapped["mapping"] == {"Egyptian cat": "cat"}


async def test_detectors_and_their_boxes(team: Team) -> None:
    from tests.ai._boxes import seeded_detector, seeded_prediction

    rest, pid, images = team.admin, team.project, team.images
    with pytest.raises(InvalidRequestError) as caught:
        await rest.train_model(pid, "boxes", task="detection")
    assert caught.value.code == "not_enough_examples" and "there are none" in str(caught.value)
    model_id, _ = await seeded_detector(team.live.app, pid)
    p = await seeded_prediction(team.live.app, pid, model_id, images[0],
                                [("cat", 0.9, 1, 1, 4, 4), ("dog", 0.8, 2, 2, 3, 3)])
    added = await rest.add_predicted_objects(pid, {p: [1]})
    assert [[o["label"] for o in a["objects"]] for a in added["applied"]] == [["dog"]]
    assert (await rest.predictions(pid, model=model_id, status="added"))["items"][0]["id"] == p


async def test_new_clients_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a TLS context loads the whole CA bundle (~20 ms of CPU): a script opening many
    clients, or the SDK's client under each ``LabelhubClient``, makes it at most once."""
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    clients = [RestClient(f"https://labelhub-{n}.example") for n in range(3)]
    clients.append(LabelhubClient("http://127.0.0.1:9", 1, token="t").rest)
    try:
        assert len(made) <= 1
        contexts = {id(c.http._transport._pool._ssl_context) for c in clients}  # type: ignore[attr-defined]
        assert len(contexts) == 1
        assert next(iter(clients)).http._transport._pool._ssl_context.verify_mode \
            == ssl.CERT_REQUIRED  # type: ignore[attr-defined]
    finally:
        for c in clients:
            await c.aclose()
