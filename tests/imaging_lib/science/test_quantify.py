"""Quantification of masks and label images against direct numpy computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from imaging_lib import Volume, sample_data
from imaging_lib.errors import InvalidGeometry
from imaging_lib.io.nifti import read_nifti
from imaging_lib.science.quantify import quantify, quantify_labels
from imaging_lib.science.region_growing import grow_region


def test_quantify_uses_the_affine_determinant_not_the_spacing():
    sheared = np.array([[1.0, 0.8, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0, 0, 0, 1]])
    image = Volume(np.ones((10, 10, 10), np.float32), sheared)
    mask = np.zeros((10, 10, 10), np.uint8)
    mask[2:5, 2:6, 3:5] = 1
    result = quantify(image, mask)
    assert result["voxel_count"] == 24
    assert result["volume_ml"] == pytest.approx(24 * 2.0 / 1000)  # |det| = 2
    assert result["volume_ml"] != pytest.approx(24 * np.prod(image.spacing) / 1000)


def test_quantify_matches_direct_numpy_statistics(soft_phantom):
    volume = soft_phantom.volume
    mask = soft_phantom.labels.array > 0  # both ellipsoids: two components
    result = quantify(volume, mask, percentiles=(1, 33.3, 50, 99))
    values = volume.array[mask].astype(np.float64)
    where = np.argwhere(mask)
    assert result["voxel_count"] == mask.sum()
    assert result["volume_ml"] == pytest.approx(mask.sum() * abs(np.linalg.det(volume.affine[:3, :3])) / 1000)
    assert result["intensity_mean"] == pytest.approx(values.mean())
    assert result["intensity_std"] == pytest.approx(values.std())
    assert result["intensity_min"] == values.min() and result["intensity_max"] == values.max()
    for p in (1, 33.3, 50, 99):
        assert result[f"intensity_p{p:g}"] == pytest.approx(np.percentile(values, p))
    assert np.allclose([result[f"centroid_{axis}"] for axis in "ijk"], where.mean(axis=0))
    for axis, name in enumerate("ijk"):
        assert result[f"bbox_{name}_min"] == where[:, axis].min()
        assert result[f"bbox_{name}_max"] == where[:, axis].max()
    assert result["components"] == 2
    json.dumps(result, allow_nan=False)  # records are strict JSON


def test_quantify_empty_mask_reports_zero_and_no_statistics(soft_phantom):
    result = quantify(soft_phantom.volume, np.zeros(soft_phantom.volume.shape, np.uint8))
    assert result["voxel_count"] == 0 and result["volume_ml"] == 0 and result["components"] == 0
    assert result["intensity_mean"] is None and result["centroid_x_mm"] is None
    json.dumps(result, allow_nan=False)


def test_quantify_refuses_a_mask_on_another_grid(soft_phantom):
    volume = soft_phantom.volume
    with pytest.raises(InvalidGeometry, match="shape"):
        quantify(volume, np.ones((3, 3, 3), np.uint8))
    shifted = volume.affine.copy()
    shifted[0, 3] += 5
    with pytest.raises(InvalidGeometry, match="affine"):
        quantify(volume, Volume(np.ones(volume.shape, np.uint8), shifted))


def test_connectivity_decides_whether_corner_neighbours_join():
    array = np.zeros((12, 12, 12), np.float32)
    array[2:6, 2:6, 2:6] = 100
    array[6:10, 6:10, 6:10] = 100  # touches the first cube at one corner only
    image = Volume(array, np.eye(4))
    params = {"tolerance_mode": "absolute", "tolerance": 10.0}
    assert grow_region(image, (3, 3, 3), connectivity=6, **params).array.sum() == 64
    assert grow_region(image, (3, 3, 3), connectivity=18, **params).array.sum() == 64
    both = grow_region(image, (3, 3, 3), connectivity=26, **params)
    assert both.array.sum() == 128
    assert quantify(image, both, connectivity=26)["components"] == 1
    assert quantify(image, both, connectivity=6)["components"] == 2


@pytest.fixture(scope="module")
def talairach():
    """The Talairach atlas labels and papaya's T1 image resampled onto the atlas grid."""
    labels = read_nifti(sample_data.papaya_nifti("Talairach_labels_1mm.nii.gz"))
    image = read_nifti(sample_data.papaya_nifti("sample_image.nii.gz"))
    grid = np.indices(labels.shape[:3]).reshape(3, -1).T
    where = image.world_to_voxel(labels.voxel_to_world(grid)).T
    resampled = ndimage.map_coordinates(image.array.astype(np.float32), where, order=1, cval=0.0)
    return labels, labels.with_array(resampled.reshape(labels.shape[:3]))


def test_quantify_labels_matches_a_direct_computation_per_label(talairach):
    labels, image = talairach
    table = quantify_labels(image, labels)
    present = np.unique(labels.array)
    present = present[present != 0]
    assert list(table["label"]) == list(present)
    assert table["voxel_count"].sum() == np.count_nonzero(labels.array)
    counts = table.set_index("label")["voxel_count"]
    chosen = {
        int(present[0]),
        int(present[-1]),
        int(counts.idxmax()),
        int(counts.idxmin()),
        int(present[len(present) // 2]),
    }
    for label in chosen:
        row = table.set_index("label").loc[label]
        inside = labels.array == label
        values = image.array[inside].astype(np.float64)
        where = np.argwhere(inside)
        assert row["voxel_count"] == inside.sum()
        assert row["volume_ml"] == pytest.approx(inside.sum() * labels.voxel_volume_ml)
        assert row["intensity_mean"] == pytest.approx(values.mean())
        assert row["intensity_std"] == pytest.approx(values.std(), abs=1e-9)
        assert row["intensity_min"] == values.min() and row["intensity_max"] == values.max()
        assert row["intensity_p50"] == pytest.approx(np.median(values))
        assert row["intensity_p95"] == pytest.approx(np.percentile(values, 95))
        assert np.allclose(row[["centroid_i", "centroid_j", "centroid_k"]].to_numpy(float), where.mean(axis=0))
        assert np.allclose(
            row[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(float),
            labels.voxel_to_world(where.mean(axis=0)),
        )
        assert row["bbox_k_min"] == where[:, 2].min() and row["bbox_j_max"] == where[:, 1].max()


def test_quantify_labels_agrees_with_quantify_for_one_label(soft_phantom):
    table = quantify_labels(soft_phantom.volume, soft_phantom.labels).set_index("label")
    single = quantify(soft_phantom.volume, soft_phantom.labels.array == 2)
    for name, value in table.loc[2].items():
        assert single[name] == pytest.approx(value)


def test_quantify_labels_refuses_float_labels(soft_phantom):
    with pytest.raises(ValueError, match="integers"):
        quantify_labels(soft_phantom.volume, soft_phantom.volume.array)
