"""Model specs are untrusted data: every field is checked, and the checksum covers all of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imaging_lib import models
from imaging_lib.errors import InvalidModelSpec
from imaging_lib.models import ModelSpec, model_checksum

DEMO = json.loads((Path(models.__file__).parent / "demo_lesion_cnn.json").read_text())


def test_the_demo_spec_round_trips():
    spec = ModelSpec.from_dict(DEMO, "demo")
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.weights == "demo_lesion_cnn.pt" and spec.sha256 == DEMO["sha256"]


@pytest.mark.parametrize(
    "weights",
    [
        "/etc/hostname",
        "http://127.0.0.1:9/model.pt",
        "gs://bucket/model.pt",
        "file:///etc/hostname",
        "../model.pt",
        "sub/../../model.pt",
        "./model.pt",
        ".hidden.pt",
        "C:\\models\\model.pt",
        "sub//model.pt",
        "",
        42,
    ],
)
def test_weights_outside_the_spec_folder_are_refused(weights):
    with pytest.raises(InvalidModelSpec, match="inside the spec's folder"):
        ModelSpec.from_dict({**DEMO, "weights": weights}, "spec.json")


def test_weights_in_a_subfolder_are_fine():
    assert ModelSpec.from_dict({**DEMO, "weights": "v2/weights-1.0.pt"}).weights == "v2/weights-1.0.pt"


@pytest.mark.parametrize("name", ["../../results/x", "a/b", "", ".hidden", "x" * 65, "a..b", None])
def test_names_that_are_not_store_key_safe_are_refused(name):
    with pytest.raises(InvalidModelSpec, match="not a plain model name"):
        ModelSpec.from_dict({**DEMO, "name": name})


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("sha256", "12bb", "64 hex digits"),
        ("input_size", [100_000, 100_000], "exceeds"),
        ("input_size", [224], "2 positive integer"),
        ("input_size", ["224", "a"], "2 positive integer"),
        ("channels", 0, "positive integer"),
        ("channels", True, "positive integer"),
        ("class_names", ["only"], "2 to 1000 class names"),
        ("class_names", "ab", "2 to 1000 class names"),
        ("positive_class", "tumour", "is not one of"),
        ("format", "pickle", "format must be"),
        ("architecture", ["os", "system"], "builder name"),
        ("architecture_params", [1, 2], "JSON object"),
        ("batch_size", -1, "positive integer"),
    ],
)
def test_bad_values_are_typed_errors(field, value, reason):
    with pytest.raises(InvalidModelSpec, match=reason):
        ModelSpec.from_dict({**DEMO, field: value}, "spec.json")


def test_a_spec_must_pin_its_weights():
    del_sha = {k: v for k, v in DEMO.items() if k != "sha256"}
    with pytest.raises(InvalidModelSpec, match="lacks sha256"):
        ModelSpec.from_dict(del_sha)


def test_the_checksum_covers_every_field_and_the_weights():
    spec = ModelSpec.from_dict(DEMO)
    base = model_checksum(spec, spec.sha256)
    assert len(base) == 64 and base == model_checksum(ModelSpec.from_dict(json.loads(json.dumps(DEMO))), spec.sha256)
    # key order and whitespace of the file do not matter
    reordered = dict(reversed(list(DEMO.items())))
    assert model_checksum(ModelSpec.from_dict(reordered), spec.sha256) == base
    changes = {
        "positive_class": "no_lesion",
        "class_names": ["lesion", "no_lesion"],
        "architecture_params": {"width": 16, "num_classes": 2, "batch_norm": False},
        "preprocessing": {**DEMO["preprocessing"], "percentiles": [0.0, 100.0]},
        "input_size": [112, 112],
        "weights": "other.pt",
        "name": "renamed",
    }
    seen = {base}
    for field, value in changes.items():
        changed = model_checksum(ModelSpec.from_dict({**DEMO, field: value}), spec.sha256)
        assert changed not in seen, field
        seen.add(changed)
    assert model_checksum(spec, "0" * 64) not in seen
