"""Shape-based interpolation of a mask between painted slices: fill the empty slices in between.

A reviewer paints a structure on a few slices; :func:`interpolate_between_slices` fills
every empty slice lying between two painted ones, as the editors of 3D Slicer ("fill
between slices") and ITK-SNAP do. Each painted slice becomes a signed distance map in
millimetres (negative inside, scipy's exact Euclidean distance transform with the
in-plane voxel spacing); an empty slice at fraction ``w`` of the way from slice ``a`` to
slice ``b`` is inside where ``(1 - w) * d_a + w * d_b < 0`` (Herman, Zheng and Bucholtz,
1992). A disk of radius 10 mm and one of 20 mm ten slices apart give disks of about
15 mm half way, and an outline that moves a little shifts across; two outlines that do
not overlap shrink towards the middle rather than travel (outlines are interpolated, not
positions: paint one more slice in between). Painted slices are never changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from scipy import ndimage

__all__ = ["interpolate_between_slices", "signed_distance"]


def signed_distance(region: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Signed distance in mm of each pixel of a 2D region's boundary: negative inside, positive outside.

    Parameters
    ----------
    region : numpy.ndarray
        2D boolean (or 0/1) array with at least one pixel inside.
    spacing : sequence of 2 float
        Pixel size in mm along the two axes.

    Returns
    -------
    numpy.ndarray
        float64, same shape: minus the distance to the nearest outside pixel inside (the
        image's border counts as outside), the distance to the nearest inside pixel outside.
    """
    inside = np.pad(np.asarray(region, dtype=bool), 1)  # the border is outside
    sampling = [float(s) for s in spacing]
    outside_distance = ndimage.distance_transform_edt(~inside, sampling=sampling)
    inside_distance = ndimage.distance_transform_edt(inside, sampling=sampling)
    return (outside_distance - inside_distance)[1:-1, 1:-1]


def interpolate_between_slices(mask: np.ndarray, axis: int, spacing: Sequence[float]) -> np.ndarray:
    """Fill the empty slices between painted slices of a 0/1 mask by shape-based interpolation.

    Parameters
    ----------
    mask : numpy.ndarray
        3D mask (0 outside; any non-zero value is inside).
    axis : int
        The voxel axis slices are taken along (the viewer's out-of-plane axis).
    spacing : sequence of 3 float
        Voxel size in mm along the mask's three axes (only the two in-plane ones are used:
        the interpolation weight counts slices).

    Returns
    -------
    numpy.ndarray
        ``uint8`` copy of the mask with the gaps filled (1 inside). Slices before the first
        painted slice and after the last stay empty; painted slices are unchanged.

    Raises
    ------
    ValueError
        If the mask is not 3D or ``axis`` is not 0, 1 or 2.
    """
    if np.ndim(mask) != 3:
        raise ValueError(f"a mask to interpolate is 3D, got shape {np.shape(mask)}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    result = np.array(mask != 0, dtype=np.uint8)
    slices = np.moveaxis(result, axis, 0)  # a view: writing a slice writes the result
    plane_spacing = [float(s) for n, s in enumerate(spacing) if n != axis]
    painted = np.flatnonzero(slices.reshape(slices.shape[0], -1).any(axis=1))
    for lower, upper in pairwise(painted):
        if upper - lower < 2:
            continue
        below = signed_distance(slices[lower], plane_spacing)
        above = signed_distance(slices[upper], plane_spacing)
        for index in range(lower + 1, upper):
            weight = (index - lower) / (upper - lower)
            slices[index] = ((1.0 - weight) * below + weight * above) < 0
    return result
