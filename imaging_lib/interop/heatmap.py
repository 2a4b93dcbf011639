"""The LIME heat map of a prediction as a DICOM Parametric Map, or as a Secondary Capture.

The rule (:func:`heatmap_kind`): LIME explains one 2D slice of the volume, cut along the
model's ``slice_axis``.

* **Parametric Map** when that slice is an acquired image, i.e. the model slices along
  the series' own slice axis ``k`` (``slice_axis == 2``, the demo model's). The map is
  one float32 frame derived from that one source image, on its exact geometry and Frame
  of Reference: pixel (row, column) holds the LIME weight of the superpixel there, for
  the predicted class (positive: evidence for it). The real-world value mapping is the
  identity, quantity Saliency (DCM 130404), no units; the window is centred on 0.
* **Secondary Capture** otherwise (the model cuts the volume across the acquired images,
  ``slice_axis`` 0 or 1): no source image has that plane, so no frame could carry
  exact geometry. The SC is an RGB picture of the explained slice, windowed grey with
  positive weights in red and negative weights in blue, resampled to square pixels,
  superior slices at the top; it names the source images it was cut from. It is for
  reading, not for measuring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ..volume import Volume
from .provenance import EQUIPMENT, SERIES_NUMBERS, export_uid, mark_deidentified, quiet_highdicom
from .sources import SourceSeries

__all__ = ["MAX_RENDER_PIXELS", "build_heatmap", "heatmap_kind", "render_overlay"]

MAX_RENDER_PIXELS = 2048
"""Largest side of a Secondary Capture picture."""

_OVERLAY_ALPHA = 0.6


def heatmap_kind(explanation: Mapping[str, Any]) -> str:
    """``"pmap"`` if the explained slice is an acquired image (``slice_axis == 2``), else ``"sc"``."""
    return "pmap" if int(explanation.get("slice_axis", 2)) == 2 else "sc"


def _explained(record: Mapping[str, Any], heatmap: Volume, key: str) -> tuple[int, int]:
    explanation = record.get("explanation") or {}
    axis = int(explanation.get("slice_axis", 2))
    index = explanation.get("slice_index", record.get("most_suspicious_slice"))
    if axis not in (0, 1, 2) or index is None or not 0 <= int(index) < heatmap.shape[axis]:
        raise InvalidInput(key, f"the explained slice {index} on axis {axis} is not in a volume of {heatmap.shape}")
    return axis, int(index)


def _uids(kind: str, source: SourceSeries, record_key: str, record: Mapping[str, Any]) -> tuple[str, str]:
    created = str((record.get("provenance") or {}).get("created_at", ""))
    return export_uid(kind, source.study_uid, "series"), export_uid(kind, source.study_uid, record_key, created)


def _parametric_map(
    source: SourceSeries, heatmap: Volume, record: Mapping[str, Any], record_key: str, index: int
) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    plane = source.frames(heatmap)[index].astype(np.float32)
    reach = float(np.max(np.abs(plane))) or 1.0
    label, model = str(record.get("label", "")), str(record.get("model_id", ""))
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="LIME",
        lut_explanation=f"LIME weight for {label} ({model})"[:64],
        unit=codes.UCUM.NoUnits,
        value_range=(-reach, reach),
        slope=1.0,
        intercept=0.0,
        quantity_definition=codes.DCM.Saliency,
    )
    series_uid, sop_uid = _uids("pmap", source, record_key, record)
    with quiet_highdicom():
        return hd.pm.ParametricMap(
            source_images=[source.images[index]],
            pixel_array=plane,
            series_instance_uid=series_uid,
            series_number=SERIES_NUMBERS["pmap"],
            sop_instance_uid=sop_uid,
            instance_number=1,
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            voi_lut_transformations=[
                hd.VOILUTTransformation(window_center=0.0, window_width=2 * reach, window_explanation="centred on 0")
            ],
            content_label="LIME",
            content_description=f"LIME heat map, {label}"[:64],
            series_description="imaging-lab explanations",
            **EQUIPMENT,
        )


def _grey(plane: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    values = plane.astype(np.float64)
    if window is None or not window[1]:
        low, high = np.percentile(values, [1, 99]) if values.size else (0.0, 1.0)
    else:
        low, high = window[0] - window[1] / 2, window[0] + window[1] / 2
    scaled = (values - low) / ((high - low) or 1.0)
    return np.clip(scaled, 0.0, 1.0)


def render_overlay(image_plane: np.ndarray, heat_plane: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """Windowed grey ``image_plane`` with ``heat_plane`` over it: red positive, blue negative.

    Parameters
    ----------
    image_plane, heat_plane : numpy.ndarray
        2D arrays of one shape (rows, columns).
    window : (center, width) or None
        The grey window; None: the 1st to 99th percentile.

    Returns
    -------
    numpy.ndarray
        ``(rows, columns, 3)`` uint8 RGB.
    """
    grey = _grey(image_plane, window)
    reach = float(np.max(np.abs(heat_plane))) or 1.0
    weight = np.clip(heat_plane / reach, -1.0, 1.0)
    alpha = _OVERLAY_ALPHA * np.abs(weight)
    rgb = np.repeat(grey[..., np.newaxis], 3, axis=2) * (1 - alpha[..., np.newaxis])
    rgb[..., 0] += alpha * (weight > 0)
    rgb[..., 2] += alpha * (weight < 0)
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def _orientation_letter(direction_ras: np.ndarray) -> str:
    lps = direction_ras * np.array([-1.0, -1.0, 1.0])
    axis = int(np.argmax(np.abs(lps)))
    return ("LR", "PA", "HF")[axis][0 if lps[axis] > 0 else 1]


def _secondary_capture(
    source: SourceSeries,
    image: Volume,
    heatmap: Volume,
    record: Mapping[str, Any],
    record_key: str,
    axis: int,
    index: int,
    window: tuple[float, float] | None,
) -> Any:
    import highdicom as hd
    from scipy import ndimage

    # the plane's axes, in volume order: columns along the first, rows down the slices (superior at top)
    columns_axis = 1 if axis == 0 else 0
    image_plane = np.take(image.array, index, axis=axis)[:, ::-1].T
    heat_plane = np.take(heatmap.array, index, axis=axis)[:, ::-1].T.astype(np.float64)
    spacing = image.spacing
    stretch = spacing[2] / spacing[columns_axis]
    rows = min(max(1, round(image_plane.shape[0] * stretch)), MAX_RENDER_PIXELS)
    zoom = (rows / image_plane.shape[0], min(1.0, MAX_RENDER_PIXELS / image_plane.shape[1]))
    picture = render_overlay(
        ndimage.zoom(image_plane.astype(np.float64), zoom, order=1),
        ndimage.zoom(heat_plane, zoom, order=0),
        window,
    )
    orientation = (
        _orientation_letter(image.affine[:3, columns_axis]),
        _orientation_letter(-image.affine[:3, 2]),
    )
    series_uid, sop_uid = _uids("sc", source, record_key, record)
    with quiet_highdicom():
        capture = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source.images[0],
            pixel_array=picture,
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            patient_orientation=orientation,
            series_instance_uid=series_uid,
            series_number=SERIES_NUMBERS["sc"],
            sop_instance_uid=sop_uid,
            instance_number=1,
            manufacturer=EQUIPMENT["manufacturer"],
            series_description="imaging-lab explanations",
        )
    capture.BurnedInAnnotation = "NO"
    capture.ImageComments = f"LIME heat map, {record.get('label', '')} ({record.get('model_id', '')})"[:10240]
    capture.SourceImageSequence = [_reference(dataset) for dataset in source.images]
    return capture


def _reference(dataset: Any) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = dataset.SOPClassUID
    item.ReferencedSOPInstanceUID = dataset.SOPInstanceUID
    return item


def build_heatmap(
    source: SourceSeries,
    heatmap: Volume,
    record: Mapping[str, Any],
    *,
    record_key: str,
    image: Volume | None = None,
    window: tuple[float, float] | None = None,
) -> Any:
    """Make the Parametric Map, or the Secondary Capture, of a result's LIME heat map.

    Parameters
    ----------
    source : SourceSeries
        The de-identified images the prediction was computed on.
    heatmap : Volume
        The stored heat map (``explanation_key``), on the series' grid.
    record : mapping
        The result record (``explanation.slice_axis``, ``explanation.slice_index``, label, model).
    record_key : str
        Its store key.
    image : Volume, optional
        The series' volume: the grey picture of a Secondary Capture (required for one).
    window : (center, width), optional
        Its grey window.

    Returns
    -------
    highdicom.pm.ParametricMap or highdicom.sc.SCImage
        See :func:`heatmap_kind` and the module's docstring for which.

    Raises
    ------
    InvalidInput
        If the record's explained slice is not in the heat map, or a Secondary Capture is
        needed and ``image`` is missing or of another shape.
    InvalidGeometry
        If the heat map is not on the series' grid.
    """
    key = str(record.get("explanation_key") or record_key)
    axis, index = _explained(record, heatmap, key)
    source.frames(heatmap)  # checks the grid for both kinds
    if heatmap_kind(record.get("explanation") or {}) == "pmap":
        dataset = _parametric_map(source, heatmap, record, record_key, index)
    else:
        if image is None or image.shape[:3] != heatmap.shape[:3]:
            raise InvalidInput(key, "a Secondary Capture needs the series' volume of the heat map's shape")
        dataset = _secondary_capture(source, image, heatmap, record, record_key, axis, index, window)
    return mark_deidentified(dataset, source.images[0])
