"""Seeded region growing against phantoms of known truth and a real image."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from imaging_lib import Volume
from imaging_lib.errors import ImagingError, InvalidSeed, RegionTooLarge, UnsupportedImage
from imaging_lib.phantoms import Ellipsoid, draw_phantom, oblique_affine
from imaging_lib.science.quantify import quantify
from imaging_lib.science.region_growing import grow_region

BACKGROUND = 20.0  # of demo_phantom (conftest.py)


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
