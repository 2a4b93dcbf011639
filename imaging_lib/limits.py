"""Every bound the platform puts on untrusted input, in one place.

Each bound is checked where the input arrives, before memory is allocated, and crossing
it raises a typed error naming the file (see :mod:`imaging_lib.errors`).
"""

from __future__ import annotations

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_KEY_LENGTH",
    "SECRET_MIN_BYTES",
    "UPLOAD_LIMIT_BYTES",
    "VIEWER_MAX_BYTES",
    "WEBSOCKET_MAX_MESSAGE_SIZE",
]

MAX_IMAGE_BYTES = 2 * 1024**3
"""Largest pixel or voxel data one image (or series) may declare: 2 GiB."""

UPLOAD_LIMIT_BYTES = 1024**3
"""Largest upload (all files of one drop together) the upload dashboard accepts: 1 GiB."""

WEBSOCKET_MAX_MESSAGE_SIZE = UPLOAD_LIMIT_BYTES + 64 * 1024**2
"""Websocket message limit of the dashboards: the upload limit plus room for the JSON envelope."""

MAX_KEY_LENGTH = 1024
"""Longest store key."""

SECRET_MIN_BYTES = 16
"""Shortest de-identification key accepted."""

VIEWER_MAX_BYTES = 768 * 1024**2
"""Largest total of images (base and overlays, as sent) one PapayaViewer puts in a browser
tab: 768 MiB. A 512x512x400 int16 CT (200 MiB) with masks fits; a 1 GiB volume is refused
in Python with a message in the widget, rather than crashing the tab."""
