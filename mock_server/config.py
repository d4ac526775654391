"""Settings: every knob of the server in one frozen dataclass.

Only `from_env` reads the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENV_PREFIX = "MOCK_SERVER_"
CLOCK_MODES = ("time", "polls", "manual")
OUTPUT_URLS = ("http", "data")
RATE_LIMITS = ("off", "real")
WEBHOOK_MODES = ("send", "record")
SERVERS = ("uvicorn", "granian")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
MAX_TIME_SCALE = 1000.0  # beyond it, timings overflow date arithmetic


class SettingsError(ValueError):
    """A setting is out of range; the message names it."""


def bundled(name: str) -> Path:
    """A file of the contract or fixtures: inside the package in a wheel (`mock_server/_data/`,
    put there by the build; see pyproject.toml), beside it in a source checkout."""
    inside = resources.files("mock_server").joinpath("_data", name)
    if inside.is_file() or inside.is_dir():
        return Path(str(inside))
    return PROJECT_DIR / name


@dataclass(frozen=True)
class Settings:
    """Server settings. Every field has a default; tests build `Settings(...)` directly."""

    host: str = "127.0.0.1"
    port: int = 8000
    seed: int = 0
    clock: str = "time"  # time | polls | manual (see timeline.py)
    time_scale: float = 1.0
    retention: float | None = None  # seconds after completion that input, output, logs are kept
    rate_limits: str = "off"  # off | real: the real service's per-token limits (ratelimit.py)
    # Manual clock only: a create held by `Prefer: wait`, or a client polling a running
    # prediction, for this many real seconds while nobody moves the clock gets a 409 saying so.
    clock_stall_timeout: float | None = None
    fixtures_dir: Path = field(default_factory=lambda: bundled("fixtures"))
    spec_path: Path = field(default_factory=lambda: bundled("openapi.yaml"))
    scenarios_path: Path | None = None  # rules loaded at start (examples/scenarios.yaml shows how)
    public_url: str | None = None
    api_tokens: tuple[str, ...] = ()
    admin_token: str | None = None
    # Hosts a create's `webhook` may name (422 otherwise); empty: any host.
    webhook_allow_hosts: tuple[str, ...] = ()
    webhooks: str = "send"  # send | record: signed and listed in /__admin/webhooks, never sent
    # Where state lives: `memory` (this process) or `redis://HOST:PORT/DB`, shared by every
    # worker and replica (redis_store/); `workers` > 1 needs Redis.
    store: str = "memory"
    workers: int = 1
    # The HTTP server: uvicorn (httptools, uvloop), or granian (the `granian` extra), which
    # answers about 1.7 times the gets per second here (make bench measures both).
    server: str = "uvicorn"
    redis_timeout: float = 2.0  # seconds a Redis command may take before the request gets a 503
    max_body_bytes: int = 10 * 1024 * 1024
    max_predictions: int = 200_000
    image_cache_bytes: int = 256 * 1024 * 1024
    # Files API (uploads.py): the largest upload (and, with fetch_inputs, the largest input image
    # fetched) and how many files one token may keep at once.
    max_file_bytes: int = 10 * 1024 * 1024
    max_files: int = 1000
    # Fetch http(s) input images that are not this server's own (inputs.py). Off by default, the
    # server stays offline: such an image's size is unknown and the model's fallback applies.
    fetch_inputs: bool = False
    fetch_timeout: float = 10.0
    access_log: bool = False
    # How outputs appear: `http` file URLs, or `data` URIs inline (the official clients wrap only
    # `https:` and `data:` outputs as file objects).
    output_urls: str = "http"
    # HTTPS: `tls` makes a local CA and a certificate for 127.0.0.1/localhost at start and writes
    # the CA to `tls_ca_file` (default <tempdir>/mock-server-ca.pem); `tls_cert`/`tls_key` serve
    # the user's own instead (see tls.py).
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def https(self) -> bool:
        """Whether the server listens with TLS (generated or the user's own certificate)."""
        return self.tls or self.tls_cert is not None

    def __post_init__(self) -> None:
        if self.clock not in CLOCK_MODES:
            raise SettingsError(
                f"clock must be one of {', '.join(CLOCK_MODES)}, not {self.clock!r}"
            )
        if not 0 <= self.time_scale <= MAX_TIME_SCALE:
            raise SettingsError(
                f"time_scale must be 0 to {MAX_TIME_SCALE:g}, not {self.time_scale}"
            )
        if self.webhooks not in WEBHOOK_MODES:
            raise SettingsError(
                f"webhooks must be one of {', '.join(WEBHOOK_MODES)}, not {self.webhooks!r}"
            )
        if self.rate_limits not in RATE_LIMITS:
            raise SettingsError(
                f"rate_limits must be one of {', '.join(RATE_LIMITS)}, not {self.rate_limits!r}"
            )
        if self.retention is not None and not self.retention > 0:
            raise SettingsError(f"retention must be more than 0 seconds, not {self.retention}")
        if self.clock_stall_timeout is not None and not self.clock_stall_timeout > 0:
            raise SettingsError(
                f"clock_stall_timeout must be more than 0, not {self.clock_stall_timeout}"
            )
        for name in ("max_file_bytes", "max_files"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.store != "memory" and not self.store.startswith(REDIS_SCHEMES):
            raise SettingsError(
                f"store must be memory or a redis:// URL (redis://HOST:PORT/DB), not {self.store!r}"
            )
        if self.server not in SERVERS:
            raise SettingsError(f"server must be one of {', '.join(SERVERS)}, not {self.server!r}")
        if self.workers < 1:
            raise SettingsError(f"workers must be at least 1, not {self.workers}")
        if self.workers > 1 and self.store == "memory":
            raise SettingsError(
                f"workers {self.workers} need a shared store: add --store redis://HOST:PORT/0 "
                "(each worker would otherwise keep its own predictions)"
            )
        if not self.redis_timeout > 0:
            raise SettingsError(f"redis_timeout must be more than 0, not {self.redis_timeout}")
        if self.max_predictions < 1:
            raise SettingsError(f"max_predictions must be at least 1, not {self.max_predictions}")
        if not self.fetch_timeout > 0:
            raise SettingsError(f"fetch_timeout must be more than 0, not {self.fetch_timeout}")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be 0 to 65535, not {self.port}")
        if self.output_urls not in OUTPUT_URLS:
            raise SettingsError(f"output_urls must be http or data, not {self.output_urls!r}")
        if self.tls_key is not None and self.tls_cert is None:
            raise SettingsError("tls_key needs tls_cert (the certificate it belongs to)")
        if self.tls_cert is not None and self.tls_ca_file is not None:
            raise SettingsError(
                "tls_ca_file is where --tls writes the CA it makes; with tls_cert, clients trust "
                "the CA that signed your certificate"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """Settings from `MOCK_SERVER_*` variables in `environ`, then `overrides` (not None)."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if f.name in _FLAG_NAMES:  # the flag's own name (--fixtures -> MOCK_SERVER_FIXTURES)
                raw = environ.get(ENV_PREFIX + _FLAG_NAMES[f.name], raw)
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def to_env(settings: Settings) -> dict[str, str]:
    """The `MOCK_SERVER_*` variables that `from_env` reads back as `settings` (how --workers
    hands the settings to each worker process)."""
    env: dict[str, str] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is None:
            continue
        if isinstance(value, tuple):
            text = ",".join(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[ENV_PREFIX + f.name.upper()] = text
    return env


# Fields whose command-line flag has another name; both variables work, the flag's name wins.
_FLAG_NAMES = {
    "api_tokens": "API_TOKEN",
    "webhook_allow_hosts": "WEBHOOK_ALLOW_HOST",
    "fixtures_dir": "FIXTURES",
    "spec_path": "SPEC",
    "scenarios_path": "SCENARIOS",
}
_TLS_PATHS = ("tls_ca_file", "tls_cert", "tls_key")


def _parse(name: str, raw: str) -> object:
    if name in (
        "port",
        "seed",
        "max_body_bytes",
        "max_predictions",
        "image_cache_bytes",
        "max_file_bytes",
        "max_files",
        "workers",
    ):
        return int(raw)
    if name in ("time_scale", "clock_stall_timeout", "fetch_timeout", "retention", "redis_timeout"):
        return float(raw)
    if name in ("fixtures_dir", "spec_path", "scenarios_path", *_TLS_PATHS):
        return Path(raw)
    if name in ("api_tokens", "webhook_allow_hosts"):
        return tuple(t.strip() for t in raw.split(",") if t.strip())
    if name in ("access_log", "tls", "fetch_inputs"):
        return raw.lower() in ("1", "true", "yes", "on")
    return raw
