"""Server settings, from ``RAPPORT_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("var/rapport.db")


class Settings(BaseSettings):
    """Everything the server can be told. Each field is ``RAPPORT_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="RAPPORT_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://…",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The URL clients use to reach this server; JWT audiences derive from it.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Key for access tokens (≥ 32 chars); unset: generated once, kept in the DB.",
    )
    access_token_ttl: int = Field(default=900, ge=60, le=86400)
    assertion_max_age: int = Field(default=300, ge=30, le=3600)
    clock_skew_seconds: int = Field(default=300, ge=0, le=3600)
    max_body_bytes: int = Field(default=128 * 1024, ge=1024)
    max_batch: int = Field(default=128, ge=1, le=10000, description="Write units per commit.")
    state_cache: int = Field(
        default=4096,
        ge=0,
        description="Parsed connection states kept in memory for sends (0: none).",
    )
    idempotency_ttl: int = Field(default=86400, ge=60)
    log_level: str = "info"
    telemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry (needs an OpenTelemetry SDK set up).",
    )
    db_pool_size: int = Field(default=10, ge=1)
    broadcast_writers: int = Field(
        default=3,
        ge=1,
        le=8,
        description="Broadcast chunks written at once, each in its own transaction, shared "
        "by this instance's broadcasts (PostgreSQL; SQLite has one writer).",
    )
    run_worker: bool = Field(
        default=True,
        description="Run a webhook delivery worker inside this server process "
        "(turn off when running `rapport worker` processes instead).",
    )
    webhook_timeout: float = Field(default=10.0, gt=0, le=60, description="Seconds per attempt.")
    webhook_retry_scale: float = Field(
        default=1.0,
        gt=0,
        le=1.0,
        description="Multiplies the retry schedule (tests shrink ~3 days to seconds).",
    )
    webhook_concurrency: int = Field(default=16, ge=1, le=256, description="Parallel attempts.")
    webhook_dev_mode: bool = Field(
        default=False,
        description="Allow http:// webhook URLs and loopback targets (development only).",
    )
    stream_heartbeat: float = Field(default=15.0, gt=0, description="SSE heartbeat seconds.")
    stream_poll: float = Field(
        default=5.0, gt=0, description="Readers re-read this often even without a wake-up."
    )
    migrate_on_start: bool | None = Field(
        default=None, description="Apply migrations at start-up (default: only for SQLite)."
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def token_audience(self) -> str:
        return self.public_url.rstrip("/") + "/v1/oauth/token"
