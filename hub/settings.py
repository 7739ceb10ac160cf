"""One validated settings object, read from ``COHORT_*`` environment variables."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "COHORT_"
REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(BaseSettings):
    """Every knob of a hub process. Unset values fall back to the embedded default."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("var"), description="SQLite file, local media, secret key")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default sqlite+aiosqlite in data_dir"
    )
    redis_url: str | None = Field(
        default=None, description="redis://…; unset means the in-process broker"
    )
    redis_prefix: str = Field(default="cohort", description="namespace for Redis keys and channels")
    secret_key: str | None = Field(
        default=None, min_length=32, description="signs tokens; generated in data_dir when unset"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_base_url: str | None = Field(default=None, description="e.g. https://cohort.example")
    cookie_secure: bool | None = Field(
        default=None, description="Secure cookies; default: true when public_base_url is https"
    )
    trust_forwarded_for: bool = Field(
        default=False, description="take the client address from X-Forwarded-For (behind a proxy)"
    )
    max_json_bytes: int = Field(default=1 << 20, ge=1024, description="largest JSON request body")
    max_upload_bytes: int = Field(default=500 * 1024 * 1024, ge=1024)
    access_token_ttl: int = Field(default=900, ge=30, le=3600, description="seconds")
    refresh_token_ttl: int = Field(default=30 * 24 * 3600, ge=3600, description="seconds")
    refresh_grace_seconds: float = Field(
        default=10.0, ge=0, le=10, description="previous refresh token still accepted (two tabs)"
    )
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_account_window: int = Field(default=900, ge=1, description="seconds")
    login_max_failures_per_address: int = Field(default=30, ge=1)
    login_address_window: int = Field(default=300, ge=1, description="seconds")
    storage: Literal["local", "cloudinary"] = Field(
        default="local", description="where media lives: local disk or Cloudinary"
    )
    media_dir: Path | None = Field(default=None, description="local media; default data_dir/media")
    cloudinary_url: str | None = Field(
        default=None, description="cloudinary://key:secret@cloud (storage=cloudinary)"
    )
    playback_url_ttl: int = Field(default=4 * 3600, ge=60, description="seconds")
    transcode_preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"
    ] = Field(default="veryfast", description="x264 preset of every rung")
    transcode_part_seconds: int = Field(
        default=300,
        ge=0,
        description="videos over 1.5x this are encoded in parts by several workers (0: never)",
    )
    worker_concurrency: int = Field(default=1, ge=1, le=16, description="transcodes at once")
    job_attempts: int = Field(default=3, ge=1, le=10)
    job_backoff_seconds: float = Field(default=5.0, ge=0)
    job_lock_seconds: float = Field(
        default=30.0, ge=1, description="a worker silent this long loses its job to another"
    )
    upload_expiry_hours: int = Field(default=24, ge=1, description="unfinished resumable uploads")
    signup_grant_coins: int = Field(default=100, ge=0, description="coins every new account gets")
    teacher_share_percent: int = Field(
        default=70, ge=0, le=100, description="share of a course's price paid to its teacher"
    )
    community_join_reward: int = Field(
        default=10, ge=0, description="coins for joining a community, once per user and community"
    )
    payment_webhook_secret: str | None = Field(
        default=None, min_length=16, description="signs provider webhooks; derived when unset"
    )
    watch_party_idle_end: float = Field(
        default=300.0,
        ge=1.0,
        le=86_400.0,
        description="seconds a watch party may have nobody connected before it ends",
    )
    janus_url: str | None = Field(
        default=None,
        description="Janus HTTP API (e.g. http://127.0.0.1:8088/janus): the SFU for large calls",
    )
    janus_public_url: str | None = Field(
        default=None, description="the Janus API URL as browsers reach it; janus_url when unset"
    )
    janus_admin_secret: str | None = Field(
        default=None, description="the VideoRoom plugin's admin_key (needed to create rooms)"
    )
    janus_api_secret: str | None = Field(
        default=None, description="Janus's api_secret, when its general section sets one"
    )
    call_mesh_max: int = Field(
        default=4, ge=2, le=16, description="largest call run as a mesh; more moves to the SFU"
    )
    ws_send_buffer: int = Field(
        default=1 << 20,
        ge=1024,
        le=1 << 30,
        description="bytes a WebSocket may hold unsent before it is cut (4008)",
    )
    ws_max_frame_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 << 20, description="largest frame a client may send"
    )
    kernel_gateway_url: str | None = Field(
        default=None,
        description="a Jupyter server or Enterprise Gateway for kernels; unset: a local one",
    )
    kernel_gateway_token: str | None = Field(
        default=None, description="token of the kernel gateway (Authorization: token …)"
    )
    kernel_name: str | None = Field(
        default=None,
        description="kernel spec to start; default the sandboxed cohort-python (python3 remote)",
    )
    kernels_dir: Path | None = Field(
        default=None, description="local kernels' working directories; default data_dir/kernels"
    )
    kernel_python: str | None = Field(
        default=None, description="interpreter of local kernels (with ipykernel); default the hub's"
    )
    kernel_cpu_seconds: int = Field(default=5, ge=1, description="CPU seconds per run")
    kernel_cpu_total_seconds: int = Field(
        default=600, ge=1, description="CPU seconds over a kernel's life (then it restarts)"
    )
    kernel_memory_bytes: int = Field(
        default=1 << 30, ge=64 << 20, description="address space of a kernel process"
    )
    kernel_processes: int = Field(
        default=64, ge=8, description="processes and threads of one project's kernel"
    )
    kernel_file_bytes: int = Field(default=1 << 20, ge=1024, description="largest file written")
    kernel_output_bytes: int = Field(
        default=1 << 20, ge=1024, description="output kept per run; the rest is cut"
    )
    kernel_run_seconds: float = Field(
        default=60.0, gt=0, description="wall time of a run before it is stopped"
    )
    kernel_idle_seconds: float = Field(
        default=600.0, gt=0, description="an idle kernel is shut down after this long"
    )
    kernel_uid_base: int = Field(
        default=200_000, ge=1000, description="local kernels run as uid base + project id"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    web_dist: Path = Field(default=REPO_ROOT / "web" / "dist", description="built front end")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not (
            value.startswith("postgresql+asyncpg://") or value.startswith("sqlite+aiosqlite://")
        ):
            raise ValueError("use postgresql+asyncpg://… or sqlite+aiosqlite:///path")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://host:port/db")
        return value or None

    @field_validator("kernel_gateway_url")
    @classmethod
    def _gateway_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else None

    @field_validator("public_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        # Derived defaults are computed once here so every reader sees the same values.
        if self.database_url is None:
            db_file = (self.data_dir / "cohort.db").resolve()
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{db_file}")
        if self.media_dir is None:
            object.__setattr__(self, "media_dir", self.data_dir / "media")
        if self.kernels_dir is None:
            object.__setattr__(self, "kernels_dir", self.data_dir / "kernels")
        if self.storage == "cloudinary" and not self.cloudinary_url:
            raise ValueError("COHORT_CLOUDINARY_URL is required when COHORT_STORAGE=cloudinary")
        if self.cookie_secure is None:
            secure = bool(self.public_base_url and self.public_base_url.startswith("https://"))
            object.__setattr__(self, "cookie_secure", secure)
        return self

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def media_root(self) -> Path:
        assert self.media_dir is not None
        return self.media_dir

    @property
    def kernels_root(self) -> Path:
        assert self.kernels_dir is not None
        return self.kernels_dir

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.host}:{self.port}"

    def signing_key(self) -> str:
        """The secret that signs tokens: the configured one, else ``data_dir/secret``."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two hubs starting at once must not overwrite each other's key.
            try:
                with path.open("x", encoding="ascii") as fh:
                    fh.write(secrets.token_urlsafe(48))
                path.chmod(0o600)
            except FileExistsError:
                pass
        return path.read_text(encoding="ascii").strip()


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; overrides win over it.

    Raises:
        SettingsError: naming each bad variable and what is wrong with it.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
