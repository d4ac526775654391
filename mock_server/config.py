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
RATE_LIMITS = ("off", "real")
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
    max_body_bytes: int = 10 * 1024 * 1024
    max_predictions: int = 200_000
    image_cache_bytes: int = 256 * 1024 * 1024
    access_log: bool = False

    def __post_init__(self) -> None:
        if self.clock not in CLOCK_MODES:
            raise SettingsError(
                f"clock must be one of {', '.join(CLOCK_MODES)}, not {self.clock!r}"
            )
        if not 0 <= self.time_scale <= MAX_TIME_SCALE:
            raise SettingsError(
                f"time_scale must be 0 to {MAX_TIME_SCALE:g}, not {self.time_scale}"
            )
        if self.rate_limits not in RATE_LIMITS:
            raise SettingsError(
                f"rate_limits must be one of {', '.join(RATE_LIMITS)}, not {self.rate_limits!r}"
            )
        if self.clock_stall_timeout is not None and not self.clock_stall_timeout > 0:
            raise SettingsError(
                f"clock_stall_timeout must be more than 0, not {self.clock_stall_timeout}"
            )
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be 0 to 65535, not {self.port}")

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


# Fields whose command-line flag has another name; both variables work, the flag's name wins.
_FLAG_NAMES = {
    "api_tokens": "API_TOKEN",
    "fixtures_dir": "FIXTURES",
    "spec_path": "SPEC",
    "scenarios_path": "SCENARIOS",
}


def _parse(name: str, raw: str) -> object:
    if name in ("port", "seed", "max_body_bytes", "max_predictions", "image_cache_bytes"):
        return int(raw)
    if name in ("time_scale", "clock_stall_timeout"):
        return float(raw)
    if name in ("fixtures_dir", "spec_path", "scenarios_path"):
        return Path(raw)
    if name == "api_tokens":
        return tuple(t.strip() for t in raw.split(",") if t.strip())
    if name == "access_log":
        return raw.lower() in ("1", "true", "yes", "on")
    return raw
