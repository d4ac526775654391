"""Input images drive the output size: for each kind of input (an uploaded file by its `urls.get`
or `/download` URL, a data: URI, an output of this server, a remote URL offline and with
--fetch-inputs against a local HTTP server), and an input that cannot load fails the prediction."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from mock_server import Settings, create_app
from mock_server.clock import ManualClock
from mock_server.fixtures import load_fixtures
from mock_server.inputs import image_inputs, shown
from mock_server.sizes import output_size, scaled_input_size
from tests.conftest import AUTH, CHECKED

MODELS = load_fixtures(Settings().fixtures_dir)
BFL = "black-forest-labs"
PORTRAIT = (600, 900)  # 2:3
KONTEXT_2_3 = (832, 1248)  # kontext (1 MP, multiples of 32) for a 2:3 image
DONE_S = 3600  # more than any model's timing: a prediction is finished after this


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 220)).save(out, "PNG")
    return out.getvalue()


def data_uri(width: int, height: int) -> str:
    return "data:image/png;base64," + base64.b64encode(png(width, height)).decode()


def expected(model: str, **inp: Any) -> tuple[int, int]:
    """The size for `inp` when every image in it is a data: URI (the reference rule)."""
    fixture = MODELS[f"{BFL}/{model}"]
    return output_size(fixture.size, fixture.effective_input({"prompt": "x", **inp}))


def upload(
    client: TestClient, content: bytes, prefix: str = "/v1", **headers: str
) -> dict[str, Any]:
    r = client.post(
        f"{prefix}/files", files={"content": ("in.png", content, "image/png")}, headers=headers
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def run(
    client: TestClient, clock: ManualClock, model: str, prefix: str = "/v1", **inp: Any
) -> dict[str, Any]:
    """Create (which must succeed), let it finish, and return the prediction plus its size."""
    r = client.post(
        f"{prefix}/models/{BFL}/{model}/predictions", json={"input": {"prompt": "x", **inp}}
    )
    assert r.status_code in (200, 201), r.text
    clock.advance(DONE_S)
    done: dict[str, Any] = client.get(f"{prefix}/predictions/{r.json()['id']}").json()
    p = asyncio.run(client.app.state.ctx.store.get(done["id"]))  # type: ignore[attr-defined]
    done["size"] = (p.width, p.height)
    return done


# ----------------------------------------------------------------------------- the rules


def test_flux_dev_img2img_follows_cog_flux() -> None:
    rule = MODELS[f"{BFL}/flux-dev"].size
    assert scaled_input_size(rule, (600, 900)) == (608, 896)  # 37.5 rounds to even, up here
    assert scaled_input_size(rule, (1024, 1024)) == (1024, 1024)
    assert scaled_input_size(rule, (4000, 1000)) == (1440, 352)  # fits 1440; 22.5 -> 22
    assert scaled_input_size(rule, (5, 5)) == (16, 16)  # never below one multiple


def test_flux_dev_image_wins_over_aspect_ratio_and_megapixels() -> None:
    assert expected("flux-dev", image=data_uri(*PORTRAIT), aspect_ratio="16:9") == (608, 896)
    assert expected("flux-dev", image=data_uri(*PORTRAIT), megapixels="0.25") == (608, 896)
    # An image of unknown size (a remote URL, offline): the aspect ratio as without an image.
    assert expected("flux-dev", image="https://example.com/a.png", aspect_ratio="16:9") == (
        1344,
        768,
    )


def test_image_inputs_are_the_uri_inputs() -> None:
    kontext, flux2 = MODELS[f"{BFL}/flux-kontext-pro"], MODELS[f"{BFL}/flux-2-pro"]
    assert image_inputs(kontext, {"prompt": "https://x/y", "input_image": "https://a/b"}) == [
        "https://a/b"
    ]
    assert image_inputs(flux2, {"input_images": ["a:1", "a:2", "a:1"]}) == ["a:1", "a:2"]
    assert image_inputs(flux2, {"input_images": []}) == []


def test_a_data_uri_is_named_by_its_media_type_only() -> None:
    assert shown(data_uri(2, 2)) == "data:image/png;base64,..."
    assert shown("https://x/" + "y" * 300).endswith("...")


# ----------------------------------------------------------------------------- each input kind


@pytest.mark.parametrize("prefix", ["/replicate/v1", "/v1"])
@pytest.mark.parametrize("which", ["get", "download"])
def test_an_uploaded_file_gives_its_proportions(
    client: TestClient, clock: ManualClock, prefix: str, which: str
) -> None:
    url = upload(client, png(*PORTRAIT), prefix)["urls"]["get"]
    assert url.startswith(f"http://testserver{prefix}/files/")
    if which == "download":
        url += "/download"
    done = run(client, clock, "flux-kontext-pro", prefix, input_image=url)
    assert done["status"] == "succeeded", done["error"]
    # The URL names its prefix, so a create under the other prefix reads the same file.
    other = "/v1" if prefix == "/replicate/v1" else "/replicate/v1"
    assert run(client, clock, "flux-kontext-pro", other, input_image=url)["size"] == KONTEXT_2_3
    assert (
        done["size"] == KONTEXT_2_3 == expected("flux-kontext-pro", input_image=data_uri(*PORTRAIT))
    )


def test_a_data_uri_gives_its_proportions(client: TestClient, clock: ManualClock) -> None:
    done = run(client, clock, "flux-kontext-max", input_image=data_uri(*PORTRAIT))
    assert done["size"] == KONTEXT_2_3


def test_an_output_of_this_server_gives_its_size(client: TestClient, clock: ManualClock) -> None:
    wide = run(client, clock, "flux-schnell", aspect_ratio="16:9")
    assert wide["size"] == (1344, 768)
    url = wide["output"][0]
    assert url.startswith("http://testserver/delivery/")
    done = run(client, clock, "flux-kontext-pro", input_image=url)
    assert done["status"] == "succeeded"
    assert done["size"] == expected("flux-kontext-pro", input_image=data_uri(1344, 768))
    # FLUX.2 reads the first of its input_images, resolution included.
    done = run(
        client,
        clock,
        "flux-2-pro",
        input_images=[url, data_uri(10, 10)],
        aspect_ratio="match_input_image",
        resolution="match_input_image",
    )
    assert done["size"] == expected(
        "flux-2-pro",
        input_images=[data_uri(1344, 768)],
        aspect_ratio="match_input_image",
        resolution="match_input_image",
    )


def test_flux_dev_takes_the_uploaded_images_size(client: TestClient, clock: ManualClock) -> None:
    url = upload(client, png(1000, 500))["urls"]["get"]
    done = run(client, clock, "flux-dev", image=url, num_outputs=2)
    assert done["size"] == (992, 496)  # 62.5 -> 62, 31.25 -> 31 multiples of 16
    assert len(done["output"]) == 2
    image = client.get(done["output"][1])
    with Image.open(io.BytesIO(image.content)) as out:
        assert out.size == (992, 496)


def test_a_remote_url_is_not_fetched_by_default(client: TestClient, clock: ManualClock) -> None:
    done = run(client, clock, "flux-kontext-pro", input_image="https://example.com/portrait.png")
    assert done["status"] == "succeeded"
    assert done["size"] == (1024, 1024)  # the documented fallback: 1:1


def test_sizes_from_uploads_are_deterministic(client: TestClient, clock: ManualClock) -> None:
    url = upload(client, png(700, 300))["urls"]["get"]
    sizes = {
        run(client, clock, "flux-2-dev", input_images=[url], aspect_ratio="match_input_image")[
            "size"
        ]
        for _ in range(3)
    }
    assert len(sizes) == 1


# ----------------------------------------------------------------------------- inputs that fail


def failed(done: dict[str, Any], text: str) -> None:
    assert done["status"] == "failed", done
    assert done["output"] is None
    assert text in done["error"], done["error"]


def test_a_file_url_of_nothing_fails_the_prediction(client: TestClient, clock: ManualClock) -> None:
    url = "http://testserver/v1/files/aaaaaaaaaaaaaaaaaaaaaaaaaa"
    done = run(client, clock, "flux-kontext-pro", input_image=url)
    failed(done, f"Failed to download input image {url}: HTTP 404 Not Found")


def test_another_tokens_file_fails_the_prediction(client: TestClient, clock: ManualClock) -> None:
    url = upload(client, png(*PORTRAIT), Authorization="Bearer someone-else")["urls"]["get"]
    failed(run(client, clock, "flux-kontext-pro", input_image=url), "HTTP 404 Not Found")


def test_a_deleted_or_expired_file_fails_the_prediction(
    client: TestClient, clock: ManualClock
) -> None:
    deleted = upload(client, png(*PORTRAIT))["urls"]["get"]
    assert client.delete(deleted).status_code == 204
    failed(run(client, clock, "flux-kontext-pro", input_image=deleted), "HTTP 404")
    expired = upload(client, png(*PORTRAIT))["urls"]["get"]
    clock.advance(24 * 3600)
    failed(run(client, clock, "flux-kontext-pro", input_image=expired), "HTTP 404")


def test_an_unfinished_output_fails_the_prediction(client: TestClient, clock: ManualClock) -> None:
    r = client.post(f"/v1/models/{BFL}/flux-pro/predictions", json={"input": {"prompt": "x"}})
    url = f"http://testserver/delivery/{r.json()['id']}/out-0.webp"
    done = run(client, clock, "flux-kontext-pro", input_image=url)
    failed(done, "HTTP 404 Not Found")


def test_bytes_that_are_no_image_fail_the_prediction(
    client: TestClient, clock: ManualClock
) -> None:
    url = upload(client, b"not an image")["urls"]["get"]
    failed(
        run(client, clock, "flux-kontext-pro", input_image=url),
        f"Failed to read input image {url}: cannot identify image file",
    )
    failed(
        run(
            client, clock, "flux-kontext-pro", input_image="data:image/png;base64,bm90IGFuIGltYWdl"
        ),
        "Failed to read input image data:image/png;base64,...: cannot identify image file",
    )


def test_every_image_input_is_checked(client: TestClient, clock: ManualClock) -> None:
    """Not only the one the size reads: the model downloads them all."""
    missing = "http://testserver/v1/files/aaaaaaaaaaaaaaaaaaaaaaaaaa"
    failed(run(client, clock, "flux-1.1-pro", image_prompt=missing), "HTTP 404")
    failed(
        run(client, clock, "flux-2-flex", input_images=[data_uri(8, 8), missing]),
        "HTTP 404",
    )
    failed(run(client, clock, "flux-kontext-pro", input_image=missing, aspect_ratio="16:9"), "404")


# ----------------------------------------------------------------------------- --fetch-inputs


class Origin(BaseHTTPRequestHandler):
    """A remote image host: /portrait.png, /missing (404), /text, /huge-header (a PNG header,
    then 5 MB), /junk (5 MB, no image), /slow (answers after `release` or 10 s)."""

    release = threading.Event()
    hits: list[str] = []  # noqa: RUF012 (one server per module, read by the tests)

    def do_GET(self) -> None:
        Origin.hits.append(self.path)
        if self.path == "/slow":
            Origin.release.wait(10)
        bodies = {
            "/portrait.png": (200, "image/png", png(*PORTRAIT)),
            "/text": (200, "text/plain", b"hello, not an image"),
            "/huge-header": (200, "image/png", png(300, 100) + b"\0" * 5_000_000),
            "/junk": (200, "image/png", b"\1" * 5_000_000),
            "/slow": (200, "image/png", png(*PORTRAIT)),
        }
        status, ctype, body = bodies.get(self.path, (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the emulator stops reading once it has the size

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Origin.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def fetching() -> Iterator[TestClient]:
    settings = Settings(fetch_inputs=True, fetch_timeout=1.0, max_file_bytes=1_000_000)
    app = create_app(settings, clock=ManualClock())
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers.update(AUTH)
        c.event_hooks = CHECKED
        yield c


def clock_of(client: TestClient) -> ManualClock:
    clock = client.app.state.ctx.clock  # type: ignore[attr-defined]
    assert isinstance(clock, ManualClock)
    return clock


def test_fetch_inputs_measures_a_remote_image(fetching: TestClient, origin: str) -> None:
    done = run(
        fetching, clock_of(fetching), "flux-kontext-pro", input_image=f"{origin}/portrait.png"
    )
    assert done["status"] == "succeeded", done["error"]
    assert done["size"] == KONTEXT_2_3


def test_fetch_inputs_reads_only_the_header(fetching: TestClient, origin: str) -> None:
    # 5 MB after the PNG header, over --max-file-bytes: the size is in the first bytes.
    done = run(fetching, clock_of(fetching), "flux-dev", image=f"{origin}/huge-header")
    assert done["status"] == "succeeded", done["error"]
    assert done["size"] == (304, 96)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/missing", "HTTP 404 Not Found"),
        ("/text", "Failed to read input image {url}: cannot identify image file"),
        ("/junk", "Failed to download input image {url}: larger than 1000000 bytes"),
        ("/slow", "Failed to download input image {url}: no complete answer within 1 s"),
    ],
)
def test_fetch_inputs_fails_the_prediction_not_the_create(
    fetching: TestClient, origin: str, path: str, error: str
) -> None:
    url = origin + path
    done = run(fetching, clock_of(fetching), "flux-kontext-pro", input_image=url)
    failed(done, error.format(url=url))


def test_fetch_inputs_fails_on_a_refused_connection(fetching: TestClient) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/a.png"
    done = run(fetching, clock_of(fetching), "flux-kontext-pro", input_image=url)
    failed(done, f"Failed to download input image {url}: ConnectError")


def test_without_fetch_inputs_nothing_is_fetched(
    client: TestClient, clock: ManualClock, origin: str
) -> None:
    before = len(Origin.hits)
    done = run(client, clock, "flux-kontext-pro", input_image=f"{origin}/missing")
    assert done["status"] == "succeeded"
    assert done["size"] == (1024, 1024)
    assert len(Origin.hits) == before
