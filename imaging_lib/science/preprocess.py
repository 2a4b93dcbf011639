"""Turn image slices into model input: window/level, normalisation, resizing, 3 channels.

Pure functions on numpy arrays, no torch. The model input stays a float array in
``[0, 1]`` (the original service wrote a lossy 3-channel JPEG; here nothing is lost).
The usual path is :func:`model_input`: a window from a :class:`Window` (explicit, from
DICOM ``WindowCenter``/``WindowWidth``, or from percentiles), scaling to ``[0, 1]``,
an anti-aliased resize to the model's input size and grey replicated to 3 channels,
channels last (``(h, w, 3)``, what LIME perturbs and what ``torch`` reads as
channels-last memory after a permute).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInput

__all__ = [
    "Window",
    "apply_window",
    "check_finite",
    "dicom_window",
    "model_input",
    "normalize",
    "percentile_window",
    "resize",
    "resize_labels",
    "to_three_channels",
    "window_for",
]


@dataclass(frozen=True)
class Window:
    """An intensity window: values from ``center - width/2`` to ``center + width/2`` map to 0..1.

    Parameters
    ----------
    center : float
        Window level (DICOM ``WindowCenter``).
    width : float
        Window width (DICOM ``WindowWidth``), positive.
    """

    center: float
    width: float

    @property
    def low(self) -> float:
        """Intensity mapped to 0."""
        return self.center - self.width / 2.0

    @property
    def high(self) -> float:
        """Intensity mapped to 1."""
        return self.center + self.width / 2.0


def check_finite(array: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Return ``array`` if all its values are finite.

    Raises
    ------
    InvalidInput
        If the array holds NaN or infinite values, or is empty.
    """
    if array.size == 0:
        raise InvalidInput(source, f"the array is empty (shape {array.shape})")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InvalidInput(source, "the array contains NaN or infinite values")
    return array


def dicom_window(metadata: Mapping[str, Any]) -> Window | None:
    """Return the window stored in DICOM metadata, or ``None`` if there is none.

    Parameters
    ----------
    metadata : mapping
        A volume's metadata with ``window_center`` and ``window_width`` (as the DICOM
        reader fills them), or a header with ``WindowCenter``/``WindowWidth``.

    Returns
    -------
    Window or None
        The first window given, or ``None`` if either value is missing or the width is
        not positive.
    """
    center = metadata.get("window_center", metadata.get("WindowCenter"))
    width = metadata.get("window_width", metadata.get("WindowWidth"))
    if center is None or width is None:
        return None
    first = lambda value: float(value[0]) if isinstance(value, (list, tuple)) else float(value)  # noqa: E731
    center, width = first(center), first(width)
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        return None
    return Window(center, width)


def percentile_window(array: np.ndarray, low: float = 1.0, high: float = 99.0) -> Window:
    """Return the window spanning the ``low`` to ``high`` percentiles of ``array``.

    Parameters
    ----------
    array : numpy.ndarray
        Intensities (any shape).
    low, high : float
        Percentiles, ``0 <= low < high <= 100``.

    Returns
    -------
    Window
        Never of zero width: a constant image gets width 1.

    Raises
    ------
    InvalidInput
        If the array is empty or not finite.
    ValueError
        If the percentiles are not ordered within 0..100.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    check_finite(np.asarray(array))
    lo, hi = np.percentile(array, [low, high])
    width = float(hi - lo) if hi > lo else 1.0
    return Window(float(lo) + width / 2.0, width)


def window_for(array: np.ndarray, spec: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> Window:
    """Choose the window a model's preprocessing spec asks for.

    Parameters
    ----------
    array : numpy.ndarray
        The intensities the window is computed from when it comes from percentiles
        (pass the whole volume so that every slice gets the same window).
    spec : mapping
        ``{"window": "percentile", "percentiles": [low, high]}``, ``{"window": "dicom"}``
        (falls back to percentiles when the metadata holds no window) or
        ``{"window": "fixed", "center": c, "width": w}``.
    metadata : mapping, optional
        The volume's metadata, for ``"dicom"``.

    Returns
    -------
    Window

    Raises
    ------
    ValueError
        If the spec names an unknown window kind.
    """
    kind = spec.get("window", "percentile")
    low, high = spec.get("percentiles", (1.0, 99.0))
    if kind == "fixed":
        return Window(float(spec["center"]), float(spec["width"]))
    if kind == "dicom":
        found = dicom_window(metadata or {})
        return found if found is not None else percentile_window(array, low, high)
    if kind == "percentile":
        return percentile_window(array, low, high)
    raise ValueError(f"unknown window kind {kind!r}; use 'percentile', 'dicom' or 'fixed'")


def apply_window(array: np.ndarray, window: Window) -> np.ndarray:
    """Map intensities through ``window`` to float32 in ``[0, 1]`` (clipped outside)."""
    scaled = (np.asarray(array, dtype=np.float32) - np.float32(window.low)) / np.float32(window.width)
    return np.clip(scaled, 0.0, 1.0, out=scaled)


def normalize(array: np.ndarray) -> np.ndarray:
    """Rescale to float32 ``[0, 1]`` by the array's own minimum and maximum (constant -> zeros)."""
    values = np.asarray(array, dtype=np.float32)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros_like(values)
    return (values - lo) / np.float32(hi - lo)


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a 2D image to ``size`` with anti-aliasing (linear interpolation), float32.

    Raises
    ------
    InvalidInput
        If ``image`` is not 2D.
    """
    from skimage.transform import resize as sk_resize

    image = np.asarray(image)
    if image.ndim != 2:
        raise InvalidInput("<slice>", f"expected a 2D slice, got shape {image.shape}")
    if image.shape == tuple(size):
        return image.astype(np.float32, copy=False)
    shrinking = image.shape[0] > size[0] or image.shape[1] > size[1]
    out = sk_resize(image, size, order=1, mode="edge", anti_aliasing=shrinking, preserve_range=True)
    return out.astype(np.float32)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an integer label image (segments, masks) with nearest neighbour, keeping values."""
    rows = (np.arange(size[0]) + 0.5) * labels.shape[0] / size[0]
    cols = (np.arange(size[1]) + 0.5) * labels.shape[1] / size[1]
    return labels[np.floor(rows).astype(int)[:, None], np.floor(cols).astype(int)[None, :]]


def to_three_channels(image: np.ndarray) -> np.ndarray:
    """Replicate a 2D grey image to ``(h, w, 3)`` (channels last), contiguous."""
    return np.ascontiguousarray(np.repeat(np.asarray(image, dtype=np.float32)[:, :, None], 3, axis=2))


def model_input(slice_2d: np.ndarray, window: Window, size: tuple[int, int], source: str = "<slice>") -> np.ndarray:
    """Window, resize and replicate one slice into a ``(h, w, 3)`` float32 image in ``[0, 1]``.

    Parameters
    ----------
    slice_2d : numpy.ndarray
        One 2D slice of raw intensities.
    window : Window
        Intensity window (see :func:`window_for`).
    size : tuple of int
        The model's input ``(height, width)``.
    source : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        Shape ``(size[0], size[1], 3)``, float32.

    Raises
    ------
    InvalidInput
        If the slice is not 2D, is empty or holds NaN/inf.
    """
    array = np.asarray(slice_2d)
    if array.ndim != 2:
        raise InvalidInput(source, f"expected a 2D slice, got shape {array.shape}")
    check_finite(array, source)
    return to_three_channels(resize(apply_window(array, window), size))
