"""Every bound the platform puts on untrusted input, in one place.

Each bound is checked where the input arrives, before memory is allocated, and crossing
it raises a typed error naming the file (see :mod:`imaging_lib.errors`).
"""

from __future__ import annotations

__all__ = [
    "DASHBOARD_TOKEN_MIN_LENGTH",
    "DEID_MAX_SEQUENCE_DEPTH",
    "MAX_IMAGE_BYTES",
    "MAX_KEY_LENGTH",
    "MAX_LABEL_COMMENT_CHARS",
    "MAX_LABEL_TEXT_CHARS",
    "MODEL_INPUT_MAX_VALUES",
    "MODEL_SPEC_MAX_BYTES",
    "MODEL_WEIGHTS_MAX_BYTES",
    "SECRET_MIN_BYTES",
    "UPLOAD_LIMIT_BYTES",
    "VIEWER_MAX_BRUSH_MM",
    "VIEWER_MAX_BYTES",
    "VIEWER_MAX_EDIT_DEPTH",
    "VIEWER_PATCH_MAX_BYTES",
]

MAX_IMAGE_BYTES = 2 * 1024**3
"""Largest pixel or voxel data one image (or series) may declare: 2 GiB."""

UPLOAD_LIMIT_BYTES = 1024**3
"""Largest upload (all files of one drop together) the upload dashboard accepts: 1 GiB."""


MAX_KEY_LENGTH = 1024
"""Longest store key."""

SECRET_MIN_BYTES = 16
"""Shortest de-identification key accepted."""

DASHBOARD_TOKEN_MIN_LENGTH = 16
"""Shortest dashboard token accepted on an address other machines can reach."""

MODEL_SPEC_MAX_BYTES = 1024**2
"""Largest model spec (JSON) read: 1 MiB."""

MODEL_WEIGHTS_MAX_BYTES = 2 * 1024**3
"""Largest model weights file read: 2 GiB."""

MODEL_INPUT_MAX_VALUES = 16 * 1024**2
"""Most values (channels x height x width) one model input may have: 16 Mi (64 MiB as float32)."""

DEID_MAX_SEQUENCE_DEPTH = 8
"""Deepest sequence nesting de-identification keeps; deeper kept sequences are removed.

Kept sequences nest two deep in real images (per-frame functional group > plane
position sequence); the bound stops a crafted file from driving the recursion.
"""

MAX_LABEL_COMMENT_CHARS = 4000
"""Longest comment of a label version or a review decision (characters)."""

MAX_LABEL_TEXT_CHARS = 64
"""Longest tool name of a label version (characters)."""

VIEWER_MAX_BYTES = 768 * 1024**2
"""Largest total of images (base and overlays, as sent) one PapayaViewer puts in a browser
tab: 768 MiB. A 512x512x400 int16 CT (200 MiB) with masks fits; a 1 GiB volume is refused
in Python with a message in the widget, rather than crashing the tab."""

VIEWER_PATCH_MAX_BYTES = 64 * 1024**2
"""Largest patch of a mask (its runs, as sent) a page may send the PapayaViewer: 64 MiB,
about seven million runs. A brush stroke takes a few kilobytes; the bound keeps a hostile
page from making the kernel gather an unbounded patch before it is applied."""

VIEWER_MAX_EDIT_DEPTH = 32
"""Most slices on each side of the current one a 3D brush or a fill reaches in the
PapayaViewer's edit mode (the fill grows its region in that slab of the volume)."""

VIEWER_MAX_BRUSH_MM = 200.0
"""Widest brush (diameter, mm) of the PapayaViewer's edit mode."""
