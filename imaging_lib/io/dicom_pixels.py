"""Decode a DICOM series' pixels into one preallocated array, a frame at a time, with bounds.

* Uncompressed little-endian grey pixels are read straight from the file at the offset
  the header pass left (a view of the bytes for files held in memory).
* Everything else goes through pydicom's decoders one frame at a time
  (:func:`pydicom.pixels.iter_pixels`), after each encoded frame's own header has been
  checked against the DICOM header (:func:`check_encoded_frame`): an RLE segment may not
  decode to more bytes than Rows x Columns, and a JPEG, JPEG-LS or JPEG 2000 codestream
  may not declare a larger image than Rows x Columns x SamplesPerPixel. Decoders size
  their output from the codestream, so without this check a few kilobytes could make
  them allocate gigabytes.
* Stored values become output values through the Modality LUT Sequence when the file
  has one (pydicom's :func:`~pydicom.pixels.apply_modality_lut`), else RescaleSlope and
  RescaleIntercept. Enhanced multi-frame files (Enhanced CT/MR and their legacy-converted
  forms) carry them in the Pixel Value Transformation Sequence of their functional
  groups: a frame's own (per-frame) group wins over the shared group, which wins over
  the top-level attributes (:func:`frame_rescales`), so each frame gets its own rescale.

Peak memory is the output array and one decoded frame.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import ImageTooLarge, InconsistentSeries, MissingDependency, UnreadableImage
from .dicom_dataset import parse_dicom
from .dicom_header import DicomHeader
from .dicom_values import PixelDescription, attribute, number, numbers

__all__ = ["check_encoded_frame", "frame_rescales", "output_dtype", "read_pixels"]

_EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
_NATIVE_SYNTAXES = {"1.2.840.10008.1.2", _EXPLICIT_LITTLE}
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
_RLE = "1.2.840.10008.1.2.5"
_JPEG_SYNTAXES = frozenset({f"1.2.840.10008.1.2.4.{n}" for n in (50, 51, 57, 70, 80, 81)})
_J2K_SYNTAXES = frozenset({f"1.2.840.10008.1.2.4.{n}" for n in (90, 91, 201, 202, 203)})
_JPEG_SOF = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}) | {0xF7}  # SOF0-15 and JPEG-LS SOF55
_RLE_RUN = 128  # one run's worth of slack: encoders may pad a segment to an even length

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

Frame = tuple[DicomHeader, int]


# ---------------------------------------------------------------------------- modality
def _modality_lut(header: DicomHeader) -> Any:
    """The Modality LUT Sequence's item, or None when slope and intercept apply."""
    sequence = attribute(header.dataset, "ModalityLUTSequence", header.path)
    if not sequence:
        return None
    item = sequence[0]
    descriptor = numbers(item, "LUTDescriptor", header.path)
    if descriptor is None or len(descriptor) != 3 or int(descriptor[2]) not in (8, 16):
        raise UnreadableImage(header.path, f"Modality LUT Sequence has no usable LUTDescriptor: {descriptor!r}")
    if attribute(item, "LUTData", header.path) is None:
        raise UnreadableImage(header.path, "Modality LUT Sequence has no LUTData")
    return item


def _rescale_of(dataset: Any, source: Any, default: tuple[float, float]) -> tuple[float, float]:
    return (
        number(dataset, "RescaleSlope", source, default=default[0]),
        number(dataset, "RescaleIntercept", source, default=default[1]),
    )


def _transformation(group: Any, source: Any) -> Any:
    """The Pixel Value Transformation item of one functional group, or None."""
    sequence = attribute(group, "PixelValueTransformationSequence", source) if group is not None else None
    return sequence[0] if sequence else None


def frame_rescales(header: DicomHeader) -> list[tuple[float, float]]:
    """(slope, intercept) of every frame of one file: per-frame group, else shared group, else top level.

    Raises
    ------
    UnreadableImage
        A non-numeric RescaleSlope or RescaleIntercept, or per-frame groups that do not
        match the number of frames.
    """
    ds, source = header.dataset, header.path
    common = _rescale_of(ds, source, (1.0, 0.0))
    shared = attribute(ds, "SharedFunctionalGroupsSequence", source)
    shared_item = _transformation(shared[0], source) if shared else None
    if shared_item is not None:
        common = _rescale_of(shared_item, source, (1.0, 0.0))
    per_frame = attribute(ds, "PerFrameFunctionalGroupsSequence", source) or []
    items = [_transformation(group, source) for group in per_frame]
    if not any(item is not None for item in items):
        return [common] * header.frames
    if len(items) != header.frames:
        raise UnreadableImage(source, f"{len(items)} per-frame functional groups for {header.frames} frame(s)")
    return [common if item is None else _rescale_of(item, source, common) for item in items]


