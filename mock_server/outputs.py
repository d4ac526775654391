"""A prediction's output files: rendered through the app's image cache (off the event loop), and
inlined as `data:` URIs when `--output-urls data` asks for them instead of HTTP URLs."""

from __future__ import annotations

import asyncio
import base64

from mock_server import images
from mock_server.context import AppContext
from mock_server.lifecycle import State
from mock_server.models import Prediction, Status


async def output_file(c: AppContext, p: Prediction, index: int) -> bytes:
    """The encoded image `index` of `p`: rendered on first use, then served from the cache."""
    prompt = str(p.input.get("prompt", ""))
    lines = images.prediction_lines(prompt, p.model, p.width, p.height, index)
    seed = f"{p.id}/{index}"
    return await c.images.get(
        seed, lambda: images.render(p.width, p.height, p.fmt, p.quality, lines=lines, seed=seed)
    )


def data_uri(fmt: str, data: bytes) -> str:
    """`data:image/<type>;base64,...`, the form both official clients decode into a file."""
    return f"data:{images.MEDIA_TYPES[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


async def inline_outputs(c: AppContext, p: Prediction, state: State) -> list[str] | None:
    """The output as `data:` URIs when the server inlines outputs and `p` has succeeded; None
    otherwise (the output is then the HTTP file URLs, or null)."""
    if (
        c.settings.output_urls != "data"
        or state.status is not Status.SUCCEEDED
        or state.data_removed
    ):
        return None
    files = await asyncio.gather(*(output_file(c, p, i) for i in range(p.outputs)))
    return [data_uri(p.fmt, data) for data in files]
