"""A saved mask as a DICOM Segmentation (highdicom), on the de-identified images it was drawn on.

:func:`build_segmentation` makes one BINARY SEG of one segment per mask record. Its
frames are the mask's slices mapped onto the source images by
:meth:`~imaging_lib.interop.sources.SourceSeries.frames` (``array[i, j, k]`` becomes
frame ``k``'s pixel at row ``j``, column ``i``), so highdicom writes the source images'
own positions, orientation, spacing and Frame of Reference, and each frame's Derivation
Image references the SOP Instance UID of its source image. Empty slices are left out.

The segment is coded as tissue (SCT 85756007) found by a semi-automatic algorithm of the
Neighborhood Analysis family (DCM 123101: region growing from a seed over connected
voxels of similar intensity), named by the record's ``method`` with the library version
and parameters that made it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ..volume import Volume
from .provenance import EQUIPMENT, SERIES_NUMBERS, export_uid, mark_deidentified, quiet_highdicom
from .sources import SourceSeries

__all__ = ["SEGMENT_NUMBER", "build_segmentation", "segmentation_uids"]

SEGMENT_NUMBER = 1
"""The one segment of every exported SEG."""


def segmentation_uids(study_uid: str, record_key: str, record: Mapping[str, Any]) -> tuple[str, str]:
    """The (Series, SOP Instance) UIDs of the SEG of one mask record (stable across exports)."""
    created = str((record.get("provenance") or {}).get("created_at", ""))
    return export_uid("seg", study_uid, "series"), export_uid("seg", study_uid, record_key, created)


def _algorithm(record: Mapping[str, Any]) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    provenance = record.get("provenance") or {}
    parameters = {str(k): str(v)[:256] for k, v in (provenance.get("parameters") or {}).items()}
    if record.get("seed_ijk") is not None:
        parameters["seed_ijk"] = " ".join(f"{float(v):g}" for v in record["seed_ijk"])
    return hd.AlgorithmIdentificationSequence(
        name=str(record.get("method") or "imaging_lib")[:64],
        family=codes.cid7162.NeighborhoodAnalysis,
        version=str(provenance.get("library_version") or EQUIPMENT["software_versions"])[:64],
        source="imaging-lab",
        parameters=parameters or None,
    )


def build_segmentation(
    source: SourceSeries,
    mask: Volume,
    record: Mapping[str, Any],
    *,
    record_key: str,
    instance_number: int = 1,
) -> Any:
    """Make the DICOM SEG of one stored mask.

    Parameters
    ----------
    source : SourceSeries
        The de-identified images the mask lies on (:func:`~imaging_lib.interop.sources.source_series_for`).
    mask : Volume
        The mask (0 and 1) on the series' grid.
    record : mapping
        Its segmentation record (``seg_id``, ``method``, ``seed_ijk``, provenance).
    record_key : str
        The record's store key (part of the SOP Instance UID).
    instance_number : int
        Instance Number within the export's SEG series.

    Returns
    -------
    highdicom.seg.Segmentation

    Raises
    ------
    InvalidInput
        If the mask holds values other than 0 and 1, or no voxel at all.
    InvalidGeometry
        If the mask is not on the series' grid.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    mask_key = str(record.get("mask_key", record_key))
    frames = source.frames(mask)
    if frames.size and (frames.min() < 0 or frames.max() > 1):
        raise InvalidInput(mask_key, "not a binary mask: values other than 0 and 1")
    if not frames.any():
        raise InvalidInput(mask_key, "empty mask: no voxel to export")
    manual = record.get("seed_ijk") is None
    description = hd.seg.SegmentDescription(
        segment_number=SEGMENT_NUMBER,
        segment_label=str(record.get("seg_id", "region"))[:64],
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=(
            hd.seg.SegmentAlgorithmTypeValues.MANUAL if manual else hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
        ),
        algorithm_identification=None if manual else _algorithm(record),
    )
    series_uid, sop_uid = segmentation_uids(source.study_uid, record_key, record)
    with quiet_highdicom():
        segmentation = hd.seg.Segmentation(
            source_images=list(source.images),
            pixel_array=frames.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[description],
            series_instance_uid=series_uid,
            series_number=SERIES_NUMBERS["seg"],
            sop_instance_uid=sop_uid,
            instance_number=instance_number,
            content_label="REGION",
            content_description=f"imaging-lab mask {record.get('seg_id', '')}"[:64],
            series_description="imaging-lab segmentations",
            omit_empty_frames=True,
            **EQUIPMENT,
        )
    return mark_deidentified(segmentation, source.images[0])
