"""Outputs the official clients open as files: `--output-urls data` (inline `data:` URIs) and
`--tls` (`https:` URLs under a local CA made at start), with the Python 1.x client, the npm
client and the pytest plugin. Both clients wrap only `https:` and `data:` outputs."""

from __future__ import annotations

import base64
import io
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from PIL import Image
from replicate.client import Client
from replicate.helpers import FileOutput
from starlette.testclient import TestClient

from mock_server import Settings, create_app, tls
from mock_server.cli import settings_from
from mock_server.clock import ManualClock
from mock_server.config import SettingsError
from tests import test_official_clients
from tests.conftest import AUTH, CHECKED, LiveServer, child_environ, spawned_server
from tests.conftest import start_live_server as start_thread_server
from tests.test_stream import parse_events
from tests.threads import bounded

pytest_plugins = ["pytester"]

SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"
PRO = "/v1/models/black-forest-labs/flux-1.1-pro/predictions"
WEBP = "data:image/webp;base64,"
DEADLINE_S = 20.0
node_modules = test_official_clients.node_modules  # the npm client `make install` installed


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def decoded(uri: str) -> Image.Image:
    head, _, encoded = uri.partition(",")
    assert head in ("data:image/webp;base64", "data:image/png;base64", "data:image/jpeg;base64")
    return opened(base64.b64decode(encoded, validate=True))


# --------------------------------------------------------------------------------------------
# --output-urls data, in process (every response checked against openapi.yaml)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    return Settings(output_urls="data")


def test_outputs_are_data_uris_in_gets_lists_and_streams(
    client: TestClient, clock: ManualClock
) -> None:
    body = {"input": {"prompt": "an inline fox", "num_outputs": 2}}
    created = client.post(SCHNELL, json=body).json()
    assert created["output"] is None
    clock.advance(60)
    got = client.get(created["urls"]["get"]).json()
    assert got["status"] == "succeeded"
    assert len(got["output"]) == 2
    assert got["output"][0] != got["output"][1]
    for i, uri in enumerate(got["output"]):
        assert uri.startswith(WEBP)
        image = decoded(uri)
        assert (image.format, image.size) == ("WEBP", (1024, 1024))
        # The same bytes as the file URL, which still works.
        file = client.get(f"/delivery/{got['id']}/out-{i}.webp")
        assert base64.b64decode(uri.partition(",")[2]) == file.content
    assert client.get("/replicate/v1/predictions/" + got["id"]).json()["output"] == got["output"]
    assert client.get("/v1/predictions").json()["results"][0]["output"] == got["output"]
    events = parse_events(client.get(got["urls"]["stream"]).text)
    assert [e["data"] for e in events if e["event"] == "output"] == got["output"]


def test_a_single_output_model_gives_one_data_uri(client: TestClient, clock: ManualClock) -> None:
    body = {"input": {"prompt": "a png", "output_format": "png", "aspect_ratio": "16:9"}}
    created = client.post(PRO, json=body).json()
    clock.advance(60)
    output = client.get(created["urls"]["get"]).json()["output"]
    assert isinstance(output, str)
    assert output.startswith("data:image/png;base64,")
    assert decoded(output).size == (1344, 768)


def test_a_sync_create_answers_with_data_uris() -> None:
    app = create_app(Settings(output_urls="data", time_scale=0), clock=ManualClock())
    with TestClient(app) as http:
        http.headers.update(AUTH)
        http.event_hooks = CHECKED
        response = http.post(
            SCHNELL, json={"input": {"prompt": "at once"}}, headers={"Prefer": "wait"}
        )
    assert response.json()["status"] == "succeeded"
    assert decoded(response.json()["output"][0]).size == (1024, 1024)


# --------------------------------------------------------------------------------------------
# Settings and flags
# --------------------------------------------------------------------------------------------


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(SettingsError, match="output_urls must be http or data"):
        Settings(output_urls="file")
    with pytest.raises(SettingsError, match="tls_key needs tls_cert"):
        Settings(tls_key=Path("key.pem"))
    with pytest.raises(SettingsError, match="tls_ca_file is where --tls writes"):
        Settings(tls_cert=Path("cert.pem"), tls_ca_file=Path("ca.pem"))
    assert not Settings().https
    assert Settings(tls=True).https
    assert Settings(tls_cert=Path("cert.pem")).https


def test_flags_and_variables() -> None:
    argv = ["--output-urls", "data", "--tls", "--tls-ca-file", "/x/ca.pem"]
    _, settings = settings_from(argv, {})
    assert (settings.output_urls, settings.tls, settings.tls_ca_file) == (
        "data",
        True,
        Path("/x/ca.pem"),
    )
    env = {"MOCK_SERVER_OUTPUT_URLS": "data", "MOCK_SERVER_TLS_CERT": "c.pem"}
    _, settings = settings_from(["--tls-key", "k.pem"], env)
    assert settings.output_urls == "data"
    assert (settings.tls, settings.tls_cert, settings.tls_key) == (
        False,
        Path("c.pem"),
        Path("k.pem"),
    )
    assert Settings.from_env({"MOCK_SERVER_TLS": "1"}).tls


