"""Read DICOM series into :class:`~imaging_lib.volume.Volume` with correct geometry.

Reading happens in two passes over the files, each opening a file once:

1. headers (:mod:`imaging_lib.io.dicom_header`): group by SeriesInstanceUID, check
   that the slices agree, sort them by their position projected on the slice normal
   (:mod:`imaging_lib.io.dicom_geometry`), and check the declared pixel size against
   the file size and ``max_bytes`` *before* any pixel memory is allocated;
2. pixels (:mod:`imaging_lib.io.dicom_pixels`): decoded a frame at a time straight into
   one preallocated array, each encoded frame checked against the header first.

Array layout: ``array[i, j, k]`` with ``i`` the DICOM column index, ``j`` the row index
and ``k`` the slice in ascending order along the normal ``row x column`` cosines, the
layout dcm2niix and nibabel use. The affine maps it to RAS+ millimetres (DICOM LPS
with x and y negated).

Every attribute is read through :mod:`imaging_lib.io.dicom_values`, so a value that is
unreadable, empty, non-numeric or out of range is a typed error naming the file (or,
for display and spacing hints such as WindowCenter and SliceThickness, a warning).

Enhanced multi-frame files (Enhanced CT/MR, legacy-converted or not) read like a series:
positions per frame from their Plane Position groups, the rescale per frame from their
Pixel Value Transformation groups (:func:`~imaging_lib.io.dicom_pixels.frame_rescales`),
and the window from the Frame VOI LUT group (shared, else the first frame's).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ImageTooLarge, InconsistentSeries, UnreadableImage
from ..limits import MAX_IMAGE_BYTES
from ..volume import Volume
from .dicom_geometry import series_geometry
from .dicom_header import DicomHeader, check_size, read_header
from .dicom_pixels import output_dtype, read_pixels
from .dicom_values import attribute, numbers, text

__all__ = ["DEFAULT_MAX_BYTES", "read_dicom_bytes", "read_dicom_folder", "read_dicom_header", "read_dicom_series"]

DEFAULT_MAX_BYTES = MAX_IMAGE_BYTES
"""Largest decoded pixel data accepted for one series, in bytes (2 GiB)."""


def read_dicom_header(path: str | os.PathLike[str]) -> Any:
    """Read one DICOM file's header (no pixel data), with typed errors.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    pydicom.Dataset
        The dataset up to, not including, the pixel data.

    Raises
    ------
    UnreadableImage
        If the file is missing, empty, truncated or not DICOM.
    """
    return read_header(Path(path)).dataset


# ---------------------------------------------------------------------------- files
def _list_files(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                raise UnreadableImage(path, "folder holds no files")
            return files
        return [path]
    files = [Path(p) for p in source]
    if not files:
        raise UnreadableImage("<no files>", "no DICOM files were given")
    return files


def _group_by_series(headers: Sequence[DicomHeader]) -> dict[str, list[DicomHeader]]:
    groups: dict[str, list[DicomHeader]] = defaultdict(list)
    for header in headers:
        groups[header.series_uid].append(header)
    return dict(groups)


# ---------------------------------------------------------------------------- metadata
def _window_item(ds: Any, source: Path) -> Any:
    """Where the window is: the data set itself, else the Frame VOI LUT of the shared, then the first frame's group."""
    if "WindowCenter" in ds:
        return ds
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = attribute(ds, keyword, source)
        voi = attribute(groups[0], "FrameVOILUTSequence", source) if groups else None
        if voi:
            return voi[0]
    return ds


def _series_metadata(headers: list[DicomHeader], warnings: list[str]) -> dict[str, Any]:
    first = headers[0]
    ds, source = first.dataset, first.path

    voi = _window_item(ds, source)

    def window(keyword: str) -> float | None:
        """A display hint's first value, or None (warned about) when it is not a finite number."""
        try:
            values = numbers(voi, keyword, source)
        except UnreadableImage as exc:
            warnings.append(f"{source.name}: {exc.reason}; ignored")
            return None
        if values and not math.isfinite(values[0]):
            warnings.append(f"{source.name}: {keyword} is not finite; ignored")
            return None
        return values[0] if values else None

    def plain(keyword: str) -> str:
        return text(ds, keyword, source)

    return {
        "source": str(source.parent if len(headers) > 1 else source),
        "format": "DICOM",
        "modality": plain("Modality"),
        "series_description": plain("SeriesDescription"),
        "study_uid": plain("StudyInstanceUID"),
        "series_uid": plain("SeriesInstanceUID"),
        "frame_of_reference_uid": plain("FrameOfReferenceUID"),
        "patient_id": plain("PatientID"),
        "study_date": plain("StudyDate"),
        "window_center": window("WindowCenter"),
        "window_width": window("WindowWidth"),
        "rescale_type": plain("RescaleType") or ("HU" if plain("Modality") == "CT" else ""),
        "file_count": len(headers),
        "warnings": warnings,
    }


