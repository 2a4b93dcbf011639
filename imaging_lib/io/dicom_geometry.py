"""Where a DICOM series' voxels are: frames sorted along the slice normal and the RAS affine.

Frames are sorted by their position projected on the normal of the row and column
cosines (never by InstanceNumber or file name), and the slice step is measured from the
positions, not taken from SliceThickness or SpacingBetweenSlices, which oblique series
often get wrong. Those two are only hints, for a single slice or a multi-frame file
without positions; an unreadable hint is ignored with a warning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InconsistentSeries, InvalidGeometry, UnreadableImage
from .dicom_header import DicomHeader
from .dicom_values import attribute, number, numbers

__all__ = ["LPS_TO_RAS", "series_geometry"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SPACING_TOLERANCE_MM = 0.01
IRREGULAR_SPACING_MM = 0.15  # scanners round positions to 0.1 mm: smaller wobbles are noise
TILT_WARNING_DEGREES = 0.2
ORIENTATION_TOLERANCE = 1e-4

Frame = tuple[DicomHeader, int]


def _floats(dataset: Any, keyword: str, count: int, source: Any) -> np.ndarray | None:
    values = numbers(dataset, keyword, source)
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (count,) or not np.all(np.isfinite(array)):
        raise InvalidGeometry(source, f"{keyword} must hold {count} finite numbers, got {values!r}")
    return array


def _item(dataset: Any, keyword: str, source: Any) -> Any:
    """The first item of a sequence, or None."""
    sequence = attribute(dataset, keyword, source)
    return sequence[0] if sequence else None


def _frame_geometry(header: DicomHeader) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Return (row cosine, column cosine, pixel spacing) of a file, or None if absent."""
    ds, source = header.dataset, header.path
    orientation = _floats(ds, "ImageOrientationPatient", 6, source)
    spacing = _floats(ds, "PixelSpacing", 2, source)
    shared = _item(ds, "SharedFunctionalGroupsSequence", source)
    if orientation is None and shared is not None:
        plane = _item(shared, "PlaneOrientationSequence", source)
        measures = _item(shared, "PixelMeasuresSequence", source)
        orientation = None if plane is None else _floats(plane, "ImageOrientationPatient", 6, source)
        spacing = None if measures is None else _floats(measures, "PixelSpacing", 2, source)
    if orientation is None:
        return None
    row, col = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise InvalidGeometry(source, f"ImageOrientationPatient is not two orthonormal vectors: {orientation}")
    if spacing is None:
        spacing = np.ones(2)
    if np.any(spacing <= 0):
        raise InvalidGeometry(source, f"PixelSpacing must be positive, got {spacing.tolist()}")
    return row, col, spacing


def _frame_positions(header: DicomHeader, normal: np.ndarray) -> list[np.ndarray] | None:
    """Positions (LPS) of every frame of one file, or None if the file gives none.

    Enhanced multi-frame files give one PlanePositionSequence per frame; RT dose gives
    GridFrameOffsetVector along the normal; single-frame files give one position.
    """
    ds, source = header.dataset, header.path
    per_frame = attribute(ds, "PerFrameFunctionalGroupsSequence", source)
    if per_frame and all("PlanePositionSequence" in frame for frame in per_frame):
        if len(per_frame) != header.frames:
            raise InconsistentSeries(
                source, f"{len(per_frame)} per-frame positions for {header.frames} frame(s) of pixel data"
            )
        found = []
        for frame in per_frame:
            plane = _item(frame, "PlanePositionSequence", source)
            position = None if plane is None else _floats(plane, "ImagePositionPatient", 3, source)
            if position is None:
                raise InvalidGeometry(source, "a per-frame PlanePositionSequence has no ImagePositionPatient")
            found.append(position)
        return found
    position = _floats(ds, "ImagePositionPatient", 3, source)
    if position is None:
        return None
    offsets = numbers(ds, "GridFrameOffsetVector", source)
    if header.frames > 1 and offsets is not None and len(offsets) == header.frames:
        if not np.all(np.isfinite(offsets)):
            raise InvalidGeometry(source, "GridFrameOffsetVector holds values that are not finite")
        return [position + normal * offset for offset in offsets]
    if header.frames == 1:
        return [position]
    return None  # a multi-frame file with one position: frames are stepped below


