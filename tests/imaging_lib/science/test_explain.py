"""Fast LIME: exact against the lime package, heat maps on the study, and it points at lesions."""

from __future__ import annotations

import numpy as np
import pytest
from lime import lime_image
from lime.wrappers.scikit_image import SegmentationAlgorithm

from imaging_lib.errors import InvalidInput
from imaging_lib.models import DEMO_MODEL_URI, load_model
from imaging_lib.models.training import heldout_set
from imaging_lib.science.explain import explain_slice, perturbed_predictions
from imaging_lib.science.inference import predict_probabilities, prepare_slices
from imaging_lib.volume import Volume


@pytest.fixture(autouse=True)
def _quiet_lime(monkeypatch):
    """lime's own data_labels (the reference here) draws a tqdm bar per call: not in the test log."""
    monkeypatch.setenv("TQDM_DISABLE", "1")


SLICE = 10  # a mid-brain slice of the real MR series


@pytest.fixture(scope="module")
def model():
    return load_model(DEMO_MODEL_URI)


@pytest.fixture(scope="module")
def slice_image(brain_volume, model):
    """The model input for the explained slice, exactly as explain_slice prepares it."""
    return prepare_slices(brain_volume, model, indices=[SLICE])[0]


@pytest.fixture(scope="module")
def ours(brain_volume, model):
    return explain_slice(brain_volume, SLICE, model, num_samples=1000, random_state=0)


def _plain_classifier(model):
    """What a user of lime writes: probabilities for a batch of (n, h, w, 3) images."""
    return lambda images: predict_probabilities(model, images, batch_size=10)


def _assert_same_explanation(ours_exp, lime_exp, lime_data, lime_labels, label=1):
    assert np.array_equal(ours_exp.model_segments, lime_exp.segments)
    assert np.array_equal(ours_exp.samples, lime_data)
    np.testing.assert_allclose(ours_exp.sample_probabilities, lime_labels, atol=1e-6, rtol=0)
    theirs = dict(lime_exp.local_exp[label])
    assert set(ours_exp.weights) == set(theirs)
    for segment, weight in theirs.items():
        assert ours_exp.weights[segment] == pytest.approx(weight, abs=1e-6)
    ranked = [s for s, _ in sorted(lime_exp.local_exp[label], key=lambda kv: -kv[1])]
    assert ours_exp.top_segments(5) == ranked[:5]
    assert ours_exp.local_prediction == pytest.approx(float(np.ravel(lime_exp.local_pred)[0]), abs=1e-6)
    assert ours_exp.intercept == pytest.approx(lime_exp.intercept[label], abs=1e-6)


class RecordingExplainer(lime_image.LimeImageExplainer):
    """lime's explainer, unchanged, keeping what its own data_labels returned."""

    def data_labels(self, *args, **kwargs):
        self.recorded = super().data_labels(*args, **kwargs)
        return self.recorded


@pytest.mark.slow
def test_equals_lime_with_its_default_quickshift(ours, slice_image, model):
    np.random.seed(0)  # LimeImageExplainer() draws from numpy's global state: seed 0 = random_state=0
    explainer = RecordingExplainer()
    lime_exp = explainer.explain_instance(
        slice_image, _plain_classifier(model), labels=(1,), top_labels=None, num_samples=1000
    )
    data, labels = explainer.recorded
    assert len(ours.weights) >= 10  # quickshift found real superpixels on the real slice
    _assert_same_explanation(ours, lime_exp, data, labels)


def test_equals_lime_with_slic(brain_volume, slice_image, model):
    params = {"n_segments": 30, "compactness": 10.0, "start_label": 0}
    ours_exp = explain_slice(
        brain_volume, SLICE, model, num_samples=200, random_state=5, segmentation="slic", segmentation_params=params
    )
    explainer = RecordingExplainer(random_state=5)
    lime_exp = explainer.explain_instance(
        slice_image,
        _plain_classifier(model),
        labels=(1,),
        top_labels=None,
        num_samples=200,
        segmentation_fn=SegmentationAlgorithm("slic", **params),
    )
    _assert_same_explanation(ours_exp, lime_exp, *explainer.recorded)


