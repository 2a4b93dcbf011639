"""The voxel grid of a volume as segmentation and quantification see it.

Both :mod:`~imaging_lib.science.region_growing` and :mod:`~imaging_lib.science.quantify`
work on a volume's 3D array (:func:`spatial_array`), count neighbours by 6, 18 or 26
connectivity (:func:`connectivity_rank`) and crop to the bounding box of a mask
(:func:`bounding_box`) before any full-volume work.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedImage
from ..volume import Volume

__all__ = ["COMPLEMENT_RANK", "bounding_box", "connectivity_rank", "source_name", "spatial_array"]

# Face, face+edge and full neighbourhoods; the value is the "rank" scipy and skimage use.
_CONNECTIVITY_RANK = {6: 1, 18: 2, 26: 3}
COMPLEMENT_RANK = {6: 3, 18: 2, 26: 1}
"""The background of a 6-connected object is 26-connected and vice versa (digital topology)."""


def source_name(volume: Volume) -> str:
    """What error messages call the volume: its source file, or ``<volume>``."""
    return str(volume.metadata.get("source") or "<volume>")


def spatial_array(volume: Volume) -> np.ndarray:
    """The volume's 3D voxel array (a trailing axis of length one is dropped).

    Raises
    ------
    UnsupportedImage
        If the volume has more than one frame.
    """
    array = volume.array
    if array.ndim == 4:
        if array.shape[3] != 1:
            raise UnsupportedImage(
                source_name(volume), f"segmentation needs a 3D volume, got {array.shape[3]} frames {array.shape}"
            )
        array = array[..., 0]
    return array


def connectivity_rank(connectivity: int) -> int:
    """The scipy/skimage rank of a 6, 18 or 26 neighbourhood.

    Raises
    ------
    ValueError
        If ``connectivity`` is not 6, 18 or 26.
    """
    if connectivity not in _CONNECTIVITY_RANK:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    return _CONNECTIVITY_RANK[connectivity]


def bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Smallest index box holding every nonzero voxel, or None for an empty mask."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return box[0], box[1], box[2]
