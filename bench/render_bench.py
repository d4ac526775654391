"""First-render time of an output image, per format and size, in fresh processes.

    python -m bench.render_bench [--trials 3]

Two measures, the best of the trials each:

- `served_ms`, what a user waits for: a fresh `mock-server --time-scale 0` (started as users
  start it, so its start-up has loaded the encoders and fonts), one flux-2-pro prediction of
  that format and size (`resolution` 1 MP or 4 MP, 1:1), and the time of the first GET of its
  output file over loopback HTTP: the image's first render plus the request around it.
- `first_ms`: a new Python process that imports mock_server.images and times one
  `images.render(...)` call, with the arguments an output gets (quality 80, the prediction's
  lines, seed "<id>/0"), with nothing loaded before (font, codec set-up included); and
  `warm_ms`, a second render in that process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.procs import ROOT, Proc

FORMATS = ("webp", "jpg", "png")
SIZES = {"1MP": (1024, 1024), "4MP": (2048, 2048)}
MODEL = "black-forest-labs/flux-schnell"
SERVED_MODEL = "black-forest-labs/flux-2-pro"
RESOLUTIONS = {"1MP": "1 MP", "4MP": "4 MP"}


def child(fmt: str, width: int, height: int, trial: int) -> dict[str, float]:
    from mock_server import images

    def once(take: int) -> float:
        prompt = f"a cat in a hat, trial {trial}, take {take}"
        lines = images.prediction_lines(prompt, MODEL, width, height, 0)
        started = time.perf_counter()
        data = images.render(width, height, fmt, 80, lines=lines, seed=f"bench{trial}x{take}/0")
        elapsed = (time.perf_counter() - started) * 1000
        assert len(data) > 100
        return elapsed

    first = once(0)
    return {"first_ms": first, "warm_ms": once(1)}


Job = tuple[str, int, int, int]  # format, width, height, trial


def run_child(jobs: list[Job], timeout: float) -> list[dict[str, float]]:
    """Renders in one fresh process, in order: only the first is a first render."""
    args = [sys.executable, "-m", "bench.render_bench", "--child", json.dumps(jobs)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"render child failed: {done.stderr}")
    result: list[dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def served(fmt: str, size: str, trial: int, logs: Path, timeout: float = 60.0) -> float:
    """ms to the first GET of a new output file from a freshly started server (see above)."""
    args = [sys.executable, "-m", "mock_server", "--port", "0", "--time-scale", "0"]
    server = Proc.start(f"render-{fmt}-{size}-{trial}", args, logs, timeout=timeout)
    try:
        body = {
            "input": {
                "prompt": f"a cat in a hat, trial {trial}",
                "resolution": RESOLUTIONS[size],
                "aspect_ratio": "1:1",
                "output_format": fmt,
            }
        }
        headers = {
            "Authorization": "Bearer bench",
            "Content-Type": "application/json",
            "Prefer": "wait",
        }
        create = urllib.request.Request(
            f"{server.url}/v1/models/{SERVED_MODEL}/predictions",
            data=json.dumps(body).encode(),
            headers=headers,
        )
        with urllib.request.urlopen(create, timeout=timeout) as answer:
            prediction = json.loads(answer.read())
        assert prediction["status"] == "succeeded", prediction
        started = time.perf_counter()
        with urllib.request.urlopen(prediction["output"], timeout=timeout) as image:
            data = image.read()
        elapsed = (time.perf_counter() - started) * 1000
        assert len(data) > 100
        return elapsed
    finally:
        server.stop()


def measure(trials: int, *, one_process: bool = False, timeout: float = 120.0) -> dict[str, Any]:
    """{"<fmt>_<size>": {"first_ms": best first render, "warm_ms": ..., "trials": [...]}}.
    A fresh process per render; `one_process` (a smoke run, whose times mean nothing): every
    render in one process, so all but the first are not first renders."""
    jobs: list[Job] = [
        (fmt, width, height, trial)
        for width, height in SIZES.values()
        for fmt in FORMATS
        for trial in range(trials)
    ]
    if one_process:
        results = run_child(jobs, timeout)
    else:
        results = [run_child([job], timeout)[0] for job in jobs]
    by_job = dict(zip(jobs, results, strict=True))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="render-bench-") as logs:
        for size, (width, height) in SIZES.items():
            for fmt in FORMATS:
                runs = [by_job[fmt, width, height, trial] for trial in range(trials)]
                serves = [served(fmt, size, trial, Path(logs)) for trial in range(trials)]
                out[f"{fmt}_{size}"] = {
                    "format": fmt,
                    "width": width,
                    "height": height,
                    "served_ms": min(serves),
                    "first_ms": min(r["first_ms"] for r in runs),
                    "warm_ms": min(r["warm_ms"] for r in runs),
                    "trials": runs,
                    "served_trials": serves,
                    "fresh_process": not one_process,
                }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # JSON list of jobs
    opts = parser.parse_args()
    if opts.child:
        print(json.dumps([child(*job) for job in json.loads(opts.child)]))
        return 0
    for name, row in measure(opts.trials).items():
        print(
            f"{name:<10}{row['served_ms']:>9.1f} ms served{row['first_ms']:>9.1f} ms first"
            f"{row['warm_ms']:>9.1f} ms warm"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
