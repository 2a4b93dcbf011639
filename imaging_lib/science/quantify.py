"""Measure masks and label images: volume from the affine, intensity statistics, centroid, extent.

:func:`quantify` measures one mask: voxel count, volume in millilitres from the affine's
determinant, intensity statistics in the image's own units, bounding box, centroid (voxel
and world millimetres) and connected components. :func:`quantify_labels` measures every
label of a label image at once, with one sort of the labelled voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from ..errors import InvalidGeometry
from ..volume import Volume
from .grid import bounding_box, connectivity_rank, source_name, spatial_array

__all__ = ["DEFAULT_PERCENTILES", "quantify", "quantify_labels"]

DEFAULT_PERCENTILES: tuple[float, ...] = (5.0, 25.0, 50.0, 75.0, 95.0)


def _statistics_columns(percentiles: Sequence[float]) -> list[str]:
    """Column names of :func:`_label_statistics`, in order."""
    return [
        "label",
        "voxel_count",
        "volume_ml",
        "intensity_mean",
        "intensity_std",
        "intensity_min",
        "intensity_max",
        *[f"intensity_p{p:g}" for p in percentiles],
        "centroid_i",
        "centroid_j",
        "centroid_k",
        "centroid_x_mm",
        "centroid_y_mm",
        "centroid_z_mm",
        "bbox_i_min",
        "bbox_i_max",
        "bbox_j_min",
        "bbox_j_max",
        "bbox_k_min",
        "bbox_k_max",
    ]


def _label_statistics(
    values: np.ndarray,
    labels: np.ndarray,
    origin_ijk: Sequence[int],
    volume: Volume,
    percentiles: Sequence[float],
) -> pd.DataFrame:
    """One row of statistics per nonzero label, from a single sort of the labelled voxels.

    ``values`` and ``labels`` may be a crop of the volume starting at ``origin_ijk``;
    voxel indices in the result are those of the whole volume.
    """
    coords = np.nonzero(labels)
    if coords[0].size == 0:
        return pd.DataFrame(columns=_statistics_columns(percentiles))
    label_of = labels[coords]
    value_of = values[coords].astype(np.float64)
    order = np.lexsort((value_of, label_of))  # by label, then by value within a label
    label_of, value_of = label_of[order], value_of[order]
    ijk = np.stack([c[order] + o for c, o in zip(coords, origin_ijk)], axis=1)

    starts = np.flatnonzero(np.r_[True, label_of[1:] != label_of[:-1]])
    counts = np.diff(np.r_[starts, label_of.size])
    mean = np.add.reduceat(value_of, starts) / counts
    deviation = value_of - np.repeat(mean, counts)
    centroid_ijk = np.add.reduceat(ijk.astype(np.float64), starts, axis=0) / counts[:, None]
    centroid_mm = volume.voxel_to_world(centroid_ijk)

    columns: list[np.ndarray] = [
        label_of[starts],
        counts,
        counts * volume.voxel_volume_ml,
        mean,
        np.sqrt(np.add.reduceat(deviation**2, starts) / counts),
        value_of[starts],
        value_of[starts + counts - 1],
    ]
    for p in percentiles:  # linear interpolation between order statistics, as numpy.percentile
        position = p / 100.0 * (counts - 1)
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, counts - 1)
        low_value, high_value = value_of[starts + below], value_of[starts + above]
        columns.append(low_value + (position - below) * (high_value - low_value))
    columns += [centroid_ijk[:, axis] for axis in range(3)]
    columns += [centroid_mm[:, axis] for axis in range(3)]
    for axis in range(3):
        columns += [np.minimum.reduceat(ijk[:, axis], starts), np.maximum.reduceat(ijk[:, axis], starts)]
    return pd.DataFrame(dict(zip(_statistics_columns(percentiles), columns)))


def _label_array(volume: Volume, labels: Volume | np.ndarray, values: np.ndarray) -> np.ndarray:
    """The label (or mask) voxels, checked to lie on the image's grid."""
    source = source_name(volume)
    if isinstance(labels, Volume):
        if not np.allclose(labels.affine, volume.affine, atol=1e-4):
            raise InvalidGeometry(source, "the mask or label image has a different affine than the image")
        array = spatial_array(labels)
    else:
        array = np.asarray(labels)
        if array.ndim == 4 and array.shape[3] == 1:
            array = array[..., 0]
    if array.shape != values.shape:
        raise InvalidGeometry(source, f"mask or label shape {array.shape} differs from image shape {values.shape}")
    return array


def quantify(
    volume: Volume,
    mask: Volume | np.ndarray,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    connectivity: int = 26,
) -> dict[str, Any]:
    """Measure the voxels of ``volume`` under a mask.

    Parameters
    ----------
    volume : Volume
        The image, in its real units (DICOM rescale and NIfTI scaling already applied
        by the readers).
    mask : Volume or numpy.ndarray
        Nonzero voxels are measured; must be on the image's grid.
    percentiles : sequence of float
        Intensity percentiles to report, each as ``intensity_p<p>``.
    connectivity : {6, 18, 26}
        Used to count connected components.

    Returns
    -------
    dict
        JSON-able: ``voxel_count``, ``volume_ml`` (count times the affine determinant),
        ``voxel_volume_ml``, ``units``, ``intensity_mean``/``std``/``min``/``max`` and
        the percentiles, ``centroid_i/j/k`` (voxel index), ``centroid_x/y/z_mm``,
        ``bbox_i/j/k_min/max`` (inclusive voxel indices) and ``components``. The
        statistics are ``None`` for an empty mask.

    Raises
    ------
    InvalidGeometry
        If the mask's shape or affine differs from the image's.
    """
    rank = connectivity_rank(connectivity)
    values = spatial_array(volume)
    inside = _label_array(volume, mask, values) != 0
    box = bounding_box(inside)
    if box is None:
        result: dict[str, Any] = dict.fromkeys(_statistics_columns(percentiles))
        result.update(voxel_count=0, volume_ml=0.0, components=0)
    else:
        crop = inside[box]
        row = _label_statistics(values[box], crop.astype(np.uint8), [s.start for s in box], volume, percentiles)
        result = row.to_dict("records")[0]
        result["components"] = int(ndimage.label(crop, ndimage.generate_binary_structure(3, rank))[1])
    del result["label"]
    result["voxel_volume_ml"] = volume.voxel_volume_ml
    result["units"] = str(volume.metadata.get("rescale_type") or volume.metadata.get("units") or "")
    return result


def quantify_labels(
    volume: Volume,
    labels: Volume | np.ndarray,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> pd.DataFrame:
    """Measure every nonzero label of a label image at once.

    Parameters
    ----------
    volume : Volume
        The intensity image.
    labels : Volume or numpy.ndarray
        Integer label image on the image's grid; 0 is background.
    percentiles : sequence of float
        Intensity percentiles to report.

    Returns
    -------
    pandas.DataFrame
        One row per label present, sorted by label, with the columns of
        :func:`quantify` (except ``components``, ``units`` and ``voxel_volume_ml``)
        and ``label``.

    Raises
    ------
    InvalidGeometry
        If the label image's shape or affine differs from the image's.
    ValueError
        If the labels are not integers.
    """
    values = spatial_array(volume)
    array = _label_array(volume, labels, values)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {array.dtype}")
    return _label_statistics(values, array, (0, 0, 0), volume, percentiles)
