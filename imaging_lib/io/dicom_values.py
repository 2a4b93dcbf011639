"""Typed reads of DICOM attribute values: a bad value is a typed error naming the file and the attribute.

pydicom converts a value when it is first read, and a value that does not fit its VR
(``RescaleSlope = "abc"``, a US of three bytes, an empty BitsStored) raises a bare
``ValueError`` or ``TypeError`` from deep inside. The readers of :mod:`imaging_lib.io`
read every attribute they use through these functions, which turn that into
:class:`~imaging_lib.errors.UnreadableImage`, and check that a number is one finite
value in its range before anything is allocated from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import UnreadableImage

__all__ = [
    "PixelDescription",
    "attribute",
    "check_value_attributes",
    "integer",
    "is_multivalued",
    "number",
    "numbers",
    "pixel_description",
    "text",
]


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip(" \0")
    try:
        return len(value) == 0
    except TypeError:  # a number
        return False


def is_multivalued(value: Any) -> bool:
    """Whether a value read from a dataset holds several values (a MultiValue or list)."""
    from pydicom.multival import MultiValue

    return isinstance(value, (list, tuple, MultiValue))


def attribute(dataset: Any, keyword: str, source: Any) -> Any:
    """Return the value of ``keyword`` in ``dataset``, or ``None`` if it is absent or empty.

    Parameters
    ----------
    dataset : pydicom.Dataset
        A dataset or a sequence item.
    keyword : str
        A DICOM keyword, e.g. ``"RescaleSlope"``.
    source : str or os.PathLike
        The file, named in errors.

    Raises
    ------
    UnreadableImage
        If pydicom cannot convert the stored value to its VR.
    """
    try:
        value = dataset.get(keyword)
    except Exception as exc:  # pydicom's conversions raise ValueError, TypeError, struct.error...
        raise UnreadableImage(source, f"{keyword} cannot be read ({type(exc).__name__}: {exc})") from None
    return None if _is_empty(value) else value


def _single(value: Any, keyword: str, source: Any) -> Any:
    if is_multivalued(value):
        if len(value) != 1:
            raise UnreadableImage(source, f"{keyword} must hold one value, not {len(value)}: {str(value)[:60]!r}")
        return value[0]
    return value


def integer(
    dataset: Any,
    keyword: str,
    source: Any,
    *,
    default: int | None = None,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """Return ``keyword`` as one integer in ``[low, high]``, or ``default`` if absent or empty.

    Raises
    ------
    UnreadableImage
        If the value is absent without a default, multi-valued, not an integer, or out of range.
    """
    value = attribute(dataset, keyword, source)
    if value is None:
        if default is None:
            raise UnreadableImage(source, f"{keyword} is missing or empty")
        return default
    value = _single(value, keyword, source)
    try:
        result = int(value)
        exact = result == float(value)
    except (TypeError, ValueError, OverflowError):
        raise UnreadableImage(source, f"{keyword} is not an integer: {str(value)[:60]!r}") from None
    if not exact:
        raise UnreadableImage(source, f"{keyword} is not an integer: {str(value)[:60]!r}")
    if (low is not None and result < low) or (high is not None and result > high):
        raise UnreadableImage(source, f"{keyword} must be between {low} and {high}, not {result}")
    return result


def number(dataset: Any, keyword: str, source: Any, *, default: float | None = None) -> float:
    """Return ``keyword`` as one finite number, or ``default`` if absent or empty.

    Raises
    ------
    UnreadableImage
        If the value is absent without a default, multi-valued, not a number, or not finite.
    """
    value = attribute(dataset, keyword, source)
    if value is None:
        if default is None:
            raise UnreadableImage(source, f"{keyword} is missing or empty")
        return default
    value = _single(value, keyword, source)
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UnreadableImage(source, f"{keyword} is not a number: {str(value)[:60]!r}") from None
    if not math.isfinite(result):
        raise UnreadableImage(source, f"{keyword} is not a finite number: {str(value)[:60]!r}")
    return result


def numbers(dataset: Any, keyword: str, source: Any) -> list[float] | None:
    """Return every value of a multi-valued numeric ``keyword`` as floats, or ``None`` if absent.

    Raises
    ------
    UnreadableImage
        If a value is not a number.
    """
    value = attribute(dataset, keyword, source)
    if value is None:
        return None
    values = list(value) if is_multivalued(value) else [value]
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        raise UnreadableImage(source, f"{keyword} is not numeric: {str(value)[:60]!r}") from None


def text(dataset: Any, keyword: str, source: Any) -> str:
    """Return ``keyword`` as stripped text (``""`` if absent or empty).

    Raises
    ------
    UnreadableImage
        If pydicom cannot convert the stored value.
    """
    value = attribute(dataset, keyword, source)
    return "" if value is None else str(value).strip()


# ---------------------------------------------------------------------------- pixel description
_BITS_ALLOCATED = frozenset({1, 8, 16, 32, 64})


@dataclass(frozen=True)
class PixelDescription:
    """The Image Pixel module's numbers, checked: what the pixel data must hold."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool

    @property
    def frame_bytes(self) -> int:
        """Bytes of one decoded frame."""
        return (self.rows * self.columns * self.samples * self.bits_allocated + 7) // 8

    @property
    def declared_bytes(self) -> int:
        """Bytes of every decoded frame together."""
        return (self.rows * self.columns * self.frames * self.samples * self.bits_allocated + 7) // 8


def pixel_description(dataset: Any, source: Any) -> PixelDescription:
    """Read and check the attributes that say how big the pixel data is.

    Parameters
    ----------
    dataset : pydicom.Dataset
    source : str or os.PathLike
        The file, named in errors.

    Returns
    -------
    PixelDescription

    Raises
    ------
    UnreadableImage
        If Rows, Columns, NumberOfFrames, SamplesPerPixel, BitsAllocated, BitsStored or
        PixelRepresentation is unreadable, not one integer, or out of its range (a
        negative NumberOfFrames, a BitsStored over BitsAllocated...).
    """
    bits = integer(dataset, "BitsAllocated", source, default=16, low=1, high=64)
    if bits not in _BITS_ALLOCATED:
        raise UnreadableImage(source, f"BitsAllocated must be one of {sorted(_BITS_ALLOCATED)}, not {bits}")
    return PixelDescription(
        rows=integer(dataset, "Rows", source, low=1, high=65535),
        columns=integer(dataset, "Columns", source, low=1, high=65535),
        frames=integer(dataset, "NumberOfFrames", source, default=1, low=1, high=2**31 - 1),
        samples=integer(dataset, "SamplesPerPixel", source, default=1, low=1, high=4),
        bits_allocated=bits,
        bits_stored=integer(dataset, "BitsStored", source, default=bits, low=1, high=bits),
        signed=integer(dataset, "PixelRepresentation", source, default=0, low=0, high=1) == 1,
    )


def check_value_attributes(dataset: Any, source: Any) -> None:
    """Refuse a file whose pixel description or rescale cannot be read, before anything changes it.

    Ingest calls this on the original file: de-identification removes a kept attribute
    whose value does not fit its VR, and a dropped RescaleSlope would silently change what
    every voxel means, so the file is refused here with the reason instead.

    Raises
    ------
    UnreadableImage
        As :func:`pixel_description`, or for a non-numeric or multi-valued RescaleSlope or
        RescaleIntercept.
    """
    pixel_description(dataset, source)
    number(dataset, "RescaleSlope", source, default=1.0)
    number(dataset, "RescaleIntercept", source, default=0.0)
