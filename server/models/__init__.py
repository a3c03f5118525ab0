"""The database schema as SQLAlchemy typed ORM classes — the only place tables are described.

Migrations (``migrations/``) create these tables; a test checks that autogenerate finds no
difference. ORM rows never go on the wire: routes convert them to pydantic schemas.

Import them from here (``from server.models import Image``); importing this package defines
every table on ``Base.metadata``. By module: ``accounts`` (users, API tokens, login throttling,
invitations), ``projects`` (projects, members, images, labels, objects, the op log, leases,
labeling time, upload intents), ``jobs`` and ``ai`` (embeddings, models, predictions);
``_base`` holds the declarative base and the shared column types.
"""

from server.models._base import NAMING, Base, JSONType, UTCDateTime, utcnow
from server.models.accounts import ApiToken, Invitation, LoginAttempt, User
from server.models.ai import AiModel, AiModelVersion, ImageEmbedding, Prediction
from server.models.jobs import Job
from server.models.projects import (
    Image,
    ImageAssignment,
    ImageLabel,
    ImageLock,
    LabelDef,
    LabelingSession,
    LabelObjectRow,
    Membership,
    OpLogEntry,
    Project,
    UploadIntent,
)

__all__ = [
    "NAMING",
    "AiModel",
    "AiModelVersion",
    "ApiToken",
    "Base",
    "Image",
    "ImageAssignment",
    "ImageEmbedding",
    "ImageLabel",
    "ImageLock",
    "Invitation",
    "JSONType",
    "Job",
    "LabelDef",
    "LabelObjectRow",
    "LabelingSession",
    "LoginAttempt",
    "Membership",
    "OpLogEntry",
    "Prediction",
    "Project",
    "UTCDateTime",
    "UploadIntent",
    "User",
    "utcnow",
]
