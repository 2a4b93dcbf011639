"""The de-identified DICOM images a result was computed from, and which of them each slice maps to.

Every exported object references the source images the store keeps under
``raw/<study>/<series>/<sop>.dcm``, so its references resolve wherever those images are.
A mask or heat map is a volume on one series' grid (``array[i, j, k]``: ``i`` the DICOM
column, ``j`` the row, ``k`` the slice along the normal; affine to RAS+ mm).
:func:`source_series_for` finds that series and checks, image by image, that the
volume's affine puts the image's first pixel at ``i = j = 0``, its columns along ``i``
and its rows along ``j`` (oblique series included: the check is done in the volume's
own voxel space, not on axis names). :meth:`SourceSeries.frames` then gives the volume
as one ``(rows, columns)`` frame per source image, in the images' order.

Only single-frame greyscale series are handled; enhanced multi-frame sources raise
:class:`~imaging_lib.errors.UnsupportedImage`. A source image not marked de-identified
(``PatientIdentityRemoved`` other than ``YES``) is refused: exports never start from
anything the store did not de-identify.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ImagingError, InvalidGeometry, UnreadableImage, UnsupportedImage
from ..store import layout
from ..volume import Volume

__all__ = ["GRID_TOLERANCE", "SourceSeries", "read_series_images", "slice_order", "source_series_for"]

GRID_TOLERANCE = 0.25
"""Largest distance, in voxels, between an image's first pixel and where the volume puts it."""

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_DIRECTION_TOLERANCE = 1e-3


@dataclass(frozen=True)
class SourceSeries:
    """The stored, de-identified images of one series, in the order of its volume's ``k`` axis.

    Attributes
    ----------
    study_uid, series_uid, volume_key : str
    images : tuple of pydicom.Dataset
        Headers (no pixel data), image ``k`` being slice ``k`` of the volume.
    keys : tuple of str
        Their store keys, in the same order.
    """

    study_uid: str
    series_uid: str
    volume_key: str
    images: tuple[Any, ...]
    keys: tuple[str, ...]

    @property
    def frame_of_reference_uid(self) -> str:
        """The Frame of Reference UID the images share."""
        return str(self.images[0].get("FrameOfReferenceUID", ""))

    def frames(self, volume: Volume) -> np.ndarray:
        """The volume as ``(image, row, column)`` frames: frame ``n`` lies on ``images[n]``.

        Raises
        ------
        InvalidGeometry
            If the volume's shape is not the series' grid.
        """
        array = volume.array[..., 0] if volume.array.ndim == 4 and volume.array.shape[3] == 1 else volume.array
        rows, columns = int(self.images[0].Rows), int(self.images[0].Columns)
        if array.shape != (columns, rows, len(self.images)):
            raise InvalidGeometry(
                str(volume.metadata.get("store_key", "<volume>")),
                f"shape {array.shape} is not the grid of series {self.series_uid} "
                f"({columns}, {rows}, {len(self.images)})",
            )
        return np.ascontiguousarray(array.transpose(2, 1, 0))


# ---------------------------------------------------------------------------- reading
def _header(key: str, data: bytes) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        image = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, EOFError, struct.error, ValueError, KeyError, TypeError, OSError) as exc:
        raise UnreadableImage(key, f"stored DICOM cannot be read ({type(exc).__name__}: {exc})") from None
    if str(image.get("PatientIdentityRemoved", "")).upper() != "YES":
        raise UnsupportedImage(key, "not marked de-identified (PatientIdentityRemoved is not YES): not exported")
    if int(image.get("NumberOfFrames", 1) or 1) > 1:
        raise UnsupportedImage(key, "multi-frame source images are not supported by the export yet")
    if int(image.get("SamplesPerPixel", 1) or 1) != 1:
        raise UnsupportedImage(key, "colour source images are not supported by the export")
    for keyword in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows", "Columns"):
        if keyword not in image:
            raise UnsupportedImage(key, f"no {keyword}: the image has no place in the patient's space")
    return image


def read_series_images(store: Any, study_uid: str, series_uid: str) -> list[tuple[str, Any]]:
    """The stored images of a series as ``(key, header)`` pairs (no pixel data), in key order.

    Returns
    -------
    list of (str, pydicom.Dataset)
        Empty if the series has no stored DICOM (a NIfTI input).

    Raises
    ------
    UnreadableImage
        If a stored file is not readable DICOM.
    UnsupportedImage
        If an image is not marked de-identified, is multi-frame or colour, or has no geometry.
    """
    keys = [
        key
        for key in store.list(layout.raw_prefix(study_uid, series_uid))
        if (parsed := layout.parse(key)) is not None and parsed.kind == "raw"
    ]
    return [(key, _header(key, data)) for key, data in store.read_many(keys).items()]


