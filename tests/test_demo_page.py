"""The demo page at `/`, in headless Chromium driven by Playwright.

The browser is Debian's `chromium` (`make test` installs it; Playwright's own browser downloads
are never used): without it these tests fail, they do not skip. The server is a live one with
timings scaled to 5%, and every wait is on a condition (Playwright's `expect` and
`wait_for_function`), never a sleep. Screenshots at desktop and phone widths are written to
tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)
from starlette.testclient import TestClient

from mock_server import Settings
from tests.conftest import PROJECT, LiveServer, start_live_server

CHROMIUM_CANDIDATES = ("chromium", "/usr/bin/chromium", "chromium-browser")
ARTIFACTS = PROJECT / "tests" / "artifacts"
WAIT_MS = 20_000  # any one condition; a run at 5% takes well under a second
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
BFL = "black-forest-labs"


def chromium_path() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail(
        "chromium is not installed: the demo page tests drive Debian's chromium "
        "(`apt-get install chromium`; `make test` installs it).",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live, thread = start_live_server(Settings(port=0, time_scale=0.05))
    yield live
    live.server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable)
        yield chromium
        chromium.close()


@dataclass
class Demo:
    """One fresh browser context (its own localStorage) on the demo page."""

    page: Page
    server: LiveServer
    token: str
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    def open(self, model: str = "flux-schnell") -> None:
        """Load `/`, enter the token, and wait until `model`'s form is built."""
        self.page.goto(f"{self.server.url}/")
        self.wait_ready(f"{BFL}/flux-schnell")
        self.set_token(self.token)
        self.wait_ready(f"{BFL}/flux-schnell")
        if model != "flux-schnell":
            self.page.select_option("#model", f"{BFL}/{model}")
            self.wait_ready(f"{BFL}/{model}")

    def set_token(self, token: str) -> None:
        """Type a token and leave the field (its `change` reloads the models with it)."""
        self.page.fill("#token", token)
        self.page.press("#token", "Tab")

    def wait_ready(self, ref: str) -> None:
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
        expect(self.page.locator("#inputs")).to_have_attribute("data-model", ref, timeout=WAIT_MS)
        expect(self.page.locator("#submit")).to_be_enabled(timeout=WAIT_MS)

    def run(self, prompt: str, **fields: str) -> str:
        """Fill the prompt and `fields` (by input name), press Run; the new prediction's id."""
        self.page.fill("#in-prompt", prompt)
        for name, value in fields.items():
            self.page.fill(f"#in-{name}", value)
        before = self.page.locator("#result").get_attribute("data-id")
        self.page.click("#submit")
        result = self.page.locator("#result")
        expect(result).not_to_have_attribute("data-id", before or "", timeout=WAIT_MS)
        pid = result.get_attribute("data-id")
        assert pid, "no prediction on show after Run"
        return pid

    def wait_status(self, status: str) -> None:
        expect(self.page.locator("#result")).to_have_attribute(
            "data-status", status, timeout=WAIT_MS
        )

    def wait_images(self, count: int) -> list[dict[str, int]]:
        """Wait until `count` output images have loaded; their natural sizes."""
        self.page.wait_for_function(
            """n => {
                const imgs = [...document.querySelectorAll('#outputs img')];
                return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0);
            }""",
            arg=count,
            timeout=WAIT_MS,
        )
        sizes: list[dict[str, int]] = self.page.eval_on_selector_all(
            "#outputs img", "imgs => imgs.map(i => ({w: i.naturalWidth, h: i.naturalHeight}))"
        )
        return sizes

    def scenario(self, name: str) -> None:
        """The `X-Mock-Scenario` field, under "Advanced" (opened if closed)."""
        if not self.page.locator("#advanced").evaluate("d => d.open"):
            self.page.locator("#advanced summary").click()
        self.page.fill("#scenario", name)

    def curls(self) -> list[str]:
        return self.page.locator("[data-testid=curl]").all_inner_texts()

    def assert_clean(self) -> None:
        assert self.errors == [], f"the page logged errors: {self.errors}"
        foreign = [
            u for u in self.requests if not u.startswith((self.server.url, "data:", "blob:"))
        ]
        assert foreign == [], f"the page loaded something from elsewhere: {foreign}"


