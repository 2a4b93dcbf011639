"""The builder registry: built-in names, register_builder, and real installed entry points."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from imaging_lib.errors import InvalidModelSpec
from imaging_lib.models import (
    ENTRY_POINT_GROUP,
    builder,
    builder_names,
    load_model,
    register_builder,
    sha256_hex,
)
from imaging_lib.models.lesion_cnn import LesionCNN

TINY_MODULE = """
    from pathlib import Path
    from torch import nn

    Path(__file__).with_name("imported.marker").write_text("tiny_models was imported")

    def build(width=4, classes=2):
        return nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))
"""


@pytest.fixture()
def installed_plugin(tmp_path: Path, monkeypatch) -> Path:
    """A real installed distribution (dist-info with entry_points.txt) that declares a builder ``tiny_net``."""
    site = tmp_path / "site"
    dist_info = site / "tiny_models-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-models\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ntiny_net = tiny_models:build\n")
    (site / "tiny_models.py").write_text(textwrap.dedent(TINY_MODULE))
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("tiny_models", None)


def _state_dict_model(folder: Path, architecture: str, module: nn.Module, **params) -> Path:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    (folder / "model.pt").write_bytes(buffer.getvalue())
    spec = {
        "name": "plugin_model",
        "format": "state_dict",
        "weights": "model.pt",
        "sha256": sha256_hex(buffer.getvalue()),
        "architecture": architecture,
        "architecture_params": params,
        "input_size": [32, 32],
        "channels": 3,
        "class_names": ["no_lesion", "lesion"],
    }
    (folder / "model.json").write_text(json.dumps(spec))
    return folder / "model.json"


def test_the_package_builder_is_built_in():
    assert builder("lesion_cnn") is LesionCNN
    assert "lesion_cnn" in builder_names()


def test_an_installed_entry_point_builder_is_found_and_loads_a_model(installed_plugin: Path, tmp_path: Path):
    assert "tiny_net" in builder_names()
    assert not (installed_plugin / "imported.marker").exists()  # listing names imports nothing
    make = builder("tiny_net", "test")
    assert (installed_plugin / "imported.marker").exists()
    reference = make(width=6).eval()
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    loaded = load_model(str(_state_dict_model(model_dir, "tiny_net", reference, width=6)))
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.module(x), reference(x))


def test_register_builder_adds_a_name_and_refuses_to_rebind_it(tmp_path: Path):
    def small_cnn(width: int = 4) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2))

    register_builder("test_small_cnn", small_cnn)
    register_builder("test_small_cnn", small_cnn)  # the same builder again is fine
    assert builder("test_small_cnn") is small_cnn
    with pytest.raises(ValueError, match="already has a builder"):
        register_builder("test_small_cnn", LesionCNN)
    with pytest.raises(ValueError, match="already has a builder"):
        register_builder("lesion_cnn", small_cnn)
    with pytest.raises(ValueError, match="not a builder name"):
        register_builder("os:system", small_cnn)
    loaded = load_model(str(_state_dict_model(tmp_path, "test_small_cnn", small_cnn(5), width=5)))
    assert isinstance(loaded.module, nn.Sequential)


@pytest.mark.parametrize(
    "name",
    ["os:system", "subprocess:run", "builtins:eval", "imaging_lib.models.lesion_cnn:LesionCNN", "tiny_models", "a b"],
)
def test_names_that_are_not_registered_are_refused_without_importing(installed_plugin: Path, name: str):
    with pytest.raises(InvalidModelSpec, match="not a builder name|unknown architecture") as refused:
        builder(name, "spec.json")
    assert refused.value.source == "spec.json"
    # the plug-in module exists on sys.path, but only its entry point name reaches it
    assert "tiny_models" not in sys.modules and not (installed_plugin / "imported.marker").exists()


def test_two_packages_declaring_one_name_is_an_error(installed_plugin: Path):
    other = installed_plugin / "other_models-2.0.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: other-models\nVersion: 2.0\n")
    (other / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ntiny_net = other_models:build\n")
    with pytest.raises(InvalidModelSpec, match="declared by several packages"):
        builder("tiny_net")