def _spacing_hint(header: DicomHeader, keywords: tuple[str, ...], warnings: list[str]) -> float | None:
    """The first of ``keywords`` that holds one positive finite number; unreadable ones are warned about."""
    for keyword in keywords:
        try:
            value = number(header.dataset, keyword, header.path, default=0.0)
        except UnreadableImage as exc:
            warnings.append(f"{header.path.name}: {exc.reason}; ignored")
            continue
        if value > 0:
            return value
    return None


def series_geometry(headers: list[DicomHeader]) -> tuple[list[Frame], np.ndarray, list[str]]:
    """Sort frames along the normal and return them with the RAS affine and warnings.

    Returns
    -------
    frames : list of (header, frame index)
        In the order of the volume's k axis.
    affine : numpy.ndarray
        4x4 voxel-to-RAS matrix.
    warnings : list of str
        Irregular spacing, gantry tilt, missing slices, assumed geometry, ignored hints.

    Raises
    ------
    InvalidGeometry, InconsistentSeries, UnreadableImage
        Unusable orientation, spacing or positions, slices that disagree.
    """
    first = headers[0]
    warnings: list[str] = []
    geometry = _frame_geometry(first)
    if geometry is None:
        warnings.append("no ImageOrientationPatient: identity orientation and 1 mm spacing assumed")
        row, col, spacing = np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.ones(2)
    else:
        row, col, spacing = geometry
    for header in headers[1:]:
        other = _frame_geometry(header)
        if other is not None and (
            not np.allclose(other[0], row, atol=ORIENTATION_TOLERANCE)
            or not np.allclose(other[1], col, atol=ORIENTATION_TOLERANCE)
        ):
            raise InconsistentSeries(header.path, "ImageOrientationPatient differs from the rest of the series")
        if other is not None and not np.allclose(other[2], spacing, atol=1e-4):
            raise InconsistentSeries(header.path, "PixelSpacing differs from the rest of the series")
    normal = np.cross(row, col)

    frames: list[Frame] = []
    positions: list[np.ndarray] = []
    for header in headers:
        found = _frame_positions(header, normal)
        if found is None:
            origin = _floats(header.dataset, "ImagePositionPatient", 3, header.path)
            origin = np.zeros(3) if origin is None else origin
            step = _spacing_hint(header, ("SpacingBetweenSlices", "SliceThickness"), warnings) or 1.0
            found = [origin + normal * step * f for f in range(header.frames)]
            if header.frames > 1:
                warnings.append(f"{header.path.name}: frames have no positions; stepped by {step:g} mm")
        frames.extend((header, f) for f in range(len(found)))
        positions.extend(found)

    stacked = np.asarray(positions)
    order = np.argsort(stacked @ normal, kind="stable")
    frames = [frames[i] for i in order]
    stacked = stacked[order]
    if len(stacked) == 1:
        step_vector = normal * (_spacing_hint(first, ("SliceThickness",), warnings) or 1.0)
    else:
        step_vector = _measure_steps(stacked, normal, frames, warnings)

    affine = np.eye(4)
    affine[:3, 0] = row * spacing[1]
    affine[:3, 1] = col * spacing[0]
    affine[:3, 2] = step_vector
    affine[:3, 3] = stacked[0]
    return frames, LPS_TO_RAS @ affine, warnings


def _measure_steps(positions: np.ndarray, normal: np.ndarray, frames: list[Frame], warnings: list[str]) -> np.ndarray:
    """Return the mean step between frame positions; warn about its regularity."""
    deltas = np.diff(positions, axis=0)
    gaps = deltas @ normal
    duplicate = np.flatnonzero(gaps < SPACING_TOLERANCE_MM)
    if duplicate.size:
        header = frames[duplicate[0] + 1][0]
        raise InconsistentSeries(
            header.path,
            "two slices share one position (several acquisitions or echoes in one series?)",
        )
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    median = float(np.median(gaps))
    if np.max(np.abs(gaps - median)) > max(IRREGULAR_SPACING_MM, 0.02 * median):
        missing = int(np.sum(np.rint(gaps / median) - 1))
        if missing > 0:
            warnings.append(f"missing slices: about {missing} gap(s) in a {median:.3g} mm spacing")
        warnings.append(
            f"irregular slice spacing: {gaps.min():.4g} to {gaps.max():.4g} mm (median {median:.4g} mm); "
            "the affine uses the mean step"
        )
    tilt = np.degrees(np.arccos(np.clip(abs(step @ normal) / np.linalg.norm(step), -1, 1)))
    if tilt > TILT_WARNING_DEGREES:
        warnings.append(f"gantry tilt or sheared stack: slices step {tilt:.2f} degrees off the normal")
    return step
