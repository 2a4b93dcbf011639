"""Read DICOM series into :class:`~imaging_lib.volume.Volume` with correct geometry.

Reading happens in two passes over the files, each opening a file once:

1. headers (``stop_before_pixels``): group by SeriesInstanceUID, check that the slices
   agree, sort them by their position projected on the slice normal (never by
   InstanceNumber or file name), and check the declared pixel size against the file
   size and ``max_bytes`` *before* any pixel memory is allocated;
2. pixels: decoded straight into one preallocated array with
   :func:`pydicom.pixels.pixel_array`, which stops parsing at the pixel data element
   (files with megabytes of trailing padding cost nothing extra).

Array layout: ``array[i, j, k]`` with ``i`` the DICOM column index, ``j`` the row index
and ``k`` the slice in ascending order along the normal ``row x column`` cosines, the
layout dcm2niix and nibabel use. The affine maps it to RAS+ millimetres (DICOM LPS
with x and y negated). Slice spacing is measured from the positions, not taken from
SliceThickness or SpacingBetweenSlices, which oblique series often get wrong.
"""

from __future__ import annotations

import io
import os
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    ImageTooLarge,
    InconsistentSeries,
    InvalidGeometry,
    MissingDependency,
    UnreadableImage,
    UnsupportedImage,
)
from ..limits import MAX_IMAGE_BYTES
from ..volume import Volume

__all__ = ["DEFAULT_MAX_BYTES", "read_dicom_bytes", "read_dicom_folder", "read_dicom_header", "read_dicom_series"]

DEFAULT_MAX_BYTES = MAX_IMAGE_BYTES
"""Largest decoded pixel data accepted for one series, in bytes (2 GiB)."""

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SPACING_TOLERANCE_MM = 0.01
IRREGULAR_SPACING_MM = 0.15  # scanners round positions to 0.1 mm: smaller wobbles are noise
TILT_WARNING_DEGREES = 0.2
ORIENTATION_TOLERANCE = 1e-4

_EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
_NATIVE_SYNTAXES = {"1.2.840.10008.1.2", _EXPLICIT_LITTLE}
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"

_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg (or Pillow)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg (or Pillow)",
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.81": "pylibjpeg pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg (or Pillow)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg (or Pillow)",
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle (or numpy alone for small images)",
}


@dataclass(frozen=True)
class _Header:
    """What the reader needs from one file's header, parsed once."""

    path: Path
    dataset: Any  # pydicom.Dataset without pixel data
    file_size: int
    pixel_offset: int  # where the pixel data element starts in the file
    data: bytes | None = None  # the whole file, when it was given in memory

    def open(self) -> Any:
        """Open the file (or its bytes in memory) for binary reading."""
        return open(self.path, "rb") if self.data is None else io.BytesIO(self.data)

    @property
    def series_uid(self) -> str:
        return str(self.dataset.get("SeriesInstanceUID", ""))

    @property
    def frames(self) -> int:
        return int(self.dataset.get("NumberOfFrames", 1) or 1)

    @property
    def declared_bytes(self) -> int:
        ds = self.dataset
        bits = int(ds.get("BitsAllocated", 16))
        samples = int(ds.get("SamplesPerPixel", 1))
        pixels = int(ds.Rows) * int(ds.Columns) * self.frames * samples
        return (pixels * bits + 7) // 8


# ---------------------------------------------------------------------------- headers
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
    return _read_header(Path(path)).dataset


