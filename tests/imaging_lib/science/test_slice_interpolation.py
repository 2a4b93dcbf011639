"""Shape-based interpolation between painted slices, on shapes whose in-between is known."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_lib.science.slice_interpolation import interpolate_between_slices, signed_distance


def _disk(shape: tuple[int, int], centre: tuple[float, float], radius_mm: float, spacing=(1.0, 1.0)) -> np.ndarray:
    a, b = np.indices(shape)
    return ((a - centre[0]) * spacing[0]) ** 2 + ((b - centre[1]) * spacing[1]) ** 2 <= radius_mm**2


def test_disks_of_10_and_20_mm_give_about_15_mm_half_way_and_painted_slices_stay():
    mask = np.zeros((80, 80, 11), np.uint8)
    mask[..., 0] = _disk((80, 80), (40, 40), 10)
    mask[..., 10] = _disk((80, 80), (40, 40), 20)
    filled = interpolate_between_slices(mask, axis=2, spacing=(1.0, 1.0, 3.0))
    assert filled.dtype == np.uint8
    np.testing.assert_array_equal(filled[..., [0, 10]], mask[..., [0, 10]])
    for index in range(1, 10):
        radius = np.sqrt(filled[..., index].sum() / np.pi)
        assert abs(radius - (10 + index)) < 0.8, (index, radius)
    assert not mask[..., 1:10].any(), "the input mask is not changed"


def test_an_overlapping_shape_that_moves_shifts_across_and_nothing_is_added_outside_the_painted_range():
    mask = np.zeros((12, 60, 60), np.uint8)  # slices along axis 0 this time
    mask[2] = _disk((60, 60), (30, 24), 10)
    mask[8] = _disk((60, 60), (30, 36), 10)
    filled = interpolate_between_slices(mask, axis=0, spacing=(2.0, 1.0, 1.0))
    assert not filled[:2].any() and not filled[9:].any()
    for index in range(3, 8):
        rows, columns = np.nonzero(filled[index])
        assert abs(rows.mean() - 30) < 0.5
        assert abs(columns.mean() - (24 + 12 * (index - 2) / 6)) < 1.0, (index, columns.mean())
        assert filled[index].sum() > 0.75 * mask[2].sum()


def test_in_plane_spacing_is_honoured_an_ellipse_in_voxels_is_a_circle_in_mm():
    shape = (60, 120)
    spacing = (2.0, 1.0)  # rows twice as long as columns: a 20 mm circle is 10 x 20 voxels
    mask = np.zeros((*shape, 5), np.uint8)
    mask[..., 0] = _disk(shape, (30, 60), 20, spacing)
    mask[..., 4] = _disk(shape, (30, 60), 20, spacing)
    filled = interpolate_between_slices(mask, axis=2, spacing=(*spacing, 5.0))
    np.testing.assert_array_equal(filled[..., 2], mask[..., 0])  # same shape both ends: the same in between
    distance = signed_distance(mask[..., 0], spacing)
    assert distance[30, 60] == pytest.approx(-21.0, abs=1.01)  # inside, about 20 mm from the edge
    assert distance[30, 100] == pytest.approx(20.0, abs=1.01)  # 40 mm right of centre: 20 mm outside


def test_adjacent_or_single_painted_slices_leave_the_mask_as_it_is_and_bad_input_is_refused():
    mask = np.zeros((20, 20, 6), np.uint8)
    mask[5:10, 5:10, 2] = 1
    mask[6:9, 6:9, 3] = 1
    np.testing.assert_array_equal(interpolate_between_slices(mask, 2, (1, 1, 1)), mask)
    with pytest.raises(ValueError, match="axis"):
        interpolate_between_slices(mask, 3, (1, 1, 1))
    with pytest.raises(ValueError, match="3D"):
        interpolate_between_slices(mask[..., 0], 0, (1, 1, 1))
