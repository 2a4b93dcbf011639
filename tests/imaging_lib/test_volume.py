"""Volume geometry: world/voxel mapping, reorientation without resampling, slices."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_lib.errors import InvalidGeometry
from imaging_lib.volume import Volume


def _oblique_volume() -> Volume:
    rng = np.random.default_rng(0)
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.8, 1.2, -3.0])  # flipped i and k, anisotropic
    affine[:3, 3] = [10.0, -20.0, 30.0]
    return Volume(rng.integers(0, 1000, (5, 6, 7)).astype(np.int16), affine, {"modality": "MR"})


def test_world_and_voxel_are_inverse():
    volume = _oblique_volume()
    ijk = np.array([[0, 0, 0], [4, 5, 6], [1.5, 2.25, 3.0]])
    np.testing.assert_allclose(volume.world_to_voxel(volume.voxel_to_world(ijk)), ijk, atol=1e-12)
    np.testing.assert_allclose(volume.voxel_to_world([0, 0, 0]), [10.0, -20.0, 30.0])


def test_spacing_and_voxel_volume_come_from_the_affine():
    volume = _oblique_volume()
    np.testing.assert_allclose(volume.spacing, (0.8, 1.2, 3.0))
    assert volume.voxel_volume_ml == pytest.approx(0.8 * 1.2 * 3.0 / 1000)


def test_as_ras_keeps_every_voxel_at_its_world_position():
    volume = _oblique_volume()
    ras = volume.as_ras()
    assert ras.orientation == ("R", "A", "S")
    assert sorted(ras.shape) == sorted(volume.shape)
    for ijk in np.ndindex(*volume.shape):
        world = volume.voxel_to_world(ijk)
        target = np.rint(ras.world_to_voxel(world)).astype(int)
        assert ras.array[tuple(target)] == volume.array[ijk]
        if ijk[0] > 1:  # every voxel checked on a slab is enough
            break


def test_as_ras_of_the_real_series(brain_volume):
    ras = brain_volume.as_ras()
    assert ras.orientation == ("R", "A", "S")
    np.testing.assert_array_equal(ras.array[::-1, ::-1, :], brain_volume.array)
    np.testing.assert_allclose(ras.voxel_to_world([255, 255, 0]), brain_volume.voxel_to_world([0, 0, 0]))


def test_slice_is_a_view_along_any_axis():
    volume = _oblique_volume()
    assert volume.slice(3).shape == (5, 6)
    assert volume.slice(2, axis=0).shape == (6, 7)
    np.testing.assert_array_equal(volume.slice(-1), volume.array[:, :, -1])
    with pytest.raises(IndexError, match="outside"):
        volume.slice(7)


def test_with_array_keeps_geometry_and_checks_shape():
    volume = _oblique_volume()
    mask = volume.with_array(np.ones(volume.shape, np.uint8), kind="mask")
    np.testing.assert_array_equal(mask.affine, volume.affine)
    assert mask.metadata["kind"] == "mask" and mask.metadata["modality"] == "MR"
    with pytest.raises(ValueError, match="does not match"):
        volume.with_array(np.ones((2, 2, 2)))


def test_contains():
    volume = _oblique_volume()
    assert volume.contains([4, 5, 6]) and not volume.contains([5, 0, 0]) and not volume.contains([-1, 0, 0])


@pytest.mark.parametrize(
    "affine, reason",
    [
        (np.eye(3), "4x4"),
        (np.diag([1.0, 1.0, np.inf, 1.0]), "NaN or infinite"),
        (np.diag([1.0, 1.0, 1.0, 2.0]), "bottom row"),
        (np.zeros((4, 4)) + np.diag([0, 0, 0, 1.0]), "singular"),
    ],
)
def test_bad_affines_are_typed_errors(affine, reason):
    with pytest.raises(InvalidGeometry, match=reason):
        Volume(np.zeros((2, 2, 2)), affine, {"source": "scan.nii"})


def test_metadata_is_copied_not_shared():
    metadata = {"warnings": []}
    volume = Volume(np.zeros((2, 2, 2)), np.eye(4), metadata)
    volume.metadata["modality"] = "CT"
    assert "modality" not in metadata
