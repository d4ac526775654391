"""Output sizes per model rule, checked against the real models' tables, and every ratio at every
resolution of every model checked against the rule's limits."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mock_server.config import Settings
from mock_server.fixtures import FixtureError, ModelFixture, load_fixtures, load_model
from mock_server.sizes import MEGAPIXEL, SizeRule, fit, output_size, parse_ratio

MODELS = load_fixtures(Settings().fixtures_dir)
IMAGE = (1536, 1024)  # 3:2, 1.5 MP: the input image whenever a model reads one


@pytest.fixture(scope="module")
def models() -> dict[str, ModelFixture]:
    return MODELS


def size(models: dict[str, ModelFixture], name: str, **inp: object) -> tuple[int, int]:
    fixture = models[f"black-forest-labs/{name}"]
    return output_size(fixture.size, fixture.effective_input({"prompt": "x", **inp}))


def data_uri(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize(
    ("aspect", "expected"),
    [
        ("1:1", (1024, 1024)),
        ("16:9", (1344, 768)),
        ("21:9", (1536, 640)),
        ("3:2", (1216, 832)),
        ("2:3", (832, 1216)),
        ("4:5", (896, 1088)),
        ("5:4", (1088, 896)),
        ("3:4", (896, 1152)),
        ("4:3", (1152, 896)),
        ("9:16", (768, 1344)),
        ("9:21", (640, 1536)),
    ],
)
def test_cog_flux_table(
    models: dict[str, ModelFixture], aspect: str, expected: tuple[int, int]
) -> None:
    assert size(models, "flux-schnell", aspect_ratio=aspect) == expected
    assert size(models, "flux-dev", aspect_ratio=aspect) == expected
    half = (expected[0] // 2, expected[1] // 2)
    assert size(models, "flux-schnell", aspect_ratio=aspect, megapixels="0.25") == half


def test_defaults(models: dict[str, ModelFixture]) -> None:
    assert size(models, "flux-schnell") == (1024, 1024)
    assert size(models, "flux-1.1-pro-ultra") == (2048, 2048)
    assert size(models, "flux-kontext-pro") == (1024, 1024)  # match_input_image, no image
    assert size(models, "flux-2-pro") == (1024, 1024)


def test_custom_sizes_round_to_the_models_multiple(models: dict[str, ModelFixture]) -> None:
    assert size(models, "flux-pro", aspect_ratio="custom", width=1000, height=700) == (992, 704)
    assert size(models, "flux-1.1-pro", aspect_ratio="custom", width=1000, height=700) == (
        1008,
        704,
    )
    assert size(models, "flux-2-max", aspect_ratio="custom", width=2040, height=260) == (2048, 256)


def test_flux2_resolution(models: dict[str, ModelFixture]) -> None:
    assert size(models, "flux-2-pro", resolution="4 MP") == (2048, 2048)
    assert size(models, "flux-2-pro", resolution="0.5 MP") == (720, 720)
    w, h = size(models, "flux-2-pro", aspect_ratio="16:9", resolution="2 MP")
    assert (w % 16, h % 16) == (0, 0)
    assert abs(w / h - 16 / 9) < 0.02


def test_match_input_image_reads_a_data_uri(models: dict[str, ModelFixture]) -> None:
    w, h = size(models, "flux-kontext-pro", input_image=data_uri(300, 600))
    assert abs(w / h - 0.5) < 0.05
    w, h = size(
        models, "flux-2-pro", aspect_ratio="match_input_image", input_images=[data_uri(800, 400)]
    )
    assert abs(w / h - 2.0) < 0.05


def test_bundled_fixture_dir_exists() -> None:
    assert (Settings().fixtures_dir / "models" / "black-forest-labs").is_dir()
    assert Path(Settings().spec_path).is_file()


def every_size_case() -> list[Any]:
    """(model, aspect, resolution) for every value of the model's aspect enum times every value of
    its resolution (or megapixels) enum; resolution is None when the model has no such input."""
    cases: list[Any] = []
    for ref, fixture in sorted(MODELS.items()):
        rule, props = fixture.size, fixture.input_schema["properties"]
        field = rule.resolution_field or rule.halve_field
        resolutions = props[field]["enum"] if field else [None]
        for aspect in props[rule.aspect_field]["enum"]:
            for resolution in resolutions:
                ident = f"{fixture.name}-{aspect}" + (f"-{resolution}" if resolution else "")
                cases.append(pytest.param(ref, aspect, resolution, id=ident.replace(" ", "")))
    return cases


@pytest.mark.parametrize(("ref", "aspect", "resolution"), every_size_case())
def test_every_ratio_at_every_resolution(ref: str, aspect: str, resolution: str | None) -> None:
    fixture = MODELS[ref]
    rule, props = fixture.size, fixture.input_schema["properties"]
    inp: dict[str, object] = {"prompt": "x", rule.aspect_field: aspect}
    field = rule.resolution_field or rule.halve_field
    if field:
        inp[field] = resolution
    if rule.match_input_field:
        image = data_uri(*IMAGE)
        inp[rule.match_input_field] = (
            [image] if props[rule.match_input_field]["type"] == "array" else image
        )
    w, h = output_size(rule, fixture.effective_input(inp))

    if rule.table is not None and aspect in rule.table:  # cog-flux: the exact table
        tw, th = rule.table[aspect]
        assert (w, h) == ((tw // 2, th // 2) if resolution == "0.25" else (tw, th))
        return
    if aspect == "custom":  # no width/height given: the custom default
        assert rule.custom is not None
        assert (w, h) == rule.custom.default
        return
    m = rule.multiple
    assert (w % m, h % m) == (0, 0)
    assert rule.min_side <= w <= rule.max_side
    assert rule.min_side <= h <= rule.max_side
    ratio = IMAGE[0] / IMAGE[1] if aspect == "match_input_image" else parse_ratio(aspect)
    assert ratio is not None
    assert (rule.min_ratio or 0) <= ratio <= (rule.max_ratio or ratio)  # the enum is supported
    tolerance = m / min(w, h)  # each side moves at most half a multiple when rounded
    assert abs(w / h / ratio - 1) <= tolerance
    if resolution == "match_input_image":
        megapixels = IMAGE[0] * IMAGE[1] / MEGAPIXEL
    elif rule.resolution_field and resolution:
        megapixels = float(resolution.split()[0])
    else:
        megapixels = rule.megapixels
    area = w * h / MEGAPIXEL
    assert area <= megapixels * (1 + tolerance) ** 2
    assert area <= (rule.max_megapixels or area)
    if max(w, h) < rule.max_side:  # not shrunk to fit: about the requested area
        assert area >= megapixels * (1 - tolerance) ** 2


def test_every_size_case_is_there() -> None:
    cases = every_size_case()
    assert {case.values[0] for case in cases} == set(MODELS)
    ids = {case.id for case in cases}
    assert len(ids) == len(cases)
    assert {"flux-2-flex-16:9-4MP", "flux-kontext-max-9:21", "flux-dev-21:9-0.25"} <= ids


@pytest.mark.parametrize("name", ["flux-2-pro", "flux-2-max", "flux-2-flex"])
def test_flux2_4mp_keeps_the_ratio_within_4mp(models: dict[str, ModelFixture], name: str) -> None:
    # Clamping each side on its own gave 2048x1536 (4:3) for 16:9.
    assert size(models, name, aspect_ratio="16:9", resolution="4 MP") == (2048, 1152)
    assert size(models, name, aspect_ratio="9:16", resolution="4 MP") == (1152, 2048)
    w, h = size(models, name, aspect_ratio="4:3", resolution="4 MP")
    assert (w, h) == (2048, 1536)
    assert w * h <= 4 * MEGAPIXEL


@pytest.mark.parametrize("name", ["flux-kontext-pro", "flux-kontext-max"])
def test_kontext_clamps_the_input_ratio_to_3_7(models: dict[str, ModelFixture], name: str) -> None:
    # 300x900 (1:3) gave 576x1760; kontext supports 3:7 .. 7:3.
    assert size(models, name, input_image=data_uri(300, 900)) == (672, 1568)  # 3:7, ~1 MP
    assert size(models, name, input_image=data_uri(900, 300)) == (1568, 672)  # 7:3


def test_flux2_input_ratio_is_bounded_by_its_sides(models: dict[str, ModelFixture]) -> None:
    # 1:20 cannot fit 256..2048: the tallest ratio those sides allow (1:8), at the longest side.
    w, h = size(
        models, "flux-2-pro", aspect_ratio="match_input_image", input_images=[data_uri(100, 2000)]
    )
    assert (w, h) == (256, 2048)


def test_rounding_never_crosses_the_megapixel_ceiling() -> None:
    rule = SizeRule(megapixels=2, max_megapixels=2, multiple=16)
    assert fit(rule, 1.0, 2) == (1440, 1440)  # 1448.2 rounds to 1456, and 1456^2 is above 2 MP
    assert fit(rule, 1.0, 8) == (1440, 1440)  # the request is capped at the ceiling too


def test_a_ratio_rule_grows_a_small_size_to_min_side() -> None:
    rule = SizeRule(megapixels=0.01, multiple=16, min_side=256, max_side=2048)
    assert fit(rule, 2.0, 0.01) == (512, 256)


def copy_model(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "models" / "black-forest-labs" / f"{name}.yaml"
    target.parent.mkdir(parents=True)
    shutil.copy(Settings().fixtures_dir / "models" / "black-forest-labs" / f"{name}.yaml", target)
    return target


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('min_ratio: "3:7"', "min_ratio: 3:7", "not of type 'string'"),  # YAML reads 187
        ('min_ratio: "3:7"', 'min_ratio: "0:7"', "above 0"),
        ('min_ratio: "3:7"', 'min_ratio: "8:3"', "wider than size.max_ratio"),
    ],
)
def test_a_bad_ratio_range_names_the_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = copy_model(tmp_path, "flux-kontext-pro")
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(FixtureError, match=message) as info:
        load_model(path)
    assert info.value.field == "size.min_ratio"


def test_the_kontext_ratio_range_is_loaded(models: dict[str, ModelFixture]) -> None:
    rule = models["black-forest-labs/flux-kontext-pro"].size
    assert (rule.min_ratio, rule.max_ratio) == (3 / 7, 7 / 3)
    assert models["black-forest-labs/flux-2-pro"].size.max_megapixels == 4
