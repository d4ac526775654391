"""Fixture loading: the bundled models load; a bad file is refused naming its file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mock_server.config import Settings
from mock_server.fixtures import FixtureError, load_fixtures
from tests.conftest import MODELS


def test_all_eleven_models_load() -> None:
    models = load_fixtures(Settings().fixtures_dir)
    assert sorted(models) == sorted(f"black-forest-labs/{m}" for m in MODELS)
    for fixture in models.values():
        assert fixture.input_schema["required"] == ["prompt"]
        assert fixture.output == (
            "list" if fixture.name in ("flux-schnell", "flux-dev") else "single"
        )
        assert len(fixture.version) == 64


@pytest.fixture
def fixtures_copy(tmp_path: Path) -> Path:
    target = tmp_path / "fixtures"
    shutil.copytree(Settings().fixtures_dir, target)
    return target


def edit(path: Path, change: dict[str, object]) -> None:
    data = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"timing.setup": -1}, "timing.setup", id="negative-timing"),
        pytest.param({"output": "many"}, "output", id="bad-output-kind"),
        pytest.param({"size.multiple": "x"}, "size.multiple", id="bad-size-field"),
        pytest.param(
            {"input_schema.properties.num_outputs.default": 9},
            "input_schema.properties.num_outputs.default",
            id="default-out-of-range",
        ),
        pytest.param(
            {"input_schema.properties.num_outputs.type": "integr"},
            "input_schema.properties.num_outputs.type",
            id="invalid-json-schema",
        ),
        pytest.param({"name": "other"}, "owner/name", id="name-mismatch"),
        pytest.param({"surprise": 1}, "(file)", id="unknown-key"),
    ],
)
def test_a_bad_file_names_file_and_field(
    fixtures_copy: Path, change: dict[str, object], field: str
) -> None:
    path = fixtures_copy / "models/black-forest-labs/flux-schnell.yaml"
    edit(path, change)
    with pytest.raises(FixtureError) as info:
        load_fixtures(fixtures_copy)
    assert str(path) in str(info.value)
    assert field in str(info.value)


def test_unreadable_yaml(fixtures_copy: Path) -> None:
    path = fixtures_copy / "models/black-forest-labs/flux-dev.yaml"
    path.write_text("owner: [unclosed")
    with pytest.raises(FixtureError, match=r"flux-dev\.yaml"):
        load_fixtures(fixtures_copy)


def test_empty_fixtures_folder(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="models"):
        load_fixtures(tmp_path)
