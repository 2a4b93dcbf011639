"""One DICOM file's bytes to a pydicom Dataset and back, parsing only up to the pixel data.

Files in the Deflated Explicit VR Little Endian transfer syntax are inflated with
bounds (:func:`inflate_deflated`): the header first, then exactly the pixel data it
declares, never past the limits, and never anything after the pixel data. pydicom would
inflate the whole stream at once, so a 3 MiB file could ask for gigabytes.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from ..errors import ImageTooLarge, UnreadableImage
from ..limits import MAX_HEADER_BYTES, MAX_IMAGE_BYTES
from .dicom_values import pixel_description
from .inflate import RAW_DEFLATE, BoundedInflater

__all__ = ["PIXEL_TAGS", "dataset_to_bytes", "inflate_deflated", "is_deflated", "parse_dicom"]

PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
"""Float Pixel Data, Double Float Pixel Data and Pixel Data."""

_DEFLATED = "1.2.840.10008.1.2.1.99"
_FIRST_HEADER_STEP = 64 * 1024
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PARSE_ERRORS = (EOFError, struct.error, ValueError, KeyError, TypeError, OverflowError, IndexError, OSError)


# ---------------------------------------------------------------------------- deflated transfer syntax
def _file_meta(data: bytes | memoryview, source: str) -> tuple[Any, int]:
    """Read the preamble and file meta group; return it and where the data set starts."""
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_dataset, read_preamble

    stream = io.BytesIO(data)
    try:
        read_preamble(stream, False)
        meta = read_dataset(stream, False, True, stop_when=lambda tag, vr, length: tag.group != 2)
    except InvalidDicomError:
        raise UnreadableImage(source, "not a DICOM file (no DICM preamble or valid header)") from None
    except _PARSE_ERRORS as exc:
        raise UnreadableImage(source, f"truncated or corrupt file meta ({type(exc).__name__}: {exc})") from None
    return meta, stream.tell()


def is_deflated(data: bytes | memoryview, source: str) -> bool:
    """Whether a Part 10 file declares the deflated transfer syntax in its file meta.

    The file meta is parsed only when the syntax's UID occurs in the first 4 KiB, so
    other files cost a byte search.
    """
    if _DEFLATED.encode("ascii") not in bytes(data[:4096]):
        return False
    meta, _ = _file_meta(data, source)
    return str(meta.get("TransferSyntaxUID", "")).strip("\0 ") == _DEFLATED


def _header_end(inflated: bytearray, finished: bool) -> tuple[Any, int] | None:
    """Parse the data set up to the pixel data; return it and where the pixel element starts.

    ``None`` while the inflated bytes stop before the pixel data's element header and
    the stream has more to give.
    """
    from pydicom.filereader import read_dataset

    stream = io.BytesIO(inflated)
    header = read_dataset(stream, False, True, stop_when=lambda tag, vr, length: tag in PIXEL_TAGS)
    position = stream.tell()
    found = position + 12 <= len(inflated) and struct.unpack_from("<I", inflated, position)[0] in {
        (tag & 0xFFFF) << 16 | tag >> 16 for tag in PIXEL_TAGS
    }
    if found or finished:
        return header, position if found else len(inflated)
    return None


def inflate_deflated(data: bytes | memoryview, source: str, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """Return a deflated-syntax file rewritten as Explicit VR Little Endian, inflated with bounds.

    The header is inflated in growing steps until the pixel data element appears (at
    most :data:`~imaging_lib.limits.MAX_HEADER_BYTES`); its Rows, Columns, frames and
    bits then say how many pixel bytes to inflate, and nothing after them is inflated.

    Parameters
    ----------
    data : bytes
        The whole file.
    source : str
        Name used in error messages.
    max_bytes : int
        Largest pixel data accepted.

    Returns
    -------
    bytes
        An equivalent Part 10 file in Explicit VR Little Endian (pixel data included,
        anything after it left out).

    Raises
    ------
    ImageTooLarge
        The header is over its limit, declares more pixel data than ``max_bytes``, or its
        pixel data element is longer than the header declares.
    UnreadableImage
        Not DICOM, a corrupt deflate stream, or a truncated file.
    """
    import pydicom
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    meta, start = _file_meta(data, source)
    inflater = BoundedInflater(
        memoryview(data)[start:],
        wbits=RAW_DEFLATE,
        source=source,
        limit=MAX_HEADER_BYTES + max_bytes + 12,
        what="deflated data set",
    )
    step = _FIRST_HEADER_STEP
    try:
        while (parsed := _header_end(inflater.inflate_to(step), inflater.finished)) is None:
            if step >= MAX_HEADER_BYTES:
                raise ImageTooLarge(source, f"the header inflates past {MAX_HEADER_BYTES} bytes before any pixel data")
            step = min(step * 4, MAX_HEADER_BYTES)
    except _PARSE_ERRORS as exc:
        raise UnreadableImage(source, f"corrupt deflated data set ({type(exc).__name__}: {exc})") from None
    header, position = parsed
    end = position
    if position < len(inflater.output):
        length = struct.unpack_from("<I", inflater.output, position + 8)[0]
        declared = pixel_description(header, source).declared_bytes
        if declared > max_bytes:
            raise ImageTooLarge(
                source, f"header declares {declared} bytes of pixel data, over the limit of {max_bytes}"
            )
        if length == _UNDEFINED_LENGTH or length > declared + 1:
            raise ImageTooLarge(
                source, f"the pixel data element holds {length} bytes where the header declares {declared}"
            )
        end = position + 12 + length
        if len(inflater.inflate_to(end)) < end:
            raise UnreadableImage(source, f"truncated: the deflated data set ends before its {length} bytes of pixels")
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    buffer = DicomBytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buffer, pydicom.dataset.FileMetaDataset(meta), enforce_standard=True)
    buffer.write(memoryview(inflater.output)[:end])
    return buffer.getvalue()


# ---------------------------------------------------------------------------- parse / write
def parse_dicom(data: bytes, source: str) -> Any:
    """Parse a DICOM file held in memory, up to and including its pixel data.

    Anything after the pixel data (``Data Set Trailing Padding``, ``Digital Signatures
    Sequence``, which the profile removes, and megabytes of zero padding some scanners
    leave) is never parsed. A deflated file is inflated with bounds first
    (:func:`inflate_deflated`); its dataset keeps the deflated transfer syntax, so
    writing it deflates it again.

    Parameters
    ----------
    data : bytes
        The whole file.
    source : str
        Name used in error messages.

    Returns
    -------
    pydicom.Dataset

    Raises
    ------
    UnreadableImage
        If the bytes are empty, not DICOM, or truncated.
    ImageTooLarge
        If a deflated file would inflate past its limits.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_dataset

    if not data:
        raise UnreadableImage(source, "empty file")
    deflated = is_deflated(data, source)
    if deflated:
        data = inflate_deflated(data, source)
    stream = io.BytesIO(data)
    try:
        dataset = pydicom.dcmread(stream, stop_before_pixels=True)
        syntax = dataset.file_meta.get("TransferSyntaxUID")
        if syntax is None or syntax.is_deflated:
            raise UnreadableImage(source, f"no usable transfer syntax in the file meta ({syntax})")
        pixels = read_dataset(
            stream,
            syntax.is_implicit_VR,
            syntax.is_little_endian,
            stop_when=lambda tag, vr, length: tag not in PIXEL_TAGS,
        )
        for tag in pixels.keys():
            raw: Any = pixels.get_item(tag)
            held = len(raw.value or b"")
            if raw.length != _UNDEFINED_LENGTH and held < raw.length:
                raise UnreadableImage(source, f"truncated: pixel data holds {held} of its {raw.length} bytes")
        dataset.update(pixels)
        if deflated:  # inflated with bounds above; written back in the syntax it came in
            dataset.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    except InvalidDicomError:
        raise UnreadableImage(source, "not a DICOM file (no DICM preamble or valid header)") from None
    except _PARSE_ERRORS as exc:
        raise UnreadableImage(source, f"truncated or corrupt DICOM ({type(exc).__name__}: {exc})") from None
    return dataset


def dataset_to_bytes(dataset: Any) -> bytes:
    """Serialise a dataset with its file meta as a DICOM Part 10 file."""
    import pydicom

    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()
