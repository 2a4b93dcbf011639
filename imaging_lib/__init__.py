"""imaging_lib: the science of the imaging platform, usable from any notebook or script.

Read DICOM series and NIfTI into :class:`Volume`, de-identify and store them, predict and
explain with a batched model, segment and quantify, and run all of it on Dask.
"""

from importlib.metadata import PackageNotFoundError, version

from .volume import Volume

try:
    __version__ = version("imaging-lab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["Volume", "__version__", "ingest"]


def __getattr__(name: str):
    if name == "ingest":  # imported on first use: it pulls in pydicom, fsspec and tqdm
        from .ingestion import ingest

        return ingest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
