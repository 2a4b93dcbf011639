"""Typed errors raised by the library.

Every failure the library reports about an input is one of these classes. Each message
names the offending source (a path, a store key, a model URI) and the reason, so that a
batch can record it and a person can act on it without a traceback from inside pydicom,
nibabel or torch.
"""

from __future__ import annotations

import os

__all__ = [
    "ClusterUnavailable",
    "ImageTooLarge",
    "ImagingError",
    "InconsistentSeries",
    "InsecureServing",
    "InvalidGeometry",
    "InvalidInput",
    "InvalidModelOutput",
    "InvalidModelSpec",
    "InvalidSeed",
    "MissingDependency",
    "ModelChecksumMismatch",
    "ModelError",
    "ModelNotFound",
    "PermissionDenied",
    "RegionTooLarge",
    "ReportFailed",
    "SampleDataMissing",
    "SignInExpired",
    "UnreadableImage",
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
    """The header declares more pixel data than the configured size limit allows."""


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


class InsecureServing(ImagingError):
    """A server would be reachable from other machines without strong enough authentication (a short token)."""


class PermissionDenied(ImagingError):
    """The acting user's roles do not allow the action (the source names the user).

    Raised by :func:`imaging_lib.identity.require`, before anything is written.
    """


class SignInExpired(ImagingError):
    """A JupyterHub token was refused (expired, revoked, or never issued): sign in again."""


class ClusterUnavailable(ImagingError):
    """The Dask cluster of the chosen profile cannot be reached or refused to start one."""


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