def _read_header(path: Path, data: bytes | None = None) -> _Header:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        size = path.stat().st_size if data is None else len(data)
    except OSError as exc:
        raise UnreadableImage(path, f"cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise UnreadableImage(path, "empty file")
    try:
        with open(path, "rb") if data is None else io.BytesIO(data) as stream:
            dataset = pydicom.dcmread(stream, stop_before_pixels=True)
            pixel_offset = stream.tell()
    except InvalidDicomError:
        raise UnreadableImage(path, "not a DICOM file (no DICM preamble or valid header)") from None
    except (EOFError, struct.error, ValueError, KeyError, TypeError, OverflowError, IndexError) as exc:
        raise UnreadableImage(path, f"truncated or corrupt DICOM header ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise UnreadableImage(path, f"cannot read: {exc}") from None
    if "Rows" not in dataset or "Columns" not in dataset:
        sop = dataset.get("SOPClassUID")
        kind = getattr(sop, "name", str(sop)) if sop is not None else "unknown SOP class"
        raise UnsupportedImage(path, f"DICOM without pixel data ({kind})")
    return _Header(path, dataset, size, pixel_offset, data)


def _check_size(header: _Header, max_bytes: int) -> None:
    """Refuse a file whose header declares more pixel data than it can hold or we allow."""
    declared = header.declared_bytes
    if declared > max_bytes:
        raise ImageTooLarge(
            header.path, f"header declares {declared} bytes of pixel data, over the limit of {max_bytes}"
        )
    file_meta = getattr(header.dataset, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if (syntax is None or not syntax.is_compressed) and declared > header.file_size:
        raise UnreadableImage(
            header.path,
            f"truncated: header declares {declared} bytes of pixel data but the file has {header.file_size} bytes",
        )


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


def _group_by_series(headers: Sequence[_Header]) -> dict[str, list[_Header]]:
    groups: dict[str, list[_Header]] = defaultdict(list)
    for header in headers:
        groups[header.series_uid].append(header)
    return dict(groups)


# ---------------------------------------------------------------------------- geometry
def _floats(header: _Header, keyword: str, count: int) -> np.ndarray | None:
    value = header.dataset.get(keyword)
    if value is None:
        return None
    try:
        array = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise UnreadableImage(header.path, f"{keyword} is not numeric: {value!r}") from None
    if array.shape != (count,) or not np.all(np.isfinite(array)):
        raise InvalidGeometry(header.path, f"{keyword} must hold {count} finite numbers, got {value!r}")
    return array


def _frame_geometry(header: _Header) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Return (row cosine, column cosine, pixel spacing) of a file, or None if absent."""
    ds = header.dataset
    orientation = _floats(header, "ImageOrientationPatient", 6)
    spacing = _floats(header, "PixelSpacing", 2)
    shared = ds.get("SharedFunctionalGroupsSequence")
    if orientation is None and shared:
        orientation, spacing = _functional_group_geometry(header, shared[0])
    if orientation is None:
        return None
    row, col = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise InvalidGeometry(header.path, f"ImageOrientationPatient is not two orthonormal vectors: {orientation}")
    if spacing is None:
        spacing = np.ones(2)
    if np.any(spacing <= 0):
        raise InvalidGeometry(header.path, f"PixelSpacing must be positive, got {spacing.tolist()}")
    return row, col, spacing


def _functional_group_geometry(header: _Header, group: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    orientation = spacing = None
    if "PlaneOrientationSequence" in group:
        orientation = np.asarray([float(v) for v in group.PlaneOrientationSequence[0].ImageOrientationPatient])
    if "PixelMeasuresSequence" in group and "PixelSpacing" in group.PixelMeasuresSequence[0]:
        spacing = np.asarray([float(v) for v in group.PixelMeasuresSequence[0].PixelSpacing])
    return orientation, spacing


def _frame_positions(header: _Header, normal: np.ndarray) -> list[np.ndarray] | None:
    """Positions (LPS) of every frame of one file, or None if the file gives none.

    Enhanced multi-frame files give one PlanePositionSequence per frame; RT dose gives
    GridFrameOffsetVector along the normal; single-frame files give one position.
    """
    ds = header.dataset
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and all("PlanePositionSequence" in frame for frame in per_frame):
        if len(per_frame) != header.frames:
            raise InconsistentSeries(
                header.path, f"{len(per_frame)} per-frame positions for {header.frames} frame(s) of pixel data"
            )
        return [
            np.asarray([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]) for frame in per_frame
        ]
    position = _floats(header, "ImagePositionPatient", 3)
    if position is None:
        return None
    offsets = ds.get("GridFrameOffsetVector")
    if header.frames > 1 and offsets is not None and len(offsets) == header.frames:
        return [position + normal * float(offset) for offset in offsets]
    if header.frames == 1:
        return [position]
    return None  # a multi-frame file with one position: frames are stepped below


def _slice_step(header: _Header) -> float:
    """Nominal gap between frames of a multi-frame file without per-frame positions."""
    ds = header.dataset
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        if keyword in ds and ds.get(keyword):
            return float(ds.get(keyword))
    return 1.0


def _series_geometry(headers: list[_Header]) -> tuple[list[tuple[_Header, int]], np.ndarray, list[str]]:
    """Sort frames along the normal and return them with the RAS affine and warnings.

    Returns
    -------
    frames : list of (header, frame index)
        In the order of the volume's k axis.
    affine : numpy.ndarray
        4x4 voxel-to-RAS matrix.
    warnings : list of str
        Irregular spacing, gantry tilt, missing slices, assumed geometry.
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

    frames: list[tuple[_Header, int]] = []
    positions: list[np.ndarray] = []
    for header in headers:
        found = _frame_positions(header, normal)
        if found is None:
            origin = _floats(header, "ImagePositionPatient", 3)
            origin = np.zeros(3) if origin is None else origin
            step = _slice_step(header)
            found = [origin + normal * step * f for f in range(header.frames)]
            if header.frames > 1:
                warnings.append(f"{header.path.name}: frames have no positions; stepped by {step:g} mm")
        frames.extend((header, f) for f in range(len(found)))
        positions.extend(found)

    stacked = np.asarray(positions)
    order = np.argsort(stacked @ normal, kind="stable")
    frames = [frames[i] for i in order]
    stacked = stacked[order]
    step_vector, step_warnings = _measure_steps(stacked, normal, frames)
    warnings.extend(step_warnings)

    affine = np.eye(4)
    affine[:3, 0] = row * spacing[1]
    affine[:3, 1] = col * spacing[0]
    affine[:3, 2] = step_vector
    affine[:3, 3] = stacked[0]
    return frames, LPS_TO_RAS @ affine, warnings


def _measure_steps(
    positions: np.ndarray, normal: np.ndarray, frames: list[tuple[_Header, int]]
) -> tuple[np.ndarray, list[str]]:
    """Return the mean step between frame positions and warnings about its regularity."""
    if len(positions) == 1:
        header = frames[0][0]
        thickness = header.dataset.get("SliceThickness") or 1.0
        return normal * float(thickness), []
    deltas = np.diff(positions, axis=0)
    gaps = deltas @ normal
    duplicate = np.flatnonzero(gaps < SPACING_TOLERANCE_MM)
    if duplicate.size:
        header = frames[duplicate[0] + 1][0]
        raise InconsistentSeries(
            header.path,
            "two slices share one position (several acquisitions or echoes in one series?)",
        )
    warnings: list[str] = []
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
    return step, warnings


# ---------------------------------------------------------------------------- pixels
def _rescale(header: _Header) -> tuple[float, float]:
    ds = header.dataset
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return slope, intercept


def _output_dtype(headers: Sequence[_Header]) -> np.dtype:
    """Integer output when every rescale is an integer shift that fits, else float32."""
    ds = headers[0].dataset
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        return np.dtype(np.uint8)
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    results = []
    for header in headers:
        slope, intercept = _rescale(header)
        if slope != 1 or intercept != int(intercept):
            return np.dtype(np.float32)
        results += [low + intercept, high + intercept]
    if min(results) >= -(2**15) and max(results) < 2**15:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def _read_native(header: _Header) -> np.ndarray | None:
    """Read uncompressed little-endian grey pixels straight from the file, or None.

    The header pass left the offset of the pixel data element; reading its bytes there
    avoids parsing the header a second time. Anything else (compressed, big endian,
    colour, 1-bit) returns None and goes through pydicom's decoders.
    """
    ds = header.dataset
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    bits = int(ds.get("BitsAllocated", 0))
    if syntax not in _NATIVE_SYNTAXES or bits not in (8, 16, 32) or int(ds.get("SamplesPerPixel", 1)) != 1:
        return None
    explicit = syntax == _EXPLICIT_LITTLE
    with header.open() as stream:
        stream.seek(header.pixel_offset)
        element = stream.read(12 if explicit else 8)
        if len(element) < 8 or element[:4] != _PIXEL_DATA_TAG:
            return None
        length = struct.unpack("<I", element[8:12] if explicit else element[4:8])[0]
        if explicit and element[4:6] not in (b"OW", b"OB"):
            return None
        if not explicit:
            stream.seek(header.pixel_offset + 8)
        declared = header.declared_bytes
        if length == 0xFFFFFFFF or length < declared:
            raise UnreadableImage(header.path, f"pixel data element holds {length} bytes, header declares {declared}")
        data = stream.read(declared)
    if len(data) < declared:
        raise UnreadableImage(header.path, f"truncated: pixel data ends after {len(data)} of {declared} bytes")
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    pixels = np.frombuffer(data, dtype=dtype).reshape(header.frames, int(ds.Rows), int(ds.Columns))
    stored = int(ds.get("BitsStored", bits))
    if signed and stored < bits:  # sign-extend the stored bits, as pydicom does
        shift = bits - stored
        pixels = (pixels << shift) >> shift
    return pixels


def _decode(header: _Header, frame_count: int) -> np.ndarray:
    from pydicom.pixels import pixel_array

    native = _read_native(header)
    if native is not None:
        return native
    try:
        pixels = pixel_array(header.path if header.data is None else io.BytesIO(header.data))
    except (NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "missing dependencies" not in str(exc):
            raise UnreadableImage(header.path, f"pixel data cannot be decoded ({exc})") from None
        uid = header.dataset.file_meta.get("TransferSyntaxUID")
        package = _DECODER_PACKAGES.get(str(uid), "a pydicom pixel data plugin")
        raise MissingDependency(
            header.path, f"no decoder installed for transfer syntax {getattr(uid, 'name', uid)}: pip install {package}"
        ) from None
    except (AttributeError, KeyError) as exc:
        raise UnsupportedImage(header.path, f"DICOM without usable pixel data ({exc})") from None
    except (EOFError, struct.error, ValueError, OSError, IndexError) as exc:
        raise UnreadableImage(header.path, f"pixel data cannot be decoded ({type(exc).__name__}: {exc})") from None
    return pixels[np.newaxis] if frame_count == 1 else pixels


def _read_pixels(frames: list[tuple[_Header, int]], dtype: np.dtype) -> np.ndarray:
    """Decode every file once into a (slice, row, column) stack; return it as [i, j, k].

    The stack is filled plane by plane in C order and returned transposed, which makes
    the volume Fortran-ordered: the layout NIfTI stores, so writing it copies nothing.
    """
    first = frames[0][0].dataset
    rows, columns = int(first.Rows), int(first.Columns)
    samples = int(first.get("SamplesPerPixel", 1))
    stack = np.empty((len(frames), rows, columns) + ((samples,) if samples > 1 else ()), dtype=dtype)
    slots: dict[int, list[tuple[int, int]]] = defaultdict(list)
    headers: dict[int, _Header] = {}
    for k, (header, frame) in enumerate(frames):
        slots[id(header)].append((k, frame))
        headers[id(header)] = header
    for key, header in headers.items():
        pixels = _decode(header, header.frames)
        if pixels.shape[1:3] != (rows, columns) or pixels.shape[0] != header.frames:
            raise InconsistentSeries(header.path, f"pixel matrix {pixels.shape[1:3]} differs from {rows}x{columns}")
        slope, intercept = _rescale(header)
        for k, frame in slots[key]:
            plane = pixels[frame]
            stack[k] = plane if slope == 1 and intercept == 0 else plane * slope + intercept
    return np.moveaxis(stack, (0, 1, 2), (2, 1, 0))


# ---------------------------------------------------------------------------- metadata
def _series_metadata(headers: list[_Header], warnings: list[str]) -> dict[str, Any]:
    ds = headers[0].dataset

    def text(keyword: str) -> str:
        return str(ds.get(keyword, "") or "")

    def first_number(keyword: str) -> float | None:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        return float(value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value)

    return {
        "source": str(headers[0].path.parent if len(headers) > 1 else headers[0].path),
        "format": "DICOM",
        "modality": text("Modality"),
        "series_description": text("SeriesDescription"),
        "study_uid": text("StudyInstanceUID"),
        "series_uid": text("SeriesInstanceUID"),
        "frame_of_reference_uid": text("FrameOfReferenceUID"),
        "patient_id": text("PatientID"),
        "study_date": text("StudyDate"),
        "window_center": first_number("WindowCenter"),
        "window_width": first_number("WindowWidth"),
        "rescale_type": text("RescaleType") or ("HU" if text("Modality") == "CT" else ""),
        "file_count": len(headers),
        "warnings": warnings,
    }


# ---------------------------------------------------------------------------- public
def _volume_from_headers(headers: list[_Header], max_bytes: int) -> Volume:
    total = 0
    for header in headers:
        _check_size(header, max_bytes)
        total += header.declared_bytes
    if total > max_bytes:
        raise ImageTooLarge(headers[0].path.parent, f"series declares {total} bytes of pixel data, over {max_bytes}")
    frames, affine, warnings = _series_geometry(headers)
    array = _read_pixels(frames, _output_dtype(headers))
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
    headers = [_read_header(path) for path in _list_files(source)]
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
    headers = [_read_header(path) for path in files]
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
    headers = [_read_header(Path(name), bytes(data)) for name, data in files]
    if not headers:
        raise UnreadableImage("<no files>", "no DICOM files were given")
    return _one_series(headers, "<memory>", max_bytes)


def _one_series(headers: list[_Header], where: str | os.PathLike[str], max_bytes: int) -> Volume:
    groups = _group_by_series(headers)
    if len(groups) > 1:
        listing = ", ".join(f"{uid or '<none>'} ({len(g)} files)" for uid, g in groups.items())
        raise InconsistentSeries(where, f"{len(groups)} series found where one was expected: {listing}")
    return _volume_from_headers(headers, max_bytes)
