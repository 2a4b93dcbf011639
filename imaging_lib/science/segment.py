"""Seeded region growing, quantification of masks and label images, and saving masks.

* :func:`grow_region` grows a 3D region from a seed voxel: every voxel connected to the
  seed whose intensity lies in a range around the seed's. The range is either the seed
  value ± an absolute tolerance, or, as ITK's ConfidenceConnected filter does, the mean
  ± k standard deviations of a small neighbourhood around the seed, re-estimated from
  the grown region for a few iterations. The result is a uint8 mask :class:`Volume` on
  the image's geometry. Built on scikit-image's compiled flood fill and scipy.ndimage;
  no Python loop visits voxels.
* :func:`quantify` measures one mask: voxel count, volume in millilitres from the
  affine's determinant, intensity statistics in the image's own units, bounding box,
  centroid (voxel and world millimetres) and connected components.
  :func:`quantify_labels` measures every label of a label image at once, with one sort.
* :func:`save_segmentation` writes a mask and its record (seed, parameters,
  quantification, provenance) to a store.
* :func:`segment_and_quantify` chains the three: the task an interactive click submits
  to Dask.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.segmentation import flood

from ..errors import InvalidGeometry, InvalidSeed, RegionTooLarge, UnsupportedImage
from ..store.layout import segmentation_key, segmentation_record_key
from ..store.records import segmentation_record
from ..volume import Volume

__all__ = [
    "DEFAULT_PERCENTILES",
    "grow_region",
    "quantify",
    "quantify_labels",
    "save_segmentation",
    "segment_and_quantify",
]

DEFAULT_PERCENTILES: tuple[float, ...] = (5.0, 25.0, 50.0, 75.0, 95.0)

# Face, face+edge and full neighbourhoods; the value is the "rank" scipy and skimage use.
_CONNECTIVITY_RANK = {6: 1, 18: 2, 26: 3}
# The background of a 6-connected object is 26-connected and vice versa (digital topology).
_COMPLEMENT_RANK = {6: 3, 18: 2, 26: 1}


def _source(volume: Volume) -> str:
    return str(volume.metadata.get("source") or "<volume>")


def _spatial(volume: Volume) -> np.ndarray:
    """The volume's 3D voxel array (a trailing axis of length one is dropped)."""
    array = volume.array
    if array.ndim == 4:
        if array.shape[3] != 1:
            raise UnsupportedImage(
                _source(volume), f"segmentation needs a 3D volume, got {array.shape[3]} frames {array.shape}"
            )
        array = array[..., 0]
    return array


def _check_connectivity(connectivity: int) -> int:
    if connectivity not in _CONNECTIVITY_RANK:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}")
    return _CONNECTIVITY_RANK[connectivity]


