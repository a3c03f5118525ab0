"""One typed configuration object, read from ``LABELHUB_*`` environment variables (and ``.env``)."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABELHUB_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = ""
    secret_key: str = ""
    admin_email: str = ""
    admin_password: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: int = 200
    # Where image bytes (originals, thumbnails, exports) live: empty = the data dir;
    # s3://bucket/prefix = an S3-compatible store, reached with the usual AWS_* variables
    # (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    storage_url: str = ""
    # A store that does not answer within this (retries included) fails the request with 503.
    storage_timeout_seconds: float = Field(default=10.0, gt=0)
    # Files an upload wrote but never committed (a crash, a lost store) are removed after this.
    upload_grace_seconds: float = Field(default=600.0, ge=0)
    # Largest JSON request body (every route but uploads and imports; login has its own 8 KiB).
    max_json_kb: int = Field(default=1024, ge=1)
    allowed_origins: list[str] = Field(default_factory=list)
    token_ttl_hours: int = 24 * 7
    # How long an invitation (to make an account or join a project) stays valid.
    invitation_ttl_hours: int = Field(default=72, ge=1)
    lock_ttl_seconds: float = 45.0
    idle_limit_seconds: float = 120.0
    # Frames queued for one WebSocket client before it counts as too slow and is dropped.
    ws_send_queue: int = Field(default=1000, ge=2)
    development: bool = False
    # Log lines as text, or one JSON object per line (for a log system); each has a request id.
    log_format: Literal["text", "json"] = "text"
    # A served process logs each event-loop stall this long or longer (ms), with the Python
    # frames it was in (server/telemetry/stalls.py; at most one line per 10 s); 0: no watch.
    loop_stall_log_ms: float = Field(default=100.0, ge=0)
    # A served process makes full garbage collections at most this often (s), not whenever
    # CPython's allocation counts say: each stops the event loop for 40-80 ms (server/_gc.py).
    # 0: CPython's own schedule.
    gc_full_interval_seconds: float = Field(default=30.0, ge=0)
    # When set, GET /metrics needs "Authorization: Bearer <this>" (else it is open: keep it
    # inside, as deploy/nginx does).
    metrics_token: str = ""
    # `labelhub worker` on a machine of its own serves its job metrics here (0: it does not).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Job workers `labelhub serve` starts beside itself (0: workers run elsewhere, `labelhub
    # worker`), threads each worker has for CPU-heavy task steps, and the lease a running job's
    # worker renews: a worker gone longer than this loses the job to another.
    workers: int = Field(default=1, ge=0, le=64)
    worker_threads: int = Field(default=1, ge=1, le=256)
    job_lease_seconds: float = Field(default=30.0, gt=0)
    # CPU-heavy steps (mask decode, brush, fill, rasterize, vectorize, smart selection) run in
    # this many worker processes (server/offload.py); one core is left to the event loop.
    offload_workers: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1), ge=1)
    # With 2+ cores, `labelhub serve` runs on the first half of them and its offload workers
    # and job worker on the rest (os.sched_setaffinity), so heavy work cannot take the event
    # loop's core. Off: every process may run on any core (e.g. when a container manager pins).
    cpu_split: bool = True
    # Heavy jobs waiting for a worker beyond those running; past it a request gets "busy".
    offload_queue: int = Field(default=8, ge=0)
    # Largest mask (decoded pixels) an import reads; a mask must also fit its image.
    max_mask_pixels: int = Field(default=100_000_000, ge=1)
    # An import body larger than this (MiB) runs as a job (202 + job id) instead of in the request.
    import_job_mb: int = Field(default=64, ge=0)
    # PostgreSQL connection pool of each server process. A request that waits longer than
    # db_pool_timeout for a connection gets "busy" (HTTP 503, socket error) instead of a 500.
    # Most of the 30 are kept once opened: an overflow connection is closed when returned, and
    # opening one runs asyncpg's connect (TLS context, ~/.pgpass lookups) on the event loop,
    # 20-100 ms stalls measured when 200 sockets joined at once (docs/performance.md).
    db_pool_size: int = Field(default=25, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_pool_timeout: float = Field(default=30.0, gt=0)
    # argon2 cost; the defaults are argon2-cffi's recommended ones. Tests lower them for speed.
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=8)
    # onnxruntime threads per worker for the image network (workers share the cores with serving).
    ai_threads: int = Field(default=1, ge=1)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # Accept a comma-separated string as well as a JSON list.
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'labelhub.db'}"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_json_bytes(self) -> int:
        return self.max_json_kb * 1024

    @property
    def image_dir(self) -> Path:
        return self.data_dir / "images"

    def ensure_data_dir(self) -> None:
        """Create the data dir readable by this user only (secrets, the SQLite file, images)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def model_dir(self) -> Path:
        """Where the network converted from the installed weights is cached."""
        return self.data_dir / "models"

    def resolved_secret_key(self) -> str:
        """The signing key: from the environment, else generated once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.ensure_data_dir()
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
