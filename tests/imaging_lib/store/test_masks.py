"""Label masks: checked against the study's grid, hashed by their voxels, patched and un-patched by voxel diffs."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_lib.errors import InvalidLabel, MaskGeometryMismatch
from imaging_lib.store.masks import apply_voxel_diff, label_mask_array, mask_sha256, voxel_diff
from imaging_lib.volume import Volume


def test_flat_indices_follow_nifti_order_by_default_and_numpy_order_on_request():
    mask = np.zeros((4, 5, 6), dtype=np.uint8)
    i, j, k = 3, 1, 2
    apply_voxel_diff(mask, [i + j * 4 + k * 4 * 5], [7])  # Papaya's voxel order: i fastest
    assert mask[i, j, k] == 7 and mask.sum() == 7
    apply_voxel_diff(mask, [np.ravel_multi_index((0, 4, 5), mask.shape)], [9], order="C")
    assert mask[0, 4, 5] == 9 and mask.sum() == 16


def test_the_returned_previous_values_undo_a_diff_bit_for_bit(brain_volume):
    rng = np.random.default_rng(3)
    mask = (brain_volume.array > np.percentile(brain_volume.array, 90)).astype(np.uint8)
    before = mask.copy()
    indices = rng.choice(mask.size, 5000, replace=False)
    previous = apply_voxel_diff(mask, indices, rng.integers(0, 3, 5000))
    assert not np.array_equal(mask, before)
    apply_voxel_diff(mask, indices, previous)
    assert np.array_equal(mask, before) and mask.dtype == np.uint8


def test_voxel_diff_is_exactly_what_changed(brain_volume):
    before = (brain_volume.array > 300).astype(np.uint8)
    after = before.copy()
    after[100:110, 100:104, 7] = 1
    after[0, 0, 0] = 5
    indices, values = voxel_diff(before, after)
    assert len(indices) == int((before != after).sum())
    patched = before.copy()
    apply_voxel_diff(patched, indices, values)
    assert np.array_equal(patched, after)
    assert voxel_diff(after, after)[0].size == 0


@pytest.mark.parametrize(
    ("indices", "values", "reason"),
    [
        ([1.5], [1], "integers"),
        ([[1, 2]], [1, 1], "1-D"),
        ([120], [1], r"\[0, 120\)"),
        ([-1], [1], r"\[0, 120\)"),
        ([3, 3], [1, 2], "repeat"),
        ([1, 2], [1], "2 voxel indices but 1 values"),
        ([1], [256], "0-255"),
        ([1], [0.5], "whole numbers"),
    ],
)
def test_a_bad_diff_is_refused_and_leaves_the_mask_unchanged(indices, values, reason):
    mask = np.ones((4, 5, 6), dtype=np.uint8)
    with pytest.raises(InvalidLabel, match=reason):
        apply_voxel_diff(mask, indices, values, source="study 1")
    assert (mask == 1).all()


def test_only_a_uint8_3d_mask_is_patched():
    with pytest.raises(InvalidLabel, match="uint8"):
        apply_voxel_diff(np.zeros((4, 5, 6), dtype=np.int16), [0], [1])


def test_masks_are_checked_against_the_studys_grid(brain_volume):
    grid = brain_volume.shape[:3]
    as_bool = np.zeros(grid, dtype=bool)
    as_bool[5, 6, 7] = True
    array = label_mask_array(as_bool, brain_volume)
    assert array.dtype == np.uint8 and array.flags.c_contiguous and array[5, 6, 7] == 1
    assert mask_sha256(array) == mask_sha256(as_bool.astype(np.float32))  # the same voxels, the same name
    nudged = brain_volume.affine.copy()
    nudged[:3] += 1e-5  # float32 rounding of a viewer's affine: the same grid
    assert label_mask_array(Volume(array, nudged), brain_volume).sum() == 1
    moved = brain_volume.affine.copy()
    moved[:3, :3] *= 1.01
    for mask, reason in (
        (np.zeros((256, 256, 19)), "shape"),
        (Volume(array, moved), "affine"),
        (np.zeros(grid, dtype="U1"), "numbers"),
        (np.full(grid, -1, dtype=np.int8), "0-255"),
    ):
        with pytest.raises(MaskGeometryMismatch, match=reason):
            label_mask_array(mask, brain_volume, source="the brain study")
