"""Loading models by URI: package, local path, fsspec URLs, checksum, cache, bad models."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from torch import nn

from imaging_lib import models
from imaging_lib.errors import (
    InvalidModelOutput,
    InvalidModelSpec,
    ModelChecksumMismatch,
    ModelError,
    ModelNotFound,
)
from imaging_lib.models import DEMO_MODEL_URI, load_counts, load_model, read_spec, sha256_hex
from imaging_lib.models.lesion_cnn import LesionCNN

PACKAGE_DIR = Path(models.__file__).parent


@pytest.fixture()
def model_copy(tmp_path: Path) -> Path:
    """A copy of the shipped demo model's spec and weights in a private folder."""
    for name in ("demo_lesion_cnn.json", "demo_lesion_cnn.pt"):
        shutil.copy(PACKAGE_DIR / name, tmp_path / name)
    return tmp_path / "demo_lesion_cnn.json"


def _write_spec(folder: Path, name: str, weights: bytes, **fields) -> Path:
    (folder / f"{name}.pt").write_bytes(weights)
    spec = {
        "name": name,
        "format": "torchscript",
        "weights": f"{name}.pt",
        "sha256": sha256_hex(weights),
        "input_size": [32, 32],
        "channels": 3,
        "class_names": ["no_lesion", "lesion"],
        **fields,
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def _torchscript_bytes(module: nn.Module) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


class ThreeLogits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))  # 3 channels in, 3 "classes" out


def test_demo_model_loads_with_its_spec():
    model = load_model(DEMO_MODEL_URI)
    weights = (PACKAGE_DIR / "demo_lesion_cnn.pt").read_bytes()
    assert model.sha256 == sha256_hex(weights) == model.spec.sha256
    assert model.model_id == f"demo_lesion_cnn-{model.sha256[:12]}"
    assert not model.module.training
    assert model.spec.input_size == (224, 224) and model.spec.channels == 3
    assert model.spec.class_names == ("no_lesion", "lesion") and model.spec.positive_class == "lesion"
    assert model.spec["preprocessing"]["window"] == "percentile"
    assert sum(p.numel() for p in model.module.parameters()) < 5_000_000


def test_load_model_caches_per_uri():
    before = load_counts().get(DEMO_MODEL_URI, 0)
    first = load_model(DEMO_MODEL_URI)
    second = load_model(DEMO_MODEL_URI)
    assert first is second
    assert load_counts()[DEMO_MODEL_URI] == max(before, 1)


def test_pickled_model_comes_back_from_the_cache():
    model = load_model(DEMO_MODEL_URI)
    assert pickle.loads(pickle.dumps(model)) is model


def test_local_spec_path_and_weights_path_load_the_same_weights(model_copy: Path):
    by_spec = load_model(str(model_copy))
    by_weights = load_model(str(model_copy.with_suffix(".pt")))
    assert by_spec.sha256 == by_weights.sha256 == load_model(DEMO_MODEL_URI).sha256
    assert by_spec is not by_weights  # two URIs, two cache entries
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(by_spec.module(x), by_weights.module(x))


def test_fsspec_urls_load(model_copy: Path):
    file_url = model_copy.as_uri()
    assert file_url.startswith("file://")
    assert load_model(file_url).sha256 == load_model(DEMO_MODEL_URI).sha256
    memory = fsspec.filesystem("memory")
    for path in model_copy.parent.iterdir():
        memory.pipe(f"/models/{path.name}", path.read_bytes())
    loaded = load_model("memory://models/demo_lesion_cnn.json")
    assert loaded.sha256 == load_model(DEMO_MODEL_URI).sha256
    assert load_counts()["memory://models/demo_lesion_cnn.json"] == 1


def test_checksum_mismatch_is_refused(model_copy: Path):
    weights = model_copy.with_suffix(".pt")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelChecksumMismatch, match="SHA-256") as info:
        load_model(str(model_copy))
    assert info.value.source == str(model_copy)
    assert isinstance(info.value, ModelError)


def test_caller_checksum_overrides_the_spec(model_copy: Path):
    with pytest.raises(ModelChecksumMismatch, match="expected 0{64}"):
        load_model(str(model_copy), sha256="0" * 64)


def test_missing_model_is_reported():
    with pytest.raises(ModelNotFound, match="no model named"):
        load_model("package://no_such_model")
    with pytest.raises(ModelNotFound, match="nothing at"):
        load_model("/nonexistent/folder/model.json")
    with pytest.raises(ModelNotFound):
        load_model("memory://nowhere/model.json")


def test_torchscript_model_plugs_in(tmp_path: Path):
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    spec_path = _write_spec(tmp_path, "tiny_script", _torchscript_bytes(module.eval()))
    loaded = load_model(str(spec_path))
    assert loaded.spec.format == "torchscript"
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.module(x), module(x))


def test_user_state_dict_architecture_plugs_in(tmp_path: Path):
    import io

    buffer = io.BytesIO()
    torch.save(LesionCNN(width=8).state_dict(), buffer)
    spec_path = _write_spec(
        tmp_path,
        "user_cnn",
        buffer.getvalue(),
        format="state_dict",
        architecture="imaging_lib.models.lesion_cnn:LesionCNN",
        architecture_params={"width": 8},
        input_size=[64, 64],
    )
    assert isinstance(load_model(str(spec_path)).module, LesionCNN)


def test_wrong_number_of_classes_is_refused(tmp_path: Path):
    spec_path = _write_spec(tmp_path, "three_class", _torchscript_bytes(ThreeLogits()))
    with pytest.raises(InvalidModelOutput, match=r"returns \(1, 3\) .* names 2 classes"):
        load_model(str(spec_path))


def test_weights_that_do_not_fit_the_architecture_are_refused(model_copy: Path):
    spec = json.loads(model_copy.read_text())
    spec["architecture_params"] = {"width": 8, "num_classes": 2}
    model_copy.write_text(json.dumps(spec))
    with pytest.raises(InvalidModelSpec, match="do not fit architecture"):
        load_model(str(model_copy))


def test_spec_without_checksum_or_fields_is_refused(tmp_path: Path, model_copy: Path):
    spec = json.loads(model_copy.read_text())
    del spec["sha256"]
    model_copy.write_text(json.dumps(spec))
    with pytest.raises(InvalidModelSpec, match="no SHA-256"):
        load_model(str(model_copy))
    del spec["class_names"]
    model_copy.write_text(json.dumps(spec))
    with pytest.raises(InvalidModelSpec, match="lacks class_names"):
        read_spec(str(model_copy))
    model_copy.write_text("{not json")
    with pytest.raises(InvalidModelSpec, match="not valid JSON"):
        read_spec(str(model_copy))


def test_demo_model_is_confident_on_nothing_in_particular():
    """A blank image is no lesion: the model is not a constant 'lesion' answer."""
    model = load_model(DEMO_MODEL_URI)
    blank = torch.zeros(1, 3, 224, 224)
    with torch.inference_mode():
        p_blank = torch.softmax(model.module(blank), 1)[0, 1].item()
    assert np.isfinite(p_blank) and p_blank < 0.5