@pytest.fixture
def demo(browser: Browser, server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Demo]:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    token = "r8_demo_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    demo = Demo(page, server, token)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            demo.errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: demo.errors.append(f"pageerror: {exc}"))
    page.on("request", lambda req: demo.requests.append(req.url))
    page.set_default_timeout(WAIT_MS)
    yield demo
    context.close()


def png(path: Path, width: int, height: int) -> Path:
    Image.new("RGB", (width, height), (200, 90, 40)).save(path, "PNG")
    return path


# ------------------------------------------------------------------------------ the files


def test_page_and_assets_are_served_with_their_types(client: TestClient) -> None:
    """No token needed; every answer is checked against openapi.yaml by the `client` fixture."""
    del client.headers["Authorization"]
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'src="static/demo.js"' in page.text
    assert 'href="static/demo.css"' in page.text
    css = client.get("/static/demo.css")
    assert (css.status_code, css.headers["content-type"]) == (200, "text/css; charset=utf-8")
    js = client.get("/static/demo.js")
    assert (js.status_code, js.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    for response in (page, css, js):
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/index.html").status_code == 404
    assert client.get("/static/../app.py").status_code == 404


def test_no_external_assets() -> None:
    """Works offline: nothing is loaded from another host (no CDN, no web font)."""
    static = PROJECT / "mock_server" / "static"
    for path in static.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), path
        assert "@import" not in text, path
        assert not re.search(r"url\((['\"]?)(https?:)?//", text), path


# ------------------------------------------------------------------------------ in the browser


def test_loads_without_errors_and_builds_the_form(demo: Demo) -> None:
    demo.open()
    page = demo.page
    models = page.locator("#model option").all_inner_texts()
    assert len(models) == 11
    assert "flux-schnell" in models
    assert "flux-kontext-pro" in models
    # enums as selects with the default chosen, bounded numbers, checkboxes, defaults filled
    expect(page.locator("select#in-aspect_ratio")).to_have_value("1:1")
    outputs = page.locator("input#in-num_outputs")
    expect(outputs).to_have_attribute("type", "number")
    expect(outputs).to_have_attribute("min", "1")
    expect(outputs).to_have_attribute("max", "4")
    expect(outputs).to_have_value("1")
    expect(page.locator("input#in-go_fast")).to_be_checked()
    expect(page.locator("input#in-disable_safety_checker")).not_to_be_checked()
    expect(page.locator("textarea#in-prompt")).to_have_attribute("required", "")
    expect(page.locator("input#in-seed")).to_have_value("")
    # the form follows the model: flux-dev's img2img `image` is a file picker
    page.select_option("#model", f"{BFL}/flux-dev")
    demo.wait_ready(f"{BFL}/flux-dev")
    expect(page.locator("input#in-image-file")).to_have_attribute("type", "file")
    expect(page.locator("input#in-prompt_strength")).to_have_attribute("step", "any")
    # FLUX.2's `input_images` (an array) takes several files
    page.select_option("#model", f"{BFL}/flux-2-pro")
    demo.wait_ready(f"{BFL}/flux-2-pro")
    expect(page.locator("input#in-input_images-file")).to_have_attribute("multiple", "")
    demo.assert_clean()


@pytest.mark.parametrize(
    ("model", "fields", "count"),
    [
        ("flux-schnell", {"num_outputs": "2"}, 2),
        ("flux-dev", {"aspect_ratio": "16:9"}, 1),
    ],
)
def test_a_prediction_shows_its_images(
    demo: Demo, model: str, fields: dict[str, str], count: int
) -> None:
    demo.open(model)
    page = demo.page
    for name, value in fields.items():
        if name == "aspect_ratio":
            page.select_option(f"#in-{name}", value)
        else:
            page.fill(f"#in-{name}", value)
    pid = demo.run(f"a lighthouse at dusk, by {model}")
    demo.wait_status("succeeded")
    sizes = demo.wait_images(count)
    if fields.get("aspect_ratio") == "16:9":
        assert abs(sizes[0]["w"] / sizes[0]["h"] - 16 / 9) < 0.05, sizes
    expect(page.locator("#progress")).to_have_attribute("value", "100")
    expect(page.locator("#progress-text")).to_contain_text("100%")
    expect(page.locator("#status")).to_have_text("succeeded")
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#logs")).to_contain_text("100%|")
    # the gallery has it, with its thumbnails, model and prompt
    card = page.locator(f"[data-testid=gallery-item][data-id='{pid}']")
    expect(card).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
    expect(card).to_contain_text(model)
    expect(card).to_contain_text("a lighthouse at dusk")
    expect(card.locator("img")).to_have_count(count)
    # the API panel: the create as curl, with the token and the JSON body
    create = next(c for c in demo.curls() if "-X POST" in c)
    assert f"-H 'Authorization: Bearer {demo.token}'" in create
    assert "-H 'Content-Type: application/json'" in create
    assert f"/v1/models/{BFL}/{model}/predictions'" in create
    body = json.loads(re.search(r"-d '(.*)'", create).group(1))  # type: ignore[union-attr]
    assert body == {"input": {"prompt": f"a lighthouse at dusk, by {model}", **typed(fields)}}
    stream = page.locator("[data-testid=api-call][data-path^='/stream/']")
    expect(stream).to_have_count(1)
    expect(stream.locator("[data-testid=call-status]")).to_contain_text("200")
    expect(stream.locator("[data-testid=response]")).to_contain_text("event: done")
    demo.assert_clean()