# ---------------------------------------------------------------------------- public
def _volume_from_headers(headers: list[DicomHeader], max_bytes: int) -> Volume:
    total = 0
    for header in headers:
        check_size(header, max_bytes)
        total += header.declared_bytes
    if total > max_bytes:
        raise ImageTooLarge(headers[0].path.parent, f"series declares {total} bytes of pixel data, over {max_bytes}")
    frames, affine, warnings = series_geometry(headers)
    array = read_pixels(frames, output_dtype(headers))
    metadata = _series_metadata(headers, warnings)
    volume = Volume(array, affine, metadata)
    volume.metadata["spacing"] = volume.spacing
    volume.metadata["orientation"] = "".join(volume.orientation)
    return volume


def read_dicom_folder(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Volume]:
    """Read every series found in a folder (recursively) or a list of files.

    Parameters
    ----------
    source : path or iterable of paths
        A folder, one file, or DICOM files.
    max_bytes : int
        Largest decoded pixel data accepted for one series.

    Returns
    -------
    list of Volume
        One volume per SeriesInstanceUID, ordered by series description and UID.

    Raises
    ------
    UnreadableImage, UnsupportedImage, InconsistentSeries, ImageTooLarge, MissingDependency
        The first bad file stops the read; use :mod:`imaging_lib.ingest` to go on past it.
    """
    headers = [read_header(path) for path in _list_files(source)]
    groups = _group_by_series(headers)
    volumes = [_volume_from_headers(group, max_bytes) for group in groups.values()]
    return sorted(volumes, key=lambda v: (v.metadata["series_description"], v.metadata["series_uid"]))


def read_dicom_series(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Volume:
    """Read exactly one DICOM series (single-frame files, or one multi-frame file).

    Parameters
    ----------
    source : path or iterable of paths
        A folder, one file, or the files of the series.
    max_bytes : int
        Largest decoded pixel data accepted, checked from the headers before any pixel
        memory is allocated (default 2 GiB).

    Returns
    -------
    Volume
        ``array[i, j, k]``: column, row, slice (ascending along the slice normal); the
        affine maps voxels to RAS+ mm, and ``metadata["warnings"]`` lists irregular
        spacing, gantry tilt or missing slices.

    Raises
    ------
    UnreadableImage
        Empty, truncated or non-DICOM files.
    UnsupportedImage
        DICOM without pixel data.
    InconsistentSeries
        Several series, or slices that disagree in orientation, size or position.
    ImageTooLarge
        Declared pixel data over ``max_bytes``.
    MissingDependency
        A compressed transfer syntax whose decoder is not installed.
    """
    files = _list_files(source)
    headers = [read_header(path) for path in files]
    where = source if isinstance(source, (str, os.PathLike)) else files[0].parent
    return _one_series(headers, where, max_bytes)


def read_dicom_bytes(files: Iterable[tuple[str, bytes]], *, max_bytes: int = DEFAULT_MAX_BYTES) -> Volume:
    """Read exactly one DICOM series from files held in memory (uploads, de-identified ingest).

    Parameters
    ----------
    files : iterable of (name, bytes)
        Each file's name (used in error messages and metadata) and its whole content.
    max_bytes : int
        Largest decoded pixel data accepted.

    Returns
    -------
    Volume
        As :func:`read_dicom_series`.

    Raises
    ------
    UnreadableImage, UnsupportedImage, InconsistentSeries, ImageTooLarge, MissingDependency
        As :func:`read_dicom_series`.
    """
    headers = [read_header(Path(name), bytes(data)) for name, data in files]
    if not headers:
        raise UnreadableImage("<no files>", "no DICOM files were given")
    return _one_series(headers, "<memory>", max_bytes)


def _one_series(headers: list[DicomHeader], where: str | os.PathLike[str], max_bytes: int) -> Volume:
    groups = _group_by_series(headers)
    if len(groups) > 1:
        listing = ", ".join(f"{uid or '<none>'} ({len(g)} files)" for uid, g in groups.items())
        raise InconsistentSeries(where, f"{len(groups)} series found where one was expected: {listing}")
    return _volume_from_headers(headers, max_bytes)
