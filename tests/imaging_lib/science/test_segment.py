"""Seeded region growing and quantification against phantoms of known truth and real images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from imaging_lib import Volume, sample_data
from imaging_lib.errors import ImagingError, InvalidGeometry, InvalidSeed, RegionTooLarge, UnsupportedImage
from imaging_lib.io.nifti import read_nifti
from imaging_lib.phantoms import Ellipsoid, demo_phantom, draw_phantom, oblique_affine
from imaging_lib.science.segment import grow_region, quantify, quantify_labels, save_segmentation, segment_and_quantify
from imaging_lib.store.layout import segmentation_key, segmentation_record_key
from imaging_lib.store.objects import Store

BACKGROUND = 20.0


@pytest.fixture(scope="module")
def soft_phantom():
    """Partial-volume edges and noise (sigma 8 against contrasts of 100 and 180)."""
    return demo_phantom()


@pytest.fixture(scope="module")
def hard_phantom():
    """Hard edges (voxel centre inside or not) and the same noise."""
    return demo_phantom(supersample=1)


@pytest.fixture(scope="module")
def sample_image() -> Volume:
    return read_nifti(sample_data.papaya_nifti("sample_image.nii.gz"))


def _centroid_ijk(result: dict) -> np.ndarray:
    return np.array([result["centroid_i"], result["centroid_j"], result["centroid_k"]])


def _half_contrast(phantom, index: int) -> float:
    return (phantom.ellipsoids[index].intensity - BACKGROUND) / 2


ACCURACY_CASES = {
    "absolute-6": ("soft", lambda p, i: {"tolerance_mode": "absolute", "tolerance": _half_contrast(p, i)}),
    "absolute-26-smoothed": (
        "soft",
        lambda p, i: {
            "tolerance_mode": "absolute",
            "tolerance": _half_contrast(p, i),
            "connectivity": 26,
            "smoothing_sigma_mm": 0.5,
        },
    ),
    # mean ± 3 std keeps all but 0.3 % of the noisy inside voxels (2.5 std, the default, loses 1.2 %)
    "std-6": ("hard", lambda p, i: {"tolerance": 3.0}),
    "std-26-three-iterations": ("hard", lambda p, i: {"tolerance": 3.0, "connectivity": 26, "iterations": 3}),
}


@pytest.mark.parametrize("index", [0, 1], ids=["sphere", "tilted-ellipsoid"])
@pytest.mark.parametrize("case", sorted(ACCURACY_CASES))
def test_segmented_volume_and_centroid_match_the_truth(case, index, soft_phantom, hard_phantom):
    kind, make_params = ACCURACY_CASES[case]
    phantom = soft_phantom if kind == "soft" else hard_phantom
    volume = phantom.volume
    assert not np.allclose(volume.affine[:3, :3], np.diag(np.diag(volume.affine[:3, :3])))  # oblique
    mask = grow_region(volume, phantom.seed_ijk(index), **make_params(phantom, index))
    result = quantify(volume, mask)
    truth = phantom.truth(index)
    assert result["volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    assert np.all(np.abs(_centroid_ijk(result) - truth["centroid_ijk"]) < 0.5)
    assert np.allclose(volume.voxel_to_world(_centroid_ijk(result)), [result[f"centroid_{a}_mm"] for a in "xyz"])
    assert result["components"] == 1
    # the region holds nothing of the other ellipsoid
    assert not np.any(mask.array[phantom.labels.array == 2 - index])


def test_mask_is_a_uint8_volume_on_the_image_geometry_with_its_parameters(soft_phantom):
    seed = soft_phantom.seed_ijk(0)
    mask = grow_region(soft_phantom.volume, seed, tolerance=3.0, connectivity=26, max_volume_ml=50)
    assert mask.array.dtype == np.uint8 and set(np.unique(mask.array)) == {0, 1}
    assert mask.shape == soft_phantom.volume.shape
    assert np.array_equal(mask.affine, soft_phantom.volume.affine)
    assert mask.array[seed] == 1
    assert mask.metadata["seed_ijk"] == list(seed)
    assert np.allclose(mask.metadata["seed_mm"], soft_phantom.volume.voxel_to_world(seed))
    assert mask.metadata["parameters"]["tolerance"] == 3.0
    assert mask.metadata["parameters"]["connectivity"] == 26
    assert mask.metadata["parameters"]["max_volume_ml"] == 50
    low, high = mask.metadata["intensity_range"]
    assert low < soft_phantom.volume.array[seed] < high


def test_fractional_seed_is_rounded_to_the_nearest_voxel(hard_phantom):
    seed = np.asarray(hard_phantom.seed_ijk(1), dtype=float) + (0.4, -0.4, 0.3)
    mask = grow_region(hard_phantom.volume, seed)
    assert mask.metadata["seed_ijk"] == list(hard_phantom.seed_ijk(1))


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
    assert np.allclose(_centroid_ijk(result), where.mean(axis=0))
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


def test_hole_filling_fills_an_enclosed_cavity():
    affine = oblique_affine((48, 48, 48), spacing_mm=(1.0, 1.1, 1.2))
    outer = Ellipsoid.sphere((0, 0, 0), 15.0, 200.0)
    cavity = Ellipsoid.sphere((1, 0, 0), 7.0, BACKGROUND)  # painted over: a hollow ball
    phantom = draw_phantom((48, 48, 48), affine, [outer, cavity], background=BACKGROUND, noise_sigma=5.0)
    seed = tuple(int(v) for v in np.rint(phantom.volume.world_to_voxel((0, 0, 12.0))))
    params = {"tolerance_mode": "absolute", "tolerance": 90.0}
    filled = quantify(phantom.volume, grow_region(phantom.volume, seed, **params))
    hollow = quantify(phantom.volume, grow_region(phantom.volume, seed, fill_holes=False, **params))
    assert filled["volume_ml"] == pytest.approx(outer.volume_ml, rel=0.02)
    assert hollow["volume_ml"] == pytest.approx(outer.volume_ml - cavity.volume_ml, rel=0.02)


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


def test_region_larger_than_the_guard_raises(soft_phantom):
    volume = soft_phantom.volume
    with pytest.raises(RegionTooLarge) as caught:
        grow_region(volume, soft_phantom.seed_ijk(0), max_volume_ml=5.0)
    assert caught.value.source == "phantom" and "5 mL" in str(caught.value)
    # the background is about 930 mL: the default guard of 1000 mL lets it through, 500 does not
    corner = (2, 2, 2)
    assert quantify(volume, grow_region(volume, corner, tolerance=4.0))["volume_ml"] > 500
    with pytest.raises(RegionTooLarge):
        grow_region(volume, corner, tolerance=4.0, max_volume_ml=500)
    assert grow_region(volume, soft_phantom.seed_ijk(0), max_volume_ml=None).array.any()


@pytest.mark.parametrize(
    "seed, reason",
    [
        ((-1, 10, 10), "outside"),
        ((10, 96, 10), "outside"),
        ((10, 10, 47.6), "outside"),
        ((10, 10), "three"),
        ((1, 2, 3, 4), "three"),
        ((np.nan, 2, 3), "finite"),
        ("abc", "three"),
    ],
)
def test_bad_seeds_raise_invalid_seed(soft_phantom, seed, reason):
    with pytest.raises(InvalidSeed, match=reason) as caught:
        grow_region(soft_phantom.volume, seed)
    assert isinstance(caught.value, ImagingError) and str(caught.value).startswith("phantom: ")


def test_seed_on_a_nan_voxel_raises():
    array = np.ones((8, 8, 8), np.float32)
    array[4, 4, 4] = np.nan
    with pytest.raises(InvalidSeed, match="finite value"):
        grow_region(Volume(array, np.eye(4), {"source": "nan.nii"}), (4, 4, 4))


def test_multi_frame_volume_is_unsupported_but_a_single_frame_works(hard_phantom):
    four_d = Volume(np.stack([hard_phantom.volume.array] * 2, axis=-1), hard_phantom.volume.affine)
    with pytest.raises(UnsupportedImage, match="2 frames"):
        grow_region(four_d, hard_phantom.seed_ijk(0))
    one_frame = Volume(hard_phantom.volume.array[..., np.newaxis], hard_phantom.volume.affine)
    three_d = grow_region(hard_phantom.volume, hard_phantom.seed_ijk(0))
    assert np.array_equal(grow_region(one_frame, hard_phantom.seed_ijk(0)).array, three_d.array)


@pytest.mark.parametrize("params", [{"tolerance_mode": "relative"}, {"connectivity": 8}, {"tolerance": -1.0}])
def test_bad_parameters_raise_value_error(hard_phantom, params):
    with pytest.raises(ValueError):
        grow_region(hard_phantom.volume, hard_phantom.seed_ijk(0), **params)


@pytest.mark.parametrize("params", [{}, {"tolerance_mode": "absolute", "tolerance": 30.0}, {"smoothing_sigma_mm": 1.0}])
def test_bright_structure_of_the_real_image_does_not_leak(sample_image, params):
    # white matter of papaya's T1 brain; the background outside the head is 0
    seed = (50, 100, 75)
    values = sample_image.array
    assert values[seed] > 200
    mask = grow_region(sample_image, seed, **params)
    result = quantify(sample_image, mask)
    brain_ml = np.count_nonzero(values > BACKGROUND) * sample_image.voxel_volume_ml
    assert result["components"] == 1
    assert 100 < result["volume_ml"] < brain_ml
    assert values[mask.array.astype(bool)].min() > BACKGROUND  # nothing from outside the head
    for axis, name in enumerate("ijk"):  # does not reach the edges of the image
        assert result[f"bbox_{name}_min"] > 0 and result[f"bbox_{name}_max"] < values.shape[axis] - 1


def test_the_volume_guard_stops_a_runaway_on_the_real_image(sample_image):
    # re-estimating the range four times lets white matter run into grey matter
    with pytest.raises(RegionTooLarge, match="sample_image.nii.gz"):
        grow_region(sample_image, (50, 100, 75), iterations=4)


@pytest.mark.parametrize("params", [{"tolerance_mode": "absolute", "tolerance": 30.0}, {"iterations": 2}])
def test_without_hole_filling_every_voxel_is_in_the_intensity_range(sample_image, params):
    mask = grow_region(sample_image, (50, 100, 75), fill_holes=False, **params)
    inside = sample_image.array[mask.array.astype(bool)]
    low, high = mask.metadata["intensity_range"]
    assert low <= inside.min() and inside.max() <= high
    labelled, count = ndimage.label(mask.array)  # 6-connected, as grown
    assert count == 1


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


def test_save_segmentation_writes_mask_and_record(store, hard_phantom):
    # ``store`` (tests/conftest.py): a local folder, then a bucket on the GCS emulator
    seed = hard_phantom.seed_ijk(0)
    mask = grow_region(hard_phantom.volume, seed)
    quantification = quantify(hard_phantom.volume, mask)
    record = save_segmentation(store, "study-1", mask, quantification, seed, mask.metadata["parameters"])
    seg_id = record["seg_id"]
    assert record["mask_key"] == segmentation_key("study-1", seg_id)
    assert record["record_key"] == segmentation_record_key("study-1", seg_id)
    stored = store.read_json(record["record_key"])
    assert stored == json.loads(json.dumps({k: v for k, v in record.items() if k != "record_key"}))
    assert stored["quantification"]["volume_ml"] == quantification["volume_ml"]
    assert stored["seed_ijk"] == list(seed)
    assert stored["provenance"]["parameters"]["tolerance_mode"] == "std"
    provenance = stored["provenance"]
    assert provenance["library_version"] and provenance["created_at"] and provenance["parameters"]
    written = store.read_volume(record["mask_key"])
    assert np.array_equal(written.array, mask.array)
    assert np.allclose(written.affine, mask.affine)
    again = save_segmentation(store, "study-1", mask, quantification, seed, {})
    assert again["seg_id"] != seg_id  # a second save never overwrites the first


def test_segment_and_quantify_chains_grow_quantify_and_save(tmp_path, hard_phantom):
    store = Store(tmp_path / "store")
    seed = hard_phantom.seed_ijk(1)
    outcome = segment_and_quantify(hard_phantom.volume, seed, {"tolerance": 3.0}, store, "study-2")
    assert outcome["quantification"] == quantify(hard_phantom.volume, outcome["mask"])
    assert outcome["mask"].metadata["parameters"]["tolerance"] == 3.0
    assert store.read_json(outcome["record"]["record_key"])["seed_ijk"] == list(seed)
    assert segment_and_quantify(hard_phantom.volume, seed)["record"] is None
    with pytest.raises(ValueError, match="study_uid"):
        segment_and_quantify(hard_phantom.volume, seed, store=store)