@pytest.mark.parametrize("overlap", [False, True])
def test_perturbations_match_lime_pixel_for_pixel(slice_image, overlap):
    """Our vectorised perturbation builds exactly lime's images (label gap included), overlapped or not."""
    rng = np.random.RandomState(1)
    segments = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 56, axis=0), 56, axis=1)
    segments[segments == 7] = 20  # a label outside lime's columns is never switched off
    n_features = len(np.unique(segments))
    fudged = slice_image[::-1].copy()
    data = rng.randint(0, 2, (12, n_features))
    seen = []

    def classifier(images):
        seen.append(images.copy())  # the buffer is reused for a later batch
        return np.zeros((len(images), 2))

    perturbed_predictions(slice_image, fudged, segments, data, classifier, 5, overlap=overlap)
    ours = np.concatenate(seen)
    for row, image in zip(data, ours):
        expected = slice_image.copy()
        mask = np.zeros(segments.shape, bool)
        for z in np.where(row == 0)[0]:
            mask[segments == z] = True
        expected[mask] = fudged[mask]
        assert np.array_equal(image, expected)


def test_heatmap_is_the_segment_weights_on_the_slice_grid(ours, brain_volume):
    assert ours.segments.shape == ours.heatmap.shape == brain_volume.shape[:2]
    for segment in ours.top_segments(3):
        assert np.all(ours.heatmap[ours.segments == segment] == np.float32(ours.weights[segment]))
    assert set(np.unique(ours.segments)) <= set(ours.weights)
    record = ours.to_record()
    provenance = record["provenance"]
    assert provenance["model_id"] == load_model(DEMO_MODEL_URI).model_id
    assert provenance["parameters"]["num_samples"] == 1000


def test_heat_map_volume_sits_on_the_study_geometry(ours, brain_volume, tmp_path):
    heat = ours.to_volume(brain_volume)
    assert heat.shape == brain_volume.shape[:3]
    np.testing.assert_array_equal(heat.affine, brain_volume.affine)
    assert np.array_equal(heat.array[:, :, SLICE], ours.heatmap)
    assert not np.any(np.delete(heat.array, SLICE, axis=2))
    path = tmp_path / "heat.nii.gz"
    heat.to_nifti().to_filename(path)
    import nibabel as nib

    back = nib.load(path)
    np.testing.assert_allclose(back.affine, brain_volume.affine)
    np.testing.assert_array_equal(np.asarray(back.dataobj)[:, :, SLICE], ours.heatmap)


def test_bad_requests_raise(brain_volume, model, ours):
    with pytest.raises(InvalidInput, match="slice 20 is outside"):
        explain_slice(brain_volume, 20, model)
    with pytest.raises(ValueError, match="segmentation must be one of"):
        explain_slice(brain_volume, 0, model, segmentation="watershed")
    with pytest.raises(ValueError, match="label 'tumour'"):
        explain_slice(brain_volume, 0, model, label="tumour")
    with pytest.raises(InvalidInput, match="does not fit"):
        ours.to_volume(Volume(np.zeros((10, 10, 5)), np.eye(4)))


@pytest.mark.slow
def test_pointing_game_on_heldout_lesions(model):
    """On 50 held-out synthetic-lesion slices the top segment overlaps the true lesion in >= 90 %."""
    data = heldout_set(120)
    positives = np.flatnonzero(data.labels == 1)[:50]
    assert len(positives) == 50
    hits = 0
    for n in positives:
        volume = Volume(data.images[n][:, :, None], np.eye(4))
        explanation = explain_slice(volume, 0, model, random_state=int(n))
        top = explanation.top_segments(1)[0]
        hits += bool(np.any(data.masks[n] & (explanation.segments == top)))
    assert hits / 50 >= 0.9, f"pointing game {hits}/50"
