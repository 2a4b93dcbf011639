"""Batched prediction with the demo model on the real brain series."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import imaging_lib
from imaging_lib.errors import InvalidInput, InvalidModelOutput
from imaging_lib.models import DEMO_MODEL_URI, load_model, sha256_hex
from imaging_lib.models.training import anatomy_mask, insert_lesion
from imaging_lib.science.inference import predict, predict_probabilities, prepare_slices
from imaging_lib.science.preprocess import apply_window, percentile_window
from imaging_lib.volume import Volume


@pytest.fixture(scope="module")
def model():
    return load_model(DEMO_MODEL_URI)


@pytest.fixture(scope="module")
def study(brain_volume):
    """The brain series with a pseudonymised patient id, as the store would hold it."""
    return brain_volume.with_array(brain_volume.array, patient_id="PSEUDO-0001", study_uid="2.25.1")


@pytest.fixture(scope="module")
def clean_prediction(study, model):
    return predict(study, model)


def test_prediction_has_one_probability_per_slice(clean_prediction, study):
    p = clean_prediction
    assert p.slice_probabilities.shape == (study.shape[2],)
    assert np.all((p.slice_probabilities >= 0) & (p.slice_probabilities <= 1))
    np.testing.assert_allclose(p.class_probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert p.most_suspicious_slice == int(np.argmax(p.slice_probabilities))
    assert p.probability == pytest.approx(np.sort(p.slice_probabilities)[-3:].mean())  # the model's own rule
    assert p.label == ("lesion" if p.probability >= p.threshold else "no_lesion")


def test_the_study_is_decided_by_the_models_rule_not_its_worst_slice(clean_prediction, model, study):
    rule = model.spec.decision_rule
    assert (rule.aggregate, rule.k) == ("top_k_mean", 3) and clean_prediction.threshold == rule.threshold
    # the healthy brain series: one slice looks suspicious (the old max-vs-0.5 rule said lesion), the study does not
    assert clean_prediction.slice_probabilities.max() > 0.5 and clean_prediction.label == "no_lesion"
    record = clean_prediction.to_record()
    assert record["decision"] == rule.to_dict() and record["threshold"] == rule.threshold
    overridden = predict(study, model, threshold=0.5)
    assert overridden.label == "lesion" and overridden.probability == clean_prediction.probability
    assert overridden.decision["chosen_on"] == "given by the caller"


def test_record_carries_patient_modality_and_provenance(clean_prediction, model):
    record = json.loads(json.dumps(clean_prediction.to_record()))
    assert record["patient_pseudonym"] == "PSEUDO-0001"
    assert record["study_uid"] == "2.25.1"
    assert record["modality"] == "MR"
    assert record["model_id"] == model.model_id and record["model_checksum"] == model.checksum
    assert record["provenance"]["library_version"] == imaging_lib.__version__
    assert record["provenance"]["created_at"].endswith("+00:00")
    assert len(record["slice_probabilities"]) == 20


def test_inserted_lesion_makes_its_slice_the_most_suspicious(study, model, clean_prediction):
    """A real slice that held no lesion gets one (in raw intensities): predict must find it."""
    window = percentile_window(study.array, 1, 99)
    k = int(np.argsort(clean_prediction.slice_probabilities)[len(clean_prediction.slice_probabilities) // 2])
    plane = apply_window(study.slice(k), window)
    lesioned, mask = insert_lesion(plane, anatomy_mask(plane), np.random.default_rng(3))
    array = study.array.astype(np.float32).copy()
    array[:, :, k] = lesioned * window.width + window.low
    result = predict(study.with_array(array), model)
    assert result.most_suspicious_slice == k
    assert result.slice_probabilities[k] > 0.5 > clean_prediction.slice_probabilities[k]
    assert result.probability > clean_prediction.probability


def test_batch_size_does_not_change_the_answer(study, model, clean_prediction):
    single = predict(study, model, batch_size=1)
    np.testing.assert_allclose(single.slice_probabilities, clean_prediction.slice_probabilities, atol=1e-5)


def test_slices_and_stacks_are_accepted(study, model, clean_prediction):
    stack = np.moveaxis(study.array, 2, 0)
    from_stack = predict(stack, model)
    np.testing.assert_allclose(from_stack.slice_probabilities, clean_prediction.slice_probabilities, atol=1e-6)
    assert from_stack.to_record()["patient_pseudonym"] is None
    one = predict(stack[3], model)
    assert one.slice_probabilities.shape == (1,)


def test_model_may_be_named_by_uri(study):
    assert predict(study, DEMO_MODEL_URI).model_id == load_model(DEMO_MODEL_URI).model_id


def test_prepared_slices_are_channels_last_model_input(study, model):
    images = prepare_slices(study, model, indices=[0, 5])
    assert images.shape == (2, 224, 224, 3) and images.dtype == np.float32
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    assert batch.is_contiguous(memory_format=torch.channels_last)


def test_bad_input_raises_typed_errors(study, model):
    with pytest.raises(InvalidInput, match="NaN"):
        bad = study.array.astype(np.float32).copy()
        bad[5, 5, 5] = np.nan
        predict(study.with_array(bad), model)
    with pytest.raises(InvalidInput, match="3D volume"):
        predict(Volume(np.zeros((4, 4, 4, 2)), np.eye(4)), model)
    with pytest.raises(InvalidInput, match="stack"):
        predict(np.zeros((2, 2, 2, 2)), model)
    with pytest.raises(InvalidInput, match=r"model input must be \(n, 224, 224, 3\)"):
        predict_probabilities(model, np.zeros((2, 128, 128, 3), np.float32))


class NaNModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.mean(dim=(1, 2, 3)) * float("nan")
        return torch.stack((score, score), dim=1)


def test_model_returning_nan_is_a_typed_error(tmp_path: Path, study):
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(NaNModel()), buffer)
    (tmp_path / "nan_model.pt").write_bytes(buffer.getvalue())
    (tmp_path / "nan_model.json").write_text(
        json.dumps(
            {
                "name": "nan_model",
                "format": "torchscript",
                "weights": "nan_model.pt",
                "sha256": sha256_hex(buffer.getvalue()),
                "input_size": [64, 64],
                "channels": 3,
                "class_names": ["no_lesion", "lesion"],
            }
        )
    )
    nan_model = load_model(str(tmp_path / "nan_model.json"), trust_torchscript=True)  # our own archive
    with pytest.raises(InvalidModelOutput, match="nan_model.json: .*NaN"):
        predict(study, nan_model)
