"""The WebSocket wire protocol — public API, documented in ``docs/protocol.md``.

JSON text frames. Every client message has ``type`` and ``id``; the server answers each with an
``ack`` or an ``error`` carrying the same ``id``. Server events (``snapshot``, ``op``, ``lock``,
``presence``, ``progress``, ``privileges``, ``reset``, ``job``) have no ``id``. Fields that are ``null``
are left out of server frames.

Change this module, the doc and the Python client (``client/``) together.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

ImageId = Annotated[int, Field(gt=0, le=2**31 - 1)]
ProjectId = Annotated[int, Field(gt=0, le=2**31 - 1)]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Request(_Msg):
    id: Annotated[str, Field(min_length=1, max_length=64)] | Annotated[int, Field(ge=0)]


# --- client → server -------------------------------------------------------------------------


class Hello(_Request):
    """Must come first. ``since``: the last seq this client saw, to resume from;
    ``images``: the images it was subscribed to, re-subscribed from ``since``."""

    type: Literal["hello"]
    project: ProjectId
    since: Annotated[int, Field(ge=0)] | None = None
    images: list[ImageId] = Field(default_factory=list, max_length=100)


class Subscribe(_Request):
    type: Literal["subscribe"]
    image: ImageId


class Unsubscribe(_Request):
    type: Literal["unsubscribe"]
    image: ImageId


class OpenImage(_Request):
    """Lock an image for editing (and subscribe to it). ``take_over`` needs ``review``."""

    type: Literal["open_image"]
    image: ImageId
    take_over: bool = False


class ReleaseImage(_Request):
    type: Literal["release_image"]
    image: ImageId


class Heartbeat(_Request):
    """Renews this connection's leases; ``active`` counts toward labeling time."""

    type: Literal["heartbeat"]
    active: bool = True


class NextImage(_Request):
    """Choose and lock the next image to label, honouring the skip settings.

    ``after``: the image the tool is on now (the next one after it in id order, else the first);
    ``direction``: ``next`` or ``previous``; ``images``: the selection the tool was opened with;
    ``filter``: the dashboard filter (the keys of the image list's query parameters).
    ``queue``: ``label`` (default) hands out images not done yet (unless the filter names a
    ``state``), the ones assigned to me first, never one assigned to someone else; ``review``
    (needs ``review``) hands out done images, not my own unless ``own`` is true.
    """

    type: Literal["next_image"]
    queue: Literal["label", "review"] = "label"
    own: bool = False
    after: ImageId | None = None
    direction: Literal["next", "previous"] = "next"
    images: list[ImageId] | None = Field(default=None, max_length=10_000)
    filter: dict[str, Any] | None = None
    release: bool = True  # release the image given in ``after`` if I hold it