def typed(fields: dict[str, str]) -> dict[str, Any]:
    return {k: int(v) if v.isdigit() else v for k, v in fields.items()}


def test_kontext_with_an_uploaded_input_image(demo: Demo, tmp_path: Path) -> None:
    """The file picker uploads through POST /v1/files; its urls.get is the input, and
    `match_input_image` gives the output the input's proportions (600x900: 2:3)."""
    demo.open("flux-kontext-pro")
    page = demo.page
    expect(page.locator("select#in-aspect_ratio")).to_have_value("match_input_image")
    page.set_input_files("#in-input_image-file", str(png(tmp_path / "portrait.png", 600, 900)))
    expect(page.locator("#in-input_image-upload-status")).to_have_attribute("data-state", "done")
    file_url = re.compile(re.escape(demo.server.url) + r"/v1/files/[a-z0-9]{26}$")
    expect(page.locator("#in-input_image")).to_have_value(file_url)
    expect(page.locator("#in-input_image-previews img")).to_have_count(1)
    upload = next(c for c in demo.curls() if "/v1/files'" in c)
    assert f"-H 'Authorization: Bearer {demo.token}'" in upload
    assert "-F 'content=@portrait.png;type=image/png'" in upload
    pid = demo.run("make it a watercolour")
    demo.wait_status("succeeded")
    (size,) = demo.wait_images(1)
    assert abs(size["w"] / size["h"] - 2 / 3) < 0.05, size
    with httpx.Client(base_url=demo.server.url) as http:
        got = http.get(f"/v1/predictions/{pid}", headers={"Authorization": f"Bearer {demo.token}"})
    assert got.json()["input"]["input_image"] == page.locator("#in-input_image").input_value()
    demo.assert_clean()


def test_the_progress_bar_follows_the_logs(demo: Demo) -> None:
    """Every value the bar takes while the prediction runs (`slow`: ten times its timing) is
    recorded in the page: it climbs through the tqdm lines to 100."""
    demo.open("flux-dev")
    page = demo.page
    page.evaluate(
        """() => {
            window.progressSeen = [];
            new MutationObserver(records => records.forEach(
                r => window.progressSeen.push(Number(r.oldValue)))
            ).observe(document.getElementById('progress'), {attributeOldValue: true});
        }"""
    )
    demo.scenario("slow")
    demo.run("a slow one")
    demo.wait_status("succeeded")
    expect(page.locator("#progress-text")).to_have_text("100% (28/28)")
    seen: list[float] = page.evaluate("[...window.progressSeen, 100]")
    between = [v for v in seen if 0 < v < 100]
    assert len(set(between)) >= 3, seen
    assert seen == sorted(seen), seen
    demo.assert_clean()


def test_a_failed_prediction_shows_its_error(demo: Demo) -> None:
    """Through the page's scenario field (`X-Mock-Scenario: fail`)."""
    demo.open("flux-schnell")
    page = demo.page
    demo.scenario("fail")
    pid = demo.run("this one fails")
    demo.wait_status("failed")
    expect(page.locator("#error")).to_have_text("Prediction failed: a mock model error")
    expect(page.locator("#outputs img")).to_have_count(0)
    card = page.locator(f"[data-testid=gallery-item][data-id='{pid}']")
    expect(card).to_have_attribute("data-status", "failed")
    create = next(c for c in demo.curls() if "-X POST" in c)
    assert "-H 'X-Mock-Scenario: fail'" in create
    demo.assert_clean()


