"""Every bound the platform puts on untrusted input, in one place.

Each bound is checked where the input arrives, before memory is allocated, and crossing
it raises a typed error naming the file (see :mod:`imaging_lib.errors`).
"""

from __future__ import annotations

__all__ = [
    "INFLATE_CHUNK_BYTES",
    "MAX_FILE_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_KEY_LENGTH",
    "MAX_PENDING_BYTES",
    "MAX_ZIP_DEPTH",
    "MAX_ZIP_INFLATED_BYTES",
    "MAX_ZIP_MEMBERS",
    "SECRET_MIN_BYTES",
    "UPLOAD_LIMIT_BYTES",
    "WEBSOCKET_MAX_MESSAGE_SIZE",
]

MAX_IMAGE_BYTES = 2 * 1024**3
"""Largest pixel or voxel data one image (or series) may declare: 2 GiB."""

MAX_HEADER_BYTES = 64 * 1024**2
"""Largest header one file may inflate to before its pixel or voxel data: 64 MiB.

A DICOM header is everything before the pixel data (an enhanced multi-frame header of
thousands of frames is a few MiB); a NIfTI header includes its extensions."""

MAX_FILE_BYTES = MAX_IMAGE_BYTES + MAX_HEADER_BYTES
"""Largest single file (or zip member) ingest reads into memory."""

INFLATE_CHUNK_BYTES = 4 * 1024**2
"""Most bytes one step of a bounded decompression produces before its bounds are checked again."""

MAX_ZIP_MEMBERS = 10_000
"""Most members one zip archive may hold, members of archives nested in it included."""

MAX_ZIP_DEPTH = 2
"""Deepest nesting of zip archives: an archive given to ingest is depth 1, a zip inside it 2."""

MAX_ZIP_INFLATED_BYTES = 4 * 1024**3
"""Largest total size the members of one zip archive (nested archives included) may declare: 4 GiB."""

MAX_PENDING_BYTES = 512 * 1024**2
"""Most de-identified DICOM bytes ingest holds before storing the series waiting in memory."""

UPLOAD_LIMIT_BYTES = 1024**3
"""Largest upload (all files of one drop together) the upload dashboard accepts: 1 GiB."""

WEBSOCKET_MAX_MESSAGE_SIZE = UPLOAD_LIMIT_BYTES + 64 * 1024**2
"""Websocket message limit of the dashboards: the upload limit plus room for the JSON envelope."""

MAX_KEY_LENGTH = 1024
"""Longest store key."""

SECRET_MIN_BYTES = 16
"""Shortest de-identification key accepted."""