def output_dtype(headers: Sequence[DicomHeader]) -> np.dtype:
    """Integer output when every file maps stored values to integers that fit, else float32.

    Raises
    ------
    UnreadableImage
        A non-numeric RescaleSlope or RescaleIntercept, or an unusable Modality LUT.
    """
    if headers[0].pixels.samples != 1:
        return np.dtype(np.uint8)
    results = []
    for header in headers:
        lut = _modality_lut(header)
        if lut is not None:
            results += [0, 2 ** int(numbers(lut, "LUTDescriptor", header.path)[2]) - 1]  # type: ignore[index]
            continue
        pixels = header.pixels
        bits = pixels.bits_stored
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if pixels.signed else (0, 2**bits - 1)
        for slope, intercept in set(frame_rescales(header)):
            if slope != 1 or intercept != int(intercept):
                return np.dtype(np.float32)
            results += [low + intercept, high + intercept]
    if min(results) >= -(2**15) and max(results) < 2**15:
        return np.dtype(np.int16)
    if min(results) >= -(2**31) and max(results) < 2**31:
        return np.dtype(np.int32)
    return np.dtype(np.float64)


# ---------------------------------------------------------------------------- encoded frames
def _rle_segment_length(segment: bytes, limit: int) -> int:
    """Bytes an RLE segment decodes to, counted without decoding (stops once past ``limit``)."""
    position, produced, size = 0, 0, len(segment)
    while position < size and produced <= limit:
        control = segment[position]
        if control < 128:  # a literal run of control + 1 bytes
            produced += control + 1
            position += control + 2
        elif control > 128:  # one byte repeated 257 - control times
            produced += 257 - control
            position += 2
        else:
            position += 1
    return produced


