"""Cumulative prediction logs in the real models' style, so the clients' progress parsing works.

Both official clients read progress from the last line matching
`^\\s*(\\d+)%\\s*\\|.+?\\|\\s*(\\d+)/(\\d+)` (tqdm's format).
cog-flux (flux-schnell, flux-dev) also prints the seed and a safety-checker line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from mock_server.lifecycle import State
from mock_server.models import Prediction, Status

_BLOCKS = " ▏▎▍▌▋▊▉█"


@dataclass(frozen=True, slots=True)
class LogStyle:
    style: str  # "cog-flux" | "bfl"
    steps_field: str | None
    steps_default: int


def seed_of(p: Prediction) -> int:
    """The seed the model 'used': the input's, else one derived from the id (stable)."""
    seed = p.input.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed
    return int.from_bytes(hashlib.blake2b(p.id.encode(), digest_size=4).digest(), "big") % 100_000


def _bar(k: int, n: int) -> str:
    filled = 10 * k / n
    full = int(filled)
    partial = _BLOCKS[int((filled - full) * 8)] if full < 10 else ""
    return ("█" * full + partial).ljust(10)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _tqdm(k: int, n: int, per_step: float) -> str:
    pct = 100 * k // n
    if k == 0:
        return f"{pct:3d}%|{_bar(k, n)}| {k}/{n} [00:00<?, ?it/s]"
    rate = 1 / per_step if per_step > 0 else 99.99
    return (
        f"{pct:3d}%|{_bar(k, n)}| {k}/{n} "
        f"[{_clock(k * per_step)}<{_clock((n - k) * per_step)}, {rate:.2f}it/s]"
    )


def step_count(p: Prediction, style: LogStyle) -> int:
    """How many tqdm steps the run shows (a new log line at each)."""
    steps = p.input.get(style.steps_field) if style.steps_field else None
    n = steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else 0
    return min(n or style.steps_default, 1000)


def logs_at(p: Prediction, state: State, style: LogStyle) -> str:
    if state.status is Status.STARTING or state.started_at is None:
        return ""
    n = step_count(p, style)
    done = state.status is Status.SUCCEEDED
    k = n if done else min(n, int(state.progress * n))
    quantized = p.input.get("go_fast", True) is not False
    return _render(
        style.style,
        seed_of(p),
        quantized,
        n,
        k,
        p.predict_s / n,
        p.outputs,
        p.width,
        p.height,
        done,
    )


@lru_cache(maxsize=8192)
def _render(
    style: str,
    seed: int,
    quantized: bool,
    n: int,
    k: int,
    per_step: float,
    outputs: int,
    width: int,
    height: int,
    done: bool,
) -> str:
    """The log text for one point of a run (cached: many reads see the same point)."""
    lines = [f"Using seed: {seed}"]
    if style == "cog-flux":
        if quantized:
            lines.append("running quantized prediction")
    else:
        lines.append(f"Generating {width}x{height} image")
    lines.extend(_tqdm(i, n, per_step) for i in range(k + 1))
    if done:
        if style == "cog-flux":
            lines.append(f"Total safe images: {outputs} out of {outputs}")
        else:
            lines.append(f"Generated image in {per_step * n:.2f}s")
    return "\n".join(lines) + "\n"
