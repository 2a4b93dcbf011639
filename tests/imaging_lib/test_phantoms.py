"""The phantom generator draws ellipsoids of exact size and place on oblique grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from imaging_lib.phantoms import Ellipsoid, demo_phantom, draw_phantom, oblique_affine


@pytest.fixture(scope="module")
def clean_phantom():
    """The demo phantom without noise, partial-volume edges."""
    return demo_phantom(noise_sigma=0.0)


def test_oblique_affine_has_the_spacing_and_centre_asked_for():
    affine = oblique_affine((40, 50, 30), spacing_mm=(0.7, 1.3, 2.5), angles_deg=(10, 20, 30), centre_mm=(5, -4, 3))
    assert np.allclose(np.linalg.norm(affine[:3, :3], axis=0), [0.7, 1.3, 2.5])
    assert np.count_nonzero(np.abs(affine[:3, :3] - np.diag(np.diag(affine[:3, :3]))) > 1e-6) >= 4
    centre_voxel = np.array([19.5, 24.5, 14.5, 1.0])
    assert np.allclose((affine @ centre_voxel)[:3], [5, -4, 3])
    assert math.isclose(abs(np.linalg.det(affine[:3, :3])), 0.7 * 1.3 * 2.5)


def test_rotated_ellipsoid_contains_points_along_its_own_axes():
    rotation = Rotation.from_euler("xyz", (30, 40, 50), degrees=True).as_matrix()
    shape = Ellipsoid((1.0, 2.0, 3.0), (10.0, 5.0, 2.0), 1.0, tuple(map(tuple, rotation)))
    for axis, semi in enumerate(shape.semi_axes_mm):
        direction = rotation[:, axis]
        assert shape.inside(np.asarray(shape.centre_mm) + 0.99 * semi * direction)
        assert not shape.inside(np.asarray(shape.centre_mm) + 1.01 * semi * direction)
    assert math.isclose(shape.volume_ml, 4 / 3 * math.pi * 100 / 1000)


def test_truth_labels_match_the_analytic_volume_and_centre(clean_phantom):
    volume = clean_phantom.volume
    assert not np.allclose(volume.affine[:3, :3], np.diag(np.diag(volume.affine[:3, :3])))
    assert len(set(np.round(volume.spacing, 6))) == 3
    for index in range(len(clean_phantom.ellipsoids)):
        truth = clean_phantom.truth(index)
        inside = np.argwhere(clean_phantom.labels.array == index + 1)
        assert len(inside) * volume.voxel_volume_ml == pytest.approx(truth["volume_ml"], rel=0.01)
        assert np.allclose(inside.mean(axis=0), truth["centroid_ijk"], atol=0.1)
        assert np.allclose(volume.voxel_to_world(truth["centroid_ijk"]), truth["centroid_mm"])


def test_partial_volume_intensities_add_up_to_the_analytic_volume(clean_phantom):
    volume, labels = clean_phantom.volume, clean_phantom.labels.array
    for index, shape in enumerate(clean_phantom.ellipsoids):
        # the shape's own voxels plus a two-voxel margin, away from the other shape
        near = ndimage.binary_dilation(labels == index + 1, iterations=2)
        near &= ~ndimage.binary_dilation((labels != 0) & (labels != index + 1), iterations=2)
        fraction = (volume.array[near] - 20.0) / (shape.intensity - 20.0)
        assert fraction.min() >= -1e-6 and fraction.max() <= 1 + 1e-6
        assert fraction.sum() * volume.voxel_volume_ml == pytest.approx(shape.volume_ml, rel=0.005)


def test_noise_has_the_asked_sigma_and_is_reproducible():
    affine = oblique_affine((32, 32, 32), spacing_mm=(1, 1, 1))
    first = draw_phantom((32, 32, 32), affine, [], background=5.0, noise_sigma=3.0, random_state=7)
    again = draw_phantom((32, 32, 32), affine, [], background=5.0, noise_sigma=3.0, random_state=7)
    other = draw_phantom((32, 32, 32), affine, [], background=5.0, noise_sigma=3.0, random_state=8)
    assert first.volume.array.std() == pytest.approx(3.0, rel=0.02)
    assert first.volume.array.mean() == pytest.approx(5.0, abs=0.05)
    assert np.array_equal(first.volume.array, again.volume.array)
    assert not np.array_equal(first.volume.array, other.volume.array)


def test_seed_of_an_ellipsoid_is_inside_it(clean_phantom):
    for index in range(len(clean_phantom.ellipsoids)):
        assert clean_phantom.labels.array[clean_phantom.seed_ijk(index)] == index + 1