def _check_rle(frame: bytes, pixels: PixelDescription, source: Any) -> None:
    if len(frame) < 64:
        raise UnreadableImage(source, f"RLE frame of {len(frame)} bytes has no 64-byte header")
    count, *offsets = struct.unpack_from("<16I", frame)
    expected = pixels.samples * max(pixels.bits_allocated // 8, 1)
    if count != expected:
        raise UnreadableImage(source, f"RLE frame has {count} segments, the header declares {expected}")
    bounds = [*offsets[:count], len(frame)]
    plane = pixels.rows * pixels.columns
    for index in range(count):
        start, end = bounds[index], bounds[index + 1]
        if not 64 <= start <= end <= len(frame):
            raise UnreadableImage(source, f"RLE segment {index} has offsets {start}..{end} outside its frame")
        decoded = _rle_segment_length(frame[start:end], plane + _RLE_RUN)
        if decoded > plane + _RLE_RUN:
            raise ImageTooLarge(
                source, f"RLE segment {index} decodes to more than the {plane} bytes Rows x Columns declare"
            )


def _jpeg_size(frame: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) from a JPEG or JPEG-LS start-of-frame marker, or None."""
    if frame[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 10 <= len(frame):
        if frame[position] != 0xFF:
            return None
        marker = frame[position + 1]
        if marker in _JPEG_SOF:
            rows, columns = struct.unpack_from(">HH", frame, position + 5)
            return rows, columns, frame[position + 9]
        position += 2 + struct.unpack_from(">H", frame, position + 2)[0]
    return None


def _j2k_size(frame: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) from a JPEG 2000 SIZ marker segment, or None."""
    start = frame.find(b"\xff\x4f\xff\x51", 0, 4096)  # SOC then SIZ, after any JP2 boxes
    if start < 0 or start + 42 > len(frame):
        return None
    width, height, x_offset, y_offset = struct.unpack_from(">IIII", frame, start + 8)
    (components,) = struct.unpack_from(">H", frame, start + 40)
    return height - y_offset, width - x_offset, components


def check_encoded_frame(frame: bytes, syntax: str, pixels: PixelDescription, source: Any) -> None:
    """Refuse an encoded frame whose own header asks for more than the DICOM header declares.

    Parameters
    ----------
    frame : bytes
        One frame of encapsulated pixel data.
    syntax : str
        The Transfer Syntax UID.
    pixels : PixelDescription
        What the DICOM header declares.
    source : str or os.PathLike
        The file, named in errors.

    Raises
    ------
    ImageTooLarge
        An RLE segment decodes to more than Rows x Columns bytes, or a codestream
        declares more rows, columns or components than the header.
    UnreadableImage
        An RLE frame with a bad segment table.
    """
    if syntax == _RLE:
        _check_rle(frame, pixels, source)
        return
    size = _jpeg_size(frame) if syntax in _JPEG_SYNTAXES else _j2k_size(frame) if syntax in _J2K_SYNTAXES else None
    if size is not None and (size[0] > pixels.rows or size[1] > pixels.columns or size[2] > pixels.samples):
        raise ImageTooLarge(
            source,
            f"the codestream declares {size[0]}x{size[1]}x{size[2]}, the header "
            f"{pixels.rows}x{pixels.columns}x{pixels.samples}",
        )


# ---------------------------------------------------------------------------- decoding
def _read_native(header: DicomHeader) -> np.ndarray | None:
    """Read uncompressed little-endian grey pixels straight from the file, or None.

    The header pass left the offset of the pixel data element; reading its bytes there
    avoids parsing the header a second time. Anything else (compressed, big endian,
    colour, 1-bit) returns None and goes through pydicom's decoders.
    """
    pixels = header.pixels
    syntax = str(header.transfer_syntax or "")
    bits = pixels.bits_allocated
    if syntax not in _NATIVE_SYNTAXES or bits not in (8, 16, 32) or pixels.samples != 1:
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
        value_offset = header.pixel_offset + (12 if explicit else 8)
        declared = header.declared_bytes
        if length == 0xFFFFFFFF or length < declared:
            raise UnreadableImage(header.path, f"pixel data element holds {length} bytes, header declares {declared}")
        if header.data is None:
            stream.seek(value_offset)
            data: bytes | memoryview = stream.read(declared)
        else:
            data = memoryview(header.data)[value_offset : value_offset + declared]
    if len(data) < declared:
        raise UnreadableImage(header.path, f"truncated: pixel data ends after {len(data)} of {declared} bytes")
    dtype = np.dtype(f"<{'i' if pixels.signed else 'u'}{bits // 8}")
    frames = np.frombuffer(data, dtype=dtype).reshape(pixels.frames, pixels.rows, pixels.columns)
    if pixels.signed and pixels.bits_stored < bits:  # sign-extend the stored bits, as pydicom does
        shift = bits - pixels.bits_stored
        frames = (frames << shift) >> shift
    return frames


def _decoded_frames(header: DicomHeader) -> Iterator[np.ndarray]:
    """Yield each frame of one file, decoded by pydicom after its encoded header is checked."""
    from pydicom.encaps import generate_frames
    from pydicom.pixels import iter_pixels

    dataset = parse_dicom(header.read_bytes(), str(header.path))
    syntax = header.transfer_syntax
    try:
        if syntax is not None and syntax.is_encapsulated:
            for frame in generate_frames(dataset.PixelData, number_of_frames=header.frames):
                check_encoded_frame(frame, str(syntax), header.pixels, header.path)
        yield from iter_pixels(dataset)
    except (ImageTooLarge, UnreadableImage):
        raise
    except (NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "missing dependencies" not in str(exc):
            raise UnreadableImage(header.path, f"pixel data cannot be decoded ({exc})") from None
        package = _DECODER_PACKAGES.get(str(syntax), "a pydicom pixel data plugin")
        raise MissingDependency(
            header.path,
            f"no decoder installed for transfer syntax {getattr(syntax, 'name', syntax)}: pip install {package}",
        ) from None
    except Exception as exc:  # pydicom's decoders and their plugins raise many kinds of errors
        raise UnreadableImage(header.path, f"pixel data cannot be decoded ({type(exc).__name__}: {exc})") from None


def _frames_of(header: DicomHeader) -> Iterator[np.ndarray]:
    native = _read_native(header)
    return iter(native) if native is not None else _decoded_frames(header)


def _to_output(plane: np.ndarray, header: DicomHeader, lut: Any, rescale: tuple[float, float]) -> np.ndarray:
    if lut is not None:
        from pydicom.pixels import apply_modality_lut

        try:
            return apply_modality_lut(plane, header.dataset)
        except Exception as exc:
            raise UnreadableImage(
                header.path, f"Modality LUT cannot be applied ({type(exc).__name__}: {exc})"
            ) from None
    slope, intercept = rescale
    return plane if slope == 1 and intercept == 0 else plane * slope + intercept


def read_pixels(frames: list[Frame], dtype: np.dtype) -> np.ndarray:
    """Decode every file once, a frame at a time, into a (slice, row, column) stack; return it as [i, j, k].

    The stack is filled plane by plane in C order and returned transposed, which makes
    the volume Fortran-ordered: the layout NIfTI stores, so writing it copies nothing.

    Raises
    ------
    UnreadableImage, MissingDependency, ImageTooLarge, InconsistentSeries
        A file whose pixels cannot be decoded, whose decoder is missing, whose encoded
        frames ask for more than the header, or whose frames differ from the series.
    """
    first = frames[0][0].pixels
    rows, columns, samples = first.rows, first.columns, first.samples
    stack = np.empty((len(frames), rows, columns) + ((samples,) if samples > 1 else ()), dtype=dtype)
    slots: dict[int, dict[int, int]] = defaultdict(dict)
    headers: dict[int, DicomHeader] = {}
    for k, (header, frame) in enumerate(frames):
        slots[id(header)][frame] = k
        headers[id(header)] = header
    for key, header in headers.items():
        lut = _modality_lut(header)
        rescales = frame_rescales(header)
        count = 0
        for index, plane in enumerate(_frames_of(header)):
            if plane.shape[:2] != (rows, columns):
                raise InconsistentSeries(header.path, f"pixel matrix {plane.shape[:2]} differs from {rows}x{columns}")
            if index in slots[key]:
                stack[slots[key][index]] = _to_output(plane, header, lut, rescales[index])
            count += 1
        if count != header.frames:
            raise UnreadableImage(
                header.path, f"pixel data holds {count} frame(s), the header declares {header.frames}"
            )
    return np.moveaxis(stack, (0, 1, 2), (2, 1, 0))
