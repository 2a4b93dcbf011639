"""Typed errors raised by the library.

Every failure the library reports about an input is one of these classes. Each message
names the offending source (a path, a store key, a model URI) and the reason, so that a
batch can record it and a person can act on it without a traceback from inside pydicom,
nibabel or torch.
"""

from __future__ import annotations

import os

__all__ = [
    "ImageTooLarge",
    "ImagingError",
    "InconsistentSeries",
    "InsecureServing",
    "InvalidGeometry",
    "InvalidInput",
    "InvalidModelOutput",
    "InvalidModelSpec",
    "InvalidSeed",
    "KeyFileUnsafe",
    "KeyInStore",
    "KeyMismatch",
    "MissingDependency",
    "ModelChecksumMismatch",
    "ModelError",
    "ModelNotFound",
    "RegionTooLarge",
    "ReportFailed",
    "SampleDataMissing",
    "UnexpectedFailure",
    "UnreadableImage",
    "UnsafeArchive",
    "UnsupportedImage",
]


class ImagingError(Exception):
    """Base class of every error the library raises about its inputs.

    Parameters
    ----------
    source : str or os.PathLike
        What failed: a file path, a store key or a URI.
    reason : str
        Why it failed, in words a user can act on.
    """

    def __init__(self, source: str | os.PathLike[str], reason: str) -> None:
        self.source = os.fspath(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self):  # keep the two arguments through pickling (Dask ships errors)
        return (type(self), (self.source, self.reason))


class UnreadableImage(ImagingError):
    """The file is empty, truncated, or not in the format its name or caller claims."""


class UnsupportedImage(ImagingError):
    """The file is valid but holds something the library cannot turn into a volume.

    Examples: DICOM without pixel data (RT plans, structured reports), or a compressed
    transfer syntax whose decoder is not installed.
    """


class InconsistentSeries(ImagingError):
    """Files that should form one series disagree (mixed series, sizes or orientations)."""


class ImageTooLarge(ImagingError):
    """The header declares more pixel data than the configured size limit allows.

    Also raised when compressed data (a gzip or deflate stream, an RLE or JPEG frame)
    would decompress to more than its header declares or a limit allows: the bytes are
    checked as they arrive, so the refusal costs no more memory than the limit.
    """


class UnsafeArchive(ImagingError):
    """A zip archive is nested too deep, holds too many members, or declares too many bytes.

    See :data:`imaging_lib.limits.MAX_ZIP_DEPTH`, :data:`~imaging_lib.limits.MAX_ZIP_MEMBERS`
    and :data:`~imaging_lib.limits.MAX_ZIP_INFLATED_BYTES`. Nothing of it is inflated.
    """


class UnexpectedFailure(ImagingError):
    """A reader or the de-identifier failed in a way the library has no typed error for.

    This is a bug to report (the reason names the exception). Ingest records the file as
    quarantined with this error and goes on with the batch.
    """


class InvalidGeometry(ImagingError):
    """The affine is not finite or is singular, so voxels have no place in the world."""


class InvalidSeed(ImagingError):
    """A segmentation seed lies outside the volume or on a voxel without a finite value."""


class RegionTooLarge(ImagingError):
    """A grown region exceeds the maximum volume allowed (it most likely leaked)."""


class MissingDependency(ImagingError):
    """An optional package is needed for this input; the message names it."""


class SampleDataMissing(ImagingError):
    """The package that ships the sample data is not installed; the message names it."""


class ReportFailed(ImagingError):
    """A report could not be produced: bad parameters, a failing notebook cell, or its export."""


class KeyFileUnsafe(ImagingError):
    """The de-identification key file may be read by others, is not a regular file, or is too short."""


class KeyMismatch(ImagingError):
    """The store was de-identified with another key: its key fingerprint differs.

    Ingesting with a second key would give the same patients a second set of pseudonyms
    and UIDs, so nothing is written.
    """


class KeyInStore(ImagingError):
    """The store holds a de-identification key (``config/deid_secret``, from older versions).

    Whoever can read the store could re-identify patients with it. It must be moved out of
    the store (``imaging-lab key move-out-of-store``) before the store is used again.
    """


class InsecureServing(ImagingError):
    """A server would be reachable from other machines without authentication."""


class MissingRecord(ImagingError, KeyError):
    """A store key (record, volume, DICOM file) does not exist.

    Also a :class:`KeyError`, so ``except KeyError`` and mapping-style code keep working.
    """

    def __str__(self) -> str:  # KeyError would print the repr of the arguments
        return f"{self.source}: {self.reason}"


class UnreadableRecord(ImagingError):
    """A stored JSON record exists but cannot be parsed."""


class BurnedInAnnotation(ImagingError):
    """The image declares burned-in annotation (text in the pixels) and was refused.

    Text in the pixels may identify the patient; header de-identification cannot remove
    it. Ingest quarantines such images unless the caller opts in.
    """


class InvalidInput(ImagingError):
    """An array given to preprocessing, a model or an explainer has the wrong shape or NaN/inf."""


class ModelError(ImagingError):
    """Base class of the errors about a model named by URI (its file, spec or outputs)."""


class ModelNotFound(ModelError):
    """No model file or spec exists at the URI."""


class ModelChecksumMismatch(ModelError):
    """The model file's SHA-256 differs from the checksum its spec (or the caller) expects."""


class InvalidModelSpec(ModelError):
    """The model spec is missing fields, or the weights do not fit the architecture it names."""


class InvalidModelOutput(ModelError):
    """The model returned the wrong number of classes, the wrong shape, or NaN/inf."""
