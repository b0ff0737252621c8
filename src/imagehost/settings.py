"""All configuration, read once from the environment and passed around as one frozen object."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imagehost.images.formats import STORED_NAMES

DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@localhost:5432/images_db"
# Room for the multipart envelope (boundaries, part headers) around a file of the maximum size.
MULTIPART_SLACK_BYTES = 64 * 1024
SUPPORTED_LANGUAGES = ("en", "ru")


class SettingsError(ValueError):
    """A setting in the environment has a value we cannot use."""


def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (a container's cpuset too, not a CPU quota)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_web_concurrency(cores: int) -> int:
    """One app process per two cores: on 2 cores a second one gained 13 % on small uploads, nothing on
    large ones (the image workers need the cores), and cost 70 MB (issue 18's measurements)."""
    return max(1, cores // 2)


def _int(value: str, name: str, minimum: int = 1) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise SettingsError(f"{name} must be at least {minimum}")
    return number


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(value: str, name: str) -> int:
    """Seconds from `30m`, `12h`, `1d`, `2w` (a bare number is hours); `0` or `off` turns the job off."""
    text = value.strip().lower()
    if text in {"0", "off"}:
        return 0
    unit = text[-1:] if text[-1:] in _DURATION_UNITS else "h"
    number = text[:-1] if text[-1:] in _DURATION_UNITS else text
    try:
        seconds = round(float(number) * _DURATION_UNITS[unit])
    except ValueError:
        raise SettingsError(f"{name} must be a duration such as 30m, 12h, 1d or 1w, not {value!r}") from None
    if seconds < 60:
        raise SettingsError(f"{name} must be at least one minute (or 0 for off)")
    return seconds


def _list(value: str) -> tuple[str, ...]:
    value = value.strip()
    if value.startswith("["):
        return tuple(str(item).strip() for item in json.loads(value) if str(item).strip())
    return tuple(part.strip() for part in value.split(",") if part.strip())


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _origins(value: str, name: str) -> tuple[str, ...]:
    """Origins separated by spaces or commas (`https://a.example, https://b.example:8443`), or `*`.
    Each goes into a CSP header as written, so nothing but a scheme, a host and a port may pass."""
    origins = tuple(dict.fromkeys(part.rstrip("/").lower() for part in re.split(r"[\s,]+", value) if part))
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise SettingsError(f"{name}: {origin!r} is not an origin such as https://blog.example (or *)")
    return origins


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    images_dir: Path = Path("images")
    # Where the images' bytes live: "local" (IMAGES_DIR) or "s3" (an S3-compatible bucket, storage/s3.py).
    storage: str = "local"
    s3_endpoint_url: str = ""  # empty: AWS S3 itself
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = field(default="", repr=False)
    s3_secret_access_key: str = field(default="", repr=False)
    s3_prefix: str = ""  # keys under this folder of the bucket ("" or e.g. "imagehost/")
    log_dir: Path = Path("logs")
    max_upload_bytes: int = 5 * 1024 * 1024
    max_pixels: int = 50_000_000
    allowed_formats: tuple[str, ...] = STORED_NAMES  # JPEG, PNG, GIF (images/formats.py)
    public_base_url: str = ""
    images_base_url: str = ""
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    admin_token: str = field(default="", repr=False)
    default_language: str = "en"
    accel_downloads: bool = False
    secure_cookies: bool = False
    page_size: int = 10
    recent_uploads_kept: int = 20
    thumbnail_sizes: tuple[int, ...] = (160, 480, 1280)
    strip_metadata: bool = True
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    default_quality: int = 85
    api_max_upload_bytes: int = 20 * 1024 * 1024
    # App (uvicorn) processes of this instance (`python -m imagehost serve`); from the environment the
    # default is default_web_concurrency(the cores), and each process gets its own worker pool.
    web_concurrency: int = 1
    # This instance's name among several sharing LOG_DIR: its log is app-<name>.log (empty: app.log).
    instance_name: str = ""
    # Redis or Valkey for what the processes and instances share (rate limits); empty: PostgreSQL.
    redis_url: str = field(default="", repr=False)
    worker_processes: int = 2
    worker_memory_limit_bytes: int = 1024 * 1024 * 1024
    worker_time_limit_seconds: float = 30.0
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    oidc_roles_claim: str = "realm_access.roles"
    role_viewer: str = "appviewer"
    role_user: str = "appuser"
    role_admin: str = "appadmin"
    # None: open without OIDC (as before accounts existed), closed with it.
    anonymous_browse: bool | None = None
    anonymous_upload: bool | None = None
    session_idle_seconds: int = 2 * 3600
    session_absolute_seconds: int = 12 * 3600
    # Personal tokens are suspended while their owner has not signed in for this many days (0: off).
    token_owner_max_age_days: int = 0
    # Per client address and minute; 0 turns a limit off.
    login_rate_limit: int = 20
    upload_rate_limit: int = 60
    # Originals, thumbnails and downloads only for those who may browse (nginx asks the app).
    private_images: bool = False
    # app.log is rotated past this size, keeping this many older files (app.log.1 is the newest).
    log_max_bytes: int = 1024 * 1024
    log_backups: int = 5
    # The longest one request body (an upload) may take to arrive, however slowly it trickles in.
    upload_read_timeout_seconds: float = 60.0
    # Backups (`python -m imagehost backup`, and the schedule): where, how often, how many kept.
    backup_dir: Path = Path("backups")
    backup_interval_seconds: int = 86400
    backup_keep: int = 7
    # Signs each backup's manifest (HMAC-SHA256); a restore then asks --trust for any other backup.
    backup_signing_key: str = field(default="", repr=False)
    scrub_interval_seconds: int = 7 * 86400
    # ZIP archives (POST /api/upload): the body limit and deadline of that route, and what one archive may hold.
    zip_max_bytes: int = 500 * 1024 * 1024
    zip_read_timeout_seconds: float = 600.0
    zip_max_entries: int = 2000
    zip_max_uncompressed_bytes: int = 4 * 1024 * 1024 * 1024
    zip_max_ratio: int = 100
    zip_max_depth: int = 8
    # Entries in WebP, BMP or TIFF are converted to PNG or JPEG (in the workers) instead of refused.
    zip_convert_formats: bool = False
    # How long POST /api/upload waits for a ZIP's job before answering 202 with the job's URL.
    zip_wait_seconds: float = 50.0
    # Jobs of the queue (ZIP batches) this process runs at once; 0: none here, another instance's
    # workers take them.
    job_concurrency: int = 2
    # A worker silent this long is taken as dead and its job queued again (heartbeats every sixth).
    job_stalled_seconds: int = 30
    # Exports (link sheets, catalogue sheets, album ZIPs): how many run at once in this process (more
    # get 503 with Retry-After), nginx's read and send timeouts on their routes, and how many rows of
    # a catalogue XLSX get a thumbnail picture with `with_thumbnails=1`.
    export_concurrency: int = 2
    export_timeout_seconds: int = 600
    export_thumbnail_rows: int = 1000
    # Who may show the embeds (/embed/...) in a frame or fetch their fragments: origins such as
    # https://blog.example, or `*` for any site. The site's own origin always may.
    embed_origins: tuple[str, ...] = ("*",)
    # GET /metrics: readable with this Bearer token (empty: admins only). nginx answers 404 for it
    # from outside unless metrics_public (deploy/nginx-env.sh reads METRICS_PUBLIC by the same rule).
    metrics_token: str = field(default="", repr=False)
    metrics_public: bool = False

    @property
    def in_bucket(self) -> bool:
        """STORAGE=s3: the images' files are not in IMAGES_DIR."""
        return self.storage == "s3"

    @property
    def log_file_name(self) -> str:
        """This instance's action log in LOG_DIR (rotated to <name>.1, <name>.2, ...)."""
        return f"app-{self.instance_name}.log" if self.instance_name else "app.log"

    @property
    def max_request_bytes(self) -> int:
        """Largest request body accepted anywhere (Litestar and nginx): one file plus its envelope."""
        return self.max_upload_bytes + MULTIPART_SLACK_BYTES

    @property
    def zip_max_request_bytes(self) -> int:
        return self.zip_max_bytes + MULTIPART_SLACK_BYTES

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def anonymous_may_browse(self) -> bool:
        return (not self.oidc_enabled) if self.anonymous_browse is None else self.anonymous_browse

    @property
    def anonymous_may_upload(self) -> bool:
        return (not self.oidc_enabled) if self.anonymous_upload is None else self.anonymous_upload

    @property
    def api_max_request_bytes(self) -> int:
        return self.api_max_upload_bytes + MULTIPART_SLACK_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if "DATABASE_URL" in env:
            values["database_url"] = env["DATABASE_URL"]
        if "IMAGES_DIR" in env:
            values["images_dir"] = Path(env["IMAGES_DIR"])
        if "LOG_DIR" in env:
            values["log_dir"] = Path(env["LOG_DIR"])
        if "MAX_UPLOAD_BYTES" in env:
            values["max_upload_bytes"] = _int(env["MAX_UPLOAD_BYTES"], "MAX_UPLOAD_BYTES")
        if "MAX_PIXELS" in env:
            values["max_pixels"] = _int(env["MAX_PIXELS"], "MAX_PIXELS")
        if "ALLOWED_FORMATS" in env:
            formats = tuple(name.upper() for name in _list(env["ALLOWED_FORMATS"]))
            if not formats:
                raise SettingsError("ALLOWED_FORMATS must name at least one format")
            if unknown := [name for name in formats if name not in STORED_NAMES]:
                known = ", ".join(STORED_NAMES)
                raise SettingsError(f"ALLOWED_FORMATS: {', '.join(unknown)} unknown; it takes {known}")
            values["allowed_formats"] = formats
        for name in ("PUBLIC_BASE_URL", "IMAGES_BASE_URL"):
            if env.get(name):
                values[name.lower()] = env[name].rstrip("/")
        if env.get("SECRET_KEY"):
            values["secret_key"] = env["SECRET_KEY"]
        if env.get("ADMIN_TOKEN"):
            values["admin_token"] = env["ADMIN_TOKEN"]
        if "DEFAULT_LANGUAGE" in env:
            language = env["DEFAULT_LANGUAGE"].strip().lower()
            if language not in SUPPORTED_LANGUAGES:
                raise SettingsError(f"DEFAULT_LANGUAGE must be one of {', '.join(SUPPORTED_LANGUAGES)}")
            values["default_language"] = language
        if "ACCEL_DOWNLOADS" in env:
            values["accel_downloads"] = _bool(env["ACCEL_DOWNLOADS"], "ACCEL_DOWNLOADS")
        if env.get("SECURE_COOKIES", "").strip():
            values["secure_cookies"] = _bool(env["SECURE_COOKIES"], "SECURE_COOKIES")
        elif str(values.get("public_base_url", "")).startswith("https://"):
            values["secure_cookies"] = True
        if "THUMBNAIL_SIZES" in env:
            sizes = tuple(sorted({_int(size, "THUMBNAIL_SIZES", 16) for size in _list(env["THUMBNAIL_SIZES"])}))
            values["thumbnail_sizes"] = sizes
        if "STRIP_METADATA" in env:
            values["strip_metadata"] = _bool(env["STRIP_METADATA"], "STRIP_METADATA")
        if env.get("API_TOKENS"):
            values["api_tokens"] = _list(env["API_TOKENS"])
        if "DEFAULT_QUALITY" in env:
            quality = _int(env["DEFAULT_QUALITY"], "DEFAULT_QUALITY")
            if quality > 95:
                raise SettingsError("DEFAULT_QUALITY must be between 1 and 95")
            values["default_quality"] = quality
        if "API_MAX_UPLOAD_BYTES" in env:
            values["api_max_upload_bytes"] = _int(env["API_MAX_UPLOAD_BYTES"], "API_MAX_UPLOAD_BYTES")
        if storage := env.get("STORAGE", "").strip().lower():
            if storage not in {"local", "s3"}:
                raise SettingsError("STORAGE must be local or s3")
            values["storage"] = storage
        for name in ("S3_ENDPOINT_URL", "S3_BUCKET", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
            if env.get(name, "").strip():
                values[name.lower()] = env[name].strip()
        if prefix := env.get("S3_PREFIX", "").strip().strip("/"):
            values["s3_prefix"] = f"{prefix}/"
        if values.get("storage") == "s3" and not values.get("s3_bucket"):
            raise SettingsError("STORAGE=s3 needs S3_BUCKET")
        if instance := env.get("INSTANCE_NAME", "").strip():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", instance):
                raise SettingsError("INSTANCE_NAME takes letters, digits, '.', '_' and '-' (at most 63)")
            values["instance_name"] = instance
        if redis_url := env.get("REDIS_URL", "").strip():
            if not redis_url.startswith(("redis://", "rediss://", "unix://")):
                raise SettingsError("REDIS_URL must start with redis://, rediss:// or unix://")
            values["redis_url"] = redis_url
        cores = available_cores()
        if env.get("WEB_CONCURRENCY", "").strip():
            values["web_concurrency"] = _int(env["WEB_CONCURRENCY"].strip(), "WEB_CONCURRENCY")
        else:
            values["web_concurrency"] = default_web_concurrency(cores)
        if env.get("WORKER_PROCESSES", "").strip():
            values["worker_processes"] = _int(env["WORKER_PROCESSES"].strip(), "WORKER_PROCESSES", 0)  # 0: threads
        else:  # the cores shared out among the app processes
            values["worker_processes"] = max(1, cores // int(values["web_concurrency"]))
        if "WORKER_MEMORY_LIMIT_MB" in env:
            values["worker_memory_limit_bytes"] = (
                _int(env["WORKER_MEMORY_LIMIT_MB"], "WORKER_MEMORY_LIMIT_MB", 64) << 20
            )
        if "WORKER_TIME_LIMIT_SECONDS" in env:
            values["worker_time_limit_seconds"] = float(
                _int(env["WORKER_TIME_LIMIT_SECONDS"], "WORKER_TIME_LIMIT_SECONDS")
            )
        for name in ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_ROLES_CLAIM"):
            if env.get(name):
                values[name.lower()] = env[name].strip()
        if values.get("oidc_issuer"):
            values["oidc_issuer"] = str(values["oidc_issuer"]).rstrip("/")
        for name in ("ROLE_VIEWER", "ROLE_USER", "ROLE_ADMIN"):
            if env.get(name):
                values[name.lower()] = env[name].strip()
        for name in ("ANONYMOUS_BROWSE", "ANONYMOUS_UPLOAD"):
            if env.get(name, "").strip():
                values[name.lower()] = _bool(env[name], name)
        if "SESSION_IDLE_MINUTES" in env:
            values["session_idle_seconds"] = _int(env["SESSION_IDLE_MINUTES"], "SESSION_IDLE_MINUTES") * 60
        if "SESSION_ABSOLUTE_HOURS" in env:
            values["session_absolute_seconds"] = _int(env["SESSION_ABSOLUTE_HOURS"], "SESSION_ABSOLUTE_HOURS") * 3600
        if "TOKEN_OWNER_MAX_AGE_DAYS" in env:
            values["token_owner_max_age_days"] = _int(env["TOKEN_OWNER_MAX_AGE_DAYS"], "TOKEN_OWNER_MAX_AGE_DAYS", 0)
        if "PRIVATE_IMAGES" in env:
            values["private_images"] = _bool(env["PRIVATE_IMAGES"], "PRIVATE_IMAGES")
        if "LOG_MAX_BYTES" in env:
            values["log_max_bytes"] = _int(env["LOG_MAX_BYTES"], "LOG_MAX_BYTES", 0)
        if "LOG_BACKUPS" in env:
            values["log_backups"] = _int(env["LOG_BACKUPS"], "LOG_BACKUPS", 0)
        if "UPLOAD_READ_TIMEOUT_SECONDS" in env:
            values["upload_read_timeout_seconds"] = float(
                _int(env["UPLOAD_READ_TIMEOUT_SECONDS"], "UPLOAD_READ_TIMEOUT_SECONDS")
            )
        if "BACKUP_DIR" in env:
            values["backup_dir"] = Path(env["BACKUP_DIR"])
        if "BACKUP_INTERVAL" in env:
            values["backup_interval_seconds"] = _duration(env["BACKUP_INTERVAL"], "BACKUP_INTERVAL")
        if "BACKUP_KEEP" in env:
            values["backup_keep"] = _int(env["BACKUP_KEEP"], "BACKUP_KEEP")
        if env.get("BACKUP_SIGNING_KEY"):
            values["backup_signing_key"] = env["BACKUP_SIGNING_KEY"]
        if "SCRUB_INTERVAL" in env:
            values["scrub_interval_seconds"] = _duration(env["SCRUB_INTERVAL"], "SCRUB_INTERVAL")
        for name in ("ZIP_MAX_BYTES", "ZIP_MAX_ENTRIES", "ZIP_MAX_UNCOMPRESSED_BYTES", "ZIP_MAX_RATIO"):
            if name in env:
                values[name.lower()] = _int(env[name], name)
        if "ZIP_MAX_DEPTH" in env:
            values["zip_max_depth"] = _int(env["ZIP_MAX_DEPTH"], "ZIP_MAX_DEPTH")
        if "ZIP_CONVERT_FORMATS" in env:
            values["zip_convert_formats"] = _bool(env["ZIP_CONVERT_FORMATS"], "ZIP_CONVERT_FORMATS")
        if "ZIP_WAIT_SECONDS" in env:
            values["zip_wait_seconds"] = float(_int(env["ZIP_WAIT_SECONDS"], "ZIP_WAIT_SECONDS", 0))
        if "JOB_CONCURRENCY" in env:
            values["job_concurrency"] = _int(env["JOB_CONCURRENCY"], "JOB_CONCURRENCY", 0)
        if "JOB_STALLED_SECONDS" in env:
            values["job_stalled_seconds"] = _int(env["JOB_STALLED_SECONDS"], "JOB_STALLED_SECONDS", 3)
        if "ZIP_READ_TIMEOUT_SECONDS" in env:
            seconds = _int(env["ZIP_READ_TIMEOUT_SECONDS"], "ZIP_READ_TIMEOUT_SECONDS")
            values["zip_read_timeout_seconds"] = float(seconds)
        for name in ("EXPORT_CONCURRENCY", "EXPORT_TIMEOUT_SECONDS"):
            if name in env:
                values[name.lower()] = _int(env[name], name)
        if "EXPORT_THUMBNAIL_ROWS" in env:
            values["export_thumbnail_rows"] = _int(env["EXPORT_THUMBNAIL_ROWS"], "EXPORT_THUMBNAIL_ROWS", 0)
        for name in ("LOGIN_RATE_LIMIT", "UPLOAD_RATE_LIMIT"):
            if name in env:
                values[name.lower()] = _int(env[name], name, 0)
        if env.get("EMBED_ORIGINS", "").strip():
            values["embed_origins"] = _origins(env["EMBED_ORIGINS"], "EMBED_ORIGINS")
        if env.get("METRICS_TOKEN", "").strip():
            values["metrics_token"] = env["METRICS_TOKEN"].strip()
        if "METRICS_PUBLIC" in env:
            values["metrics_public"] = _bool(env["METRICS_PUBLIC"], "METRICS_PUBLIC")
        return cls(**values)  # type: ignore[arg-type]