class Op(_Request):
    """One edit: an object op (docs/geometry.md) or a classification op."""

    type: Literal["op"]
    image: ImageId
    token: int
    client_op_id: Annotated[str, Field(min_length=1, max_length=64)]
    op: dict[str, Any]

    @field_validator("op")
    @classmethod
    def _kind_is_a_name(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Checked here, at the edge: the op path compares kind with sets and dict keys.
        if not isinstance(value.get("kind"), str):
            raise ValueError("op.kind must be a string naming the edit")
        return value


class SetState(_Request):
    """Move the image along the workflow (``server/workflow.py``): ``done`` (needs ``label`` and
    the lock: ``token``), ``accept`` / ``reject`` (``review``; a rejection needs ``comment``),
    ``reopen`` (``manage_members``). ``expect``: the state the client shows; when the image is in
    another one by now the answer is ``conflict``. The ack carries the op's ``seq`` and the new
    ``state``."""

    type: Literal["set_state"]
    image: ImageId
    action: Literal["done", "accept", "reject", "reopen"]
    expect: Literal["new", "in_progress", "done", "accepted", "rejected"] | None = None
    token: int | None = None
    comment: Annotated[str, Field(max_length=2000)] | None = None


class Undo(_Request):
    type: Literal["undo"]
    image: ImageId
    token: int


class Redo(_Request):
    type: Literal["redo"]
    image: ImageId
    token: int


class Cursor(_Request):
    """Where my pointer is (image pixels); relayed as ``presence``, throttled."""

    type: Literal["cursor"]
    image: ImageId
    x: float
    y: float


ClientMessage = Annotated[
    Hello | Subscribe | Unsubscribe | OpenImage | ReleaseImage | Heartbeat | NextImage | Op
    | Undo | Redo | Cursor | SetState,
    Field(discriminator="type"),
]
client_message: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# --- server → client -------------------------------------------------------------------------


class UserRef(_Msg):
    id: int
    name: str


class LockInfo(_Msg):
    token: int
    expires_at: str  # ISO 8601, UTC


class Present(BaseModel):
    """Someone in the project right now (the hello ack lists them), and the image they are on."""

    user: UserRef
    image: int | None = None


class Ack(_Msg):
    """The answer to a request. Which optional fields are set depends on the request."""

    type: Literal["ack"] = "ack"
    id: str | int
    seq: int | None = None
    user: UserRef | None = None
    privileges: list[str] | None = None
    lock: LockInfo | None = None
    image: int | None = None
    holder: UserRef | None = None
    op: dict[str, Any] | None = None
    duplicate: bool | None = None
    present: list[Present] | None = None
    state: str | None = None  # set_state: the image's new workflow state


class Error(_Msg):
    type: Literal["error"] = "error"
    id: str | int | None = None
    code: str
    message: str
    holder: UserRef | None = None


class ImageLabelOut(_Msg):
    label: str
    is_default: bool
    source: str


class Snapshot(_Msg):
    type: Literal["snapshot"] = "snapshot"
    image: int
    seq: int
    objects: list[dict[str, Any]]
    labels: list[ImageLabelOut]
    lock: dict[str, Any] | None = None  # {"holder": UserRef, "expires_at": str} or absent


class OpEvent(_Msg):
    type: Literal["op"] = "op"
    seq: int
    image: int | None = None
    user: int | None = None
    op: dict[str, Any]
    client_op_id: str | None = None
    origin: str


class LockEvent(_Msg):
    type: Literal["lock"] = "lock"
    seq: int
    image: int
    state: Literal["granted", "released", "expired", "taken_over"]
    holder: UserRef | None = None
    expires_at: str | None = None
    #: Set when the grant moved the image along the workflow (new or rejected → in_progress).
    image_state: str | None = None


class PresenceEvent(_Msg):
    type: Literal["presence"] = "presence"
    user: UserRef
    image: int | None = None
    x: float | None = None
    y: float | None = None
    online: bool = True


class ProgressEvent(_Msg):
    type: Literal["progress"] = "progress"
    project: int
    seq: int
    total: int
    labeled: int
    in_progress: int
    untouched: int
    #: Images by workflow state (new, in_progress, done, accepted, rejected): the work done.
    states: dict[str, int] = Field(default_factory=dict)


class PrivilegesEvent(_Msg):
    type: Literal["privileges"] = "privileges"
    privileges: list[str]


class ResetEvent(_Msg):
    """``since`` was older than the kept log: drop local state; snapshots follow."""

    type: Literal["reset"] = "reset"
    seq: int
    reason: str


class JobProgress(_Msg):
    done: int
    total: int


class JobState(_Msg):
    """A background job (server/jobs/), as ``GET /api/v1/projects/{id}/jobs`` lists it."""

    id: int
    project: int | None
    kind: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: JobProgress
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int
    cancel_requested: bool
    created_by: int | None = None
    created_at: str  # ISO 8601, UTC, like every time below
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str


class JobEvent(_Msg):
    """A job of the project changed status or progress (from whichever process runs it)."""

    type: Literal["job"] = "job"
    job: JobState


ServerMessage = Annotated[
    Ack | Error | Snapshot | OpEvent | LockEvent | PresenceEvent | ProgressEvent
    | PrivilegesEvent | ResetEvent | JobEvent,
    Field(discriminator="type"),
]
server_message: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)

#: Close codes (4000-4999 are the application's).
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4008

#: Size limits of a client message (UTF-8 bytes; docs/protocol.md): any message, and an ``op``,
#: whose ``batch`` may create thousands of objects at once. A bigger one gets ``too_large`` with
#: its id; the transport closes the socket (1009) only past ``MAX_FRAME_BYTES``.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_OP_BYTES = 8 * 1024 * 1024
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: Messages per connection: ``RATE_LIMIT`` a second on average, bursts up to ``RATE_BURST``
#: (a token bucket); past it a message gets ``rate_limited`` and is not applied.
RATE_LIMIT = 100.0
RATE_BURST = 300.0


def encode(message: BaseModel) -> str:
    """One JSON text frame; ``None`` fields of the envelope are left out."""
    return message.model_dump_json(exclude_none=True)