def _seed_index(volume: Volume, seed_ijk: Sequence[float], values: np.ndarray) -> tuple[int, int, int]:
    """Round the seed to a voxel index and check it lies in the volume on a finite value."""
    source = _source(volume)
    try:
        seed = np.asarray(seed_ijk, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidSeed(source, f"seed {seed_ijk!r} is not three numbers") from None
    if seed.shape != (3,) or not np.all(np.isfinite(seed)):
        raise InvalidSeed(source, f"seed {seed_ijk!r} is not three finite numbers")
    index = tuple(int(v) for v in np.rint(seed))
    if not all(0 <= v < n for v, n in zip(index, values.shape)):
        raise InvalidSeed(source, f"seed {index} is outside the volume of shape {values.shape}")
    if not np.isfinite(values[index]):
        raise InvalidSeed(source, f"seed {index} lies on a voxel without a finite value")
    return index


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Smallest index box holding every nonzero voxel, or None for an empty mask."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _fill_holes(region: np.ndarray, connectivity: int) -> np.ndarray:
    """Fill cavities of ``region`` in place, working only on its bounding box.

    Background voxels not connected (with the complementary connectivity) to the
    outside of the region's padded bounding box are holes.
    """
    box = _bounding_box(region)
    if box is None:
        return region
    padded = np.pad(region[box], 1)
    structure = ndimage.generate_binary_structure(3, _COMPLEMENT_RANK[connectivity])
    background, _ = ndimage.label(~padded, structure)
    outside = np.unique(
        np.concatenate(
            [
                background[0].ravel(),
                background[-1].ravel(),
                background[:, 0].ravel(),
                background[:, -1].ravel(),
                background[:, :, 0].ravel(),
                background[:, :, -1].ravel(),
            ]
        )
    )
    holes = (background > 0) & ~np.isin(background, outside)
    region[box] |= holes[1:-1, 1:-1, 1:-1]
    return region


def _intensity_range(
    values: np.ndarray,
    seed: tuple[int, int, int],
    samples: np.ndarray,
    tolerance: float,
    tolerance_mode: str,
) -> tuple[float, float]:
    """Accepted intensity range around the mean of ``samples``, always holding the seed's value."""
    seed_value = float(values[seed])
    samples = samples[np.isfinite(samples)].astype(np.float64)
    mean = float(samples.mean())
    if tolerance_mode == "absolute":
        half_width = tolerance
    else:
        half_width = tolerance * (float(samples.std(ddof=1)) if samples.size > 1 else 0.0)
    return min(mean - half_width, seed_value), max(mean + half_width, seed_value)


def _flood(values: np.ndarray, seed: tuple[int, int, int], low: float, high: float, rank: int) -> np.ndarray:
    """Voxels connected to ``seed`` whose value lies in ``[low, high]`` (boolean array)."""
    in_range = (values >= low) & (values <= high)
    return flood(in_range.view(np.uint8), seed, connectivity=rank)


def grow_region(
    volume: Volume,
    seed_ijk: Sequence[float],
    *,
    tolerance: float = 2.5,
    tolerance_mode: Literal["absolute", "std"] = "std",
    connectivity: int = 6,
    smoothing_sigma_mm: float | None = None,
    neighbourhood_radius: int = 1,
    iterations: int = 1,
    max_volume_ml: float | None = 1000.0,
    fill_holes: bool = True,
) -> Volume:
    """Grow a 3D region from a seed voxel over voxels of similar intensity.

    Parameters
    ----------
    volume : Volume
        The image (3D, or 4D with one frame), in its real units.
    seed_ijk : sequence of float
        Seed voxel index ``(i, j, k)``; rounded to the nearest voxel.
    tolerance : float
        With ``tolerance_mode="absolute"``: accepted distance from the seed's value, in
        the image's units. With ``"std"``: the multiplier k of the standard deviation.
    tolerance_mode : {"std", "absolute"}
        ``"std"`` works like ITK's ConfidenceConnected: the range is mean ± k·std of the
        ``(2r+1)³`` neighbourhood of the seed, then re-estimated from the grown region
        ``iterations`` times (stopping early when the region no longer changes).
        ``"absolute"``: the range is the neighbourhood's mean ± ``tolerance`` (with
        ``neighbourhood_radius=0``, the seed's own value ± ``tolerance``), which keeps
        noise in the single seed voxel from shifting the range. Either way the range
        always holds the seed's own value, so the region is never empty.
    connectivity : {6, 18, 26}
        Which neighbours touch: faces, faces and edges, or faces, edges and corners.
    smoothing_sigma_mm : float, optional
        If given, the image is first smoothed with a Gaussian of this standard
        deviation in millimetres (converted to voxels along each axis).
    neighbourhood_radius : int
        Radius in voxels of the cubic seed neighbourhood whose mean (and, in ``"std"``
        mode, standard deviation) sets the first range.
    iterations : int
        Re-estimations of the range from the region in ``"std"`` mode. Each one may
        widen the range; on real images many iterations let the region run into
        neighbouring tissue (on papaya's T1 brain, white matter grows from about
        700 mL after one iteration to the whole brain after four), hence the default 1.
    max_volume_ml : float, optional
        Largest region accepted; ``None`` for no limit.
    fill_holes : bool
        Fill enclosed cavities of the region.

    Returns
    -------
    Volume
        uint8 mask (1 inside) on the image's geometry. Its metadata holds ``seed_ijk``,
        ``seed_mm``, ``parameters`` and the final ``intensity_range``.

    Raises
    ------
    InvalidSeed
        If the seed is not three finite numbers, lies outside the volume, or lies on a
        voxel without a finite value.
    RegionTooLarge
        If the region exceeds ``max_volume_ml`` (it most likely leaked).
    UnsupportedImage
        If the volume has more than one frame.
    ValueError
        If a parameter is out of its domain.
    """
    if tolerance_mode not in ("absolute", "std"):
        raise ValueError(f"tolerance_mode must be 'absolute' or 'std', got {tolerance_mode!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    rank = _check_connectivity(connectivity)
    values = _spatial(volume)
    seed = _seed_index(volume, seed_ijk, values)
    if smoothing_sigma_mm:
        sigma_voxels = [smoothing_sigma_mm / s for s in volume.spacing]
        values = ndimage.gaussian_filter(values.astype(np.float32), sigma_voxels)

    neighbourhood = tuple(slice(max(v - neighbourhood_radius, 0), v + neighbourhood_radius + 1) for v in seed)
    low, high = _intensity_range(values, seed, values[neighbourhood].ravel(), tolerance, tolerance_mode)
    region = _flood(values, seed, low, high, rank)
    _check_size(volume, seed, region, max_volume_ml)
    for _ in range(iterations if tolerance_mode == "std" else 0):
        low, high = _intensity_range(values, seed, values[region], tolerance, tolerance_mode)
        grown = _flood(values, seed, low, high, rank)
        _check_size(volume, seed, grown, max_volume_ml)
        if np.array_equal(grown, region):
            break
        region = grown
    if fill_holes:
        region = _fill_holes(region, connectivity)
        _check_size(volume, seed, region, max_volume_ml)

    parameters = {
        "tolerance": float(tolerance),
        "tolerance_mode": tolerance_mode,
        "connectivity": int(connectivity),
        "smoothing_sigma_mm": None if smoothing_sigma_mm is None else float(smoothing_sigma_mm),
        "neighbourhood_radius": int(neighbourhood_radius),
        "iterations": int(iterations),
        "max_volume_ml": None if max_volume_ml is None else float(max_volume_ml),
        "fill_holes": bool(fill_holes),
    }
    return volume.with_array(
        region.astype(np.uint8),
        series_description="segmentation mask",
        seed_ijk=list(seed),
        seed_mm=volume.voxel_to_world(seed).tolist(),
        parameters=parameters,
        intensity_range=[float(low), float(high)],
    )


def _check_size(volume: Volume, seed: tuple[int, int, int], region: np.ndarray, max_volume_ml: float | None) -> None:
    if max_volume_ml is None:
        return
    size_ml = np.count_nonzero(region) * volume.voxel_volume_ml
    if size_ml > max_volume_ml:
        raise RegionTooLarge(
            _source(volume),
            f"region grown from seed {seed} reached {size_ml:.1f} mL, above the limit of "
            f"{max_volume_ml:g} mL (it probably leaked: lower the tolerance or smooth first)",
        )


# ---------------------------------------------------------------------- quantification
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
    source = _source(volume)
    if isinstance(labels, Volume):
        if not np.allclose(labels.affine, volume.affine, atol=1e-4):
            raise InvalidGeometry(source, "the mask or label image has a different affine than the image")
        array = _spatial(labels)
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
    rank = _check_connectivity(connectivity)
    values = _spatial(volume)
    inside = _label_array(volume, mask, values) != 0
    box = _bounding_box(inside)
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
    values = _spatial(volume)
    array = _label_array(volume, labels, values)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {array.dtype}")
    return _label_statistics(values, array, (0, 0, 0), volume, percentiles)


# ---------------------------------------------------------------------- storing
def save_segmentation(
    store: Any,
    study_uid: str,
    mask: Volume,
    quantification: dict[str, Any],
    seed: Sequence[float],
    params: dict[str, Any],
    created_by: str | None = None,
) -> dict[str, Any]:
    """Write a mask and its record (seed, parameters, quantification, provenance) to a store.

    The mask is written first and the record last, so a record always points at a
    complete mask (both writes are atomic in the store).

    Parameters
    ----------
    store : imaging_lib.store.Store
        Where to write.
    study_uid : str
        The study the mask belongs to.
    mask : Volume
        The mask on the study's geometry.
    quantification : dict
        What :func:`quantify` returned for it.
    seed : sequence of float
        The seed voxel index.
    params : dict
        The :func:`grow_region` parameters used.
    created_by : str, optional
        Who saves it (the record's ``provenance.created_by``); default the acting user of this process.

    Returns
    -------
    dict
        The record written, with ``seg_id``, ``mask_key`` and ``record_key``.
    """
    created = dt.datetime.now(dt.UTC)
    seg_id = f"seg-{created:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    mask_key = segmentation_key(study_uid, seg_id)
    record_key = segmentation_record_key(study_uid, seg_id)
    record = segmentation_record(
        study_uid=study_uid,
        seg_id=seg_id,
        mask_key=mask_key,
        seed_ijk=seed,
        quantification=quantification,
        method=f"{__name__}.grow_region",
        parameters=params,
        created_by=created_by,
    )
    store.write_volume(mask_key, mask)
    store.write_json(record_key, record)
    return {**record, "record_key": record_key}


def segment_and_quantify(
    volume: Volume,
    seed_ijk: Sequence[float],
    params: dict[str, Any] | None = None,
    store: Any = None,
    study_uid: str | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Grow a region from a seed, quantify it and, given a store, save both.

    This is the task a click in the viewer submits to Dask; it runs on a worker.

    Parameters
    ----------
    volume : Volume
        The image.
    seed_ijk : sequence of float
        The clicked voxel.
    params : dict, optional
        Keyword arguments of :func:`grow_region`.
    store : imaging_lib.store.Store, optional
        Where to save the mask and its record; nothing is saved without one.
    study_uid : str, optional
        The study the mask belongs to; required with ``store``.
    created_by : str, optional
        Who asked for it (the worker's own user is not): recorded in the saved record.

    Returns
    -------
    dict
        ``mask`` (Volume), ``quantification`` (dict) and ``record`` (the saved record,
        or None).

    Raises
    ------
    InvalidSeed, RegionTooLarge
        From :func:`grow_region`.
    ValueError
        If ``store`` is given without ``study_uid``.
    """
    if store is not None and not study_uid:
        raise ValueError("a study_uid is needed to save a segmentation to a store")
    mask = grow_region(volume, seed_ijk, **(params or {}))
    quantification = quantify(volume, mask)
    record = None
    if store is not None:
        record = save_segmentation(
            store, study_uid, mask, quantification, mask.metadata["seed_ijk"], mask.metadata["parameters"], created_by
        )
    return {"mask": mask, "quantification": quantification, "record": record}
