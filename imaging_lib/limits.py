"""Every bound the platform puts on untrusted input, in one place.

Each bound is checked where the input arrives, before memory is allocated, and crossing
it raises a typed error naming the file (see :mod:`imaging_lib.errors`).
"""

from __future__ import annotations

__all__ = [
    "DASHBOARD_TOKEN_MIN_LENGTH",
    "DEID_MAX_SEQUENCE_DEPTH",
    "INFLATE_CHUNK_BYTES",
    "MAX_FILE_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_IMAGE_BYTES",
    "MAX_KEY_LENGTH",
    "MAX_LABEL_COMMENT_CHARS",
    "MAX_LABEL_TEXT_CHARS",
    "MAX_PENDING_BYTES",
    "MAX_QUERY_STUDIES",
    "MAX_SERIES_INSTANCES",
    "MAX_SERIES_RETRIEVE_BYTES",
    "MAX_ZIP_DEPTH",
    "MAX_ZIP_INFLATED_BYTES",
    "MAX_ZIP_MEMBERS",
    "MODEL_INPUT_MAX_VALUES",
    "MODEL_SPEC_MAX_BYTES",
    "MODEL_WEIGHTS_MAX_BYTES",
    "SECRET_MIN_BYTES",
    "TRAINING_MAX_EPOCHS",
    "TRAINING_MAX_INPUT_BYTES",
    "TRAINING_MAX_TRIALS",
    "UPLOAD_LIMIT_BYTES",
    "VIEWER_MAX_BRUSH_MM",
    "VIEWER_MAX_BYTES",
    "VIEWER_MAX_EDIT_DEPTH",
    "VIEWER_PATCH_MAX_BYTES",
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

MAX_QUERY_STUDIES = 500
"""Most studies one archive query may match (and most series one study may list) before it is refused as too broad."""

MAX_SERIES_INSTANCES = 20_000
"""Most instances (multipart parts) one WADO-RS series retrieve may send."""

MAX_SERIES_RETRIEVE_BYTES = 4 * 1024**3
"""Largest multipart body one WADO-RS series retrieve may send: 4 GiB, read a part at a time."""

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

TRAINING_MAX_EPOCHS = 1000
"""Most epochs one training trial may run."""

TRAINING_MAX_TRIALS = 64
"""Most trials one sweep may have (each is a Dask task)."""

TRAINING_MAX_INPUT_BYTES = 4 * 1024**3
"""Most bytes of preprocessed slices one trial may hold (checked before they are loaded): 4 GiB."""

VIEWER_PATCH_MAX_BYTES = 64 * 1024**2
"""Largest patch of a mask (its runs, as sent) a page may send the PapayaViewer: 64 MiB,
about seven million runs. A brush stroke takes a few kilobytes; the bound keeps a hostile
page from making the kernel gather an unbounded patch before it is applied."""

VIEWER_MAX_EDIT_DEPTH = 32
"""Most slices on each side of the current one a 3D brush or a fill reaches in the
PapayaViewer's edit mode (the fill grows its region in that slab of the volume)."""

VIEWER_MAX_BRUSH_MM = 200.0
"""Widest brush (diameter, mm) of the PapayaViewer's edit mode."""