def test_certificate_names() -> None:
    assert tls.identities(Settings(host="0.0.0.0")) == ["localhost", "127.0.0.1", "::1"]
    named = tls.identities(Settings(host="10.1.2.3", public_url="https://mock.test:8443/x"))
    assert named == ["localhost", "127.0.0.1", "::1", "10.1.2.3", "mock.test"]


def test_start_message_names_the_ca_and_how_to_trust_it(tmp_path: Path) -> None:
    certs = tls.certificates(Settings(tls=True), tmp_path, tmp_path / "ca.pem")
    message = tls.listening("127.0.0.1:8443", certs)
    ca = tmp_path / "ca.pem"
    assert message.splitlines() == [
        f"mock-server listening on https://127.0.0.1:8443 (CA certificate: {ca})",
        f"mock-server: trust it with SSL_CERT_FILE={ca} (Python, httpx) or "
        f"NODE_EXTRA_CA_CERTS={ca} (node)",
    ]
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert (tmp_path / "server.pem").stat().st_mode & 0o077 == 0  # the key is private
    assert tls.listening("h:1", None) == "mock-server listening on http://h:1\n"


def test_a_bad_certificate_stops_the_start_with_a_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mock_server", "--port", "0", "--tls-cert", str(tmp_path / "no")],
        env=child_environ(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "cannot serve HTTPS with certificate" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------------------------
# The Python client (1.x) against live servers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_server() -> Iterator[LiveServer]:
    live, thread = start_thread_server(Settings(port=0, output_urls="data", time_scale=0.02))
    yield live
    live.server.should_exit = True
    thread.join(timeout=10)


@dataclass(frozen=True)
class TlsServer:
    url: str
    ca_file: Path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """`python -m mock_server --tls`, as users start it, with its CA in a folder of its own."""
    where = tmp_path_factory.mktemp("tls")
    ca = where / "ca.pem"
    args = ("--tls", "--tls-ca-file", str(ca), "--time-scale", "0.02")
    with spawned_server(*args, log=where / "stderr.log", scheme="https") as (url, _):
        yield TlsServer(url, ca)


def check_files(output: Any, count: int, size: tuple[int, int], url_start: str) -> None:
    files = output if isinstance(output, list) else [output]
    assert len(files) == count
    for file in files:
        assert isinstance(file, FileOutput)
        assert file.url.startswith(url_start)
        image = opened(file.read())
        assert (image.format, image.size) == ("WEBP", size)


def test_python_client_reads_data_uri_outputs(data_server: LiveServer) -> None:
    rc = Client(
        api_token="r8_files", base_url=data_server.url + "/replicate", timeout=httpx.Timeout(10.0)
    )
    body = {"prompt": "files please", "num_outputs": 2}
    output = bounded(lambda: rc.run("black-forest-labs/flux-schnell", input=body), DEADLINE_S)
    check_files(output, 2, (1024, 1024), WEBP)
    single = bounded(
        lambda: rc.run("black-forest-labs/flux-2-pro", input={"prompt": "one"}), DEADLINE_S
    )
    check_files(single, 1, (1024, 1024), WEBP)
    streamed = bounded(
        lambda: [e.data for e in rc.stream("black-forest-labs/flux-schnell", input=body)],
        DEADLINE_S,
    )
    check_files([d for d in streamed if isinstance(d, FileOutput)], 2, (1024, 1024), WEBP)


def test_python_client_reads_https_outputs(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.ca_file))  # read when a client is built
    rc = Client(
        api_token="r8_tls", base_url=tls_server.url + "/replicate", timeout=httpx.Timeout(10.0)
    )
    body = {"prompt": "over https", "num_outputs": 2}
    output = bounded(lambda: rc.run("black-forest-labs/flux-schnell", input=body), DEADLINE_S)
    check_files(output, 2, (1024, 1024), tls_server.url + "/delivery/")
    created = rc.models.predictions.create(model="black-forest-labs/flux-dev", input=body)
    assert created.urls is not None
    assert all(url.startswith("https://127.0.0.1:") for url in created.urls.values())


def test_https_is_refused_without_the_ca(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_server.url + "/openapi.yaml")
    trusted = ssl.create_default_context(cafile=tls_server.ca_file)
    assert httpx.get(tls_server.url + "/openapi.yaml", verify=trusted).status_code == 200


def test_the_users_own_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    args = ("--tls-cert", str(cert), "--tls-key", str(key))
    with spawned_server(*args, log=tmp_path / "stderr.log", scheme="https") as (url, _):
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        response = httpx.get(url + "/v1/predictions", headers=AUTH, verify=trusted)
    assert response.status_code == 200


# --------------------------------------------------------------------------------------------
# The npm client (replicate 1.4.0): FileOutput with .blob()
# --------------------------------------------------------------------------------------------