# ---------------------------------------------------------------------------- geometry
def _floats(image: Any, keyword: str, key: str) -> np.ndarray:
    try:
        return np.asarray([float(v) for v in image.get(keyword)], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidGeometry(key, f"{keyword} is not numeric") from None


def slice_order(images: Sequence[Any], keys: Sequence[str], affine: np.ndarray, shape: Sequence[int]) -> list[int]:
    """Which image lies on each slice ``k`` of a volume with this affine and shape.

    Parameters
    ----------
    images : sequence of pydicom.Dataset
        Single-frame headers of one series.
    keys : sequence of str
        Their names, for error messages.
    affine : numpy.ndarray
        The volume's 4x4 voxel-to-RAS affine.
    shape : sequence of int
        The volume's ``(columns, rows, slices)``.

    Returns
    -------
    list of int
        ``order[k]`` is the index in ``images`` of slice ``k``.

    Raises
    ------
    InvalidGeometry
        If an image's pixels are not the volume's voxels of one slice (other size,
        orientation, spacing or position), or the images do not fill the slices one each.
    """
    inverse = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    linear, shift = inverse[:3, :3], inverse[:3, 3]
    positions = []
    for image, key in zip(images, keys):
        if (int(image.Columns), int(image.Rows)) != tuple(shape[:2]):
            raise InvalidGeometry(
                key, f"image of {image.Columns}x{image.Rows} pixels on a grid of {shape[0]}x{shape[1]}"
            )
        orientation = _floats(image, "ImageOrientationPatient", key)
        row_spacing, column_spacing = _floats(image, "PixelSpacing", key)
        origin = linear @ (_LPS_TO_RAS @ _floats(image, "ImagePositionPatient", key)) + shift
        along_columns = linear @ (_LPS_TO_RAS @ orientation[:3]) * column_spacing
        along_rows = linear @ (_LPS_TO_RAS @ orientation[3:]) * row_spacing
        if not np.allclose(along_columns, [1, 0, 0], atol=_DIRECTION_TOLERANCE) or not np.allclose(
            along_rows, [0, 1, 0], atol=_DIRECTION_TOLERANCE
        ):
            raise InvalidGeometry(key, "its columns and rows do not run along the volume's i and j voxel axes")
        if np.max(np.abs(origin[:2])) > GRID_TOLERANCE:
            raise InvalidGeometry(key, f"its first pixel lies at voxel {np.round(origin, 3).tolist()}, not at i=j=0")
        positions.append(float(origin[2]))
    count = int(shape[2])
    if len(positions) != count:
        raise InvalidGeometry(keys[0] if keys else "<series>", f"{len(positions)} images for {count} slices")
    order = [int(i) for i in np.argsort(positions, kind="stable")]
    ranked = np.asarray(positions)[order]
    if abs(ranked[0]) > GRID_TOLERANCE or abs(ranked[-1] - (count - 1)) > GRID_TOLERANCE:
        raise InvalidGeometry(
            keys[order[0]], f"images span slices {ranked[0]:.3f} to {ranked[-1]:.3f}, not 0 to {count - 1}"
        )
    if count > 1 and np.min(np.diff(ranked)) < GRID_TOLERANCE:
        raise InvalidGeometry(keys[order[int(np.argmin(np.diff(ranked))) + 1]], "two images lie on one slice")
    return order


def source_series_for(store: Any, study: Mapping[str, Any], volume: Volume, source: str) -> SourceSeries:
    """The stored series of a study whose grid ``volume`` (a mask, a heat map) lies on.

    The study's primary series is tried first, then its other series of the same shape.

    Parameters
    ----------
    store : Store
    study : mapping
        The study record.
    volume : Volume
        The mask or heat map.
    source : str
        Its store key, named in errors.

    Returns
    -------
    SourceSeries

    Raises
    ------
    UnsupportedImage
        If the study has no stored DICOM images of that shape (a NIfTI input), or they are unsuitable.
    InvalidGeometry
        If none of its series has the volume's grid.
    UnreadableImage
        If a stored file is not readable DICOM.
    """
    shape = list(volume.shape[:3])
    entries = sorted(
        (entry for entry in study.get("series", []) if list(entry.get("shape", []))[:3] == shape),
        key=lambda entry: entry.get("series_uid") != study.get("series_uid"),
    )
    problem: ImagingError | None = None
    for entry in entries:
        found = read_series_images(store, str(study["study_uid"]), str(entry["series_uid"]))
        if not found:
            continue
        keys, images = [key for key, _ in found], [image for _, image in found]
        try:
            order = slice_order(images, keys, volume.affine, shape)
        except InvalidGeometry as exc:
            problem = exc
            continue
        return SourceSeries(
            str(study["study_uid"]),
            str(entry["series_uid"]),
            str(entry.get("volume_key", "")),
            tuple(images[i] for i in order),
            tuple(keys[i] for i in order),
        )
    if problem is not None:
        raise InvalidGeometry(source, f"lies on no stored series of the study ({problem})")
    raise UnsupportedImage(
        source, f"the study has no stored DICOM series of shape {shape} (NIfTI inputs have no images to reference)"
    )
