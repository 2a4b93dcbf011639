"""One DICOM file's bytes to a pydicom Dataset and back, parsing only up to the pixel data."""

from __future__ import annotations

import io
import struct
from typing import Any

from ..errors import UnreadableImage

__all__ = ["dataset_to_bytes", "parse_dicom"]

_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


# ---------------------------------------------------------------------------- parse / write
def parse_dicom(data: bytes, source: str) -> Any:
    """Parse a DICOM file held in memory, up to and including its pixel data.

    Anything after the pixel data (``Data Set Trailing Padding``, ``Digital Signatures
    Sequence``, which the profile removes, and megabytes of zero padding some scanners
    leave) is never parsed.

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
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_dataset

    if not data:
        raise UnreadableImage(source, "empty file")
    stream = io.BytesIO(data)
    try:
        dataset = pydicom.dcmread(stream, stop_before_pixels=True)
        syntax = dataset.file_meta.get("TransferSyntaxUID")
        if syntax is None or syntax.is_deflated:  # the stream position is not a file offset
            return pydicom.dcmread(io.BytesIO(data))
        pixels = read_dataset(
            stream,
            syntax.is_implicit_VR,
            syntax.is_little_endian,
            stop_when=lambda tag, vr, length: tag not in _PIXEL_TAGS,
        )
        for tag in pixels.keys():
            raw = pixels.get_item(tag)
            held = len(raw.value or b"")
            if raw.length != 0xFFFFFFFF and held < raw.length:
                raise UnreadableImage(source, f"truncated: pixel data holds {held} of its {raw.length} bytes")
        dataset.update(pixels)
    except InvalidDicomError:
        raise UnreadableImage(source, "not a DICOM file (no DICM preamble or valid header)") from None
    except (EOFError, struct.error, ValueError, KeyError, TypeError, OverflowError, IndexError, OSError) as exc:
        raise UnreadableImage(source, f"truncated or corrupt DICOM ({type(exc).__name__}: {exc})") from None
    return dataset


def dataset_to_bytes(dataset: Any) -> bytes:
    """Serialise a dataset with its file meta as a DICOM Part 10 file."""
    import pydicom

    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()
