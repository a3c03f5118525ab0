"""Small REST helpers used by tests, benchmarks and scripts (docs/api.md has every endpoint)."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import httpx

from client.errors import NotReadyError, TransportError, error_for


@cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``),
    made once per process and shared by every client: building one loads the whole CA bundle,
    ~20 ms of CPU, which each new client paid even for plain ``http://``. A context is safe to
    share between connections (httpx's own advice is to reuse one)."""
    return httpx.create_ssl_context()


def _raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    try:
        body = resp.json()["error"]
        code, message, details = str(body["code"]), str(body["message"]), body.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = f"http_{resp.status_code}", resp.text[:200], None
    error = error_for(code, message, status=resp.status_code, details=details)
    if isinstance(error, NotReadyError):
        error.job = body.get("job")
    raise error


class RestClient:
    """An ``httpx.AsyncClient`` bound to one server, bearer-authenticated once logged in."""

    def __init__(self, base_url: str, *, token: str | None = None,
                 http: httpx.AsyncClient | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                               verify=_tls_context())
        self.token = token
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the decoded JSON body (``None`` for 204). Raises ``RequestError``."""
        try:
            resp = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {path}: {exc!r}") from exc
        _raise_for(resp)
        return None if resp.status_code == 204 or not resp.content else resp.json()

    # --- accounts ----------------------------------------------------------------------------

    async def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in; later calls (and the socket) use the returned bearer token."""
        body = await self.request("POST", "/api/v1/auth/login",
                                  json={"email": email, "password": password})
        self.token = str(body["token"])
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.http.cookies.clear()  # the bearer token is the one credential
        return dict(body["user"])

    async def logout(self) -> None:
        """End every login session of this user (their open sockets close with 4401)."""
        await self.request("POST", "/api/v1/auth/logout")
        self.token = None
        self.http.headers.pop("Authorization", None)

    async def change_password(self, current: str, new: str) -> dict[str, Any]:
        """Set a new password. Every earlier login token stops working (their open sockets close
        with 4401); this client carries on with the fresh token the server returns."""
        body = await self.request("POST", "/api/v1/auth/password",
                                  json={"current": current, "new": new})
        self.token = str(body["token"])
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.http.cookies.clear()
        return dict(body["user"])

    async def me(self) -> dict[str, Any]:
        return dict(await self.request("GET", "/api/v1/me"))

    async def create_user(self, email: str, password: str, name: str | None = None,
                          is_admin: bool = False) -> dict[str, Any]:
        """Site admins only."""
        return dict(await self.request("POST", "/api/v1/users", json={
            "email": email, "password": password, "name": name or email, "is_admin": is_admin}))

    # --- projects ----------------------------------------------------------------------------

    async def create_project(self, name: str, description: str = "") -> dict[str, Any]:
        return dict(await self.request("POST", "/api/v1/projects",
                                       json={"name": name, "description": description}))

    async def projects(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/api/v1/projects"))["projects"])

    async def add_member(self, project_id: int, email: str, role: str = "labeler",
                         privileges: list[str] | None = None) -> dict[str, Any]:
        """Invite ``email`` to a project: ``{"status": "invited", …}`` (the person accepts in
        the app); a site admin adding an existing account gets the member at once."""
        body: dict[str, Any] = {"email": email}
        if privileges is not None:
            body["privileges"] = privileges
        else:
            body["role"] = role
        return dict(await self.request("POST", f"/api/v1/projects/{project_id}/members", json=body))

    async def patch_settings(self, project_id: int, **values: Any) -> dict[str, Any]:
        return dict(await self.request("PATCH", f"/api/v1/projects/{project_id}/settings",
                                       json=values))

    # --- images ------------------------------------------------------------------------------

    async def upload_images(self, project_id: int, files: Iterable[tuple[str, bytes]],
                            labels: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Upload ``(name, content)`` pairs; the image items of the files that were kept."""
        parts = [("files", (name, content, "application/octet-stream")) for name, content in files]
        data = {"labels": ",".join(labels)} if labels else None
        # httpx streams a multipart body piece by piece, a socket write each: ~3,000 writes for
        # 1,000 small images, which cost this process ~0.4 ms and the server ~0.2 ms per file
        # (docs/performance.md). Encoded by httpx all the same, and sent as one body.
        form = httpx.Request("POST", self.base_url, files=parts, data=data)
        body = await self.request("POST", f"/api/v1/projects/{project_id}/images",
                                  content=form.read(),
                                  headers={"Content-Type": form.headers["Content-Type"]})
        return [r["image"] for r in body["results"] if r.get("ok")]

    async def list_images(self, project_id: int, *, offset: int = 0, limit: int = 100,
                          **filters: Any) -> dict[str, Any]:
        """One page: ``{"total", "offset", "limit", "images"}``; filters as in docs/api.md."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        params.update({k: _param(v) for k, v in filters.items() if v is not None})
        return dict(await self.request("GET", f"/api/v1/projects/{project_id}/images",
                                       params=params))

    async def all_images(self, project_id: int, **filters: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = await self.list_images(project_id, offset=len(out), limit=500, **filters)
            out.extend(page["images"])
            if not page["images"] or len(out) >= page["total"]:
                return out

    async def image(self, image_id: int) -> dict[str, Any]:
        return dict(await self.request("GET", f"/api/v1/images/{image_id}"))

    async def image_objects(self, project_id: int, image_id: int) -> dict[str, Any]:
        """The image's objects as a socket snapshot holds them, with the ``seq`` they reflect:
        ``{"image", "seq", "objects"}``."""
        return dict(await self.request(
            "GET", f"/api/v1/projects/{project_id}/images/{image_id}/objects"))
    async def set_state(self, image_id: int, action: str, *, comment: str | None = None,
                        token: int | None = None, expect: str | None = None) -> dict[str, Any]:
        """Workflow change (``done`` needs the lock's ``token``; ``expect``: the state I saw):
        ``{"image", "state", "seq"}``."""
        body: dict[str, Any] = {"action": action}
        for key, value in (("comment", comment), ("token", token), ("expect", expect)):
            if value is not None:
                body[key] = value
        return dict(await self.request("POST", f"/api/v1/images/{image_id}/state", json=body))

    async def assign(self, project_id: int, user_id: int | None, *,
                     images: Iterable[int] | None = None,
                     filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Give images (a list, or those matching an image-list filter) to a member; ``None``
        takes them back. ``{"assigned", "user", "seq"}``."""
        body: dict[str, Any] = {"user": user_id}
        if images is not None:
            body["images"] = list(images)
        if filter is not None:
            body["filter"] = dict(filter)
        return dict(await self.request("POST", f"/api/v1/projects/{project_id}/assignments",
                                       json=body))

    # --- hub side: audit and stats -----------------------------------------------------------

    async def ops(self, project_id: int, **query: Any) -> dict[str, Any]:
        """One page of the op log (``since``, ``image``, ``user``, ``limit``)."""
        params = {k: _param(v) for k, v in query.items() if v is not None}
        return dict(await self.request("GET", f"/api/v1/projects/{project_id}/ops", params=params))

    async def stats(self, project_id: int) -> dict[str, Any]:
        return dict(await self.request("GET", f"/api/v1/projects/{project_id}/stats"))

    # --- background jobs ---------------------------------------------------------------------

    async def jobs(self, project_id: int, *, status: str | Iterable[str] | None = None,
                   kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The project's jobs, newest first (``status``: one or several of queued, running,
        done, failed, cancelled)."""
        query: dict[str, Any] = {"kind": kind, "limit": limit,
                                 "status": status if status is None or isinstance(status, str)
                                 else ",".join(status)}
        params = {k: v for k, v in query.items() if v is not None}
        body = await self.request("GET", f"/api/v1/projects/{project_id}/jobs", params=params)
        return list(body["jobs"])

    async def job(self, project_id: int, job_id: int) -> dict[str, Any]:
        return dict(await self.request("GET", f"/api/v1/projects/{project_id}/jobs/{job_id}"))

    async def cancel_job(self, project_id: int, job_id: int) -> dict[str, Any]:
        """Cancel a job (its creator, or ``manage_members``); returns its state. A running job
        stops within a second and keeps what it did."""
        return dict(await self.request(
            "POST", f"/api/v1/projects/{project_id}/jobs/{job_id}/cancel"))

    # --- embeddings, similarity and suggestions (docs/ai.md) ---------------------------------

    async def request_embeddings(self, project_id: int) -> dict[str, Any]:
        """Queue an embed job for the project's images still missing feature vectors (``upload``):
        ``{"job": state, "missing": n}``."""
        return dict(await self.request("POST", f"/api/v1/projects/{project_id}/embeddings"))

    async def similar(self, project_id: int, image_id: int, *, limit: int = 20,
                      labeled: str = "any", label: str | None = None, without: bool = False,
                      feature: str | None = None) -> list[dict[str, Any]]:
        """Images most similar to one, best first: ``{"image", "name", "similarity", "labels"}``.
        ``labeled``: any, true or false; ``label`` (with ``without``): only images that carry
        (or lack) that label. Raises ``NotReadyError`` (``.job``: the embed job to
        wait for) until the vectors exist."""
        query = {"limit": limit, "labeled": labeled, "label": label,
                 "without": _param(without) if label else None, "feature": feature}
        params = {k: v for k, v in query.items() if v is not None}
        body = await self.request(
            "GET", f"/api/v1/projects/{project_id}/images/{image_id}/similar", params=params)
        return list(body["items"])

    async def similar_to_label(self, project_id: int, label: str, *, limit: int = 50,
                               labeled: str = "any") -> list[dict[str, Any]]:
        """Images not carrying ``label``, most similar to the images that carry it first."""
        body = await self.request("POST", f"/api/v1/projects/{project_id}/similar",
                                  json={"label": label, "limit": limit, "labeled": labeled})
        return list(body["items"])

    async def suggestions(self, project_id: int, images: Iterable[int] | None = None, *,
                          filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Suggested classification labels for images (ids, or the images of a filter as
        ``list_images`` takes it): ``{"labeled_examples", "feature", "accuracy", "items":
        [{"image", "labels": [{"label", "score"}]}], "pending": [ids not embedded yet]}``."""
        body: dict[str, Any] = {"images": list(images)} if images is not None else {
            "filter": dict(filter or {})}
        return dict(await self.request("POST", f"/api/v1/projects/{project_id}/suggestions",
                                       json=body))

    async def accept_suggestions(self, project_id: int,
                                 items: Mapping[int, Iterable[str]]) -> dict[str, Any]:
        """Add labels (source ``auto``) to images, ``{image_id: [label, ...]}`` (``label``):
        ``{"applied": [...], "skipped": [{"image", "reason"}], "seq"}``."""
        body = {"items": [{"image": i, "labels": list(names)} for i, names in items.items()]}
        return dict(await self.request(
            "POST", f"/api/v1/projects/{project_id}/suggestions/accept", json=body))

    # --- models and predictions (docs/ai.md) ------------------------------------------------

    async def models(self, project_id: int) -> list[dict[str, Any]]:
        """The project's models: the built-in ``imagenet`` one (with its ``mapping``) and the
        trained ones with their versions (``view``)."""
        body = await self.request("GET", f"/api/v1/projects/{project_id}/models")
        return list(body["models"])

    async def model(self, project_id: int, model: int | str) -> dict[str, Any]:
        """One model (id or name) with every version's metrics."""
        return dict(await self.request("GET", f"/api/v1/projects/{project_id}/models/{model}"))

    async def train_model(self, project_id: int, name: str, *, labels: Iterable[str] | None = None,
                          multi_label: bool | None = None,
                          features: Iterable[str] | None = None,
                          task: str = "classification") -> dict[str, Any]:
        """Train ``name`` (a new model, or its next version) on the images people labeled, or
        with ``task="detection"`` a box detector on the boxes people drew (``manage_labels``):
        ``{"model", "job"}``; the job's result names the version. Raises
        ``InvalidRequestError`` (code ``not_enough_examples``) saying what is missing."""
        body: dict[str, Any] = {"task": task, "name": name}
        if labels is not None:
            body["labels"] = list(labels)
        if multi_label is not None:
            body["multi_label"] = multi_label
        if features is not None:
            body["features"] = list(features)
        return dict(await self.request("POST", f"/api/v1/projects/{project_id}/models", json=body))

    async def set_model_mapping(self, project_id: int, mapping: Mapping[str, str],
                                model: int | str = "imagenet") -> dict[str, Any]:
        """Map the built-in model's ImageNet classes to labels (new names become labels)."""
        return dict(await self.request(
            "PUT", f"/api/v1/projects/{project_id}/models/{model}/mapping",
            json={"mapping": dict(mapping)}))

    async def download_model(self, project_id: int, model: int | str,
                             version: int | None = None) -> bytes:
        """A trained version (default: the latest) as a ZIP: model.onnx, labels.txt,
        metrics.json, README.md."""
        params = {"version": version} if version is not None else {}
        try:
            resp = await self.http.get(f"/api/v1/projects/{project_id}/models/{model}/download",
                                       params=params)
        except httpx.TransportError as exc:
            raise TransportError(f"GET download: {exc!r}") from exc
        _raise_for(resp)
        return resp.content

    async def predict(self, project_id: int, model: int | str,
                      images: Iterable[int] | None = None, *, version: int | None = None,
                      filter: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Queue a predict job over images (ids, or a filter's) (``label``): ``{"job", "model",
        "version", "images"}``."""
        body: dict[str, Any] = {"model": model}
        body.update({"images": list(images)} if images is not None else {"filter": dict(filter or {})})
        if version is not None:
            body["version"] = version
        return dict(await self.request("POST", f"/api/v1/projects/{project_id}/predictions",
                                       json=body))

    async def predictions(self, project_id: int, *, model: int | str | None = None,
                          status: str | None = "pending", image: int | None = None,
                          limit: int = 100, after: int | None = None) -> dict[str, Any]:
        """Stored predictions, oldest first: ``{"items": [{"id", "image", "model", "version",
        "labels", "confident", "objects", "status", "stale", ...}], "next"}`` (``next``: pass
        as ``after`` for the next page)."""
        query = {"model": model, "status": status, "image": image, "limit": limit, "after": after}
        params = {k: v for k, v in query.items() if v is not None}
        return dict(await self.request("GET", f"/api/v1/projects/{project_id}/predictions",
                                       params=params))

    async def add_predictions(self, project_id: int, items: Mapping[int, Iterable[str]], *,
                              model: int | str | None = None) -> dict[str, Any]:
        """Add predicted labels ``{image_id: [label, ...]}`` like accepted suggestions
        (``label``): ``{"applied", "skipped": [{"image", "reason"}], "seq"}``; stale
        predictions are skipped."""
        body: dict[str, Any] = {"items": [{"image": i, "labels": list(n)} for i, n in items.items()]}
        if model is not None:
            body["model"] = model
        return dict(await self.request(
            "POST", f"/api/v1/projects/{project_id}/predictions/add", json=body))

    async def add_predicted_objects(
            self, project_id: int,
            predictions: Mapping[int, Iterable[int | Mapping[str, Any]] | None]) -> dict[str, Any]:
        """Add a detector's boxes as ``auto`` objects (``label``): ``{prediction id: chosen}``,
        ``chosen`` the indices of its ``objects`` to add, or ``{"index", "geometry"}`` with the
        box adjusted, or ``None`` for those at the version's threshold. Returns ``{"applied":
        [{"image", "objects", "duplicates"}], "skipped": [{"image", "reason"}], "seq"}``."""
        items: list[dict[str, Any]] = []
        for prediction, chosen in predictions.items():
            item: dict[str, Any] = {"prediction": prediction}
            if chosen is not None:
                item["objects"] = [{"index": c} if isinstance(c, int) else dict(c) for c in chosen]
            items.append(item)
        return dict(await self.request(
            "POST", f"/api/v1/projects/{project_id}/predictions/add", json={"items": items}))

    async def dismiss_predictions(self, project_id: int, images: Iterable[int], *,
                                  model: int | str | None = None) -> int:
        """Dismiss the pending predictions of these images; how many there were."""
        body: dict[str, Any] = {"images": list(images)}
        if model is not None:
            body["model"] = model
        return int((await self.request(
            "POST", f"/api/v1/projects/{project_id}/predictions/dismiss", json=body))["dismissed"])

    async def confirm_auto_labels(self, project_id: int, images: Iterable[int]) -> dict[str, Any]:
        """A person reviewed these images: their labels and objects from a model become manual
        ones credited to the caller (``label``): ``{"confirmed": [{"image", "labels",
        "objects"}], "skipped": [{"image", "reason"}], "seq"}`` (``objects``: the object ids)."""
        return dict(await self.request("POST", f"/api/v1/projects/{project_id}/auto-labels/confirm",
                                       json={"images": list(images)}))


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        return ",".join(str(v) for v in value)
    return value
