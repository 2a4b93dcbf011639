"""One DICOM file's header as the series reader needs it: parsed once, its pixel description checked.

:func:`read_header` parses a file (on disk or in memory) up to its pixel data and
checks Rows, Columns, frames, samples and bits (:func:`~imaging_lib.io.dicom_values.pixel_description`);
:func:`check_size` then compares what the header declares with the file and the limit,
before any pixel memory is allocated. A deflated file is inflated with bounds first
(:func:`~imaging_lib.io.dicom_dataset.inflate_deflated`).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import UID

from ..errors import ImageTooLarge, UnreadableImage, UnsupportedImage
from ..limits import MAX_FILE_BYTES
from .dicom_dataset import inflate_deflated, is_deflated
from .dicom_values import PixelDescription, pixel_description, text

__all__ = ["DicomHeader", "check_size", "read_header"]


@dataclass(frozen=True)
class DicomHeader:
    """What the reader needs from one file's header, parsed once.

    Attributes
    ----------
    path : Path
        The file (or the name it was given under, for bytes in memory).
    dataset : pydicom.Dataset
        The data set without pixel data.
    file_size : int
    pixel_offset : int
        Where the pixel data element starts in the file (or in ``data``).
    pixels : PixelDescription
        Rows, columns, frames, samples and bits, checked.
    data : bytes or None
        The whole file, when it was given in memory (or inflated from the deflated syntax).
    """

    path: Path
    dataset: Any
    file_size: int
    pixel_offset: int
    pixels: PixelDescription
    data: bytes | None = None

    def open(self) -> Any:
        """Open the file (or its bytes in memory) for binary reading."""
        return open(self.path, "rb") if self.data is None else io.BytesIO(self.data)

    def read_bytes(self) -> bytes:
        """The whole file."""
        return self.path.read_bytes() if self.data is None else self.data

    @property
    def series_uid(self) -> str:
        return text(self.dataset, "SeriesInstanceUID", self.path)

    @property
    def frames(self) -> int:
        return self.pixels.frames

    @property
    def declared_bytes(self) -> int:
        return self.pixels.declared_bytes

    @property
    def transfer_syntax(self) -> UID | None:
        """The Transfer Syntax UID, or None when the file has no file meta.

        Raises
        ------
        UnreadableImage
            If it is not one UID (several values, or not text).
        """
        meta = getattr(self.dataset, "file_meta", None)
        value = meta.get("TransferSyntaxUID") if meta is not None else None
        if value is None:
            return None
        if not isinstance(value, str):
            raise UnreadableImage(self.path, "the Transfer Syntax UID is not one UID")
        return UID(value)


def _size(path: Path, data: bytes | None) -> int:
    try:
        size = path.stat().st_size if data is None else len(data)
    except OSError as exc:
        raise UnreadableImage(path, f"cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise UnreadableImage(path, "empty file")
    if size > MAX_FILE_BYTES:
        raise ImageTooLarge(path, f"file of {size} bytes, over the limit of {MAX_FILE_BYTES}")
    return size


def read_header(path: Path, data: bytes | None = None) -> DicomHeader:
    """Parse one file up to its pixel data, with typed errors.

    Parameters
    ----------
    path : Path
        The file, or the name of ``data``.
    data : bytes, optional
        The whole file, when it is held in memory.

    Returns
    -------
    DicomHeader

    Raises
    ------
    UnreadableImage
        Missing, empty, truncated or not DICOM; an unreadable or out-of-range Image
        Pixel attribute (Rows, Columns, NumberOfFrames, BitsAllocated, BitsStored...).
    UnsupportedImage
        DICOM without pixel data (RT plans, structured reports).
    ImageTooLarge
        A file over :data:`~imaging_lib.limits.MAX_FILE_BYTES`, or a deflated file that
        would inflate past its limits.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    size = _size(path, data)
    if data is None:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    else:
        head = data[:4096]
    if is_deflated(head, str(path)):
        data = inflate_deflated(data if data is not None else path.read_bytes(), str(path))
        size = len(data)
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
    return DicomHeader(path, dataset, size, pixel_offset, pixel_description(dataset, path), data)


def check_size(header: DicomHeader, max_bytes: int) -> None:
    """Refuse a file whose header declares more pixel data than it can hold or we allow.

    Raises
    ------
    ImageTooLarge
        Over ``max_bytes``.
    UnreadableImage
        An uncompressed file shorter than its declared pixel data.
    """
    declared = header.declared_bytes
    if declared > max_bytes:
        raise ImageTooLarge(
            header.path, f"header declares {declared} bytes of pixel data, over the limit of {max_bytes}"
        )
    syntax = header.transfer_syntax
    if (syntax is None or not syntax.is_compressed) and declared > header.file_size:
        raise UnreadableImage(
            header.path,
            f"truncated: header declares {declared} bytes of pixel data but the file has {header.file_size} bytes",
        )
