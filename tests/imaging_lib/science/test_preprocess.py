"""Preprocessing on the real sample slices: windows, normalisation, resizing, 3 channels."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_lib.errors import InvalidInput
from imaging_lib.io.dicom import read_dicom_series
from imaging_lib.sample_data import pydicom_file
from imaging_lib.science import preprocess
from imaging_lib.science.preprocess import Window


@pytest.fixture(scope="module")
def mr_small():
    """pydicom's MR_small.dcm: 64x64 with WindowCenter 600 / WindowWidth 1600."""
    return read_dicom_series([pydicom_file("MR_small.dcm")])


def test_dicom_window_comes_from_the_header(mr_small):
    window = preprocess.dicom_window(mr_small.metadata)
    assert window == Window(600.0, 1600.0)
    assert (window.low, window.high) == (-200.0, 1400.0)


def test_dicom_window_is_none_without_one():
    assert preprocess.dicom_window({"modality": "CT"}) is None
    assert preprocess.dicom_window({"window_center": 40, "window_width": 0}) is None


def test_apply_window_maps_the_window_to_unit_range(mr_small):
    window = preprocess.dicom_window(mr_small.metadata)
    raw = mr_small.slice(0)
    out = preprocess.apply_window(raw, window)
    assert out.dtype == np.float32 and out.shape == raw.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    inside = (raw > window.low) & (raw < window.high)
    assert inside.any()
    np.testing.assert_allclose(out[inside], (raw[inside] - window.low) / window.width, rtol=1e-5)
    assert np.all(out[raw >= window.high] == 1.0)


def test_percentile_window_spans_the_percentiles(brain_volume):
    window = preprocess.percentile_window(brain_volume.array, 1, 99)
    low, high = np.percentile(brain_volume.array, [1, 99])
    assert window.low == pytest.approx(low) and window.high == pytest.approx(high)
    out = preprocess.apply_window(brain_volume.array, window)
    assert 0.005 < (out == 1.0).mean() < 0.02  # about 1 % saturates at the top


def test_percentile_window_of_a_constant_image_is_not_degenerate():
    window = preprocess.percentile_window(np.full((8, 8), 7.0))
    assert window.width == 1.0
    assert np.all(np.isfinite(preprocess.apply_window(np.full((8, 8), 7.0), window)))


def test_window_for_follows_the_spec(mr_small):
    raw = mr_small.array
    assert preprocess.window_for(raw, {"window": "dicom"}, mr_small.metadata) == Window(600.0, 1600.0)
    fallback = preprocess.window_for(raw, {"window": "dicom", "percentiles": [0, 100]}, {})
    assert (fallback.low, fallback.high) == (raw.min(), raw.max())
    assert preprocess.window_for(raw, {"window": "fixed", "center": 1, "width": 2}) == Window(1.0, 2.0)
    with pytest.raises(ValueError, match="unknown window"):
        preprocess.window_for(raw, {"window": "magic"})


def test_normalize_uses_the_array_range(brain_volume):
    out = preprocess.normalize(brain_volume.slice(10))
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.all(preprocess.normalize(np.ones((4, 4))) == 0.0)


def test_resize_anti_aliases_when_shrinking():
    stripes = np.tile([0.0, 1.0], (256, 128))  # one-pixel stripes alias badly without a filter
    out = preprocess.resize(stripes, (64, 64))
    assert out.shape == (64, 64) and out.dtype == np.float32
    assert abs(float(out.mean()) - 0.5) < 0.01 and float(out.std()) < 0.05


def test_resize_keeps_a_real_slice_recognisable(brain_volume):
    raw = preprocess.normalize(brain_volume.slice(10))
    small = preprocess.resize(raw, (128, 128))
    back = preprocess.resize(small, raw.shape)
    assert np.corrcoef(back.ravel(), raw.ravel())[0, 1] > 0.95


def test_resize_labels_keeps_label_values():
    labels = np.arange(16).reshape(4, 4)
    big = preprocess.resize_labels(labels, (8, 8))
    assert set(np.unique(big)) == set(range(16))
    assert np.array_equal(big[::2, ::2], labels)


def test_model_input_is_three_equal_channels_last(brain_volume):
    window = preprocess.percentile_window(brain_volume.array)
    image = preprocess.model_input(brain_volume.slice(10), window, (224, 224))
    assert image.shape == (224, 224, 3) and image.dtype == np.float32 and image.flags.c_contiguous
    assert np.array_equal(image[..., 0], image[..., 2])
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.1


def test_model_input_rejects_bad_arrays():
    window = Window(0.5, 1.0)
    with pytest.raises(InvalidInput, match="2D slice"):
        preprocess.model_input(np.zeros((4, 4, 4)), window, (8, 8), source="scan.nii")
    bad = np.zeros((16, 16), np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(InvalidInput, match="scan.nii: .*NaN"):
        preprocess.model_input(bad, window, (8, 8), source="scan.nii")
    with pytest.raises(InvalidInput, match="empty"):
        preprocess.check_finite(np.zeros((0, 4)))
