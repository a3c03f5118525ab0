"""What server/ai/ keeps: image embeddings, a project's classifiers and their trained versions,
and their predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.models._base import Base, JSONType, UTCDateTime, utcnow


class ImageEmbedding(Base):
    """A feature vector of one image content (sha256) under one feature key (server/ai/).

    Keyed by content, not by image row: the same file in two projects is embedded once. Rows
    whose content no image has any more are deleted with the last such image.
    """

    __tablename__ = "image_embeddings"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    feature: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. "lite0-pool@1"
    dim: Mapped[int] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(16), default="float16")
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AiModel(Base):
    """A project's classifier (server/ai/): the built-in ImageNet one (``kind`` ``builtin``,
    with a ``mapping`` of ImageNet class names to the project's labels) or one trained on the
    project's labeled images (``kind`` ``trained``, with versions)."""

    __tablename__ = "ai_models"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(32), default="classification")
    kind: Mapped[str] = mapped_column(String(16))  # builtin | trained | imported (server/ai/imported.py)
    multi_label: Mapped[bool] = mapped_column(Boolean, default=False)
    # builtin: {"Egyptian cat": {"label": "cat", "label_id": 7}, ...}
    mapping: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AiModelVersion(Base):
    """One training run of a trained model: the linear head's weights (raw float32 bytes,
    ``server/ai/heads.py``), what it was trained on and how well it did."""

    __tablename__ = "ai_model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("ai_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    labels: Mapped[list[Any]] = mapped_column(JSONType)  # [{"id": 3, "name": "cat"}, ...]
    head: Mapped[dict[str, Any]] = mapped_column(JSONType)  # features, dim, threshold, sha256
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    images: Mapped[int] = mapped_column(Integer, default=0)  # labeled images trained on
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Prediction(Base):
    """What a model predicted for an image, kept apart from people's labels until someone
    adds (or dismisses) it. ``version`` is 0 for the built-in model."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("image_id", "model_id", "version"),
        Index("ix_predictions_model_status_id", "model_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("ai_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    labels: Mapped[list[Any]] = mapped_column(JSONType)  # [{"label": "cat", "score": 0.93}, ...]
    objects: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | added | dismissed
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    reviewed_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