def run_file_output_script(node_modules: Path, where: Path, base: str, **env: str) -> Any:
    script = test_official_clients.node_script("file_output.mjs", node_modules, where)
    config = json.dumps({"baseUrl": base + "/v1", "token": "r8_npm_files"})
    environ = test_official_clients.script_environ(NODE_NO_WARNINGS="1", **env)
    done = subprocess.run(
        ["node", str(script), config],
        cwd=where,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check_npm_files(results: dict[str, Any], url_start: str) -> None:
    failed = {step: result["error"] for step, result in results.items() if "error" in result}
    assert not failed, failed
    expected = [
        ("run_list", 2, (1024, 1024), "image/webp"),
        ("run_single", 1, (1344, 768), "image/png"),
    ]
    for step, count, size, media in expected:
        files = results[step]["ok"]
        files = files if isinstance(files, list) else [files]
        assert len(files) == count
        for file in files:
            assert file["isFileOutput"] is True
            assert file["url"].startswith(url_start)
            image = opened(base64.b64decode(file["base64"]))
            assert image.size == size
            assert file["type"] == media
            assert image.format == media.split("/")[1].upper()


def test_npm_client_blobs_data_uri_outputs(
    node_modules: Path, data_server: LiveServer, tmp_path: Path
) -> None:
    results = run_file_output_script(node_modules, tmp_path / "project", data_server.url)
    check_npm_files(results, "data:image/")


def test_npm_client_blobs_https_outputs(
    node_modules: Path, tls_server: TlsServer, tmp_path: Path
) -> None:
    results = run_file_output_script(
        node_modules,
        tmp_path / "project",
        tls_server.url,
        NODE_EXTRA_CA_CERTS=str(tls_server.ca_file),
    )
    check_npm_files(results, tls_server.url[:25])


# --------------------------------------------------------------------------------------------
# The pytest plugin: one option each
# --------------------------------------------------------------------------------------------

PLUGIN_TESTS = """
import io

import pytest
import replicate
from PIL import Image
from replicate.helpers import FileOutput


def image_of(file):
    assert isinstance(file, FileOutput), file
    return Image.open(io.BytesIO(file.read()))


{body}
"""


def run_plugin_tests(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makepyfile(PLUGIN_TESTS.format(body=body))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error", "--strict-markers", timeout=120
    )


def test_plugin_marker_gives_file_outputs(pytester: pytest.Pytester) -> None:
    result = run_plugin_tests(
        pytester,
        """
@pytest.mark.mock_server(output_urls="data")
def test_files(mock_server):
    output = replicate.run(
        "black-forest-labs/flux-schnell", input={"prompt": "x", "num_outputs": 2}
    )
    assert [image_of(f).size for f in output] == [(1024, 1024)] * 2
    assert output[0].url.startswith("data:image/webp;base64,")
    single = replicate.run("black-forest-labs/flux-2-dev", input={"prompt": "y"})
    assert image_of(single).format == "WEBP"


def test_the_next_test_gets_urls_again(mock_server):
    output = replicate.run("black-forest-labs/flux-schnell", input={"prompt": "x"})
    assert type(output[0]) is str and output[0].startswith(mock_server.url)


@pytest.mark.mock_server(output_urls="ftp")
def test_bad_value(mock_server):
    pass
""",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["E*ValueError: output_urls must be http or data, not 'ftp'"])


def test_plugin_serves_https_with_a_ca_of_its_own(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
from dataclasses import replace

import pytest
from mock_server.pytest_plugin import DEFAULT_SETTINGS


@pytest.fixture(scope="session")
def mock_server_settings():
    return replace(DEFAULT_SETTINGS, tls=True)
"""
    )
    result = run_plugin_tests(
        pytester,
        """
import os

import httpx


def test_https(mock_server):
    assert mock_server.url.startswith("https://127.0.0.1:")
    assert os.environ["SSL_CERT_FILE"] == str(mock_server.ca_file)
    output = replicate.run("black-forest-labs/flux-1.1-pro", input={"prompt": "x"})
    assert output.url.startswith(mock_server.url + "/delivery/")
    assert image_of(output).size == (1024, 1024)
    p = replicate.models.predictions.create(
        model="black-forest-labs/flux-dev", input={"prompt": "z"}
    )
    assert mock_server.finish(p.id)["status"] == "succeeded"  # the admin API over HTTPS
    assert httpx.get(mock_server.url + "/openapi.yaml").status_code == 200
""",
    )
    result.assert_outcomes(passed=1)


# --------------------------------------------------------------------------------------------
# The README's snippets (README snippets are tests)
# --------------------------------------------------------------------------------------------

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def snippet_after(marker: str) -> str:
    return README.split(marker, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_plugin_snippet_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(snippet_after("**Outputs as file objects in tests.**"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", timeout=120)
    result.assert_outcomes(passed=1)


def test_readme_data_uri_snippet_runs(data_server: LiveServer) -> None:
    code = snippet_after("**`--output-urls data`**")
    assert "http://127.0.0.1:8000/replicate" in code
    scope: dict[str, Any] = {}
    exec(code.replace("http://127.0.0.1:8000", data_server.url), scope)
    assert isinstance(scope["output"][0], FileOutput)
