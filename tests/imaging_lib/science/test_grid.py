"""The voxel grid helpers shared by region growing and quantification."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_lib import Volume
from imaging_lib.errors import UnsupportedImage
from imaging_lib.science.grid import bounding_box, connectivity_rank, spatial_array


def test_bounding_box_is_the_smallest_box_around_the_nonzero_voxels():
    mask = np.zeros((6, 7, 8), bool)
    mask[1, 2, 3] = mask[4, 5, 3] = mask[2, 2, 6] = True
    box = bounding_box(mask)
    assert box == (slice(1, 5), slice(2, 6), slice(3, 7))
    assert mask[box].sum() == mask.sum()
    assert bounding_box(np.zeros((3, 3, 3), bool)) is None


def test_connectivity_is_6_18_or_26():
    assert [connectivity_rank(n) for n in (6, 18, 26)] == [1, 2, 3]
    with pytest.raises(ValueError, match="6, 18 or 26"):
        connectivity_rank(8)


def test_a_single_frame_is_a_3d_volume_and_more_frames_are_refused():
    one = Volume(np.arange(24, dtype=np.float32).reshape(2, 3, 4, 1), np.eye(4), {"source": "one.nii"})
    assert spatial_array(one).shape == (2, 3, 4)
    two = Volume(np.zeros((2, 3, 4, 2), np.float32), np.eye(4), {"source": "two.nii"})
    with pytest.raises(UnsupportedImage, match=r"^two.nii: .*2 frames"):
        spatial_array(two)
