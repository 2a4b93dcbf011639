"""What a trained model descends from: the code that trained it (library version and source hash)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from .._version import __version__

__all__ = ["code_version"]

_PACKAGE = Path(__file__).resolve().parents[1]
_SOURCES = ("training/*.py", "models/builders.py", "models/lesion_cnn.py", "models/decision.py", "models/spec.py")


@functools.cache
def code_version() -> dict[str, str]:
    """The library version and the SHA-256 of the training code's source files (named and in order).

    Two models with the same ``source_sha256`` were trained by the same code, whatever the
    version string says (an editable install keeps one version across many commits).
    """
    digest = hashlib.sha256()
    for pattern in _SOURCES:
        for path in sorted(_PACKAGE.glob(pattern)):
            digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return {"library_version": __version__, "source_sha256": digest.hexdigest()}
