"""A project and what is in it: members, images (and uploads not yet committed), labels,
objects, the op log, image leases and labeling time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models._base import Base, JSONType, UTCDateTime, utcnow


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Head of the op log: the last seq handed out. Incremented with UPDATE ... RETURNING in the
    # transaction that appends the op, which keeps seq gap-free per project.
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Membership(Base):
    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(32))  # a preset name, or "custom"
    privileges: Mapped[int] = mapped_column(Integer)  # server.permissions.Privilege flags
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # per-user project settings
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "sha256"),
                      Index("ix_images_project_state", "project_id", "state"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    mime: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    auto_labeled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Denormalized for fast listing; kept up to date by the op writer.
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    labeled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    labeled_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # Workflow (server/workflow.py), changed only by state ops: the state, its last change, who
    # marked it done (the review queue leaves out your own), the last review's comment.
    # done_by / reviewed_by are user ids without a foreign key: adding one to `images` on SQLite
    # rebuilds the table, and dropping the old one cascades to every row referencing an image
    # (migration 0010). Users are deactivated, not deleted; a missing one reads "user N".
    state: Mapped[str] = mapped_column(String(16), default="new", server_default="new")
    state_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reviewed_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    review_comment: Mapped[str | None] = mapped_column(Text, nullable=True)


class ImageAssignment(Base):
    """Who a manager gave an image to: ``next_image`` serves it to them first, to nobody else."""

    __tablename__ = "image_assignments"
    __table_args__ = (Index("ix_image_assignments_project_user", "project_id", "user_id"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"),
                                          primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assigned_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LabelDef(Base):
    """A classification label of a project (also the vocabulary of object labels)."""

    __tablename__ = "label_defs"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    color: Mapped[str] = mapped_column(String(16), default="#4c9aff")
    shortcut: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImageLabel(Base):
    __tablename__ = "image_labels"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    label_id: Mapped[int] = mapped_column(
        ForeignKey("label_defs.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16), default="manual")  # manual | auto | sync
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LabelObjectRow(Base):
    """The materialized state of one object label; the op log is the history behind it."""

    __tablename__ = "objects"
    # One index for both ways in: by project, and by project and label (migration 0020).
    __table_args__ = (Index("ix_objects_project_id_label", "project_id", "label"),)

    # On PostgreSQL this key is kept by triggers, which check a many-row insert once per image
    # instead of once per row (migration 0019; migrations/env.py leaves it out of comparisons).
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The image's project (no foreign key of its own: the image's key cascades; migration 0017).
    project_id: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), default="")
    # Plain json on PostgreSQL too: read and written whole, never queried inside (migration 0021).
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    keypoints: Mapped[list[Any]] = mapped_column(JSON, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rpy: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    occluded: Mapped[bool] = mapped_column(Boolean, default=False)
    z: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(16), default="manual")  # manual | auto | import
    # User ids without foreign keys (users are never deleted, only deactivated: migration 0017).
    created_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OpLogEntry(Base):
    """One accepted operation. ``seq`` is gap-free and increasing per project."""

    __tablename__ = "op_log"
    __table_args__ = (
        UniqueConstraint("project_id", "seq"),
        UniqueConstraint("user_id", "client_op_id"),
        Index("ix_op_log_image_seq", "image_id", "seq"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL"), nullable=True
    )
    # No index of its own: the unique (user_id, client_op_id) one leads with it (migration 0003).
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(32))  # op kind, e.g. create, move_vertex, add_label
    # Plain json on PostgreSQL too (not jsonb): stored as written, never queried inside; a big
    # batch's op is ~1 MB of text jsonb would parse and convert (migration 0019).
    op: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The exact inverse, kept so undo never has to recompute it from a state that moved on.
    inverse: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    client_op_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # For undo/redo entries: the seq of the op they revert or restore.
    reverts_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    origin: Mapped[str] = mapped_column(String(16), default="edit")  # edit | undo | redo | import | rest
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImageLock(Base):
    """A lease on one image. The row outlives releases so the fencing token keeps increasing."""

    __tablename__ = "image_locks"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    holder_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    connection_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LabelingSession(Base):
    """Time one user spent on one image, from lock grant to release or expiry."""

    __tablename__ = "labeling_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    lock_token: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class UploadIntent(Base):
    """A content an upload is writing to the image store and has not committed yet.

    Committed before the files are written, deleted with the insert of the image rows; one left
    behind longer than ``LABELHUB_UPLOAD_GRACE_SECONDS`` is a crashed upload's, and the sweep
    (``server/_upload_sweep.py``) removes its files unless an image holds the content.
    """

    __tablename__ = "upload_intents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(32), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
