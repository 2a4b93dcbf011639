"""Segment a study from a clicked seed and keep the mask: grow, quantify, save.

* :func:`~imaging_lib.science.region_growing.grow_region` grows a 3D region from a seed voxel;
* :func:`~imaging_lib.science.quantify.quantify` and :func:`~imaging_lib.science.quantify.quantify_labels`
  measure masks and label images;
* :func:`save_segmentation` writes a mask and its record (seed, parameters,
  quantification, provenance) to a store;
* :func:`segment_and_quantify` chains the three: the task an interactive click submits
  to Dask.

The first three are imported here too, so ``from imaging_lib.science.segment import
grow_region, quantify`` keeps working.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from ..store.layout import segmentation_key, segmentation_record_key
from ..store.records import segmentation_record
from ..volume import Volume
from .quantify import DEFAULT_PERCENTILES, quantify, quantify_labels
from .region_growing import grow_region

__all__ = [
    "DEFAULT_PERCENTILES",
    "grow_region",
    "quantify",
    "quantify_labels",
    "save_segmentation",
    "segment_and_quantify",
]


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
    if store is not None and study_uid:
        record = save_segmentation(
            store, study_uid, mask, quantification, mask.metadata["seed_ijk"], mask.metadata["parameters"], created_by
        )
    return {"mask": mask, "quantification": quantification, "record": record}