def test_a_scenario_rule_matching_the_prompt_fails_it(demo: Demo) -> None:
    """Through the admin API: a rule on the prompt, no header from the page."""
    rule = {
        "name": "demo-fail",
        "match": {"prompt": "fail me"},
        "outcome": {"status": "failed", "error": "CUDA out of memory (demo)"},
    }
    with httpx.Client(base_url=demo.server.url) as http:
        assert http.post("/__admin/scenarios", json=rule).status_code in (200, 201)
        try:
            demo.open("flux-dev")
            demo.run("please fail me")
            demo.wait_status("failed")
            expect(demo.page.locator("#error")).to_have_text("CUDA out of memory (demo)")
        finally:
            http.delete("/__admin/scenarios/demo-fail")
    demo.assert_clean()


def test_an_http_error_is_shown_by_the_form(demo: Demo) -> None:
    """A create the server refuses (`rate-limit`: 429) shows the problem's title and detail."""
    demo.open("flux-schnell")
    demo.scenario("rate-limit")
    demo.page.fill("#in-prompt", "throttled")
    demo.page.click("#submit")
    error = demo.page.locator("#form-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("429 Too Many Requests: Request was throttled")
    post = demo.page.locator("[data-testid=api-call][data-method=POST]")
    expect(post).to_have_attribute("data-status", "429")
    # The browser itself logs the 429 as a console error; nothing else may have gone wrong.
    assert [e for e in demo.errors if "429" not in e] == []


def test_the_gallery_is_kept_per_token(demo: Demo) -> None:
    demo.open("flux-schnell")
    pid = demo.run("remember me")
    demo.wait_status("succeeded")
    page = demo.page
    page.reload()
    demo.wait_ready(f"{BFL}/flux-schnell")
    expect(page.locator("#token")).to_have_value(demo.token)
    card = page.locator(f"[data-testid=gallery-item][data-id='{pid}']")
    expect(card).to_have_attribute("data-status", "succeeded")
    card.locator("button").click()  # shows it again, read back through urls.get
    expect(page.locator("#result")).to_have_attribute("data-id", pid)
    demo.wait_images(1)
    demo.set_token(demo.token + "_other")
    demo.wait_ready(f"{BFL}/flux-schnell")
    expect(page.locator("[data-testid=gallery-item]")).to_have_count(0)
    expect(page.locator("#gallery-empty")).to_be_visible()
    demo.assert_clean()


def test_screenshots_at_desktop_and_phone_widths(demo: Demo) -> None:
    """tests/artifacts/demo-desktop.png, demo-phone.png (whole pages) and demo-phone-result.png
    (a phone's screen after Run); the phone layout has no sideways scrolling."""
    ARTIFACTS.mkdir(exist_ok=True)
    demo.open("flux-schnell")
    page = demo.page
    demo.scenario("fail")
    demo.run("a failed one")
    demo.wait_status("failed")
    demo.scenario("")
    page.locator("#advanced summary").click()  # closed again
    page.fill("#in-num_outputs", "2")
    demo.run("two foxes in the snow, watercolour")
    demo.wait_status("succeeded")
    demo.wait_images(2)
    expect(page.locator("[data-testid=gallery-item]")).to_have_count(2)
    page.screenshot(path=str(ARTIFACTS / "demo-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_function("window.innerWidth === 390")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the phone layout scrolls sideways by {overflow}px"
    page.screenshot(path=str(ARTIFACTS / "demo-phone.png"), full_page=True)
    # what a phone shows after Run: the page scrolled to the result
    page.locator("#in-num_outputs").fill("1")
    pid = demo.run("one fox in the snow, watercolour")
    demo.wait_status("succeeded")
    demo.wait_images(1)
    top = page.evaluate("document.getElementById('result-panel').getBoundingClientRect().top")
    assert top < PHONE["height"], f"the result is off screen after Run (top {top})"
    expect(page.locator("#result")).to_have_attribute("data-id", pid)
    page.screenshot(path=str(ARTIFACTS / "demo-phone-result.png"))
    for name in ("demo-desktop.png", "demo-phone.png", "demo-phone-result.png"):
        with Image.open(ARTIFACTS / name) as shot:
            assert shot.width in (DESKTOP["width"], PHONE["width"]), (name, shot.size)
    demo.assert_clean()
